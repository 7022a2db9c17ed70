"""A law's fit (`LawFit`: L(N) or L(N, D)), an IsoFLOP analysis (`IsoFlopFit`), the
loss-at-optimum law (`LossOptimumFit`), a law the points could not support (`NotFitted`), and
their JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.results.estimates import RESIDUALS, Estimate, _estimates, _read_estimates, nulls


@dataclass(frozen=True, kw_only=True)
class Holdout:
    """The self-test: the law refitted without the largest model (L(N)) or compute budget
    (L(N, D)), and how far off its prediction of the held-out loss was; `error` where the
    refit could not be made."""

    held_out: str  # what was held out, in words
    where: dict[str, float] | None = None  # {"N": ...}, {"C_6ND": ...} or a table's {"C": ...}
    n_points: int = 0
    predicted: tuple[float, ...] = ()
    actual: tuple[float, ...] = ()
    error_pct: float | None = None  # the mean relative error of the prediction, in percent
    error: str | None = None

    def to_json(self) -> dict:
        if self.error is not None:
            return {"held_out": self.held_out, "error": self.error}
        return nulls({"held_out": self.held_out, "where": self.where, "n_points": self.n_points,
                      "predicted": list(self.predicted), "actual": list(self.actual),
                      "error_pct": self.error_pct})  # fmt: skip

    @classmethod
    def from_json(cls, d: dict) -> Holdout:
        if "error" in d:
            return cls(held_out=d["held_out"], error=d["error"])
        return cls(held_out=d["held_out"], where=d["where"], n_points=d["n_points"],
                   predicted=tuple(d["predicted"]), actual=tuple(d["actual"]),
                   error_pct=d["error_pct"])  # fmt: skip


def _tail(fit, out: dict) -> dict:
    """The envelope of a learning-rate sweep and the points fitted, where the fit has them."""
    if fit.envelope is not None:
        out["envelope"] = nulls(list(fit.envelope))
    if fit.data is not None:
        out["data"] = nulls(list(fit.data))
    return out


def _rows(d: dict, key: str) -> tuple[dict, ...] | None:
    return tuple(d[key]) if key in d else None


@dataclass(frozen=True, kw_only=True)
class LawFit:
    """A law (L(N) or L(N, D)) fitted to points: each parameter's estimate and interval, how
    the intervals were made, what follows from the parameters (L(N, D): the compute-optimal
    allocation at `compute`), the residuals, the warnings and the held-out self-test."""

    law: str  # "n" or "nd"
    formula: str
    n_points: int
    n_groups: int  # runs: the bootstrap's unit
    params: dict[str, Estimate]
    derived: dict[str, Estimate]
    interval: str | None  # laws.TRIALS or laws.RESIDUALS: what the intervals resampled
    compute: float | None  # the budget the derived allocation is quoted at
    rmse_log: float  # root-mean-square residual of log-loss
    huber_objective: float  # summed Huber loss at the optimum
    n_boot: int
    warnings: tuple[str, ...] = ()
    holdout: Holdout | None = None
    envelope: tuple[dict, ...] | None = None  # a learning-rate sweep's cells (fits.envelope)
    data: tuple[dict, ...] | None = None  # the points fitted (a study's fits keep them)
    target: dict | None = None  # L(N, D) at `--target`: {"N", "D", "loss", "ci"}
    # the fitting machinery's solution (laws.LawSolution): predictions and bootstrap bands;
    # not part of the JSON, so a fit read back from JSON has none
    solution: Any = field(default=None, compare=False, repr=False)

    def predict(self, **x) -> np.ndarray:
        """The fitted law's loss at the given variables, e.g. predict(N=..., D=...)."""
        return self.solution.predict(**x)

    def band(self, level: float = 0.95, **x) -> tuple[np.ndarray, np.ndarray]:
        """The pointwise bootstrap interval of the predicted loss at x."""
        return self.solution.band(level, **x)

    def values(self) -> dict[str, Estimate]:
        """The parameters and the derived quantities, by name."""
        return self.params | self.derived

    def summary(self, name: str) -> str:
        """One line for the terminal and the report's summary: the law's key numbers."""
        shown = {
            "n": ["E", "A", "alpha"],
            "nd": ["E", "A", "B", "alpha", "beta", "a", "b", "tokens_per_param"],
            "data-constrained": ["E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star"],
        }[self.law]
        values = self.values()
        line = f"{name} {self.formula}: " + ", ".join(
            f"{n} = {values[n].text(ci_digits=3)}" for n in shown if n in values
        )
        if self.interval == RESIDUALS:  # the trial bootstrap's are the default
            line += " (95% intervals: residual bootstrap)"
        held = self.holdout
        if held is not None and held.error_pct is not None:
            line += f"; refitted without {held.held_out}, predicts it {held.error_pct:+.2f}% off"
        if self.target is not None:
            at, ci = self.target, self.target["ci"]
            line += f"; at N={at['N']:.4g}, D={at['D']:.4g}: loss {at['loss']:.4g}"
            line += f" [{ci[0]:.4g}, {ci[1]:.4g}] (95%, bootstrap)" if ci else " (no interval)"
        return line

    def to_json(self) -> dict:
        out = {
            "law": self.law, "formula": self.formula, "n_points": self.n_points,
            "n_groups": self.n_groups, "params": _estimates(self.params),
            "derived": _estimates(self.derived), "interval": self.interval,
            "compute": self.compute,
            "quality": {"rmse_log": self.rmse_log, "huber_objective": self.huber_objective,
                        "n_boot": self.n_boot, "warnings": list(self.warnings)},
        }  # fmt: skip
        if self.holdout is not None:
            out["holdout"] = self.holdout.to_json()
        if self.target is not None:
            out["target"] = self.target
        return nulls(_tail(self, out))

    @classmethod
    def from_json(cls, d: dict) -> LawFit:
        q = d["quality"]
        holdout = Holdout.from_json(d["holdout"]) if "holdout" in d else None
        return cls(law=d["law"], formula=d["formula"], n_points=d["n_points"],
                   n_groups=d["n_groups"], params=_read_estimates(d["params"]),
                   derived=_read_estimates(d["derived"]), interval=d["interval"],
                   compute=d["compute"], rmse_log=q["rmse_log"],
                   huber_objective=q["huber_objective"], n_boot=q["n_boot"],
                   warnings=tuple(q["warnings"]), holdout=holdout,
                   envelope=_rows(d, "envelope"), data=_rows(d, "data"),
                   target=d.get("target"))  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Minimum:
    """One compute budget of an IsoFLOP analysis: the parabola of loss in ln N through its
    points and the loss-optimal size at its minimum."""

    C: float
    N_opt: float
    D_opt: float
    loss_min: float
    n_points: int  # the points its parabola used
    parabola: tuple[float, float, float]  # loss(ln N): curvature, slope, intercept
    # the sizes a windowed parabola used (the loss-at-optimum law's); None: every size tried
    sizes: tuple[float, ...] | None = None

    def to_json(self) -> dict:
        out = {"C": self.C, "N_opt": self.N_opt, "D_opt": self.D_opt,
               "loss_min": self.loss_min, "n_points": self.n_points,
               "parabola": list(self.parabola)}  # fmt: skip
        if self.sizes is not None:  # absent from an IsoFLOP fit's JSON, as before windows
            out["sizes"] = list(self.sizes)
        return nulls(out)

    @classmethod
    def from_json(cls, d: dict) -> Minimum:
        sizes = tuple(d["sizes"]) if "sizes" in d else None
        return cls(C=d["C"], N_opt=d["N_opt"], D_opt=d["D_opt"], loss_min=d["loss_min"],
                   n_points=d["n_points"], parabola=tuple(d["parabola"]), sizes=sizes)  # fmt: skip


ISOFLOP_FORMULA = "N_opt ∝ C^a, D_opt ∝ C^b"


@dataclass(frozen=True, kw_only=True)
class IsoFlopFit:
    """Hoffmann et al.'s approach 2: the loss-optimal N at each compute budget (`budgets`) and
    the exponents a, b of N_opt ∝ C^a, D_opt ∝ C^b through them, with their intervals."""

    n_points: int
    n_groups: int
    a: Estimate
    b: Estimate
    budgets: tuple[Minimum, ...]
    interval: str | None
    n_boot: int
    warnings: tuple[str, ...] = ()
    envelope: tuple[dict, ...] | None = None
    data: tuple[dict, ...] | None = None
    solution: Any = field(default=None, compare=False, repr=False)  # isoflop.IsoFlopSolution

    law = "isoflop"
    formula = ISOFLOP_FORMULA
    holdout = None  # an IsoFLOP analysis has no self-test

    def values(self) -> dict[str, Estimate]:
        """The exponents, by name."""
        return {"a": self.a, "b": self.b}

    def summary(self, name: str) -> str:
        """One line for the terminal and the report's summary: the exponents."""
        line = f"{name} {self.formula}: " + ", ".join(
            f"{n} = {e.text(ci_digits=3)}" for n, e in self.values().items()
        )
        return line + (" (95% intervals: residual bootstrap)" if self.interval == RESIDUALS else "")

    def to_json(self) -> dict:
        out = {
            "law": self.law, "formula": self.formula, "n_points": self.n_points,
            "n_groups": self.n_groups, "params": _estimates(self.values()),
            "budgets": [m.to_json() for m in self.budgets], "interval": self.interval,
            "quality": {"n_boot": self.n_boot, "warnings": list(self.warnings)},
        }  # fmt: skip
        return nulls(_tail(self, out))

    @classmethod
    def from_json(cls, d: dict) -> IsoFlopFit:
        params = _read_estimates(d["params"])
        return cls(n_points=d["n_points"], n_groups=d["n_groups"], a=params["a"],
                   b=params["b"], budgets=tuple(Minimum.from_json(m) for m in d["budgets"]),
                   interval=d["interval"], n_boot=d["quality"]["n_boot"],
                   warnings=tuple(d["quality"]["warnings"]), envelope=_rows(d, "envelope"),
                   data=_rows(d, "data"))  # fmt: skip


LOSS_OPTIMUM_FORMULA = "L_opt(C) = E + k·C^-γ; N_opt ∝ C^a, D_opt ∝ C^b"


@dataclass(frozen=True, kw_only=True)
class LossOptimumFit:
    """The loss-at-optimum law (as Marin's ladder forecasts): each budget's minimum from a
    parabola in ln N on the sizes near its lowest loss (`window` says the rule, each budget's
    `sizes` which it used), L_opt(C) = E + k·C^-γ through the minima, and N_opt ∝ C^a,
    D_opt ∝ C^b; the intervals resample whole budgets (BUDGETS)."""

    n_points: int
    params: dict[str, Estimate]  # E, k, gamma (L_opt), a, b (N_opt, D_opt)
    budgets: tuple[Minimum, ...]
    window: str  # the window rule, in words
    interval: str | None
    n_boot: int
    warnings: tuple[str, ...] = ()
    envelope: tuple[dict, ...] | None = None
    data: tuple[dict, ...] | None = None
    solution: Any = field(default=None, compare=False, repr=False)  # isoflop.LossOptimumSolution

    law = "optimum"
    formula = LOSS_OPTIMUM_FORMULA
    holdout = None  # the backtest over budgets is the forecast's, not the fit's

    def values(self) -> dict[str, Estimate]:
        """The parameters, by name."""
        return dict(self.params)

    def summary(self, name: str) -> str:
        """One line: the law's parameters, the window and what the intervals resampled."""
        line = f"{name} {self.formula}: " + ", ".join(
            f"{n} = {e.text(ci_digits=3)}" for n, e in self.params.items()
        )
        line += f"; {len(self.budgets)} budgets, {self.window}"
        if self.interval is not None:
            line += f" (95% intervals: {self.interval}, whole isoFLOP curves resampled)"
        return line

    def to_json(self) -> dict:
        out = {
            "law": self.law, "formula": self.formula, "n_points": self.n_points,
            "params": _estimates(self.params), "window": self.window,
            "budgets": [m.to_json() for m in self.budgets], "interval": self.interval,
            "quality": {"n_boot": self.n_boot, "warnings": list(self.warnings)},
        }  # fmt: skip
        return nulls(_tail(self, out))

    @classmethod
    def from_json(cls, d: dict) -> LossOptimumFit:
        return cls(n_points=d["n_points"], params=_read_estimates(d["params"]),
                   budgets=tuple(Minimum.from_json(m) for m in d["budgets"]),
                   window=d["window"], interval=d["interval"], n_boot=d["quality"]["n_boot"],
                   warnings=tuple(d["quality"]["warnings"]), envelope=_rows(d, "envelope"),
                   data=_rows(d, "data"))  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class NotFitted:
    """A law (or a task) the points could not support, and why."""

    law: str
    error: str
    warnings: tuple[str, ...] = ()
    envelope: tuple[dict, ...] | None = None
    data: tuple[dict, ...] | None = None

    formula = None
    holdout = None

    def summary(self, name: str) -> str:
        """One line: what was not fitted, and why."""
        return f"{name} {self.law}: not fitted ({self.error})"

    def to_json(self) -> dict:
        out = {"law": self.law, "error": self.error, "quality": {"warnings": list(self.warnings)}}
        return nulls(_tail(self, out))

    @classmethod
    def from_json(cls, d: dict) -> NotFitted:
        return cls(law=d["law"], error=d["error"],
                   warnings=tuple(d.get("quality", {}).get("warnings", [])),
                   envelope=_rows(d, "envelope"), data=_rows(d, "data"))  # fmt: skip


Fit = LawFit | IsoFlopFit | LossOptimumFit | NotFitted


def fit_from_json(d: dict) -> Fit:
    """A law's fit from its JSON form (`study fit --json`, one architecture's)."""
    if "error" in d:
        return NotFitted.from_json(d)
    kinds = {"isoflop": IsoFlopFit, "optimum": LossOptimumFit}
    return kinds.get(d["law"], LawFit).from_json(d)
