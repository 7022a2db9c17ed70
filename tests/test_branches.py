"""One run for many budgets: a trunk trained to the largest budget, a cooldown branched off it
at each smaller one (orchestrator.branches), in the trainer, the grid and the driver's gates."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.branches import Gates, shared_fraction
from orchestrator.grid import expand
from orchestrator.spec import StudyError, parse_study
from trainers.checkpoint import parent_checkpoint
from trainers.schedules import cooldown_start
from trainers.train import train

ONE_RUN = """\
name: t
data: {seq_len: 32}
architectures: [decoder]
sizes: [25K]
budget: {tokens: [8K, 16K, 32K], from_one_run: true}
train: {batch_size: 8, lr: 3.0e-3, schedule: {name: wsd, cooldown: 0.2}}
eval: {every_tokens: 4K, tokens: 2K, zero_shot: {tasks: []}}
storage: STORAGE
"""


def _grid(tmp_path, text=ONE_RUN):
    return expand(parse_study(text.replace("STORAGE", str(tmp_path))), "", str(tmp_path))


def test_the_largest_budget_is_the_trunk_and_the_others_branch_off_it(tmp_path):
    small, middle, trunk = _grid(tmp_path)
    assert trunk.placement.branch_points == (cooldown_start(small), cooldown_start(middle))
    assert small.placement.parent == middle.placement.parent == trunk.trial_id
    assert not trunk.placement.parent
    # the warmup is the largest budget's, in tokens, for every budget of the size
    assert {t.optim.warmup_tokens for t in (small, middle, trunk)} == {round(0.05 * 32_000)}
    # a branch is the standalone WSD run of its budget with that warmup: the same identity
    alone = expand(parse_study(ONE_RUN.replace("STORAGE", str(tmp_path)).replace(
        "from_one_run: true", "from_one_run: false")), "", str(tmp_path))  # fmt: skip
    assert [t.hash for t in alone] != [t.hash for t in (small, middle, trunk)]  # other warmup
    same = [replace(t, optim=replace(t.optim, warmup_tokens=1600)).hash for t in alone]
    assert same == [t.hash for t in (small, middle, trunk)]


def test_a_branch_ends_where_a_standalone_run_of_its_budget_ends_bit_for_bit(tmp_path):
    small, middle, trunk = _grid(tmp_path / "one")
    events = []
    train(trunk, events.append)
    folder = tmp_path / "one" / "t" / trunk.trial_id
    kept = sorted(p.name for p in folder.glob("branch-*.pt"))
    assert kept == sorted(f"branch-{s}.pt" for s in trunk.placement.branch_points)
    assert (folder / "final.pt").exists()  # and the branch points stay after it ends
    for branch in (small, middle):
        assert parent_checkpoint(branch).exists()
        got = []
        end = train(branch, got.append)
        start = got[0]
        assert start.resumed_step == cooldown_start(branch)  # it trains its cooldown alone
        assert start.inherited_tokens == start.resumed_tokens > 0
        alone = replace(branch, placement=replace(branch.placement, parent="",
                                                  storage=str(tmp_path / "alone")))  # fmt: skip
        expected = train(alone, lambda e: None)
        assert end.val_loss == expected.val_loss  # bitwise: the same states, step by step
        assert end.tokens_scored == expected.tokens_scored


class _Stop(Exception):
    pass


def test_a_failed_branch_starts_again_from_the_trunks_checkpoint_not_from_step_0(tmp_path):
    small, _, trunk = _grid(tmp_path)
    train(trunk, lambda e: None)

    def fail_in_cooldown(event):
        if event.kind == "train" and event.step > cooldown_start(small):
            raise _Stop

    with pytest.raises(_Stop):
        train(small, fail_in_cooldown)
    again = []
    train(small, again.append)
    assert again[0].resumed_step == cooldown_start(small)  # not 0: the trunk's prefix is kept
    assert again[0].inherited_tokens == cooldown_start(small) * small.tokens_per_step


def test_the_shared_prefix_costs_what_the_arithmetic_says():
    assert shared_fraction([1, 2, 4, 8], 0.2) == pytest.approx(0.2 + 0.8 * 8 / 15)
    assert round(shared_fraction([1, 2, 4, 8], 0.2), 2) == 0.63


def test_branches_wait_for_their_trunk_and_are_not_started_when_it_fails(tmp_path):
    small, middle, trunk = _grid(tmp_path)
    gates = Gates([small, middle, trunk])
    assert gates.held(small.trial_id) and gates.held(middle.trial_id)
    assert not gates.held(trunk.trial_id)
    assert gates.passed(trunk.trial_id, cooldown_start(small)) == [small.trial_id]
    (why,) = gates.failed(trunk.trial_id).values()
    assert f"its trunk {trunk.trial_id} failed before step {cooldown_start(middle)}" in why
    assert not gates.waiting
    # a trunk already finished (not in this run): its branches start at once
    assert not Gates([small, middle]).waiting


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[8K, 16K, 32K]", "[8K]"), "needs two budgets or more"),
        (("{name: wsd, cooldown: 0.2}", "cosine"), "needs train.schedule wsd"),
        (("storage: STORAGE", "storage: ''"), "needs storage"),
    ],
)
def test_one_run_refuses_what_it_cannot_branch(tmp_path, change, message):
    with pytest.raises(StudyError) as error:
        _grid(tmp_path, ONE_RUN.replace(*change))
    assert str(error.value).splitlines()[1].startswith("<string>:5: budget.from_one_run: ")
    assert message in str(error.value)


def test_one_run_refuses_budgets_trained_with_other_settings(tmp_path, monkeypatch):
    from orchestrator import grid

    real = grid.plan

    def lr_of_d(size, budget, study, **kw):  # a recipe whose rate depends on D
        made = real(size, budget, study, **kw)
        return replace(made, lr=made.lr * (made.tokens / 8000) ** -0.1)

    monkeypatch.setattr(grid, "plan", lr_of_d)
    with pytest.raises(StudyError, match=r"budget.from_one_run: the study.s settings "
                       r"give decoder 25K optim.lr .* one run serves only budgets"):  # fmt: skip
        _grid(tmp_path)


def test_a_branch_inside_the_warmup_is_refused(tmp_path):
    text = ONE_RUN.replace("[8K, 16K, 32K]", "[2K, 32K]").replace(
        "lr: 3.0e-3", "lr: 3.0e-3, warmup: 0.2"
    )
    with pytest.raises(StudyError, match="inside the warmup"):
        _grid(tmp_path, text)
