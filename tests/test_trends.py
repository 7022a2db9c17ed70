"""Zero-shot trends: slopes, intervals over items, rank correlation, the verdict sentence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.trends import (
    accuracy_trend,
    direction,
    likelihood_trend,
    study_trends,
    task_loss_trend,
    verdict,
)


def _answers(accuracies, n_items=400, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random(n_items) < a).astype(float) for a in accuracies]


def test_a_rising_accuracy_has_a_positive_slope_excluding_zero():
    n = [1e5, 1e6, 1e7, 1e8]
    t = accuracy_trend(n, _answers([0.3, 0.45, 0.6, 0.75]))
    assert 0.1 < t.slope.estimate < 0.2  # about 15 points per decade
    assert t.slope.ci[0] > 0 and direction(t) == "better"
    assert t.spearman_rho == 1.0


def test_a_flat_accuracy_is_unclear_and_said_so():
    n = [1e5, 1e6, 1e7, 1e8]
    t = accuracy_trend(n, _answers([0.5, 0.5, 0.5, 0.5], seed=1))
    assert t.slope.ci[0] < 0 < t.slope.ci[1] and direction(t) == "unclear"
    sentence = verdict("decoder", {"minimal_pairs": t})
    assert sentence.startswith("decoder: the data do not show larger models doing better")


def test_study_trends_per_architecture_leave_the_baseline_out():
    rows = []
    for arch, accs in (("decoder", [0.3, 0.5, 0.7]), ("encoder", [0.5, 0.5, 0.5])):
        for n, answers in zip([1e5, 1e6, 1e7], _answers(accs), strict=True):
            rows.append({"architecture": arch, "n_params": n, "task": "last_word",
                         "metric": "acc", "per_item": list(answers)})  # fmt: skip
    rows.append({"architecture": "ngram", "n_params": None, "task": "last_word",
                 "metric": "acc", "per_item": [1.0] * 400})  # fmt: skip
    out = study_trends(pd.DataFrame(rows), n_boot=200)
    assert set(out) == {"decoder", "encoder"}
    assert "did better on every zero-shot task by accuracy" in out["decoder"].verdict
    assert "do not show" in out["encoder"].verdict


def test_the_rank_correlation_p_value_is_exact_for_few_sizes():
    t = accuracy_trend([1e5, 1e6, 1e7, 1e8], _answers([0.3, 0.45, 0.6, 0.75]), n_boot=10)
    assert t.spearman_rho == 1.0 and t.p_value == 2 / 24  # both perfect orders of 24


def test_equal_accuracies_have_no_rank_correlation():
    same = [np.array([1.0, 0.0, 1.0, 0.0])] * 3
    t = accuracy_trend([1e5, 1e6, 1e7], same, n_boot=10)
    assert (t.spearman_rho, t.p_value) == (0.0, 1.0)


def test_held_out_likelihood_is_judged_apart_from_the_zero_shot_tasks_lower_better():
    rng = np.random.default_rng(0)
    n = [1e4, 1e5, 1e6, 1e7]
    windows = [
        [[float(nats * rng.uniform(0.9, 1.1)), 400] for _ in range(50)]
        for nats in (900.0, 850.0, 800.0, 760.0)
    ]
    t = likelihood_trend(n, windows, n_boot=200)
    assert t.metric == "bits_per_byte" and t.slope.estimate < 0 and t.slope.ci[1] < 0
    assert t.values[0] == pytest.approx(np.sum(windows[0], axis=0)[0] / 20_000 / np.log(2))
    assert t.spearman_rho == pytest.approx(-1.0)
    assert direction(t) == "better"
    sentence = verdict("decoder", {"heldout": t})
    assert sentence.startswith("decoder: no zero-shot task to judge (by the slope's 95% interval)")
    assert "held-out likelihood better with N" in sentence
    assert "heldout likelihood -0." in sentence and "bits per byte per 10x N" in sentence


def test_a_task_loss_falling_with_n_is_better_and_kept_beside_accuracy():
    rng = np.random.default_rng(0)
    n = [1e4, 1e5, 1e6, 1e7, 1e8]
    losses = [list(rng.normal(mean, 0.5, 200)) for mean in (3.0, 2.8, 2.6, 2.4, 2.2)]
    t = task_loss_trend(n, losses, n_boot=200)
    assert t.metric == "bpb" and t.slope.estimate == pytest.approx(-0.2, abs=0.05)
    assert t.slope.ci[1] < 0 and direction(t) == "better"
    assert t.spearman_rho == pytest.approx(-1.0) and t.p_value == pytest.approx(2 / 120)
    rows = [{"architecture": "encoder", "n_params": size, "task": "last_word", "metric": m,
             "per_item": v}
            for size, loss, acc in zip(n, losses, _answers([0.25] * 5, 200), strict=True)
            for m, v in (("bpb", loss), ("acc", list(acc)))]  # fmt: skip
    out = study_trends(pd.DataFrame(rows), n_boot=200)["encoder"]
    assert set(out.tasks) == {"last_word", "last_word:loss"}
    assert "better on every zero-shot task by task loss" in out.verdict
    assert "accuracy no evidence either way on last_word" in out.verdict
