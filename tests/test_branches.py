"""One run for many budgets: a trunk trained to the largest budget, a cooldown branched off it
at each smaller one (orchestrator.branches), in the trainer, the grid and the driver's gates."""

from __future__ import annotations

from dataclasses import replace
from io import StringIO

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


def test_a_branch_from_its_trunk_drops_the_weights_an_earlier_trial_of_its_id_kept(tmp_path):
    import torch

    from trainers.checkpoint import scorable

    small, _, trunk = _grid(tmp_path)
    small, trunk = (replace(t, placement=replace(t.placement, keep_checkpoints=True))
                    for t in (small, trunk))  # fmt: skip
    train(trunk, lambda e: None)
    folder = tmp_path / "t" / small.trial_id
    folder.mkdir(parents=True)
    stale = folder / f"step-{small.eval_every}.pt"  # before the branch point: never written again
    torch.save({"hash": "another", "step": small.eval_every, "model": {}}, stale)
    got = []
    train(small, got.append)
    assert got[0].resumed_step == cooldown_start(small)  # it did start from the trunk's state
    assert not stale.exists()
    kept = scorable(small)
    assert kept and min(kept) > cooldown_start(small)  # its earlier points: the trunk's folder
    for path in kept.values():
        assert torch.load(path, weights_only=True)["hash"] == small.hash


def test_the_plan_counts_a_trunks_branch_points_in_its_storage(tmp_path):
    from orchestrator.api import _weights_mb

    small, _, trunk = _grid(tmp_path)
    events = []
    train(trunk, events.append)
    total = events[0].total_params
    folder = tmp_path / "t" / trunk.trial_id
    points = [p.stat().st_size for p in folder.glob("branch-*.pt")]
    assert len(points) == 2 and all(12 * total < size < 12 * total + 50_000 for size in points)
    on_disk = sum(p.stat().st_size for p in folder.glob("*.pt"))  # final.pt and the points
    assert _weights_mb(trunk, total, 0) * 1e6 == pytest.approx(on_disk, rel=0.15)
    assert _weights_mb(small, total, 0) == 4 * total / 1e6  # a branch keeps final.pt alone


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


def _one_run_study(tiny_study, lr="3.0e-3"):
    """The tiny study as one decoder trained for four doubling budgets from one run."""
    text = tiny_study.read_text().replace("[decoder, encoder, encdec]", "[decoder]")
    text = text.replace("[25K, 50K, 100K]", "[25K]").replace("lr: 3.0e-3", f"lr: {lr}")
    text = text.replace("budget: {tokens: 16K}",
                        "budget: {tokens: [4K, 8K, 16K, 32K], from_one_run: true}")  # fmt: skip
    text = text.replace("train: {", "train: {schedule: {name: wsd, cooldown: 0.2}, ")
    tiny_study.write_text(text.replace("zero_shot: {items: 30}", "zero_shot: {tasks: []}"))
    return tiny_study


def _console(file=None):
    from rich.console import Console

    return Console(file=file or open("/dev/null", "w"), soft_wrap=True, width=200)  # noqa: SIM115


def test_a_branch_whose_trunk_left_no_state_trains_from_0_and_is_charged_in_full(
    tiny_study, monkeypatch
):
    from orchestrator import api
    from orchestrator.branches import from_step_0
    from orchestrator.spec import load_study

    spec = load_study(_one_run_study(tiny_study))
    data = api.prepare_data(spec)
    *branches, trunk = api.trials(spec, data)
    shared = [cooldown_start(b) / b.steps for b in branches]

    def charged(finished: set[str]) -> list[float]:
        monkeypatch.setattr(api, "finished_hashes", lambda name: finished)
        frame = api.plan(spec, data).set_index("trial_id")
        return [frame.compute[b.trial_id] / frame.flops[b.trial_id] for b in branches]

    # the trunk still to train (no store yet: nothing finished) writes every branch point
    assert charged(set()) == pytest.approx([1 - f for f in shared])
    # a trunk finished without them (budgets added after it passed their points): all in full
    assert charged({trunk.hash}) == pytest.approx([1.0] * len(branches))
    parent_checkpoint(branches[0]).parent.mkdir(parents=True)
    parent_checkpoint(branches[0]).touch()  # the trunk left this one
    assert charged({trunk.hash}) == pytest.approx([1 - shared[0]] + [1.0] * (len(branches) - 1))

    got = []
    train(branches[1], got.append)  # its trunk left no state at its point
    assert got[0].resumed_step == 0 and got[0].inherited_tokens == 0  # stored: no shared tokens
    said = from_step_0(branches[1], got[0])
    assert said.startswith(f"{branches[1].trial_id} trains from step 0: its trunk "
                           f"{trunk.trial_id} left no train state at step "
                           f"{cooldown_start(branches[1]):,}")  # fmt: skip
    assert from_step_0(trunk, got[0]) is None
    assert from_step_0(branches[1], replace(got[0], resumed_step=3)) is None


@pytest.mark.slow
def test_one_run_charges_the_prefix_once_and_a_rerun_trains_nothing(ray_session, tiny_study):
    from orchestrator import api
    from orchestrator.spec import load_study
    from trainers.trial import TrialSpec

    study = _one_run_study(tiny_study)
    spec = load_study(study)
    *branches, trunk = api.trials(spec, api.prepare_data(spec))

    def cut_off(event):  # a killed run: the trunk stops after its second branch point
        if event.kind == "checkpoint" and event.step >= trunk.placement.branch_points[1]:
            raise _Stop

    with pytest.raises(_Stop):
        train(trunk, cut_off)
    console = _console(StringIO())
    first = api.run_study(study, console=console, n_boot=0)
    assert f"{trunk.trial_id}: resumed at" in console.file.getvalue()  # its prefix not again
    assert sorted(first.ran) == sorted(t.trial_id for t in (*branches, trunk))
    assert first.failed == []
    rows = {r.trial_id: r for r in api.status(study).itertuples()}
    assert {rows[b.trial_id].parent for b in branches} == {trunk.hash}
    assert not isinstance(rows[trunk.trial_id].parent, str)  # null: no parent
    for branch in branches:  # each branch trained its cooldown alone, charged for it alone
        row = rows[branch.trial_id]
        cooldown = branch.steps - cooldown_start(TrialSpec.from_dict(branch.to_dict()))
        assert row.compute == pytest.approx(row.flops * cooldown / branch.steps)
    compute = sum(r.compute for r in rows.values())
    each_alone = sum(r.flops for r in rows.values())
    steps = [t.steps for t in (*branches, trunk)]
    cooldowns = [s - cooldown_start(t) for s, t in zip(steps, (*branches, trunk), strict=True)]
    assert compute / each_alone == pytest.approx((max(steps) + sum(cooldowns) - cooldowns[-1])
                                                 / sum(steps))  # fmt: skip
    assert compute / each_alone == pytest.approx(shared_fraction([1, 2, 4, 8], 0.2), abs=0.02)

    again = api.run_study(study, console=_console(), n_boot=0)
    assert again.ran == [] and len(again.skipped) == 4

    # a budget added once the trunk has finished: no state of the trunk's at its point
    study.write_text(study.read_text().replace("[4K, 8K, 16K", "[4K, 6K, 8K, 16K"))
    spec = load_study(study)
    added = next(t for t in api.trials(spec, api.prepare_data(spec))
                 if t.budget.tokens == 6000)  # fmt: skip
    planned = api.plan(spec).set_index("trial_id")
    assert planned.compute[added.trial_id] == planned.flops[added.trial_id]  # charged in full
    assert (planned.compute < planned.flops).sum() == 3  # the others still share the prefix
    console = _console(StringIO())
    late = api.run_study(study, console=console, n_boot=0)
    assert late.ran == [added.trial_id] and late.failed == []
    assert f"warning: {added.trial_id} trains from step 0" in console.file.getvalue()
    row = api.status(study).set_index("trial_id").loc[added.trial_id]
    assert row.compute == pytest.approx(row.flops)  # stored as trained: in full


@pytest.mark.slow
def test_branches_of_a_trunk_that_fails_are_not_started(ray_session, tiny_study):
    from orchestrator import api

    study = _one_run_study(tiny_study, lr="1000.0")  # the trunk diverges in its first steps
    result = api.run_study(study, console=_console(), n_boot=0)
    assert result.ran == [] and len(result.failed) == 4
    rows = api.status(study).set_index("trial_id")
    trunk = rows.index[rows.parent.isna()][0]
    for trial_id, row in rows[rows.parent.notna()].iterrows():
        assert row.status == "failed" and row.attempts == 0, trial_id
        assert row.error.startswith(f"not started: its trunk {trunk} failed before step")


def test_a_trunk_stopped_after_a_branch_point_resumes_from_it(tmp_path):
    _, middle, trunk = _grid(tmp_path)
    point = cooldown_start(middle)
    assert point % trunk.eval_every  # no last.pt there: only the branch point's state

    def stop_at_the_point(event):
        if event.kind == "checkpoint" and event.step == point:
            raise _Stop

    with pytest.raises(_Stop):
        train(trunk, stop_at_the_point)
    again = []
    train(trunk, again.append)
    assert again[0].resumed_step == point and again[0].inherited_tokens == 0


def test_flop_budgets_branch_too_each_size_off_its_own_largest(tmp_path):
    text = ONE_RUN.replace("sizes: [25K]", "sizes: [25K, 50K]").replace(
        "{tokens: [8K, 16K, 32K]", "{flops: [3e10, 1e11, 3e11]"
    )
    grid = expand(parse_study(text.replace("STORAGE", str(tmp_path))), "", str(tmp_path), 259)
    for size in ("25K", "50K"):
        *branches, trunk = [t for t in grid if t.size == size]
        assert trunk.budget_flops == 3e11 and {b.placement.parent for b in branches} == {
            trunk.trial_id
        }
        assert trunk.placement.branch_points == tuple(cooldown_start(b) for b in branches)
