"""The two-step prediction of zero-shot accuracy (Bhagia et al. 2024) on a synthetic ladder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.laws import CHINCHILLA_ND
from analysis.tasklaw import fit_sigmoid, holdout_largest, predict_task, sigmoid

STEP1 = {"E": 0.6, "A": 30.0, "alpha": 0.3, "B": 40.0, "beta": 0.28}
STEP2 = {"a": 0.75, "b": 0.25, "k": -40.0, "L0": 0.74}  # a perfect model: 100%
CHANCE = 0.25


def truth(n, d):
    loss = float(CHINCHILLA_ND.predict(STEP1, N=n, D=d))
    return loss, float(sigmoid(loss, STEP2["a"], STEP2["b"], STEP2["k"], STEP2["L0"]))


def ladder(seed=0, loss_noise=0.003, acc_noise=0.01):
    """Five sizes × four token multipliers (the OLMo ladder's 1, 2, 5, 10 × 20 tokens per
    parameter), four checkpoints each, with noise on the loss and on the accuracy."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in (1.9e8, 3.7e8, 7.6e8, 1.3e9, 2.0e9):
        for mult in (1, 2, 5, 10):
            for fraction in (0.25, 0.5, 0.75, 1.0):
                d = 20 * n * mult * fraction
                loss, acc = truth(n, d)
                rows.append({"run": f"{n:g}-{mult}xC", "N": n, "D": d,
                             "task_loss": loss * np.exp(rng.normal(0, loss_noise)),
                             "accuracy": acc + rng.normal(0, acc_noise)})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_sigmoid_is_found_again_and_kept_in_its_bounds():
    loss = np.linspace(0.6, 0.9, 60)
    acc = sigmoid(loss, STEP2["a"], STEP2["b"], STEP2["k"], STEP2["L0"])
    fitted = fit_sigmoid(loss, acc, CHANCE)
    for name, value in STEP2.items():
        assert fitted[name] == pytest.approx(value, rel=1e-3), name
    below = fit_sigmoid(loss, np.full_like(loss, 0.1), CHANCE)  # below chance: held at it
    assert below["b"] == pytest.approx(CHANCE) and below["a"] + below["b"] <= 1


def test_a_synthetic_ladder_gives_back_its_laws_and_predicts_a_model_inside_it():
    points = ladder()
    target = {"N": 1.0e9, "D": 20 * 1.0e9 * 3}  # inside the ladder, not one of its runs
    result = predict_task(points, target, CHANCE, n_boot=300)
    for step, true in (("step1", STEP1), ("step2", STEP2)):
        for name, value in true.items():
            ci = result[step]["params"][name]["ci"]
            assert ci is not None and ci[0] <= value <= ci[1], (step, name, ci, value)
    true_loss, true_acc = truth(target["N"], target["D"])
    lo, hi = result["task_loss"]["ci"]
    assert lo <= true_loss <= hi
    lo, hi = result["accuracy"]["ci"]
    assert lo <= true_acc <= hi and hi - lo < 0.1
    assert result["n_runs"] == 20 and result["step2"]["n_points"] == 81  # and the ideal point
    json.dumps(result)  # plain data


def test_the_largest_model_held_out_is_predicted_from_the_others():
    points = ladder(seed=1)
    points["run"] = points.run.str.replace("10xC", "z10xC")  # not first by name
    result = holdout_largest(points, CHANCE, n_boot=200)
    assert result["held_out"] == "2e+09-z10xC"  # the largest N, its largest D
    assert result["n_runs"] == 16  # every run of that size held out, not only one
    lo, hi = result["accuracy"]["ci"]
    assert lo - 0.03 <= result["measured"]["estimate"] <= hi + 0.03  # measured with noise


def test_too_few_runs_is_a_clear_error():
    points = ladder()
    few = points[points.run.isin(sorted(set(points.run))[:3])]
    with pytest.raises(ValueError, match="needs 6 runs; got 3"):
        predict_task(few, {"N": 1e9, "D": 2e10}, CHANCE, n_boot=10)
