"""The laws recover known parameters, reproduce the published Chinchilla fit, and say how sure
they are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad, minimize

from analysis import laws
from analysis.isoflop import fit_isoflop
from analysis.laws import (
    CHINCHILLA_ND,
    KAPLAN_N,
    fit_law,
    fit_power_law,
    holdout_test,
    huber,
)
from tests.conftest import ANCHORS

ANCHOR = ANCHORS / "chinchilla_epoch_data.csv"
# Besiroglu et al. 2024 (Epoch AI), their fit of Hoffmann et al.'s data with Hoffmann's method.
PUBLISHED = {"A": 477.8, "B": 2143.0, "E": 1.817, "alpha": 0.347, "beta": 0.367}


def anchor_points() -> pd.DataFrame:
    """The 245 extracted runs less the five highest losses, as the replication fits them."""
    frame = pd.read_csv(ANCHOR).sort_values("loss", kind="stable").iloc[:-5]
    n, c = frame["Model Size"].to_numpy(), frame["Training FLOP"].to_numpy()
    return pd.DataFrame({"N": n, "C": c, "D": c / (6 * n), "loss": frame.loss.to_numpy()})


@pytest.fixture(scope="module")
def anchor():
    return anchor_points()


def test_the_chinchilla_fit_is_reproduced_within_one_percent(anchor):
    assert len(anchor) == 240
    fit = fit_law(CHINCHILLA_ND, anchor.loss, n_boot=0, N=anchor.N, D=anchor.D)
    for name, value in PUBLISHED.items():
        assert fit.params[name] == pytest.approx(value, rel=0.01), name
    assert fit.warnings == []
    assert fit.derived["a"] == pytest.approx(0.367 / (0.347 + 0.367), rel=0.02)


@pytest.mark.slow
def test_the_pruned_grid_finds_the_same_optimum_as_all_4500_starts(anchor):
    logs, log_l = np.log(np.vstack([anchor.N, anchor.D])), np.log(anchor.loss.to_numpy())
    everything = laws._minimize(CHINCHILLA_ND, CHINCHILLA_ND.starts(log_l), logs, log_l)
    pruned = laws._minimize(
        CHINCHILLA_ND, laws._promising(CHINCHILLA_ND, CHINCHILLA_ND.starts(log_l), logs, log_l),
        logs, log_l,
    )  # fmt: skip
    assert len(CHINCHILLA_ND.starts(log_l)) == 4500
    assert pruned.fun == pytest.approx(everything.fun, rel=1e-9)
    np.testing.assert_allclose(pruned.x, everything.x, rtol=1e-5)


def test_the_starts_stop_at_an_exact_fit_and_run_on_where_none_is_exact(monkeypatch):
    """With as many points as parameters a start fits every point: no start can do better, so
    the others are not run (each would take hundreds of steps to the same objective)."""
    runs = []
    real = laws.minimize
    monkeypatch.setattr(laws, "minimize", lambda *a, **k: runs.append(1) or real(*a, **k))
    n, loss = np.array([25e3, 50e3, 100e3]), np.array([5.9, 5.6, 5.45])
    exact = fit_law(KAPLAN_N, loss, n_boot=0, N=n)
    assert len(runs) == 1 and exact.rmse_log < laws.EXACT_RESIDUAL
    for fourth in (5.3, float(exact.predict(N=200e3)) * np.exp(1e-6)):  # noisy; nearly exact
        runs.clear()
        noisy = fit_law(KAPLAN_N, np.append(loss, fourth), n_boot=0, N=np.append(n, 200e3))
        assert len(runs) == laws.MAX_STARTS and noisy.rmse_log > laws.EXACT_RESIDUAL


def test_the_objective_is_the_summed_huber_loss_and_its_gradient_is_right(anchor):
    logs, log_l = np.log(np.vstack([anchor.N, anchor.D])), np.log(anchor.loss.to_numpy())
    theta = np.array([6.0, 0.3, 7.5, 0.35, 0.6])
    pred = np.log(np.exp(1 * 0.6) + np.exp(6.0) * anchor.N**-0.3 + np.exp(7.5) * anchor.D**-0.35)
    value, _ = CHINCHILLA_ND.objective(theta, logs, log_l)
    assert value == pytest.approx(huber(pred.to_numpy() - log_l).sum(), rel=1e-9)
    for law, x, point in ((CHINCHILLA_ND, logs, theta), (KAPLAN_N, logs[:1], theta[[0, 1, 4]])):
        f = lambda t, law=law, x=x: law.objective(t, x, log_l)[0]  # noqa: E731
        g = lambda t, law=law, x=x: law.objective(t, x, log_l)[1]  # noqa: E731
        assert check_grad(f, g, point) < 1e-6 * max(1.0, np.abs(g(point)).max())


def test_averaging_the_huber_terms_would_stop_at_the_wrong_answer(anchor):
    # Why the objective is a sum: on the mean, L-BFGS-B's default tolerances end the search
    # early, from the very starts that give the published fit.
    logs, log_l = np.log(np.vstack([anchor.N, anchor.D])), np.log(anchor.loss.to_numpy())
    n = len(log_l)

    def mean(theta):
        value, grad = CHINCHILLA_ND.objective(theta, logs, log_l)
        return value / n, grad / n

    bounds = CHINCHILLA_ND.bounds(log_l)
    best = min(
        (minimize(mean, s, jac=True, bounds=bounds, method="L-BFGS-B")
         for s in laws._promising(CHINCHILLA_ND, CHINCHILLA_ND.starts(log_l), logs, log_l)),
        key=lambda r: r.fun,
    )  # fmt: skip
    averaged = CHINCHILLA_ND.natural(best.x)
    assert abs(averaged["A"] / PUBLISHED["A"] - 1) > 0.1  # far from the published fit
    fit = fit_law(CHINCHILLA_ND, anchor.loss, n_boot=0, N=anchor.N, D=anchor.D)
    assert fit.params["A"] == pytest.approx(PUBLISHED["A"], rel=0.01)


def test_a_fit_stopped_before_converging_says_so(monkeypatch, anchor):
    # The trap the replication warns of: an optimizer that stops early (as it does on the
    # *mean* of the Huber terms) returns plausible numbers. The fit checks its own gradient.
    monkeypatch.setattr(laws, "MAXITER", 3)
    fit = fit_law(CHINCHILLA_ND, anchor.loss, n_boot=0, N=anchor.N, D=anchor.D)
    assert any("before converging" in w for w in fit.warnings)


def test_l_of_n_recovers_a_known_law_with_noise():
    n = np.logspace(4, 8, 9)
    rng = np.random.default_rng(0)
    loss = (1.7 + 400 * n**-0.34) * np.exp(rng.normal(0, 0.005, n.size))
    fit = fit_power_law(n, loss, n_boot=200)
    assert fit.params["E"] == pytest.approx(1.7, rel=0.05)
    assert fit.params["alpha"] == pytest.approx(0.34, rel=0.05)
    lo, hi = fit.intervals["alpha"]
    assert lo < 0.34 < hi and hi - lo < 0.1
    assert fit.rmse_log < 0.01
    low, high = fit.band(N=np.array([1e9]))
    assert low[0] < fit.predict(N=1e9) < high[0]


def test_l_of_n_is_exact_without_noise_and_predicts_the_held_out_size():
    n = np.array([1e4, 3e4, 1e5, 3e5, 1e6, 3e6])
    loss = 2.0 + 50 * n**-0.5
    fit = fit_power_law(n, loss, n_boot=0)
    assert fit.params == pytest.approx({"E": 2.0, "A": 50.0, "alpha": 0.5}, rel=1e-3)
    assert fit.predict(N=1e7) == pytest.approx(2.0 + 50 * 1e7**-0.5, rel=1e-4)
    check = holdout_test(KAPLAN_N, loss, N=n)
    assert check.where == {"N": 3e6} and check.n_points == 1
    assert abs(check.error_pct) < 0.01


def test_l_of_n_needs_three_sizes():
    with pytest.raises(ValueError, match="3 distinct sizes"):
        fit_power_law(np.array([1e4, 1e4, 1e5]), np.array([3.0, 3.1, 2.5]))


def test_the_bootstrap_resamples_whole_runs():
    # Four runs, ten points each along N, every run offset by its own noise: its points move
    # together, so resampling points pretends to 40 independent measurements.
    rng = np.random.default_rng(1)
    n = np.tile(np.logspace(4, 7, 10), 4)
    run = np.repeat(np.arange(4), 10)
    loss = (2.0 + 60 * n**-0.4) * np.exp(rng.normal(0, 0.02, 4)[run])
    by_run = fit_law(KAPLAN_N, loss, groups=run, n_boot=300, N=n)
    by_point = fit_law(KAPLAN_N, loss, n_boot=300, N=n)
    assert by_run.n_groups == 4 and by_point.n_groups == 40

    def width(fit):
        lo, hi = fit.intervals["E"]
        return hi - lo

    assert width(by_run) > 1.2 * width(by_point)
    # Resamples of 4 whole runs are multisets of 4 runs: at most 35 distinct fits.
    assert (
        len(np.unique(by_run.boot.round(10), axis=0)) <= 35 < len(np.unique(by_point.boot, axis=0))
    )


def test_the_compute_optimal_allocation_minimises_the_law():
    p = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.28}
    c = 1e21
    d = CHINCHILLA_ND.derived(p, c)
    assert d["a"] == pytest.approx(0.28 / 0.62) and d["a"] + d["b"] == pytest.approx(1.0)
    assert 6 * d["N_opt"] * d["D_opt"] == pytest.approx(c)
    best = CHINCHILLA_ND.predict(p, N=d["N_opt"], D=d["D_opt"])
    for factor in (0.9, 1.1):
        n = d["N_opt"] * factor
        assert CHINCHILLA_ND.predict(p, N=n, D=c / (6 * n)) > best


def synthetic_isoflop(p, budgets, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        centre = np.log10(CHINCHILLA_ND.derived(p, c)["N_opt"])
        for n in np.logspace(centre - 1, centre + 1, 9):
            d = c / (6 * n)
            loss = CHINCHILLA_ND.predict(p, N=n, D=d) * np.exp(rng.normal(0, noise))
            rows.append((n, d, c * np.exp(rng.normal(0, 0.02)), float(loss)))
    return pd.DataFrame(rows, columns=["N", "D", "C", "loss"])


def test_isoflop_recovers_the_compute_optimal_exponents():
    p = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.28}
    frame = synthetic_isoflop(p, [1e18, 3e18, 1e19, 3e19, 1e20], noise=0.002)
    fit = fit_isoflop(frame.N, frame.D, frame.C, frame.loss, n_boot=200)
    assert len(fit.budgets) == 5
    assert fit.a == pytest.approx(0.28 / 0.62, abs=0.02)
    assert fit.a + fit.b == pytest.approx(1.0, abs=0.01)
    lo, hi = fit.intervals["a"]
    assert lo < 0.28 / 0.62 < hi


def test_isoflop_needs_two_budgets_with_a_minimum_inside_them():
    p = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.28}
    frame = synthetic_isoflop(p, [1e19])
    with pytest.raises(ValueError, match="2 compute budgets"):
        fit_isoflop(frame.N, frame.D, frame.C, frame.loss, n_boot=0)


def test_the_batched_bootstrap_refit_finds_the_optima_l_bfgs_b_finds(anchor):
    logs, log_l = np.log(np.vstack([anchor.N, anchor.D])), np.log(anchor.loss.to_numpy())
    fit = fit_law(CHINCHILLA_ND, anchor.loss, n_boot=0, N=anchor.N, D=anchor.D)
    p = fit.params
    theta = np.log([p["A"], np.e ** p["alpha"], p["B"], np.e ** p["beta"], p["E"]])
    rng = np.random.default_rng(3)
    counts = np.array([np.bincount(rng.integers(0, 240, 240), minlength=240) for _ in range(12)])
    batched = laws.refit_batch(CHINCHILLA_ND, theta, logs, log_l, counts.astype(float))
    for row, count in zip(batched, counts, strict=True):
        idx = np.repeat(np.arange(240), count)
        alone = laws._minimize(CHINCHILLA_ND, [theta], logs[:, idx], log_l[idx])
        mine = CHINCHILLA_ND.objective(row, logs[:, idx], log_l[idx])[0]
        assert mine <= alone.fun * (1 + 1e-9)  # as low as L-BFGS-B's optimum, or lower
        np.testing.assert_allclose(row[[1, 3]], alone.x[[1, 3]], rtol=1e-3)  # the exponents


def test_an_overflowing_resample_is_an_infinite_allocation_and_said_so():
    from analysis.laws import CHINCHILLA_ND
    from analysis.results import Estimate

    params = {"E": 1.0, "A": 1e30, "B": 1.0, "alpha": 0.002, "beta": 0.001}
    derived = CHINCHILLA_ND.derived(params, compute=1e12)  # once an OverflowError
    assert derived["N_opt"] == float("inf")
    assert Estimate(1.5, (None, 2.0)).text() == "1.5 (no finite interval)"
    assert Estimate(1.5, (float("inf"), 2.0)).text() == "1.5 (no finite interval)"
    assert Estimate(0.3412, (0.29, 0.41)).text(ci_digits=2) == "0.3412 [0.29, 0.41]"


def _points(n, alpha=0.3, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    n = np.asarray(n, float)
    return n, (1.5 + 40.0 * n**-alpha) * (1 + noise * rng.standard_normal(len(n)))


def test_three_sizes_for_three_parameters_get_no_interval_and_say_why():
    n, loss = _points([1e5, 1e6, 1e7])
    fit = fit_power_law(n, loss, n_boot=200)
    assert fit.intervals == {} and fit.n_boot == 0  # not [x, x] for every parameter
    assert any("no intervals: with 3 runs for 3 parameters" in w for w in fit.warnings)
    more = fit_power_law(*_points([1e5, 3e5, 1e6, 3e6, 1e7, 3e7]), n_boot=200)
    assert {"E", "A", "alpha"} <= set(more.intervals)
    assert all(high > low for low, high in more.intervals.values())


def test_a_parameter_held_at_its_bound_gets_no_zero_width_interval():
    n = np.array([1e4, 3e4, 1e5, 3e5, 1e6, 3e6])
    loss = 3.0 * n**-0.1  # no floor at all: E wants to be 0 and sits at its bound
    fit = fit_power_law(n, loss, n_boot=200)
    assert any("sits at its bound" in w for w in fit.warnings)
    assert "E" not in fit.intervals
    assert any(w.startswith("no interval for E") for w in fit.warnings)


def test_an_exponent_outside_the_published_range_is_a_warning():
    from analysis.fits import fit_points

    n, loss = _points([1e4, 2e4, 5e4, 1e5, 2e5], alpha=3.0, noise=0.0)
    result = fit_points("n", pd.DataFrame({"N": n, "loss": loss + 1.5}), n_boot=0)
    assert any("is outside 0.05-1.5, the range of published fits" in w
               for w in result.warnings)  # fmt: skip


def test_a_study_far_below_twenty_tokens_per_parameter_is_warned_about():
    from analysis.fits import fit_study

    n, loss = _points([1e5, 3e5, 1e6, 3e6])
    trials = pd.DataFrame({"trial_id": [f"t{i}" for i in range(4)], "architecture": "decoder",
                           "status": "finished", "n_params": n, "tokens": 1e6, "flops": 6e6 * n,
                           "val_loss": loss})  # fmt: skip
    warnings = fit_study(trials, n_boot=0)["decoder"]["n"].warnings
    assert any(
        "most trials saw fewer than 5 tokens per parameter (median 2.2" in w for w in warnings
    )
    trials["tokens"] = 20 * trials.n_params.max()  # one budget, 20+ tokens per parameter
    fitted = fit_study(trials, n_boot=0, laws=["n"])["decoder"]["n"]
    assert not any("tokens per parameter" in w for w in fitted.warnings)


def test_the_envelope_fits_each_cells_best_learning_rate_and_leaves_edge_cells_out():
    from analysis.fits import envelope, fit_study

    rows = []
    sizes = [1e5, 3e5, 1e6, 3e6, 1e7]
    for n in sizes:
        optimum = 2e-3 if n < 1e7 else 4e-3  # the largest size wants more than the sweep tries
        for lr in (1e-3, 2e-3, 3e-3):
            for seed in (0, 1):
                loss = 1.5 + 40.0 * n**-0.3 + 0.05 * abs(np.log(lr / optimum)) + 0.001 * seed
                rows.append({"trial_id": f"{n:g}-{lr:g}-{seed}", "architecture": "decoder",
                             "status": "finished", "n_params": n, "tokens": 2e8, "lr": lr,
                             "flops": 1.2e9 * n, "val_loss": loss})  # fmt: skip
    trials = pd.DataFrame(rows)
    frame = trials.rename(
        columns={"n_params": "N", "tokens": "D", "flops": "C", "val_loss": "loss"}
    )
    best = envelope(frame)
    assert len(best) == 5 and list(best.best_lr[:4]) == [2e-3] * 4  # the middle rate wins
    assert best.loss[0] == pytest.approx(1.5 + 40.0 * 1e5**-0.3 + 0.0005)  # seeds averaged
    assert list(best.at_edge) == [False] * 4 + [True]
    fit = fit_study(trials, n_boot=0)["decoder"]["n"]
    assert len(fit.data) == 4  # one point per cell, the edge cell left out
    assert any("1 of 5 cells left out: their best learning rate is at an end of the sweep" in w
               for w in fit.warnings)  # fmt: skip
    assert [e["at_edge"] for e in fit.envelope] == [False] * 4 + [True]
    assert fit.params["alpha"].estimate == pytest.approx(0.3, rel=0.05)


def test_a_sweep_of_two_rates_leaves_every_cell_out_and_says_which():
    from analysis.fits import fit_study
    from analysis.results import StudyFits

    rows = [{"trial_id": f"{n:g}-{lr:g}", "architecture": "decoder", "status": "finished",
             "n_params": n, "tokens": 2e8, "lr": lr, "flops": 1.2e9 * n,
             "val_loss": 1.5 + 40.0 * n**-0.3 + lr}
            for n in (1e5, 1e6, 1e7) for lr in (1e-3, 2e-3)]  # fmt: skip
    fits = fit_study(pd.DataFrame(rows), n_boot=0)
    assert "no cell is left to fit: 3 of 3 cells left out" in fits["decoder"]["n"].error
    warnings = StudyFits(fits).warnings()
    assert any("best learning rate is at an end of the sweep" in w for w in warnings)


def test_two_budgets_of_three_sizes_get_no_isoflop_interval():
    n = np.array([3e7, 1e8, 3e8] * 2)
    c = np.repeat([3e18, 1e19], 3)
    d = c / (6 * n)
    loss = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
    fit = fit_isoflop(n, d, c, loss, n_boot=100)
    assert fit.intervals == {} and any(w.startswith("no intervals") for w in fit.warnings)
    for unsampled in (fit, fit_isoflop(n, d, c, loss, n_boot=0)):  # an optimum, no interval
        n_opt, d_opt = unsampled.optimum(1e20)
        assert n_opt.ci is None and d_opt.ci is None
        assert n_opt.estimate * d_opt.estimate * 6 == pytest.approx(1e20, 0.2)


def test_where_resampling_runs_cannot_work_a_residual_bootstrap_is_said_and_covers_the_truth():
    from analysis.fits import fit_points

    n = np.repeat([1e5, 1e6, 1e7], 3)  # three sizes, three seeds each: three runs of a size
    rng = np.random.default_rng(0)
    loss = (1.5 + 40.0 * n**-0.3) * np.exp(0.01 * rng.standard_normal(len(n)))
    fit = fit_law(KAPLAN_N, loss, groups=np.log(n).round(), n_boot=300, N=n)
    assert fit.interval == "residual bootstrap" and fit.n_boot == 300
    for name, truth in {"E": 1.5, "A": 40.0, "alpha": 0.3}.items():
        low, high = fit.intervals[name]
        assert low < truth < high and high - low > 1e-3 * truth  # not a zero-width interval
    assert any("the intervals come from a residual bootstrap instead" in w for w in fit.warnings)
    table = pd.DataFrame({"N": n, "loss": loss, "run": np.log(n).round()})
    result = fit_points("n", table, n_boot=100, group="run")
    assert result.interval == "residual bootstrap"
    assert "(95% intervals: residual bootstrap)" in result.summary("t")
    # where resampling runs works, it is what the intervals resample, as before
    each = fit_law(KAPLAN_N, loss, n_boot=100, N=n)
    assert each.interval == "trial bootstrap" and each.result().interval == "trial bootstrap"


def test_no_more_points_than_parameters_is_no_interval_of_either_kind():
    n, loss = _points([1e5, 1e6, 1e7])
    fit = fit_power_law(n, loss, n_boot=200)
    assert fit.intervals == {} and fit.interval is None and fit.result().interval is None
    [said] = [w for w in fit.warnings if w.startswith("no intervals")]
    assert "3 points for 3 parameters leave no residuals to resample" in said
    n = np.array([3e7, 1e8, 3e8] * 2)  # two parabolas of 3 coefficients on 6 points
    c = np.repeat([3e18, 1e19], 3)
    d = c / (6 * n)
    iso = fit_isoflop(n, d, c, 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28, n_boot=100)
    assert iso.intervals == {} and iso.interval is None
    assert any("6 points for 6 parabola coefficients leave no residuals" in w for w in iso.warnings)


def test_an_isoflop_fit_of_few_runs_gets_residual_intervals_that_cover_the_truth():
    rng = np.random.default_rng(0)
    n = np.tile(np.repeat([3e7, 1e8, 3e8], 2), 3)  # two seeds of each size at each budget
    c = np.repeat([1e18, 3e18, 1e19], 6)
    d = c / (6 * n)
    loss = (1.69 + 406.4 / n**0.34 + 410.7 / d**0.28) * np.exp(0.003 * rng.standard_normal(18))
    # a run per size across budgets: a resample missing a size leaves no parabola
    fit = fit_isoflop(n, d, c, loss, groups=np.log(n).round(), n_boot=300)
    assert fit.interval == "residual bootstrap" and fit.result().interval == fit.interval
    a = 0.28 / (0.34 + 0.28)  # Hoffmann et al.'s eq. 4: a = β/(α+β), b = α/(α+β)
    for name, truth in {"a": a, "b": 1 - a}.items():
        low, high = fit.intervals[name]
        assert low < truth < high and high - low > 0.01
    for at in fit.optimum(1e20):  # N_opt, D_opt
        low, high = at.ci
        assert low < at.estimate < high


def test_a_budget_whose_minimum_lies_outside_its_sizes_is_left_out_and_said():
    # the last budget's sizes all lie far below its optimum
    sizes = {3e18: [3e7, 1e8, 3e8], 1e19: [5e7, 1.5e8, 5e8], 3e19: [1e8, 3e8, 1e9],
             1e21: [1e7, 2e7, 4e7]}  # fmt: skip
    n = np.concatenate(list(sizes.values()))
    c = np.repeat(list(sizes), 3)
    d = c / (6 * n)
    fit = fit_isoflop(n, d, c, 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28, n_boot=0)
    assert fit.warnings == ["C = 1e+21: its loss minimum lies outside the sizes tried; left out"]
    assert [m["C"] for m in fit.budgets] == pytest.approx([3e18, 1e19, 3e19])


def test_chinchilla_multiples_fit_l_of_n_at_the_largest_multiple():
    from analysis.fits import budgets, fit_study

    rows = []
    for n in (1e4, 2.5e4, 5e4, 1e5, 3e5):
        for ratio in (5, 10):
            loss = 1.5 + 40 * n**-0.3 + 30 * (ratio * n) ** -0.25
            rows.append({"trial_id": f"d-{n:g}-{ratio}", "architecture": "decoder",
                         "status": "finished", "val_loss": loss, "n_params": n,
                         "tokens": round(ratio * n), "flops": 6 * n * ratio * n, "lr": 1e-3})  # fmt: skip
    trials = pd.DataFrame(rows)
    from analysis.fits import law_points

    assert sorted(budgets(law_points(trials, "decoder")).unique()) == [5, 10]
    fits = fit_study(trials, n_boot=50)["decoder"]
    assert set(fits) == {"n", "nd", "isoflop"}
    assert [row["D"] / row["N"] for row in fits["n"].data] == pytest.approx([10] * 5, rel=1e-3)


def test_the_self_test_holds_out_the_largest_budget_by_the_tables_own_flop_count(tmp_path):
    # Models that count FLOPs as 8ND, tokens rounded as a published table prints them: N·D
    # varies within a budget, so grouping by 6ND would hold out one row, not the budget.
    from analysis.fits import fit_points, read_table

    rows = []
    for c in (1e17, 1e18, 1e19):
        for n in np.geomspace(c**0.5 / 300, c**0.5 / 30, 5):
            d = float(f"{c / (8 * n):.2g}")
            rows.append({"N": n, "D": d, "C": c, "loss": 1.7 + 400 * n**-0.34 + 2e3 * d**-0.37})
    table = tmp_path / "eight.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    frame = read_table(table, "nd", {})
    assert frame.attrs["c_given"]
    check = fit_points("nd", frame, n_boot=0, c_given=True).holdout
    assert check.n_points == 5 and check.where == {"C": 1e19}
    assert not read_table(table, "nd", {"C": "none"}).attrs["c_given"]


def test_the_log_e_starts_reach_an_irreducible_loss_above_the_fixed_grid():
    # log E = 2.08 lies beyond Hoffmann's grid [-1, 1]: the starts widen up to the data's loss.
    rng = np.random.default_rng(3)
    n = np.concatenate([np.geomspace(c**0.5 / 100, c**0.5 / 10, 6) for c in (1e17, 1e18, 1e19)])
    d = np.repeat([1e17, 1e18, 1e19], 6) / (6 * n)
    loss = (8.0 + 400 * n**-0.34 + 2000 * d**-0.28) * np.exp(rng.normal(0, 1e-4, len(n)))
    fit = fit_law(CHINCHILLA_ND, loss, n_boot=0, N=n, D=d)
    assert fit.params["E"] == pytest.approx(8.0, rel=0.01)
    assert not [w for w in fit.warnings if "starting grid" in w]
    assert set(CHINCHILLA_ND.grid["log_E"]) <= set(CHINCHILLA_ND.grid_for(np.log(loss))["log_E"])


def test_the_log_e_starts_reach_below_the_fixed_grid_only_where_the_data_need_it(anchor):
    log_l = np.log(anchor.loss.to_numpy())
    assert list(CHINCHILLA_ND.grid_for(log_l)["log_E"]) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    low = CHINCHILLA_ND.grid_for(np.log(np.array([0.5, 0.7, 0.9])))["log_E"]  # bytes: ~0.5 nats
    assert low.min() <= np.log(0.5) - 2.5 and {-1.0, -0.5, 0.0, 0.5, 1.0} <= set(low)
