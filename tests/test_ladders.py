"""Published ladders as tests: Porian et al. 2024's isoFLOP ladder forecasts its largest budget
from the others as BENCHMARKS.md ("A second published ladder") records, through `study fit
--csv --law forecast`'s own path."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.isoflop import windowed_minima
from orchestrator.fitting import fit_csv
from tests.conftest import ANCHORS

PORIAN = ANCHORS / "porian-ladder.csv"
COLUMNS = {"N": "N", "D": "D", "C": "C", "loss": "loss"}
LARGEST = 2.56e19
# The largest budget's optimum, its windowed parabola on the whole ladder (the authors' own
# interpolation gives 3.0949), and the errors measured with 200 bootstrap resamples; the point
# forecasts do not depend on the resamples.
OBSERVED = 3.0972
MEASURED = {  # fitted on: (loss-at-optimum error, approach 3 error)
    "held_out=0": (-0.0038, 0.0688),  # the other eleven budgets, a 2× extrapolation
    "paper_fit=1": (-0.0102, 0.2000),  # the paper's six (1.25e16..4e17), 64×
}


def _forecast(where: str):
    return fit_csv(PORIAN, "forecast", COLUMNS, filters=[where], n_boot=8, target=f"C={LARGEST}")


def test_the_whole_ladder_measures_the_largest_optimum():
    frame = pd.read_csv(PORIAN)
    minima = windowed_minima(frame.N, frame.D, frame.C, frame.loss)
    largest = max(minima, key=lambda m: m["C"])
    assert largest["C"] == pytest.approx(LARGEST, rel=1e-9)
    assert largest["loss_min"] == pytest.approx(OBSERVED, abs=5e-4)


@pytest.mark.parametrize("where", list(MEASURED))
def test_the_largest_budget_is_forecast_as_recorded(where):
    result = _forecast(where)
    ours, approach_3 = MEASURED[where]
    error = {m: f.loss.estimate / OBSERVED - 1 for m, f in result.forecasts.items()}
    # within 0.2 points of what BENCHMARKS.md records: a change in either method shows here
    assert error["loss-at-optimum"] == pytest.approx(ours, abs=0.002)
    assert error["approach 3"] == pytest.approx(approach_3, abs=0.002)
    # the backtest picks the method that forecasts the held-out budget better
    assert result.method == "loss-at-optimum"
    # and ours beats the authors' own extrapolation (+1.29% from their six budgets)
    assert abs(error["loss-at-optimum"]) < 0.0129
