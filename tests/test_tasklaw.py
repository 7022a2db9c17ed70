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
            ci = getattr(result, step).params[name].ci
            assert ci is not None and ci[0] <= value <= ci[1], (step, name, ci, value)
    true_loss, true_acc = truth(target["N"], target["D"])
    lo, hi = result.task_loss.ci
    assert lo <= true_loss <= hi
    lo, hi = result.accuracy.ci
    assert lo <= true_acc <= hi and hi - lo < 0.1
    assert result.n_runs == 20 and result.step2.n_points == 81  # and the ideal point
    json.dumps(result.to_json())  # plain data


def test_the_largest_model_held_out_is_predicted_from_the_others():
    points = ladder(seed=1)
    points["run"] = points.run.str.replace("10xC", "z10xC")  # not first by name
    result = holdout_largest(points, CHANCE, n_boot=200)
    assert result.held_out == "2e+09-z10xC"  # the largest N, its largest D
    assert result.n_runs == 16  # every run of that size held out, not only one
    lo, hi = result.accuracy.ci
    assert lo - 0.03 <= result.measured.estimate <= hi + 0.03  # measured with noise


def test_too_few_runs_is_a_clear_error():
    points = ladder()
    few = points[points.run.isin(sorted(set(points.run))[:3])]
    with pytest.raises(ValueError, match="needs 6 runs; got 3"):
        predict_task(few, {"N": 1e9, "D": 2e10}, CHANCE, n_boot=10)


LADDER_STUDY = """\
name: ladder
architectures: [decoder]
sizes: [25K, 50K, 100K, 200K, 400K]
budget: {tokens: 1M}
"""
STORE_STEP1 = {"E": 0.6, "A": 5.0, "alpha": 0.3, "B": 2.0, "beta": 0.3}  # task loss 0.72-0.89


def _ladder_store(url: str) -> dict[str, tuple[int, float, float]]:
    """A study of five decoder sizes written to a store by its own write path, as the trainers'
    events would: each run scored at a quarter, half, three quarters and the end of its tokens,
    acc and bpb following STORE_STEP1 and STEP2. Returns each run's final (tokens, task loss,
    acc)."""
    from sqlalchemy.orm import Session

    from orchestrator.grid import expand
    from orchestrator.spec import parse_study
    from orchestrator.stages import register
    from orchestrator.store import RunStore, current_trials, get_study, open_store, record_event
    from trainers.data import load_token_data
    from trainers.events import End, Start, ZeroShot

    spec = parse_study(LADDER_STUDY)
    data = load_token_data("builtin:kjv", "bytes", 0.02, 0.02, 0)  # in memory: no cache folder
    with RunStore.open(url) as run_store:
        register(run_store, spec, expand(spec, "", ""), data)
    engine = open_store(url)
    final = {}
    with Session(engine) as session:
        study = get_study(session, spec.name)
        for row, n in zip(current_trials(session, study), (25e3, 5e4, 1e5, 2e5, 4e5), strict=True):
            trial = row.spec
            record_event(session, row, Start(n_params=int(n), total_params=int(2 * n),
                                             flops_per_token=int(6 * n), steps=trial.steps,
                                             device="cpu", threads=1, host="h",
                                             eval_key=trial.eval_key))  # fmt: skip
            for quarter in (1, 2, 3, 4):
                step = trial.steps * quarter // 4
                tokens = step * trial.tokens_per_step
                loss = float(CHINCHILLA_ND.predict(STORE_STEP1, N=n, D=tokens))
                acc = float(sigmoid(loss, STEP2["a"], STEP2["b"], STEP2["k"], STEP2["L0"]))
                results = [
                    {"task": "last_word", "metric": "acc", "value": acc, "n_items": 500,
                     "chance": CHANCE, "ci_low": acc - 0.04, "ci_high": acc + 0.04},
                    {"task": "last_word", "metric": "bpb", "value": loss, "n_items": 500},
                ]  # fmt: skip
                scored = ZeroShot(step=step, tokens=tokens, eval_key=trial.eval_key,
                                  results=results)  # fmt: skip
                record_event(session, row, scored)
            record_event(session, row, End(step=trial.steps, tokens=tokens, tokens_scored=tokens,
                                           epochs=1.0, val_loss=3.0, wall_s=1.0,
                                           tokens_per_s=1e4, mfu=0.1))  # fmt: skip
            final[row.trial_id] = (tokens, loss, acc)
        session.commit()
    engine.dispose()
    return final


def test_the_largest_model_of_a_stored_study_is_held_out_and_predicted(store, study_here, tmp_path):
    """Through the store: the study's scored checkpoints read back (`task_points`), the
    two-step fit of `study fit --law task` holds out the largest model and predicts it from the
    four others, beside what it measured, in the JSON and in the line the terminal shows."""
    final = _ladder_store(store)
    args = ["fit", "--store", store, "--law", "task", "--n-boot", "50"]
    done = study_here(*args, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    fitted = json.loads(done.stdout)["architectures"]["decoder"]
    assert fitted["warnings"] == []  # the store gives each task its chance level
    result = fitted["tasks"]["last_word"]
    assert result["held_out"] == "decoder-400K-s0" and result["n_runs"] == 4
    tokens, loss, acc = final["decoder-400K-s0"]
    assert result["measured"] == {"estimate": pytest.approx(acc), "ci": pytest.approx(
        [acc - 0.04, acc + 0.04])}  # fmt: skip
    assert result["measured_task_loss"] == pytest.approx(loss)
    assert result["target"] == {"N": 4e5, "D": tokens}  # predicted at its size and tokens
    assert result["task_loss"]["estimate"] == pytest.approx(loss, abs=0.005)  # a law it can fit
    assert result["accuracy"]["estimate"] == pytest.approx(acc, abs=0.01)
    assert result["step1"]["formula"] == "L(N) = E + A·N^(−α)"  # every run saw the same tokens
    assert result["step2"]["chance"] == CHANCE and result["step2"]["n_points"] == 4 * 4 + 1
    text = study_here(*args, cwd=tmp_path).stdout
    assert ("decoder last_word: the largest run decoder-400K-s0 held out and predicted from the "
            "other 4: accuracy ") in text and f"measured {acc:.3g} [" in text  # fmt: skip
