"""A forecast beyond the grid: the compute-optimal N and D at a budget (`Optimum`) and the
loss of the model trained there (`Prediction`), as the store keeps them."""

from __future__ import annotations

from dataclasses import dataclass

from analysis.results.estimates import Estimate, nulls


@dataclass(frozen=True, kw_only=True)
class Optimum:
    """The compute-optimal N and D at a budget, and the method they came from: the one the
    backtest picked ("approach 3" or "loss-at-optimum"); in predictions stored before the
    backtest, the IsoFLOP minima ("isoflop": `minima`, (C, N_opt) each) or L(N, D) ("nd")."""

    source: str  # the method: "approach 3", "loss-at-optimum" (before: "isoflop" or "nd")
    n_opt: Estimate
    d_opt: Estimate
    a: float | None  # N_opt ∝ C^a
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


def forecast_error(forecast: float, measured: float) -> float:
    """A forecast's relative error, as the backtest and a verified prediction give it:
    forecast / measured − 1 (positive where the forecast was too high)."""
    return forecast / measured - 1


@dataclass(frozen=True, kw_only=True)
class BacktestError:
    """One method's error forecasting one left-out budget's optimum loss (forecast / observed
    − 1), or why it has none."""

    budget: float
    method: str
    error: float | None
    why: str | None = None

    def text(self) -> str:
        """"+1.23%", or "none: <why>"."""
        if self.error is None:
            return f"none: {self.why or 'not forecast'}"
        return f"{self.error:+.2%}"


@dataclass(frozen=True, kw_only=True)
class StoredForecast:
    """The forecast a prediction was made from, as its stored fit keeps it
    (`Forecast.to_json()["forecast"]` and its line, `text`), read back: the chosen method and
    its loss, why the backtest chose it, the backtest's errors; `json`, the whole as stored
    (both methods, their intervals), is what the exports give."""

    method: str
    loss: float | None  # None: not finite
    ci: tuple[float, float] | None
    reason: str
    text: str
    backtest: tuple[BacktestError, ...]
    json: dict

    @classmethod
    def from_json(cls, d: dict) -> StoredForecast:
        rows = tuple(BacktestError(budget=r["budget"], method=r["method"], error=r.get("error"),
                                   why=r.get("why")) for r in d.get("backtest") or [])  # fmt: skip
        ci = d.get("ci")
        return cls(method=d["method"], loss=d.get("loss"), ci=tuple(ci) if ci else None,
                   reason=d.get("reason", ""), text=d.get("text", ""), backtest=rows,
                   json=d)  # fmt: skip

    def chosen(self) -> str:
        """The chosen forecast, "1.71 [1.69, 1.93] by loss-at-optimum"."""
        shown = f"{self.loss:.4g}" if self.loss is not None else "not finite"
        shown += f" [{self.ci[0]:.4g}, {self.ci[1]:.4g}]" if self.ci else " (no interval)"
        return shown + f" by {self.method}"


def stored_forecast(fit: dict | None) -> StoredForecast | None:
    """The forecast a prediction was made from, from its stored fit; None for predictions made
    before it was kept (they came from L(N, D) and the IsoFLOP minima)."""
    kept = (fit or {}).get("forecast")
    return None if kept is None else StoredForecast.from_json(kept)


def forecast_of(row) -> StoredForecast | None:
    """The forecast of a row of the store's predictions frame (its `forecast` column: the JSON
    as stored, or null before the backtest)."""
    kept = getattr(row, "forecast", None) if not isinstance(row, dict) else row.get("forecast")
    return StoredForecast.from_json(kept) if isinstance(kept, dict) else None


@dataclass(frozen=True, kw_only=True)
class Prediction:
    """A forecast at a compute budget beyond the grid: the compute-optimal N and D there
    (`optimum`), the model that will be trained for it (`n_params`, `tokens`) and the loss the
    chosen method gives that model (approach 3: L(N, D) at its N and tokens; loss-at-optimum:
    L_opt(C)), with the 95% interval of the bootstrap's resamples of budgets; `forecast` keeps
    the forecast it came from (both methods and the backtest, as JSON)."""

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
    forecast: dict | None = None  # Forecast.to_json()["forecast"]
    notes: tuple[str, ...] = ()  # how the loss was had (said with the prediction)

    @property
    def n_opt(self) -> float:
        return self.optimum.n_opt.estimate

    def fit_json(self) -> dict:
        """The fit behind it, as the store keeps it beside the prediction."""
        law = "loss-at-optimum" if self.optimum.source == "loss-at-optimum" else "nd"
        out = {"law": law, "params": dict(self.params), "n_boot": self.n_boot,
               "interval": self.interval, "optimum": self.optimum.to_json(),
               "trials": list(self.trials), "warnings": list(self.warnings)}  # fmt: skip
        if self.forecast is not None:
            out |= {"forecast": self.forecast, "notes": list(self.notes)}
        return nulls(out)

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
