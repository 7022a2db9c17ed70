"""The L(N) fit recovers a known law and says how sure it is."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.laws import fit_power_law


def test_fit_recovers_a_known_law_with_noise():
    n = np.logspace(4, 8, 9)
    rng = np.random.default_rng(0)
    loss = (1.7 + 400 * n**-0.34) * np.exp(rng.normal(0, 0.005, n.size))
    fit = fit_power_law(n, loss, n_boot=200)
    assert fit.E == pytest.approx(1.7, rel=0.05)
    assert fit.alpha == pytest.approx(0.34, rel=0.05)
    lo, hi = fit.intervals["alpha"]
    assert lo < 0.34 < hi and hi - lo < 0.1
    assert fit.rmse_log < 0.01


def test_fit_is_exact_without_noise():
    n = np.array([1e4, 3e4, 1e5, 3e5, 1e6, 3e6])
    fit = fit_power_law(n, 2.0 + 50 * n**-0.5, n_boot=0)
    assert fit.params == pytest.approx({"E": 2.0, "A": 50.0, "alpha": 0.5}, rel=1e-3)
    assert fit.predict(1e7) == pytest.approx(2.0 + 50 * 1e7**-0.5, rel=1e-4)


def test_fit_needs_three_sizes():
    with pytest.raises(ValueError, match="3 distinct sizes"):
        fit_power_law(np.array([1e4, 1e4, 1e5]), np.array([3.0, 3.1, 2.5]))
