"""What a fit found, as typed values, and their one JSON form.

A law's fit (`LawFit`), an IsoFLOP analysis (`IsoFlopFit`), the loss-at-optimum law
(`LossOptimumFit`, its forecast at a budget an `OptimumForecast`), a law the points could not
support (`NotFitted`), a two-step accuracy fit (`TaskFit`, a table's or architecture's in
`TaskFits`), a forecast at a budget beyond the grid (`Prediction`), and a study's fits by
architecture (`StudyFits`), with its zero-shot trends (`ArchitectureTrends`, each task's a
`Trend`). They are frozen: a fit is made once, then read. The fitting machinery (analysis/laws.py's
solutions, with their bootstrap resamples) stays behind them.

This package is the one place that turns them into JSON and back: the store's fit rows, `study
fit --json`, the export and the stored prediction all come from `to_json` and `row` here, NaN
and infinities as null (JSON has neither)."""

from analysis.results.estimates import BUDGETS, RESIDUALS, TRIALS, Estimate, json_of, nulls
from analysis.results.laws import (
    ISOFLOP_FORMULA,
    LOSS_OPTIMUM_FORMULA,
    Fit,
    Holdout,
    IsoFlopFit,
    LawFit,
    LossOptimumFit,
    Minimum,
    NotFitted,
    fit_from_json,
)
from analysis.results.predictions import (
    BacktestError,
    Optimum,
    OptimumForecast,
    Prediction,
    StoredForecast,
    forecast_error,
    forecast_of,
    stored_forecast,
    stored_optimum,
)
from analysis.results.study import StudyFits
from analysis.results.tasks import Step1, Step2, TaskFit, TaskFits
from analysis.results.trends import ArchitectureTrends, TableTrend, Trend

__all__ = [
    "BUDGETS", "ISOFLOP_FORMULA", "LOSS_OPTIMUM_FORMULA", "RESIDUALS", "TRIALS",
    "ArchitectureTrends", "BacktestError", "Estimate", "Fit", "Holdout", "IsoFlopFit", "LawFit",
    "LossOptimumFit", "Minimum", "NotFitted", "Optimum", "OptimumForecast", "Prediction",
    "Step1", "Step2", "StoredForecast", "StudyFits", "TableTrend", "TaskFit", "TaskFits", "Trend",
    "fit_from_json", "forecast_error", "forecast_of", "json_of", "nulls", "stored_forecast",
    "stored_optimum",
]  # fmt: skip
