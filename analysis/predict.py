"""Predicting a run the study has not trained: at a compute budget beyond the grid, the
compute-optimal size, and the loss the model chosen for it will reach, with an interval."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from analysis.fits import fit_points

LEVEL = 0.95


def optimal_n(points: pd.DataFrame, flops: float, nd: dict) -> tuple[float, str, dict]:
    """The compute-optimal N at `flops`: from the IsoFLOP minima where 2 budgets have one
    inside their sizes (N_opt ∝ C^a, a line in log-log through the minima, extended), else
    from L(N, D)'s allocation (Hoffmann et al.'s eq. 4, under C = 6ND). Returns N, where it
    came from ("isoflop" or "nd") and what that fit says (a, the minima)."""
    try:
        iso = fit_points("isoflop", points, n_boot=0)
    except ValueError:
        iso = None
    if iso is not None:
        minima = iso["budgets"]
        log_c = np.log([m["C"] for m in minima])
        log_n = np.log([m["N_opt"] for m in minima])
        a = iso["params"]["a"]["estimate"]
        n_opt = float(np.exp(np.mean(log_n - a * log_c) + a * np.log(flops)))
        return n_opt, "isoflop", {"a": a, "minima": [[m["C"], m["N_opt"]] for m in minima]}
    n_opt = nd["derived"].get("N_opt", {}).get("estimate")
    if n_opt is None or not np.isfinite(n_opt):
        raise ValueError("L(N, D) gives no finite compute-optimal N")
    return float(n_opt), "nd", {"a": nd["derived"]["a"]["estimate"]}


def predict_budget(
    points: pd.DataFrame,
    flops: float,
    cell_of: Callable[[float], tuple[int, int]],
    n_boot: int,
) -> dict:
    """A prediction at `flops` from points (trial_id, N, D, C, loss) of one architecture:

    - L(N, D) = E + A/N^α + B/D^β fitted on every point (Huber on log loss, many starts),
      resampled over trials for the interval;
    - the compute-optimal N there (`optimal_n`), and `cell_of(N_opt)`: the N and tokens of the
      model that will be trained at that budget (a whole shape, whole steps);
    - the loss L(N, D) gives that model, with the 95% interval of the bootstrap's predictions
      (none where the resamples give no spread).

    Raises ValueError, with the reason, when the points cannot support a prediction."""
    nd = fit_points("nd", points, n_boot, group="trial_id", compute=flops)
    n_opt, source, optimum = optimal_n(points, flops, nd)
    n_params, tokens = cell_of(n_opt)
    fit = nd["fit"]
    predicted = float(fit.predict(N=n_params, D=tokens))
    ci_low = ci_high = None
    if fit.boot is not None and len(fit.boot):
        low, high = (float(v[0]) for v in fit.band(LEVEL, N=[n_params], D=[tokens]))
        if np.isfinite([low, high]).all() and high > low:
            ci_low, ci_high = low, high
    warnings = list(nd["quality"]["warnings"])
    if ci_low is None:
        warnings.append("no interval: the bootstrap's resamples give no spread of the loss")
    return {
        "n_opt": n_opt,
        "n_opt_from": source,
        "n_params": int(n_params),
        "tokens": int(tokens),
        "predicted_loss": predicted,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "fit": {
            "law": "nd",
            "params": {k: v["estimate"] for k, v in nd["params"].items()},
            "n_boot": nd["quality"]["n_boot"],
            "optimum": optimum,
            "trials": sorted(points.trial_id),
            "warnings": warnings,
        },
    }


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
