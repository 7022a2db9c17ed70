"""A forecast beyond the grid: the compute-optimal N and D at a budget (`Optimum`) and the
loss of the model trained there (`Prediction`), as the store keeps them."""

from __future__ import annotations

from dataclasses import dataclass

from analysis.results.estimates import Estimate, nulls


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
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

    def row(self, *, architecture: str, trial_id: str, trial_hash: str, cell: dict) -> dict:
        """The prediction as the store keeps it (`RunStore.save_prediction`'s columns), with
        the architecture, the trial that will verify it and its cell; N_opt's and D_opt's
        intervals and D_opt ride in the fit (`stored_optimum` reads them back)."""
        low, high = self.ci or (None, None)
        return {"architecture": architecture, "flops": self.flops, "n_opt": self.n_opt,
                "n_opt_from": self.optimum.source, "trial_id": trial_id,
                "trial_hash": trial_hash, "cell": cell, "n_params": self.n_params,
                "tokens": self.tokens, "predicted_loss": self.loss, "ci_low": low,
                "ci_high": high, "fit": self.fit_json()}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class OptimumForecast:
    """The compute-optimal loss, N and D forecast at a budget by one method (`method`, e.g.
    "loss-at-optimum"), each with the 95% interval of its bootstrap (`interval`: what it
    resampled; None: no interval)."""

    flops: float
    method: str
    loss: Estimate
    n_opt: Estimate
    d_opt: Estimate
    interval: str | None
    n_boot: int
    warnings: tuple[str, ...] = ()

    def text(self) -> str:
        """One line: "forecast 2.412 [2.39, 2.44] by loss-at-optimum at C = 1e+22; ..."."""
        line = (f"forecast {self.loss.text()} by {self.method} at C = {self.flops:.3g}; "
                f"N_opt = {self.n_opt.text(3, 3)}, D_opt = {self.d_opt.text(3, 3)}")  # fmt: skip
        if self.interval is not None:
            line += f" (95% intervals: {self.interval} of {self.n_boot})"
        return line

    def to_json(self) -> dict:
        return nulls({"target": {"C": self.flops}, "method": self.method,
                      "loss": self.loss.estimate, "ci": list(self.loss.ci or []) or None,
                      "n_opt": self.n_opt.to_json(), "d_opt": self.d_opt.to_json(),
                      "interval": self.interval, "n_boot": self.n_boot,
                      "warnings": list(self.warnings)})  # fmt: skip
