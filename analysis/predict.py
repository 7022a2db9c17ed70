"""Predicting a run the study has not trained: at a compute budget beyond the grid, the
compute-optimal size, and the loss the model chosen for it will reach, with an interval.

One pass, one direction: the grid's points (`grid_points`) -> L(N, D) and the optimum at the
budget (`forecast`) -> the model chosen there (by the caller, from `Forecast.optimum`) -> its
loss (`Forecast.predict`, a `Prediction`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.fits import best_runs, fit_points, law_points
from analysis.results import Estimate, LawFit, Optimum, Prediction

LEVEL = 0.95


def grid_points(trials: pd.DataFrame, architecture: str) -> tuple[pd.DataFrame, list | None]:
    """The points an architecture's predictions are fitted to (trial_id, N, D, C, loss; in a
    learning-rate sweep, each cell's best run) and the sweep's envelope (None without one)."""
    points, envelope, _ = best_runs(law_points(trials, architecture))
    return points, envelope


def optimum(points: pd.DataFrame, flops: float, nd: LawFit, n_boot: int) -> Optimum:
    """The compute-optimal N and D at `flops`: from the IsoFLOP minima where 2 budgets have one
    inside their sizes (N_opt ∝ C^a and D_opt ∝ C^b, lines in log-log through the minima,
    extended; the interval from its resamples' lines), else from L(N, D)'s allocation
    (Hoffmann et al.'s eq. 4, under C = 6ND; the interval from its resamples)."""
    try:
        iso = fit_points("isoflop", points, n_boot, group="trial_id")
    except ValueError:
        iso = None
    if iso is not None:
        n_opt, d_opt = iso.solution.optimum(flops, LEVEL)
        minima = tuple((m.C, m.N_opt) for m in iso.budgets)
        return Optimum(source="isoflop", n_opt=n_opt, d_opt=d_opt, a=iso.solution.a,
                       interval=iso.interval, minima=minima)
    n_opt = nd.derived.get("N_opt", Estimate(None)).estimate
    if n_opt is None or not np.isfinite(n_opt):
        raise ValueError("L(N, D) gives no finite compute-optimal N")
    d = nd.derived
    return Optimum(source="nd", n_opt=d["N_opt"], d_opt=d["D_opt"], a=d["a"].estimate,
                   interval=nd.interval)


@dataclass(frozen=True)
class Forecast:
    """L(N, D) fitted to a grid and the compute-optimal N and D at a budget beyond it: what a
    prediction needs before the model trained there is chosen."""

    flops: float
    nd: LawFit
    optimum: Optimum
    trials: tuple[str, ...]  # the trials fitted

    def predict(self, n_params: int, tokens: int) -> Prediction:
        """The prediction for the model of `n_params` trained on `tokens` at this budget: the
        loss L(N, D) gives it, with the 95% interval of the bootstrap's predictions (none
        where the resamples give no spread)."""
        fit = self.nd
        predicted = float(fit.predict(N=n_params, D=tokens))
        ci = None
        if fit.solution.boot is not None and len(fit.solution.boot):
            low, high = (float(v[0]) for v in fit.band(LEVEL, N=[n_params], D=[tokens]))
            if np.isfinite([low, high]).all() and high > low:
                ci = (low, high)
        warnings = fit.warnings
        if ci is None:
            warnings += ("no interval: the bootstrap's resamples give no spread of the loss",)
        return Prediction(flops=self.flops, optimum=self.optimum, n_params=int(n_params),
                          tokens=int(tokens), loss=predicted, ci=ci,
                          params={k: v.estimate for k, v in fit.params.items()},
                          n_boot=fit.n_boot, interval=fit.interval, trials=self.trials,
                          warnings=warnings)  # fmt: skip


def forecast(points: pd.DataFrame, flops: float, n_boot: int) -> Forecast:
    """L(N, D) = E + A/N^α + B/D^β fitted on every point (trial_id, N, D, C, loss; Huber on
    log loss, many starts, resampled over trials for the interval) and the compute-optimal N
    and D at `flops` with their intervals (`optimum`).

    Raises ValueError, with the reason, when the points cannot support a prediction."""
    nd = fit_points("nd", points, n_boot, group="trial_id", compute=flops)
    at = optimum(points, flops, nd, n_boot)
    n_opt = at.n_opt.estimate
    if n_opt is None or not math.isfinite(n_opt):
        raise ValueError(
            f"the {at.source} fit gives no finite compute-optimal N at {flops:.3g} FLOPs"
        )
    return Forecast(flops, nd, at, tuple(sorted(points.trial_id)))


def verdict(predicted: float, low, high, measured: float) -> str:
    """How a measurement compares with its prediction: the relative error, inside or outside
    the interval."""
    error = (measured - predicted) / predicted
    text = f"measured {measured:.4g}, predicted {predicted:.4g}"
    if low is not None and high is not None:
        inside = "inside" if low <= measured <= high else "outside"
        text += f" [{low:.4g}, {high:.4g}]: error {error:+.2%}, {inside} the interval"
    else:
        text += f" (no interval): error {error:+.2%}"
    return text
