"""Predicting a run the study has not trained: at a compute budget beyond the grid, the
compute-optimal size, and the loss the model chosen for it will reach, with an interval."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from analysis.fits import fit_points, isfinite_json

LEVEL = 0.95


def optimum(
    points: pd.DataFrame, flops: float, nd: dict, n_boot: int
) -> tuple[dict[str, dict], str, dict]:
    """The compute-optimal N and D at `flops`, each {"estimate", "ci"}: from the IsoFLOP minima
    where 2 budgets have one inside their sizes (N_opt ∝ C^a and D_opt ∝ C^b, lines in log-log
    through the minima, extended; the interval from its resamples' lines), else from L(N, D)'s
    allocation (Hoffmann et al.'s eq. 4, under C = 6ND; the interval from its resamples).
    Returns them, where they came from ("isoflop" or "nd") and what that fit says (a, the
    minima, what its intervals resampled)."""
    try:
        iso = fit_points("isoflop", points, n_boot, group="trial_id")
    except ValueError:
        iso = None
    if iso is not None:
        fit = iso["fit"]
        minima = [[m["C"], m["N_opt"]] for m in iso["budgets"]]
        return fit.optimum(flops, LEVEL), "isoflop", {"a": fit.a, "minima": minima,
                                                      "interval": fit.interval}  # fmt: skip
    derived = nd["derived"]
    n_opt = derived.get("N_opt", {}).get("estimate")
    if n_opt is None or not np.isfinite(n_opt):
        raise ValueError("L(N, D) gives no finite compute-optimal N")
    at = {name: {"estimate": derived[name]["estimate"], "ci": derived[name]["ci"]}
          for name in ("N_opt", "D_opt")}  # fmt: skip
    return at, "nd", {"a": derived["a"]["estimate"], "interval": nd["interval"]}


def predict_budget(
    points: pd.DataFrame,
    flops: float,
    cell_of: Callable[[float], tuple[int, int]],
    n_boot: int,
) -> dict:
    """A prediction at `flops` from points (trial_id, N, D, C, loss) of one architecture:

    - L(N, D) = E + A/N^α + B/D^β fitted on every point (Huber on log loss, many starts),
      resampled over trials for the interval;
    - the compute-optimal N and D there with their intervals (`optimum`), and `cell_of(N_opt)`:
      the N and tokens of the model that will be trained at that budget (a whole shape, whole
      steps);
    - the loss L(N, D) gives that model, with the 95% interval of the bootstrap's predictions
      (none where the resamples give no spread).

    Raises ValueError, with the reason, when the points cannot support a prediction."""
    nd = fit_points("nd", points, n_boot, group="trial_id", compute=flops)
    at, source, allocation = optimum(points, flops, nd, n_boot)
    at = isfinite_json(at)  # a resample's bound that overflowed: null, as JSON can hold it
    if at["N_opt"]["estimate"] is None:
        raise ValueError(f"the {source} fit gives no finite compute-optimal N at {flops:.3g} FLOPs")
    n_opt = float(at["N_opt"]["estimate"])
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
        "n_opt_ci": at["N_opt"]["ci"],
        "d_opt": at["D_opt"]["estimate"],
        "d_opt_ci": at["D_opt"]["ci"],
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
            "interval": nd["interval"],  # what the loss's interval resampled
            "optimum": allocation | at,  # N_opt and D_opt with their intervals
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
