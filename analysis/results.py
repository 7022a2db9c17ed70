"""What a fit found, as typed values, and their one JSON form.

A law's fit (`LawFit`), an IsoFLOP analysis (`IsoFlopFit`), a law the points could not support
(`NotFitted`), a two-step accuracy fit (`TaskFit`, a table's or architecture's in `TaskFits`),
a forecast at a budget beyond the grid (`Prediction`), and a study's fits by architecture
(`StudyFits`). They are frozen: a fit is made once, then read. The fitting machinery
(analysis/laws.py's solutions, with their bootstrap resamples) stays behind them.

This module is the one place that turns them into JSON and back: the store's fit rows, `study
fit --json`, the export and the stored prediction's fit all come from `to_json` here, NaN and
infinities as null (JSON has neither)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TRIALS, RESIDUALS = "trial bootstrap", "residual bootstrap"  # what an interval resampled


def nulls(value):
    """NaN and infinities as None, recursively (JSON has no NaN); numpy scalars as Python's."""
    if isinstance(value, dict):
        return {k: nulls(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nulls(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def json_of(value):
    """The JSON form of a result, or of a dict or list holding results (and plain values)."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, dict):
        return {k: json_of(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_of(v) for v in value]
    return nulls(value)


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


@dataclass(frozen=True)
class Estimate:
    """A number a fit estimates, with its 95% interval (None: no interval)."""

    estimate: float | None
    ci: tuple[float | None, float | None] | None = None

    def text(self, digits: int = 4, ci_digits: int = 4) -> str:
        """The text "0.34 [0.29, 0.4]"; a value or bound that is not finite is said, not printed."""
        text = f"{self.estimate:.{digits}g}" if _finite(self.estimate) else "not finite"
        if not self.ci:
            return text
        if not all(_finite(v) for v in self.ci):
            return text + " (no finite interval)"
        return text + f" [{self.ci[0]:.{ci_digits}g}, {self.ci[1]:.{ci_digits}g}]"

    def to_json(self) -> dict:
        return nulls({"estimate": self.estimate, "ci": list(self.ci) if self.ci else None})

    @classmethod
    def from_json(cls, entry: dict) -> Estimate:
        ci = entry.get("ci")
        return cls(entry.get("estimate"), tuple(ci) if ci else None)


def _estimates(entries: dict[str, Estimate]) -> dict:
    return {name: e.to_json() for name, e in entries.items()}


def _read_estimates(entries: dict) -> dict[str, Estimate]:
    return {name: Estimate.from_json(e) for name, e in entries.items()}


@dataclass(frozen=True)
class Holdout:
    """The self-test: the law refitted without the largest model (L(N)) or compute budget
    (L(N, D)), and how far off its prediction of the held-out loss was; `error` where the
    refit could not be made."""

    held_out: str  # what was held out, in words
    where: dict[str, float] | None = None  # {"N": ...} or {"C_6ND": ...}
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
            return cls(d["held_out"], error=d["error"])
        return cls(d["held_out"], d["where"], d["n_points"], tuple(d["predicted"]),
                   tuple(d["actual"]), d["error_pct"])  # fmt: skip


def _tail(fit, out: dict) -> dict:
    """The envelope of a learning-rate sweep and the points fitted, where the fit has them."""
    if fit.envelope is not None:
        out["envelope"] = nulls(list(fit.envelope))
    if fit.data is not None:
        out["data"] = nulls(list(fit.data))
    return out


def _rows(d: dict, key: str) -> tuple[dict, ...] | None:
    return tuple(d[key]) if key in d else None


@dataclass(frozen=True)
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
        return nulls(_tail(self, out))

    @classmethod
    def from_json(cls, d: dict) -> LawFit:
        q = d["quality"]
        holdout = Holdout.from_json(d["holdout"]) if "holdout" in d else None
        return cls(d["law"], d["formula"], d["n_points"], d["n_groups"],
                   _read_estimates(d["params"]), _read_estimates(d["derived"]), d["interval"],
                   d["compute"], q["rmse_log"], q["huber_objective"], q["n_boot"],
                   tuple(q["warnings"]), holdout, _rows(d, "envelope"),
                   _rows(d, "data"))  # fmt: skip


@dataclass(frozen=True)
class Minimum:
    """One compute budget of an IsoFLOP analysis: the parabola of loss in ln N through its
    points and the loss-optimal size at its minimum."""

    C: float
    N_opt: float
    D_opt: float
    loss_min: float
    n_points: int
    parabola: tuple[float, float, float]  # loss(ln N): curvature, slope, intercept

    def to_json(self) -> dict:
        return nulls({"C": self.C, "N_opt": self.N_opt, "D_opt": self.D_opt,
                      "loss_min": self.loss_min, "n_points": self.n_points,
                      "parabola": list(self.parabola)})  # fmt: skip

    @classmethod
    def from_json(cls, d: dict) -> Minimum:
        return cls(d["C"], d["N_opt"], d["D_opt"], d["loss_min"], d["n_points"],
                   tuple(d["parabola"]))  # fmt: skip


ISOFLOP_FORMULA = "N_opt ∝ C^a, D_opt ∝ C^b"


@dataclass(frozen=True)
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
        return cls(d["n_points"], d["n_groups"], params["a"], params["b"],
                   tuple(Minimum.from_json(m) for m in d["budgets"]), d["interval"],
                   d["quality"]["n_boot"], tuple(d["quality"]["warnings"]),
                   _rows(d, "envelope"), _rows(d, "data"))  # fmt: skip


@dataclass(frozen=True)
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
        return cls(d["law"], d["error"], tuple(d.get("quality", {}).get("warnings", [])),
                   _rows(d, "envelope"), _rows(d, "data"))  # fmt: skip


Fit = LawFit | IsoFlopFit | NotFitted


def fit_from_json(d: dict) -> Fit:
    """A law's fit from its JSON form (`study fit --json`, one architecture's)."""
    if "error" in d:
        return NotFitted.from_json(d)
    return IsoFlopFit.from_json(d) if d["law"] == "isoflop" else LawFit.from_json(d)


@dataclass(frozen=True)
class Step1:
    """The two-step fit's first step: task loss against N (and D)."""

    formula: str
    params: dict[str, Estimate]
    n_points: int
    rmse_log: float
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return nulls({"formula": self.formula, "params": _estimates(self.params),
                      "n_points": self.n_points, "rmse_log": self.rmse_log,
                      "warnings": list(self.warnings)})  # fmt: skip


@dataclass(frozen=True)
class Step2:
    """The two-step fit's second step: accuracy against task loss, a sigmoid above chance."""

    formula: str
    params: dict[str, Estimate]  # a, b, k, L0
    n_points: int
    rmse: float
    chance: float

    def to_json(self) -> dict:
        return nulls({"formula": self.formula, "params": _estimates(self.params),
                      "n_points": self.n_points, "rmse": self.rmse,
                      "chance": self.chance})  # fmt: skip


@dataclass(frozen=True)
class TaskFit:
    """One task's two-step prediction of accuracy at `target` (N, D), with 95% intervals from
    resampling whole runs; in the self-test, the run held out and what it measured."""

    task_loss: Estimate
    accuracy: Estimate
    step1: Step1
    step2: Step2
    target: dict[str, float]
    n_runs: int
    n_boot: int
    held_out: str | None = None  # the self-test: the largest run, predicted from the others
    measured: Estimate | None = None  # its accuracy (interval over the items, where known)
    measured_task_loss: float | None = None

    def line(self, name: str, task: str) -> str:
        """One line for the terminal and the report's summary."""
        if self.held_out is not None:
            return (f"{name} {task}: the largest run {self.held_out} held out and predicted from "
                    f"the other {self.n_runs}: accuracy {_show(self.accuracy)}, measured "
                    f"{_show(self.measured)}")  # fmt: skip
        where = ", ".join(f"{k}={v:.3g}" for k, v in self.target.items())
        return (f"{name} {task}: accuracy {_show(self.accuracy)} at {where} (task loss "
                f"{_show(self.task_loss)} bits per byte)")  # fmt: skip

    def to_json(self) -> dict:
        out = {"task_loss": self.task_loss.to_json(), "accuracy": self.accuracy.to_json(),
               "step1": self.step1.to_json(), "step2": self.step2.to_json(),
               "target": dict(self.target), "n_runs": self.n_runs,
               "n_boot": self.n_boot}  # fmt: skip
        if self.held_out is not None:
            measured = {"estimate": self.measured.estimate}
            if self.measured.ci:  # over the items, where the table gave it
                measured["ci"] = list(self.measured.ci)
            out |= {"held_out": self.held_out, "measured": measured,
                    "measured_task_loss": self.measured_task_loss}  # fmt: skip
        return nulls(out)

    @classmethod
    def from_json(cls, d: dict) -> TaskFit:
        s1, s2 = d["step1"], d["step2"]
        step1 = Step1(s1["formula"], _read_estimates(s1["params"]), s1["n_points"],
                      s1["rmse_log"], tuple(s1["warnings"]))  # fmt: skip
        step2 = Step2(s2["formula"], _read_estimates(s2["params"]), s2["n_points"], s2["rmse"],
                      s2["chance"])  # fmt: skip
        measured = Estimate.from_json(d["measured"]) if "measured" in d else None
        return cls(Estimate.from_json(d["task_loss"]), Estimate.from_json(d["accuracy"]), step1,
                   step2, dict(d["target"]), d["n_runs"], d["n_boot"], d.get("held_out"),
                   measured, d.get("measured_task_loss"))  # fmt: skip


def _show(entry: Estimate, digits: int = 3) -> str:
    text = f"{entry.estimate:.{digits}g}"
    ci = entry.ci
    return text + (f" [{ci[0]:.{digits}g}, {ci[1]:.{digits}g}]" if ci else " (no interval)")


@dataclass(frozen=True)
class TaskFits:
    """The two-step fits of every task of a table or an architecture (a task that cannot be
    fitted: `NotFitted`), and what they assumed (`warnings`: chance taken as 0)."""

    tasks: dict[str, TaskFit | NotFitted]
    warnings: tuple[str, ...] = ()

    def fitted(self) -> dict[str, TaskFit]:
        """The tasks that were fitted."""
        return {t: r for t, r in self.tasks.items() if isinstance(r, TaskFit)}

    def failed(self) -> dict[str, NotFitted]:
        """The tasks that could not be, with why."""
        return {t: r for t, r in self.tasks.items() if isinstance(r, NotFitted)}

    def lines(self, name: str, fitted_only: bool = False) -> list[str]:
        """One line per task (only the fitted ones: `fitted_only`)."""
        return [r.line(name, task) if isinstance(r, TaskFit)
                else f"{name} {task}: two-step fit not made ({r.error})"
                for task, r in self.tasks.items()
                if isinstance(r, TaskFit) or not fitted_only]  # fmt: skip

    def all_warnings(self, name: str) -> list[str]:
        """What the fits assumed, and each task's step-1 warnings, one line each."""
        return list(self.warnings) + [f"{name} {task} two-step: {warning}"
                                      for task, r in self.fitted().items()
                                      for warning in r.step1.warnings]  # fmt: skip

    def to_json(self) -> dict:
        tasks = {t: r.to_json() if isinstance(r, TaskFit) else {"error": r.error}
                 for t, r in self.tasks.items()}  # fmt: skip
        return {"law": "task", "tasks": tasks, "warnings": list(self.warnings)}

    @classmethod
    def from_json(cls, d: dict) -> TaskFits:
        tasks = {t: NotFitted("task", r["error"]) if "error" in r else TaskFit.from_json(r)
                 for t, r in d["tasks"].items()}  # fmt: skip
        return cls(tasks, tuple(d.get("warnings", [])))


@dataclass(frozen=True)
class StudyFits:
    """A study's fits by architecture: its laws (architecture -> law -> fit), its two-step
    task fits and its zero-shot trends (`trends.study_trends`, as that module makes them)."""

    laws: dict[str, dict[str, Fit]]
    tasks: dict[str, TaskFits] = field(default_factory=dict)
    trends: dict[str, dict] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        """Every warning of the fits, one line each ("decoder n: E = ... sits at its bound"),
        then the task fits' and the tasks not fitted."""
        out = [f"{architecture} {law}: {warning}"
               for architecture, laws in sorted(self.laws.items())
               for law, fit in laws.items()
               for warning in fit.warnings]  # fmt: skip
        for name, result in sorted(self.tasks.items()):
            out += result.all_warnings(name)
        for name, result in sorted(self.tasks.items()):
            out += [f"{name} {task}: two-step fit not made ({r.error})"
                    for task, r in result.failed().items()]  # fmt: skip
        return out

    def to_json(self) -> dict[str, dict[str, dict]]:
        """The laws' JSON, by architecture and law."""
        return {arch: {law: fit.to_json() for law, fit in laws.items()}
                for arch, laws in self.laws.items()}  # fmt: skip

    def tasks_json(self) -> dict[str, dict]:
        """The task fits' JSON, by architecture."""
        return {arch: result.to_json() for arch, result in self.tasks.items()}

    @classmethod
    def from_json(cls, laws: dict, tasks: dict | None = None, trends: dict | None = None):
        """A study's fits from their JSON (`to_json`, `tasks_json`); the fits read back have
        no solution (no curve or band to draw)."""
        out = {arch: {law: fit_from_json(d) for law, d in fits.items()}
               for arch, fits in laws.items()}  # fmt: skip
        tasks = {arch: TaskFits.from_json(r) for arch, r in (tasks or {}).items()}
        return cls(out, tasks, dict(trends or {}))

    def rows(self) -> list[dict]:
        """The fits as the rows a store keeps (architecture, law, params, quality and the
        points fitted), NaN-free: the laws', the trends', then the task fits'."""
        rows = []
        for architecture, laws in self.laws.items():
            for law, fit in laws.items():
                stored = fit.to_json()  # law, params, quality, data, the rest
                params, data = stored.pop("params", {}), stored.pop("data")
                quality = stored.pop("quality", {}) | {k: v for k, v in stored.items()
                                                       if k != "law"}  # fmt: skip
                rows.append({"architecture": architecture, "law": law, "params": params,
                             "quality": quality, "data": data})  # fmt: skip
        for architecture, result in self.trends.items():
            for task, t in result["trends"].items():
                quality = {"metric": t["metric"], "spearman_rho": t["spearman_rho"],
                           "p_value": t["p_value"], "verdict": result["verdict"]}  # fmt: skip
                points = [{"n_params": n, t["metric"]: v}
                          for n, v in zip(t["n_params"], t["values"], strict=True)]  # fmt: skip
                rows.append({"architecture": architecture, "law": f"trend:{task}",
                             "params": {"slope": {"estimate": t["slope"], "ci": t["ci"]}},
                             "quality": quality, "data": points})  # fmt: skip
        for architecture, result in self.tasks.items():
            for task, t in result.fitted().items():
                stored = t.to_json()
                params = {"step1": stored.pop("step1"), "step2": stored.pop("step2")}
                rows.append({"architecture": architecture, "law": f"task:{task}",
                             "params": params, "quality": stored, "data": []})  # fmt: skip
        return rows


@dataclass(frozen=True)
class Optimum:
    """The compute-optimal N and D at a budget, and the fit they came from: the IsoFLOP minima
    ("isoflop": `minima`, (C, N_opt) each) or L(N, D)'s allocation ("nd")."""

    source: str  # "isoflop" or "nd"
    n_opt: Estimate
    d_opt: Estimate
    a: float  # N_opt ∝ C^a
    interval: str | None  # what the intervals resampled
    minima: tuple[tuple[float, float], ...] | None = None

    def to_json(self) -> dict:
        out = {"a": self.a}
        if self.minima is not None:
            out["minima"] = [list(m) for m in self.minima]
        out |= {"interval": self.interval, "N_opt": self.n_opt.to_json(),
                "D_opt": self.d_opt.to_json()}  # fmt: skip
        return nulls(out)


def stored_optimum(fit: dict) -> tuple[Estimate, Estimate]:
    """N_opt and D_opt with their intervals, from the fit a prediction was stored with
    (`Prediction.fit_json`); no estimate where it has none (D_opt: predictions made before it
    was kept)."""
    optimum = fit.get("optimum", {})
    return tuple(Estimate.from_json(optimum.get(k) or {}) for k in ("N_opt", "D_opt"))


@dataclass(frozen=True)
class Prediction:
    """A forecast at a compute budget beyond the grid: the compute-optimal N and D there
    (`optimum`), the model that will be trained for it (`n_params`, `tokens`) and the loss
    L(N, D) gives that model, with the 95% interval of the bootstrap's predictions."""

    flops: float
    optimum: Optimum
    n_params: int
    tokens: int
    loss: float
    ci: tuple[float, float] | None  # None where the resamples give no spread
    params: dict[str, float]  # L(N, D)'s estimates
    n_boot: int
    interval: str | None  # what the loss's interval resampled
    trials: tuple[str, ...]  # the trials fitted
    warnings: tuple[str, ...] = ()

    @property
    def n_opt(self) -> float:
        return self.optimum.n_opt.estimate

    def fit_json(self) -> dict:
        """The fit behind it, as the store keeps it beside the prediction."""
        return nulls({"law": "nd", "params": dict(self.params), "n_boot": self.n_boot,
                      "interval": self.interval, "optimum": self.optimum.to_json(),
                      "trials": list(self.trials), "warnings": list(self.warnings)})  # fmt: skip

    def to_json(self) -> dict:
        low, high = self.ci or (None, None)
        o = self.optimum
        return nulls({"n_opt": o.n_opt.estimate, "n_opt_ci": o.n_opt.to_json()["ci"],
                      "d_opt": o.d_opt.estimate, "d_opt_ci": o.d_opt.to_json()["ci"],
                      "n_opt_from": o.source, "n_params": self.n_params, "tokens": self.tokens,
                      "predicted_loss": self.loss, "ci_low": low, "ci_high": high,
                      "fit": self.fit_json()})  # fmt: skip
