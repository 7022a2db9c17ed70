"""Learning-rate schedules: cosine as before, WSD's warmup, stable phase and cooldown, and how a
study file asks for them."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from orchestrator.grid import expand
from orchestrator.spec import StudyError, parse_study
from trainers.schedules import cooldown_start, describe, lr_at, warmup_steps

STUDY = """\
name: t
data: {seq_len: 32}
architectures: [decoder]
sizes: [25K]
budget: {tokens: 64K}
train: {batch_size: 8, lr: 1.0e-3, warmup: 0.1, min_lr_ratio: 0.1%s}
eval: {zero_shot: {tasks: []}}
storage: ""
"""


def trial(schedule: str = ""):
    return expand(parse_study(STUDY % schedule), "", "")[0]


def test_cosine_is_the_default_and_keeps_its_hash():
    plain, named = trial(), trial(", schedule: cosine")
    assert plain.optim.schedule == "cosine" and plain.hash == named.hash
    assert trial(", schedule: {name: cosine}").hash == plain.hash


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
def test_wsd_holds_the_peak_then_cools_down_to_the_floor(shape):
    spec = trial(f", schedule: {{name: wsd, cooldown: 0.25, shape: {shape}}}")
    assert spec.steps == 250 and spec.optim.schedule == "wsd"
    lrs = [lr_at(s, spec) for s in range(spec.steps)]
    warm, start = warmup_steps(spec), cooldown_start(spec)
    assert (warm, start) == (25, 188)  # 10% of 250 steps; the last 62 cool down
    assert lrs[warm - 1] == lrs[start - 1] == pytest.approx(1e-3)
    assert set(lrs[warm:start]) == {1e-3}
    cool = lrs[start:]
    assert all(a > b for a, b in zip(cool, cool[1:], strict=False))
    assert cool[-1] == pytest.approx(1e-4)  # min_lr_ratio of the peak at the last step
    mid = lrs[start + 30]  # progress 31/62 = 0.5
    expected = 1e-4 + 9e-4 * (0.5 if shape == "linear" else 1 - math.sqrt(0.5))
    assert mid == pytest.approx(expected)
    assert "constant until step 188" in describe(spec) and shape in describe(spec)


def test_wsd_alone_means_its_defaults_and_changes_the_hash():
    spec = trial(", schedule: wsd")
    assert (spec.optim.cooldown, spec.optim.cooldown_shape) == (0.2, "1-sqrt")
    assert spec.hash != trial().hash


def test_a_warmup_in_tokens_does_not_depend_on_the_length():
    spec = trial(", schedule: wsd")
    longer = replace(spec, budget=replace(spec.budget, tokens=4 * spec.budget.tokens))
    fixed = [replace(s, optim=replace(s.optim, warmup=0.0, warmup_tokens=2048))
             for s in (spec, longer)]  # fmt: skip
    assert warmup_steps(fixed[0]) == warmup_steps(fixed[1]) == 8
    start = cooldown_start(fixed[0])
    assert [lr_at(s, fixed[0]) for s in range(start)] == [lr_at(s, fixed[1]) for s in range(start)]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (
            ", schedule: {name: wsd, cooldown: 1.0}",
            "train.schedule.cooldown: Input should be less than 1",
        ),
        (
            ", schedule: {name: wsd, cooldown: 0}",
            "train.schedule.cooldown: Input should be greater than 0",
        ),
        (
            ", schedule: {name: wsd, shape: sqrt}",
            "train.schedule.shape: Input should be 'linear' or '1-sqrt'",
        ),
        (", schedule: linear", "train.schedule"),
        (", schedule: {name: cosine, cooldown: 0.2}", "train.schedule"),
    ],
)
def test_bad_schedules_name_the_field(schedule, expected):
    with pytest.raises(
        StudyError, match="x.yaml:6: " + expected.replace(".", r"\.").replace("(", r"\(")
    ):
        parse_study(STUDY % schedule, source="x.yaml")


def test_a_wsd_trial_trains_at_the_rates_of_its_schedule():
    from trainers.train import train

    spec = trial(", schedule: {name: wsd, cooldown: 0.2, shape: 1-sqrt}")
    spec = replace(spec, budget=replace(spec.budget, tokens=8192))  # 32 steps
    events = []
    end = train(spec, events.append)
    logged = {e.step: e.lr for e in events if e.kind == "train"}
    assert logged and all(lr == pytest.approx(lr_at(step - 1, spec)) for step, lr in logged.items())
    assert logged[spec.steps] == pytest.approx(1e-4) and math.isfinite(end.val_loss)


def test_a_cell_whose_warmup_outlasts_its_run_is_left_out_with_the_reason():
    from orchestrator.grid import cells

    text = (STUDY % "").replace("sizes: [25K]", "sizes: [25K, 1M]").replace(
        "train: {batch_size: 8, lr: 1.0e-3, warmup: 0.1, min_lr_ratio: 0.1}", "recipe: olmo")
    spec = parse_study(text.replace("64K", "500K"))
    small, large = cells(spec)
    assert not small.left_out and "its warmup of" in large.left_out
    assert "would not end before its cooldown starts" in large.left_out
    assert [t.size for t in expand(spec, "", "")] == ["25K"]
