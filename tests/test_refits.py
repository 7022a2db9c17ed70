"""Refits per distinct point (analysis/refits.py): the same optima as row by row, at a cost
that does not grow with the rows that repeat a point (issue 35: 100,000 rows of a CSV)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import refits
from analysis.laws import CHINCHILLA_ND, KAPLAN_N, fit_law


def _ladder(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = rng.choice(np.geomspace(1e7, 1e9, 10), rows)
    d = 20 * n * rng.choice([0.5, 1.0, 2.0], rows)
    loss = (1.7 + 400 * n**-0.34 + 410 * d**-0.28) * np.exp(rng.normal(0, 0.01, rows))
    return n, d, loss


def _theta(law, fit) -> np.ndarray:
    theta = []
    for coefficient, exponent, _ in law.terms:
        theta += [np.log(fit.params[coefficient]), fit.params[exponent]]
    return np.array([*theta, np.log(fit.params["E"])])


@pytest.mark.parametrize("law", [KAPLAN_N, CHINCHILLA_ND], ids=["n", "nd"])
def test_the_sorted_sums_find_the_optima_the_rows_do(law, monkeypatch):
    n, d, loss = _ladder(1000)
    variables = {"N": n, "D": d} if law is CHINCHILLA_ND else {"N": n}
    fit = fit_law(law, loss, n_boot=0, **variables)
    logs, log_l = np.log(np.vstack(list(variables.values()))), np.log(loss)
    rng = np.random.default_rng(1)
    counts = np.array([np.bincount(rng.integers(0, 1000, 1000), minlength=1000) for _ in range(8)])
    sorted_sums = refits.refit_batch(law, _theta(law, fit), logs, log_l, counts.astype(float))
    monkeypatch.setattr(refits, "REPEATED", 10**9)  # every row on its own
    row_by_row = refits.refit_batch(law, _theta(law, fit), logs, log_l, counts.astype(float))
    mine, _ = law.objective_batch(sorted_sums, logs, log_l, counts)
    theirs, _ = law.objective_batch(row_by_row, logs, log_l, counts)
    np.testing.assert_allclose(mine, theirs, rtol=1e-11)  # the same minimum of the Huber sum
    np.testing.assert_allclose(sorted_sums, row_by_row, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("repeated", [8, 10**9], ids=["sorted sums", "per point"])
def test_a_grouped_objective_is_the_row_by_row_one(repeated, monkeypatch):
    monkeypatch.setattr(refits, "REPEATED", repeated)
    n, _, loss = _ladder(500)
    logs, log_l = np.log(n)[None, :], np.log(loss)
    thetas = KAPLAN_N.starts(log_l)
    grouped = refits.in_chunks(refits.objective_for(KAPLAN_N, logs, log_l), thetas, 500)
    rows = KAPLAN_N.objective_batch(thetas, logs, log_l)
    for mine, theirs in zip(grouped, rows, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-12)


def test_a_large_ladder_is_fitted_with_its_intervals_in_bounded_memory(monkeypatch):
    monkeypatch.setattr(refits, "CHUNK", 50_000)  # many chunks: each refitted as the whole
    n, _, loss = _ladder(20_000)
    fit = fit_law(KAPLAN_N, loss, n_boot=40, N=n)
    assert fit.n_boot == 40 and fit.params["alpha"] == pytest.approx(0.3, abs=0.05)
    low, high = fit.intervals["alpha"]
    assert low < fit.params["alpha"] < high


def test_the_residual_bootstrap_in_chunks_gives_the_intervals_of_one_chunk(monkeypatch):
    """Three runs for three parameters: the runs cannot be resampled, the residuals are, a
    chunk of resamples at a time (memory capped at CHUNK elements); the same draws, the same
    intervals, as when every resample was held at once."""
    from analysis import laws

    rng = np.random.default_rng(1)
    groups = rng.integers(0, 3, 300)
    n = np.array([1e4, 1e5, 1e6])[groups]
    loss = (2 + 50 * n**-0.3) * np.exp(rng.normal(0, 0.01, len(n)))
    held, real = [], laws.refit_batch
    monkeypatch.setattr(laws, "refit_batch",
                        lambda *a, **k: held.append(a[3].shape) or real(*a, **k))  # fmt: skip
    whole = fit_law(KAPLAN_N, loss, groups=groups, n_boot=50, N=n)
    assert held == [(50, len(n))]  # one chunk: every resample at once
    held.clear()
    monkeypatch.setattr(laws, "CHUNK", 7 * len(n))  # 7 resamples a chunk, the last one of 1
    chunked = fit_law(KAPLAN_N, loss, groups=groups, n_boot=50, N=n)
    assert held == [(7, len(n))] * 7 + [(1, len(n))]  # never more than a chunk at once
    assert whole.interval == chunked.interval == "residual bootstrap"
    assert chunked.n_boot == 50 and chunked.intervals == whole.intervals
