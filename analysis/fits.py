"""Fitting the study's laws to its finished trials and storing the fits."""

from __future__ import annotations

import warnings

import pandas as pd
from sqlalchemy.orm import Session

from analysis.laws import fit_power_law
from orchestrator.store import Study, save_fit

N_BOOT = 1000  # bootstrap resamples for the intervals


def fit_study(
    session: Session, study: Study, trials: pd.DataFrame, n_boot: int = N_BOOT
) -> dict[str, dict]:
    """Fit L(N) per architecture on final validation loss; store and return the fits.

    Every finished trial of an architecture is one point (seeds are not averaged, so their
    spread widens the intervals). An architecture with fewer than three finished sizes is
    reported as not fitted, with the reason.
    """
    results: dict[str, dict] = {}
    finished = trials[(trials.status == "finished") & trials.val_loss.notna()]
    for architecture in sorted(trials.architecture.unique()):
        points = finished[finished.architecture == architecture]
        if points.n_params.nunique() < 3:
            results[architecture] = {
                "law": "L(N)",
                "error": f"{points.n_params.nunique()} finished sizes; L(N) needs 3",
            }
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = fit_power_law(points.n_params.to_numpy(), points.val_loss.to_numpy(), n_boot)
        params = {
            name: {
                "estimate": value,
                "ci": list(fit.intervals[name]) if name in fit.intervals else None,
            }
            for name, value in fit.params.items()
        }
        quality = {
            "n_points": fit.n_points,
            "rmse_log": fit.rmse_log,
            "huber_objective": fit.objective,
            "n_boot": fit.n_boot,
            "on_grid_edge": fit.on_grid_edge,
            "warnings": [str(w.message) for w in caught],
        }
        data = points[["trial_id", "n_params", "tokens", "val_loss"]].to_dict("records")
        save_fit(session, study, architecture, "L(N)", params, quality, data)
        results[architecture] = {"law": "L(N)", "params": params, "quality": quality}
    return results
