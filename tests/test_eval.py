"""The evaluation stage: finished trials scored again from their weights, nothing retrained."""

from __future__ import annotations

import io
import sqlite3
from dataclasses import replace

import pytest
from rich.console import Console

from orchestrator.grid import expand
from orchestrator.spec import parse_study
from trainers.scoring import score_trial
from trainers.train import train

TINY = """\
name: t
data: {seq_len: 32}
architectures: [decoder]
sizes: [25K]
budget: {tokens: 24K}
train: {batch_size: 8, lr: 3.0e-3, keep_checkpoints: true}
eval: {every_tokens: 8K, tokens: 2K, zero_shot: {tasks: [last_word], items: 10}}
"""


def test_kept_weights_score_as_the_trainer_measured_them(tmp_path):
    """train.keep_checkpoints keeps step-N.pt at each evaluation point; scoring them gives the
    validation loss and zero-shot results the trainer reported there, and more items re-score
    without training."""
    spec = expand(parse_study(TINY), "", str(tmp_path))[0]
    spec = replace(spec, eval=replace(spec.eval, at_every_eval=True))
    trained = []
    train(spec, trained.append)
    folder = tmp_path / "t" / spec.trial_id
    every = round(spec.eval.every_tokens / spec.tokens_per_step)
    assert sorted(p.name for p in folder.glob("*.pt")) == sorted(
        ["final.pt"] + [f"step-{s}.pt" for s in range(every, spec.steps, every)]
    )
    reported = []
    steps = score_trial(spec, "all", reported.append)
    scored = [e for e in reported if e.kind != "scoring"]  # beside the items' progress, each
    progress = [e for e in reported if e.kind == "scoring"]  # before its step's results
    assert [e.step for e in progress if e.done == e.total] == steps
    measured = {e.step: e.val_loss for e in trained if e.kind == "eval"}
    zero_shot = {e.step: e.results for e in trained if e.kind == "zeroshot"}
    assert steps == sorted(measured) and [e.kind for e in scored] == ["scored"] * len(steps)
    for event in scored:
        assert event.val_loss == measured[event.step]  # the same weights, the same windows
        assert event.results == zero_shot[event.step]
        assert event.final == (event.step == spec.steps) and event.eval_key == spec.eval_key
    metrics = {(r["task"], r["metric"]) for r in scored[-1].results}
    assert ("last_word", "bpb") in metrics

    more = replace(spec, eval=replace(spec.eval, items=25))
    again = []
    assert score_trial(more, "final", again.append, skip=frozenset()) == [spec.steps]
    (event,) = [e for e in again if e.kind == "scored"]
    assert event.eval_key == more.eval_key != spec.eval_key
    acc = next(r for r in event.results if r["metric"] == "acc")
    assert acc["n_items"] > 10
    assert score_trial(spec, "all", again.append, skip=frozenset(steps)) == []  # all done

    # the same id trained anew (another learning rate, nothing kept): no stale weights left
    other = replace(spec, optim=replace(spec.optim, lr=1e-3),
                    placement=replace(spec.placement, keep_checkpoints=False))  # fmt: skip
    train(other, lambda event: None)
    assert [p.name for p in folder.glob("*.pt")] == ["final.pt"]


def test_a_trial_without_weights_cannot_be_scored(tmp_path):
    spec = expand(parse_study(TINY), "", str(tmp_path))[0]
    with pytest.raises(FileNotFoundError, match="left no final weights"):
        score_trial(spec, "final", print)


STUDY = """\
name: ev
data: {corpus: "builtin:kjv", tokenizer: bytes, seq_len: 32}
architectures: [decoder, encoder]
sizes: [25K, 50K]
budget: {tokens: 16K}
train: {batch_size: 8, lr: 3.0e-3, keep_checkpoints: true}
eval: {every_tokens: 8K, tokens: 2K, zero_shot: {tasks: [last_word, minimal_pairs], items: 12}}
"""


@pytest.mark.slow
def test_more_items_rescore_the_finished_study_and_train_nothing(
    ray_session, tmp_path, monkeypatch, study_here
):
    from orchestrator import api

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "ev.yaml"
    path.write_text(STUDY + f"storage: {tmp_path / 'artifacts'}\n")
    quiet = Console(file=io.StringIO())
    first = api.run_study(path, console=quiet, n_boot=10)
    assert len(first.ran) == 4 and not first.scored
    before = api.export_evals(path)
    (old_key,) = set(before[before.trial_id.notna()].eval_key)

    path.write_text(path.read_text().replace("items: 12", "items: 30"))
    second = api.run_study(path, console=quiet, n_boot=10)
    assert second.ran == [] and sorted(second.scored) == sorted(first.ran)
    assert second.outdated == []  # measured anew under the current settings
    after = api.export_evals(path)
    trials = after[after.trial_id.notna()]
    (new_key,) = set(trials.eval_key) - {old_key}
    final = trials.groupby("trial_id").tokens.transform("max") == trials.tokens
    for trial_id in first.ran:  # the old results kept, the new ones beside them
        mine = trials[(trials.trial_id == trial_id) & final]
        assert set(mine.eval_key) == {old_key, new_key}
        assert set(mine[mine.eval_key == new_key].metric) >= {"acc", "acc_norm", "margin", "bpb"}
    assert len(trials[trials.eval_key == old_key]) == len(before[before.trial_id.notna()])
    with sqlite3.connect("runs/ev.db") as db:
        assert set(db.execute("SELECT attempts FROM trials").fetchall()) == {(1,)}
        keys = set(db.execute("SELECT eval_key FROM trials").fetchall())
    assert keys == {(new_key,)}

    # every kept checkpoint, for the decoders: the store says which step each result is from
    done = study_here("eval", "ev.yaml", "--checkpoints", "all", "--trials", "decoder-*",
                     "--n-boot", "10", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 finished trials to score (all checkpoints)" in done.stdout
    evals = api.export_evals(path)
    current = evals[(evals.eval_key == new_key) & (evals.metric == "acc")]
    steps = current.groupby("trial_id").tokens.apply(lambda t: sorted(set(t)))
    # 16K tokens in 63 steps of 256, evaluated every 31: kept at 31 and 62, final at 63
    assert steps["decoder-25K-s0"] == steps["decoder-50K-s0"] == [31 * 256, 62 * 256, 63 * 256]
    assert steps["encoder-25K-s0"] == [63 * 256]  # not asked for
    again = study_here("eval", "ev.yaml", "--checkpoints", "all", "--n-boot", "10", cwd=tmp_path)
    assert again.returncode == 0 and "2 finished trials to score" in again.stdout  # encoders
    bad = study_here("eval", "ev.yaml", "--checkpoints", "some", cwd=tmp_path)
    assert bad.returncode == 2 and "--checkpoints must be final or all" in bad.stderr

    # weights gone: said, exit 1, the trial and its results as they were
    (tmp_path / "artifacts" / "ev" / "encoder-50K-s0" / "final.pt").unlink()
    path.write_text(path.read_text().replace("items: 30", "items: 20"))
    gone = study_here("eval", "ev.yaml", "--n-boot", "10", cwd=tmp_path)
    assert gone.returncode == 1 and "could not be scored: encoder-50K-s0" in gone.stderr
    assert "no final weights to score" in gone.stdout
    assert api.status(path).set_index("trial_id").loc["encoder-50K-s0", "status"] == "finished"
