"""Predicting a run the study has not trained: at a compute budget beyond the grid, the
compute-optimal size, and the loss the model chosen for it will reach, with an interval.

One pass, one direction: the grid's points (`grid_points`) -> both methods' forecasts at the
budget, their leave-one-budget-out backtest and the method it picks (`forecast`, by
analysis.forecast) -> the model chosen there (by the caller, from `Ahead.n_opt`) -> its loss
(`Ahead.predict`, a `Prediction`): by approach 3, L(N, D) at that model's N and tokens; by the
loss-at-optimum law, L_opt(C), the loss of the compute-optimal model, for the model nearest it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from analysis import forecast as forecasting
from analysis.fits import best_runs, law_points
from analysis.results import Optimum, Prediction, forecast_error

LEVEL = 0.95


def grid_points(trials: pd.DataFrame, architecture: str) -> tuple[pd.DataFrame, list | None]:
    """The points an architecture's predictions are fitted to (trial_id, N, D, C, loss; in a
    learning-rate sweep, each cell's best run) and the sweep's envelope (None without one)."""
    points, envelope, _ = best_runs(law_points(trials, architecture))
    return points, envelope


@dataclass(frozen=True)
class Ahead:
    """The forecast at a budget beyond the grid (`forecast`: both methods, the backtest, the
    method it picked) and the points it was fitted to: what a prediction needs before the
    model trained there is chosen."""

    forecast: forecasting.Forecast
    points: pd.DataFrame  # trial_id, N, D, C, loss

    @property
    def flops(self) -> float:
        return self.forecast.target

    @property
    def n_opt(self) -> float:
        """The chosen method's compute-optimal N."""
        return self.forecast.chosen.n_opt.estimate

    def predict(self, n_params: int, tokens: int) -> Prediction:
        """The prediction for the model of `n_params` trained on `tokens` at this budget, by
        the chosen method, with its interval (none where the resamples give no spread)."""
        chosen, p = self.forecast.chosen, self.points
        fit = self.forecast.fits[chosen.method]  # the fit behind the forecast
        if chosen.method in (forecasting.APPROACH_3, forecasting.DATA_CONSTRAINED):
            estimate = fit.loss_estimate(n_params, tokens)  # the model reads fresh data
            loss, ci, params, warnings = estimate.estimate, estimate.ci, fit.solution.params, ()
            a = params["beta"] / (params["alpha"] + params["beta"])
            notes = ("its loss is L(N, D) of approach 3 at its own N and tokens",)
        else:
            loss, ci = chosen.loss.estimate, chosen.loss.ci
            params = fit.params()
            a, warnings = params["a"], ()
            notes = ("its loss is L_opt(C) of the loss-at-optimum law, the loss of the "
                     "compute-optimal model, for the size nearest N_opt",)  # fmt: skip
        if ci is None:
            warnings += ("no interval: the bootstrap's resamples give no spread of the loss",)
        optimum = Optimum(source=chosen.method, n_opt=chosen.n_opt, d_opt=chosen.d_opt, a=a,
                          interval=chosen.interval)  # fmt: skip
        shown = tuple(self.forecast.warnings) + tuple(chosen.warnings) + warnings
        return Prediction(flops=self.flops, optimum=optimum, n_params=int(n_params),
                          tokens=int(tokens), loss=float(loss), ci=ci and tuple(ci),
                          params=dict(params), n_boot=chosen.n_boot, interval=chosen.interval,
                          trials=tuple(sorted(p.trial_id)), warnings=shown,
                          forecast=self.stored(), notes=notes)  # fmt: skip

    def stored(self) -> dict:
        """The forecast as a prediction keeps it: `Forecast.to_json()["forecast"]` and its
        line (`text`, which the report shows: the backtest's spread is not in the JSON)."""
        return self.forecast.to_json()["forecast"] | {"text": self.forecast.text()}


def forecast(points: pd.DataFrame, flops: float, n_boot: int, seed: int = 0) -> Ahead:
    """Both methods' forecasts of the compute-optimal loss, N and D at `flops` from the points
    (trial_id, N, D, C, loss; intervals from resamples of whole budgets), their backtests and
    the method the backtest picks (analysis.forecast.forecast).

    Raises ValueError, with the reason, when the points cannot support a prediction."""
    ahead = forecasting.forecast(points.N, points.D, points.C, points.loss, flops,
                                 n_boot=n_boot, seed=seed, unique=points.get("U"))  # fmt: skip
    n_opt = ahead.chosen.n_opt.estimate
    if n_opt is None or not math.isfinite(n_opt):
        raise ValueError(f"{ahead.method} gives no finite compute-optimal N at {flops:.3g} FLOPs")
    return Ahead(ahead, points)


def verdict(predicted: float, low, high, measured: float, method: str | None = None) -> str:
    """How a measurement compares with its prediction (made by `method`, where it is known):
    the relative error as the backtest gives it (forecast / measured − 1: positive where the
    forecast was too high), inside or outside the interval."""
    error = forecast_error(predicted, measured)
    by = f" by {method}" if method else ""
    text = f"measured {measured:.4g}, predicted {predicted:.4g}"
    if low is not None and high is not None:
        inside = "inside" if low <= measured <= high else "outside"
        return text + f" [{low:.4g}, {high:.4g}]{by}: error {error:+.2%}, {inside} the interval"
    return text + f" (no interval){by}: error {error:+.2%}"
