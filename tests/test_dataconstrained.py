"""The data-constrained law (Muennighoff et al. 2023, arXiv 2305.16264): the published
constants reproduce what the paper and its repository print, a synthetic law is recovered, and
`study fit --law data-constrained` refuses bad tables in one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.dataconstrained import (
    PUBLISHED,
    R_D_STAR,
    R_N_STAR,
    effective_data,
    fit_data_constrained,
    optimal_params,
    predict_loss,
)
from analysis.fits import law_points


def test_the_constants_are_the_repositorys():
    # README of github.com/huggingface/datablations, "Parametric Fit": a, b, e, alpha, beta,
    # rd_star, rn_star = [6.255414, 7.3049974, 0.6254804, 0.3526596, 0.3526596, 15.387756,
    # 5.309743]; the paper rounds R*_D to 15.4 and R*_N to 5.3
    assert (R_D_STAR, R_N_STAR) == (15.387756, 5.309743)
    assert round(R_D_STAR, 1) == 15.4 and round(R_N_STAR, 1) == 5.3
    assert np.log([PUBLISHED["A"], PUBLISHED["B"], PUBLISHED["E"]]) == pytest.approx(
        [6.255414, 7.3049974, 0.6254804], abs=1e-12
    )


def test_the_loss_of_figure_1s_models_as_the_repository_prints_it():
    # README, "Parametric Fit": "# Models in Figure 1 (right):
    # print(scaling_law(6.34e9, 242e9, 25e9)) # 2.2256440889984477 # <- This one is better
    # print(scaling_law(8.67e9, 178e9, 25e9)) # 2.2269634075087867"
    assert predict_loss(PUBLISHED, 6.34e9, 242e9, 25e9) == pytest.approx(2.2256440889984477,
                                                                         rel=1e-12)  # fmt: skip
    assert predict_loss(PUBLISHED, 8.67e9, 178e9, 25e9) == pytest.approx(2.2269634075087867,
                                                                         rel=1e-12)  # fmt: skip


def test_the_optimal_allocation_the_repository_finds_by_grid_search():
    # README: optimal_allocation(8.67e9, 178e9, 25e9), a grid of 500 factors in [1.0001, 3]
    # moving compute between N and D (C = 6ND kept), prints
    # "-> 227B tokens, 9.1 epochs, 6.8B parameters"
    unique, best = 25e9, (np.inf, 0.0, 0.0)
    for factor in np.linspace(1.0001, 3, 500):
        for tokens, params in (
            (178e9 * factor, 8.67e9 / factor),
            (178e9 / factor, 8.67e9 * factor),
        ):
            loss = float(predict_loss(PUBLISHED, params, tokens, min(unique, tokens)))
            best = min(best, (loss, tokens, params))
    _, tokens, params = best
    assert (round(tokens / 1e9), round(tokens / unique, 1), round(params / 1e9, 1)) == (
        227,
        9.1,
        6.8,
    )


def test_four_epochs_are_almost_new_data_and_returns_then_vanish():
    # Abstract: "training with up to 4 epochs of repeated data yields negligible changes to loss
    # compared to having unique data. However, with more repetition, the value of adding
    # compute eventually decays to zero."
    worth = effective_data(4.0, 1.0) / 4.0  # D′/D at 4 epochs (R_D = 3)
    assert worth == pytest.approx(0.93142, abs=1e-5)  # 3.7257 epochs' worth of new data
    # every further epoch adds exp(-R_D/R*_D) of an epoch: 82% at the 4th, under 1% past 72
    assert effective_data(5.0, 1.0) - effective_data(4.0, 1.0) == pytest.approx(
        np.exp(-3 / R_D_STAR), rel=0.1
    )
    assert effective_data(73.0, 1.0) - effective_data(72.0, 1.0) < 0.01
    # and D′ never exceeds U·(1 + R*_D), 16.39 epochs' worth, however long the training
    assert effective_data(1e6, 1.0) == pytest.approx(1 + R_D_STAR, rel=1e-12)
    assert effective_data(1.0, 1.0) == 1.0  # one epoch: D′ = D


def _synthetic(r_d_star: float = 8.0, seed: int = 1):
    """A one-epoch grid (6 sizes × 6 token counts) and repeated runs of 3 sizes on 2 unique
    sets for 2 to 64 epochs, from the law with the published constants but R*_D = r_d_star,
    with 0.3% noise on the loss."""
    truth = PUBLISHED | {"R_D_star": r_d_star}
    rows = [(n, d, d) for n in np.geomspace(1e7, 2e9, 6) for d in np.geomspace(2e8, 1e11, 6)]
    rows += [
        (n, u * e, u) for n in (5e7, 2e8, 8e8) for u in (1e8, 1e9) for e in (2, 4, 8, 16, 32, 64)
    ]
    n, d, u = (np.array(c) for c in zip(*rows, strict=True))
    noise = np.exp(np.random.default_rng(seed).normal(0, 0.003, len(n)))
    return pd.DataFrame({"N": n, "D": d, "U": u, "loss": predict_loss(truth, n, d, u) * noise})


def test_a_synthetic_law_is_recovered_within_its_interval():
    points = _synthetic(r_d_star=8.0)
    fit = fit_data_constrained(points.loss, n_boot=300, N=points.N, D=points.D, U=points.U)
    low, high = fit.intervals["R_D_star"]
    assert low < 8.0 < high and fit.params["R_D_star"] == pytest.approx(8.0, rel=0.1)
    low, high = fit.intervals["R_N_star"]  # the oversized models of one epoch pin R*_N
    assert low < R_N_STAR < high
    for name in ("alpha", "beta"):
        assert fit.intervals[name][0] < PUBLISHED[name] < fit.intervals[name][1]
    result = fit.result()
    assert result.law == "data-constrained" and "R_D_star = 7.9" in result.summary("synthetic")


def test_r_n_star_is_held_where_no_model_exceeds_its_data():
    points = _synthetic()
    small = points[points.N < optimal_params(points.U, PUBLISHED)]  # none exceeds its data
    assert (small.D > small.U).sum() >= 3
    fit = fit_data_constrained(small.loss, n_boot=0, N=small.N, D=small.D, U=small.U)
    assert fit.params["R_N_star"] == R_N_STAR
    assert any("R_N_star held at the published 5.30974" in w for w in fit.warnings)


def test_points_without_repetition_or_with_more_unique_tokens_are_refused():
    points = _synthetic()
    once = points[points.D == points.U]
    with pytest.raises(ValueError, match="no point repeats its data"):
        fit_data_constrained(once.loss, n_boot=0, N=once.N, D=once.D, U=once.U)
    with pytest.raises(ValueError, match="more unique tokens than tokens"):
        fit_data_constrained(points.loss, n_boot=0, N=points.N, D=points.D, U=points.U * 2)


def test_a_stores_trials_repeat_their_data_by_their_epochs():
    trials = pd.DataFrame({"trial_id": ["a", "b"], "architecture": "decoder",
                           "status": "finished", "val_loss": [3.0, 2.9], "n_params": [1e6, 1e6],
                           "tokens": [4e7, 2e7], "flops": [2.4e14, 1.2e14], "lr": [1e-3, 1e-3],
                           "epochs": [4.0, 0.5]})  # fmt: skip
    assert law_points(trials, "decoder").U.tolist() == [1e7, 2e7]


def test_study_fit_on_a_csv(study_here, tmp_path):
    table = tmp_path / "runs.csv"
    _synthetic().rename(columns={"U": "unique_tokens"}).to_csv(table, index=False)
    done = study_here("fit", "--csv", str(table), "--law", "data-constrained", "--json",
                      "--n-boot", "50", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["law"] == "data-constrained" and result["n_points"] == 72
    assert result["params"]["R_D_star"]["estimate"] == pytest.approx(8.0, rel=0.1)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns="U"), "needs each row's unique tokens, a column U or unique_tokens"),
        (lambda f: f.assign(U=f.U.where(f.index != 3, f.D * 2)),
         "line 5: more unique tokens than tokens"),
    ],
)  # fmt: skip
def test_a_bad_table_is_one_line_and_exit_2(study_here, tmp_path, edit, message):
    table = tmp_path / "bad.csv"
    edit(_synthetic()).to_csv(table, index=False)
    done = study_here("fit", "--csv", str(table), "--law", "data-constrained", cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
