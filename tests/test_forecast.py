"""The forecast that says how far to trust it (analysis/forecast.py): both methods' forecasts
beyond the grid, the backtest that leaves each budget out, and the rule that picks the method,
on synthetic laws whose optimum is known."""

from __future__ import annotations

import re

import numpy as np
import pytest

from analysis.forecast import APPROACH_3, LOSS_AT_OPTIMUM, METHODS, backtest, choose, forecast
from tests.test_optlaw import BUDGETS_C, l_opt, n_opt, wide_sweep

TARGET = 10 * max(BUDGETS_C)


def _mean_abs(errors: dict[float, float]) -> float:
    return float(np.mean(np.abs(list(errors.values()))))


@pytest.fixture(scope="module")
def chinchilla():
    n, d, c, loss = wide_sweep()
    return forecast(n, d, c, loss, TARGET, n_boot=20)


def test_both_methods_forecast_ten_times_beyond_within_one_percent(chinchilla):
    for method in METHODS:  # measured: approach 3 +0.05%, loss-at-optimum +0.56%
        assert chinchilla.forecasts[method].loss.estimate == pytest.approx(l_opt(TARGET), rel=0.01)
    # the backtest: every budget left out, the largest first, both methods, errors small
    rows = chinchilla.backtest.rows
    assert [r.budget for r in rows[::2]] == pytest.approx(sorted(BUDGETS_C, reverse=True))
    assert all(r.why is None and r.observed_from == "windowed parabola" for r in rows)
    assert all(np.isfinite(r.error) and abs(r.error) < 0.005 for r in rows)  # measured < 0.1%
    # the pick follows the rule: the smaller mean absolute error (here approach 3's)
    means = {m: _mean_abs(chinchilla.backtest.errors(m)) for m in METHODS}
    assert chinchilla.method == min(means, key=means.get)


def test_the_forecast_says_itself_in_one_line_and_in_json(chinchilla):
    line = chinchilla.text()
    assert re.fullmatch(r"forecast \S+ \[\S+, \S+\] by (approach 3|loss-at-optimum) at C = 1e\+21; "
                        r"backtest: largest budget [+−]\d+\.\d%, leave-one-out spread ±\d+\.\d%",
                        line)  # fmt: skip
    summary = chinchilla.summary("synthetic")
    assert summary.count("without C = 1e+20") == 2 and "chosen:" in summary
    entry = chinchilla.to_json()["forecast"]
    assert {"target", "method", "loss", "ci", "n_opt", "d_opt", "backtest"} <= set(entry)
    assert entry["target"] == {"C": TARGET} and entry["method"] == chinchilla.method
    assert len(entry["backtest"]) == 10
    assert {"budget", "method", "error"} <= set(entry["backtest"][0])


def test_a_misfit_law_form_favours_the_loss_at_optimum_law():
    # L = E + (A/N^α + B/D^β)^1.6 is not approach 3's form, but its optimum loss is still
    # E + k·C^-γ: the backtest sees approach 3 miss (measured 2.2% against 0.07%)
    rng, rows = np.random.default_rng(0), []
    for c in BUDGETS_C:
        centre = np.log(n_opt(c))
        for n in np.exp(np.linspace(centre - np.log(300) / 2, centre + np.log(300) / 2, 15)):
            d = c / (6 * n)
            loss = (1.8 + (400 * n**-0.34 + 2000 * d**-0.28) ** 1.6) * np.exp(rng.normal(0, 1e-3))
            rows.append((n, d, c, loss))
    n, d, c, loss = (np.array(v) for v in zip(*rows, strict=True))
    tested = backtest(n, d, c, loss)
    means = {m: _mean_abs(tested.errors(m)) for m in METHODS}
    assert means[LOSS_AT_OPTIMUM] < 0.005 < 0.01 < means[APPROACH_3]
    assert choose({m: tested.errors(m) for m in METHODS})[0] == LOSS_AT_OPTIMUM


def test_the_rule_on_given_error_tables():
    # no honest synthetic case where approach 3 wins reliably was found in the time (noise
    # favours it in 2 of 3 seeds only), so the rule is checked on tables
    errors = {APPROACH_3: {1e18: 0.002, 1e19: -0.003}, LOSS_AT_OPTIMUM: {1e18: 0.001, 1e19: 0.01}}
    assert choose(errors)[0] == APPROACH_3
    tie = {APPROACH_3: {1e18: 0.002, 1e19: -0.004}, LOSS_AT_OPTIMUM: {1e18: 0.004, 1e19: 0.002}}
    assert choose(tie)[0] == LOSS_AT_OPTIMUM  # same mean; the largest budget's error decides
    assert choose({APPROACH_3: {}, LOSS_AT_OPTIMUM: {1e18: 0.5}})[0] == LOSS_AT_OPTIMUM
    method, why = choose({APPROACH_3: {}, LOSS_AT_OPTIMUM: {}})
    assert method == APPROACH_3 and "no backtest" in why


def test_too_few_budgets_give_a_forecast_without_a_backtest_and_say_why():
    n, d, c, loss = wide_sweep(BUDGETS_C[:2])
    result = forecast(n, d, c, loss, TARGET, n_boot=0)
    assert set(result.forecasts) == {APPROACH_3} and result.method == APPROACH_3
    assert result.text().endswith("no backtest (too few budgets to leave one out)")
    assert any("no loss-at-optimum forecast" in w for w in result.warnings)
    assert any("no backtest" in w for w in result.warnings)
    assert all(r.why and r.error is None for r in result.backtest.rows)
    assert result.to_json()["forecast"]["backtest"][0]["error"] is None


def test_bad_input_is_one_clear_error():
    n, d, c, loss = wide_sweep()
    with pytest.raises(ValueError, match="positive number of FLOPs"):
        forecast(n, d, c, loss, -1.0)
    with pytest.raises(ValueError, match="one value per point"):
        backtest(n[:-1], d, c, loss)
    with pytest.raises(ValueError, match="positive"):
        backtest(n, d, c, -loss)


def test_intervals_that_part_are_a_warning():
    from analysis.forecast import _disagree
    from analysis.results import BUDGETS, Estimate, OptimumForecast

    def one(method, low, high):
        est = Estimate((low + high) / 2, (low, high))
        return OptimumForecast(
            flops=1e21, method=method, loss=est, n_opt=est, d_opt=est, interval=BUDGETS, n_boot=10
        )

    apart = _disagree(
        {APPROACH_3: one(APPROACH_3, 2.0, 2.1), LOSS_AT_OPTIMUM: one(LOSS_AT_OPTIMUM, 2.2, 2.3)}
    )
    assert len(apart) == 1 and APPROACH_3 in apart[0] and LOSS_AT_OPTIMUM in apart[0]
    assert not _disagree(
        {APPROACH_3: one(APPROACH_3, 2.0, 2.25), LOSS_AT_OPTIMUM: one(LOSS_AT_OPTIMUM, 2.2, 2.3)}
    )


def _csv(tmp_path, budgets=BUDGETS_C):
    import pandas as pd

    n, d, c, loss = wide_sweep(budgets)
    path = tmp_path / "ladder.csv"
    pd.DataFrame({"N": n, "D": d, "C": c, "loss": loss}).to_csv(path, index=False)
    return str(path)


def test_study_fit_forecasts_a_target_from_a_csv(study_here, tmp_path):
    import json

    path = _csv(tmp_path)
    args = ("fit", "--csv", path, "--law", "forecast", "--target", "C=1e21", "--n-boot", "10")
    done = study_here(*args, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)["forecast"]
    assert entry["target"] == {"C": 1e21} and len(entry["backtest"]) == 10
    assert entry["loss"] == pytest.approx(l_opt(TARGET), rel=0.01)
    text = study_here(*args, cwd=tmp_path)
    assert text.returncode == 0 and "backtest: largest budget" in text.stdout


def test_study_fit_forecast_bad_input_is_one_line_and_exit_2(study_here, tmp_path):
    path = _csv(tmp_path)
    for extra, said in ((("--target", "N=1e9"), "needs --target C=FLOPS"), ((), "needs --target"),
                        (("--target", "C=big"), "needs --target C=FLOPS")):  # fmt: skip
        done = study_here("fit", "--csv", path, "--law", "forecast", *extra, cwd=tmp_path)
        assert done.returncode == 2 and said in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    done = study_here("fit", "--csv", path, "--law", "n", "--target", "C=1e21", cwd=tmp_path)
    assert done.returncode == 2 and "--target is for --law task" in done.stderr
    done = study_here("fit", "--csv", path, "--law", "nd", "--target", "C=1e21", cwd=tmp_path)
    assert done.returncode == 2 and "give N=COUNT,D=COUNT" in done.stderr  # nd: one model
    # too few budgets for a backtest: said, and the forecast printed without one
    few = _csv(tmp_path, BUDGETS_C[:2])
    done = study_here("fit", "--csv", few, "--law", "forecast", "--target", "C=1e21",
                      "--n-boot", "0", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0 and "no backtest" in done.stdout and "no backtest" in done.stderr


def test_one_models_loss_by_approach_3_with_its_backtest():
    from analysis.forecast import forecast_model

    n, d, c, loss = wide_sweep()
    at_n = n_opt(TARGET)
    result = forecast_model(n, d, c, loss, (at_n, TARGET / (6 * at_n)), n_boot=10)
    assert result.method == APPROACH_3
    assert result.loss.estimate == pytest.approx(l_opt(TARGET), rel=0.005)
    low, high = result.loss.ci
    assert low <= result.loss.estimate <= high
    rows = result.backtest.rows  # approach 3 alone, each budget left out, the largest first
    assert [r.method for r in rows] == [APPROACH_3] * len(BUDGETS_C)
    assert [r.budget for r in rows] == pytest.approx(sorted(BUDGETS_C, reverse=True))
    assert all(abs(r.error) < 0.005 and r.target is not None for r in rows)
    assert re.fullmatch(r"forecast \S+ \[\S+, \S+\] by approach 3 at N = \S+, D = \S+; "
                        r"backtest: largest budget [+−]\d+\.\d%, leave-one-out spread ±\d+\.\d%",
                        result.text())  # fmt: skip
    entry = result.to_json()["forecast"]
    assert entry["target"] == {"N": at_n, "D": TARGET / (6 * at_n)}
    assert entry["n_opt"] is None and entry["d_opt"] is None and len(entry["backtest"]) == 5
    assert 0 <= entry["spread"] < 0.005


def test_optima_are_matched_to_budgets_by_label_not_by_a_rounded_c():
    from analysis.forecast import Points, observed_optima
    from analysis.isoflop import windowed_minima

    n, d, c, loss = wide_sweep()
    c = c * np.exp(np.random.default_rng(1).normal(0, 0.02, len(c)))  # runs near their budget
    minima = windowed_minima(n, d, c, loss)
    assert [m["budget"] for m in minima] == list(range(len(BUDGETS_C)))
    optima = observed_optima(Points.of(n, d, c, loss))
    assert all(source == "windowed parabola" for _, _, source in optima.values())


def test_study_fit_forecasts_one_models_loss_from_a_csv(study_here, tmp_path):
    import json

    path = _csv(tmp_path)
    args = ("fit", "--csv", path, "--law", "forecast", "--target", "N=1e9,D=2e10", "--n-boot", "5")
    done = study_here(*args, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)["forecast"]
    assert entry["target"] == {"N": 1e9, "D": 2e10} and entry["method"] == APPROACH_3
    from analysis.laws import CHINCHILLA_ND
    from tests.test_optlaw import TRUE

    assert entry["loss"] == pytest.approx(float(CHINCHILLA_ND.predict(TRUE, N=1e9, D=2e10)), 0.005)
    assert entry["n_opt"] is None and len(entry["backtest"]) == 5
    text = study_here(*args, cwd=tmp_path)
    assert text.returncode == 0 and "by approach 3 at N = 1e+09, D = 2e+10" in text.stdout


def test_study_fit_forecast_refuses_bad_targets_and_tables_in_one_line(study_here, tmp_path):
    import pandas as pd

    path = _csv(tmp_path)
    for bad, said in (("C=abc", "needs --target C=FLOPS"), ("N=1e6", "N and D go together"),
                      ("X=1", "needs --target C=FLOPS"), ("C=1e21,N=1e9", "not both"),
                      ("C=-1", "needs --target C=FLOPS")):  # fmt: skip
        done = study_here("fit", "--csv", path, "--law", "forecast", "--target", bad,
                          cwd=tmp_path)  # fmt: skip
        assert done.returncode == 2 and said in done.stderr, (bad, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1
    frame = pd.read_csv(path)
    for name, table, said in (
        ("noloss.csv", frame.drop(columns="loss"), "needs loss"),
        ("badu.csv", frame.assign(U=frame.D * 2), "line 2: the unique tokens U"),
    ):
        table.to_csv(tmp_path / name, index=False)
        done = study_here("fit", "--csv", str(tmp_path / name), "--law", "forecast", "--target",
                          "C=1e21", cwd=tmp_path)  # fmt: skip
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def _repeating_sweep():
    """IsoFLOP curves (1e18 to 1e20, 9 sizes from 1/20 to 1.4 times the optimum) of the
    data-constrained law with the published constants (Muennighoff et al. 2023), every point
    drawing on one pool of unique tokens (the compute-optimal D at 1e20): the smaller models of
    the larger budgets pass over it several times. 0.1% noise. The sizes stop near the optimum:
    under that law a model larger than the compute-optimal size for its unique tokens has its
    parameters discounted even on one pass (R_N > 0), so the far side of a wide isoFLOP curve
    is not plain L(N, D), which the fit's first stage needs."""
    from analysis.dataconstrained import PUBLISHED, predict_loss

    rng, rows = np.random.default_rng(0), []
    pool = _fresh_optimum(1e20)[2]
    for c in BUDGETS_C:
        centre = np.log(_fresh_optimum(c)[1])
        for n in np.exp(np.linspace(centre - np.log(20), centre + np.log(1.4), 9)):
            d = c / (6 * n)
            u = min(d, pool)
            rows.append(
                (n, d, c, u, predict_loss(PUBLISHED, n, d, u) * np.exp(rng.normal(0, 1e-3)))
            )
    return tuple(np.array(v, float) for v in zip(*rows, strict=True))


def _fresh_optimum(c: float) -> tuple[float, float, float]:
    """The published law's compute-optimal loss, N and D at `c` FLOPs on fresh data."""
    from scipy.optimize import minimize_scalar

    from analysis.dataconstrained import PUBLISHED
    from analysis.laws import CHINCHILLA_ND

    def loss(log_n):
        return float(CHINCHILLA_ND.predict(PUBLISHED, N=np.exp(log_n), D=c / (6 * np.exp(log_n))))

    best = minimize_scalar(loss, bounds=(np.log(1e6), np.log(1e13)), method="bounded",
                           options={"xatol": 1e-10})  # fmt: skip
    n = float(np.exp(best.x))
    return float(best.fun), n, c / (6 * n)


def test_points_that_repeat_their_data_are_forecast_by_the_data_constrained_law():
    """Where points repeat their data, approach 3 is the data-constrained law, named so, and it
    forecasts the fresh-data optimum 10× beyond within 0.5% (measured +0.36%; the plain L(N, D),
    which reads repeated tokens as new, +0.47% on these points: most repeat a few times, and
    four epochs are almost new data)."""
    from analysis.forecast import DATA_CONSTRAINED

    n, d, c, u, loss = _repeating_sweep()
    assert (d > u).sum() >= 10  # the sweep does repeat
    truth = _fresh_optimum(TARGET)[0]
    ahead = forecast(n, d, c, loss, TARGET, n_boot=0, unique=u)
    assert DATA_CONSTRAINED in ahead.forecasts and APPROACH_3 not in ahead.forecasts
    constrained = ahead.forecasts[DATA_CONSTRAINED].loss.estimate / truth - 1
    assert abs(constrained) < 0.005
    assert any("fresh data" in w for w in ahead.warnings)
    assert ahead.to_json()["forecast"]["methods"][DATA_CONSTRAINED]["method"] == DATA_CONSTRAINED


def test_a_studys_points_that_repeat_their_data_are_predicted_by_the_data_constrained_law():
    """The store's path (analysis.predict): points with U < D (trials of more than one epoch)
    are forecast by the data-constrained law beside the loss-at-optimum law (here the backtest
    picks the latter: 0.10% against 0.18%); where the data-constrained law is the method, the
    model chosen is predicted by it, on fresh data, and the method is stored with it."""
    from dataclasses import replace

    import pandas as pd

    from analysis.forecast import DATA_CONSTRAINED
    from analysis.predict import Ahead
    from analysis.predict import forecast as ahead_of

    n, d, c, u, loss = _repeating_sweep()
    ids = [f"t{i}" for i in range(len(n))]
    points = pd.DataFrame({"trial_id": ids, "N": n, "D": d, "C": c, "loss": loss, "U": u})
    ahead = ahead_of(points, TARGET, n_boot=0)
    assert set(ahead.forecast.forecasts) == {DATA_CONSTRAINED, LOSS_AT_OPTIMUM}
    assert ahead.forecast.method == LOSS_AT_OPTIMUM
    model = ahead.forecast.forecasts[DATA_CONSTRAINED]
    at = (round(model.n_opt.estimate), round(model.d_opt.estimate))
    constrained = Ahead(replace(ahead.forecast, method=DATA_CONSTRAINED), points)
    predicted = constrained.predict(*at)
    assert predicted.loss == pytest.approx(model.loss.estimate, rel=1e-6)  # its own optimum
    assert predicted.forecast["method"] == DATA_CONSTRAINED
    assert predicted.optimum.source == DATA_CONSTRAINED
