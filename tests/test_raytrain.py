"""A trial on several workers through Ray Train: launched by the scheduler, rank 0's events
streamed back, the same loss as one process, and a lost worker retried from its checkpoint.
Ray Train takes about 15 s to reach a trial's training loop, so each test launches once."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.grid import expand
from orchestrator.spec import parse_study
from trainers.events import Checkpoint, End, Start, Train

# 50 steps of 8 sequences of 32 tokens (the test: 2 workers against 1 after 50 steps)
TINY = """\
name: t
data: {seq_len: 32}
architectures: [decoder]
sizes: [25K]
budget: {tokens: 12800}
train: {batch_size: 8, lr: 3.0e-3}
eval: {every_tokens: 6400, tokens: 2K, zero_shot: {tasks: []}}
storage: ""
"""


def _trial(storage: str = "", workers: int = 1, strategy: str = "ddp"):
    spec = expand(parse_study(TINY), "", "")[0]
    return replace(spec, placement=replace(spec.placement, storage=storage, workers=workers,
                                           strategy=strategy))  # fmt: skip


def _run(spec, on_event=None, **kwargs) -> tuple[list, list]:
    """The trial through schedule.run_trials, as `study run` schedules it: its events, errors."""
    from orchestrator import schedule

    events, errors = [], []

    def seen(spec_, event):
        events.append(event)
        if on_event:
            on_event(event)

    schedule.run_trials([spec], seen, lambda s, e: errors.append(e), use_gpus=False, **kwargs)
    return events, errors


def _cpus_free_again(cpus: float, within_s: float = 20) -> bool:
    import ray

    deadline = time.monotonic() + within_s
    while ray.available_resources().get("CPU", 0) < cpus and time.monotonic() < deadline:
        time.sleep(0.2)  # the placement group goes back once the controller has ended
    return ray.available_resources().get("CPU", 0) == cpus


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_workers_train_one_trial_with_one_process_loss(ray_session, tmp_path, strategy):
    from trainers.train import train

    alone = []
    train(_trial(), alone.append)
    (end,) = [e for e in alone if isinstance(e, End)]
    spread = _trial(str(tmp_path / "art"), workers=2, strategy=strategy)
    assert spread.hash == _trial().hash  # placement is not the trial's identity

    events, errors = _run(spread)
    assert errors == []
    starts = [e for e in events if isinstance(e, Start)]
    ends = [e for e in events if isinstance(e, End)]
    assert len(starts) == 1 and len(ends) == 1  # rank 0 reports; rank 1 sends nothing
    assert (starts[0].workers, starts[0].strategy) == (2, strategy)
    assert ends[0].step == spread.steps == 50
    assert (ends[0].tokens, ends[0].tokens_scored) == (end.tokens, end.tokens_scored)
    # the trainer saw a process group of 2 (Start.workers is its own count), so each rank
    # trained its half of every batch, the gradients averaged (or sharded): only the order of float
    # reductions differs from one process (tests/test_parallel.py checks the halves)
    last = lambda evs: [e.loss for e in evs if isinstance(e, Train)][-1]
    assert last(events) == pytest.approx(last(alone), abs=1e-4)
    assert ends[0].val_loss == pytest.approx(end.val_loss, abs=1e-4)
    assert _cpus_free_again(2)  # the workers, the launcher, its queue and controller are gone
    assert list((tmp_path / "art" / "ray-train").iterdir()) == []  # Ray Train's run folder too


@pytest.mark.slow
def test_a_trial_on_several_workers_without_storage_leaves_no_ray_train_folder(ray_session):
    """Without `storage`, Ray Train's run folder (its default: one per launch under
    ~/ray_results, never removed) is in the system's temporary files, and removed."""
    from orchestrator.raytrain import runs_folder

    spread = _trial(workers=2)
    home = Path.home() / "ray_results"
    before = set(home.iterdir()) if home.exists() else set()
    events, errors = _run(spread)
    assert errors == [] and isinstance(events[-1], End)
    assert (set(home.iterdir()) if home.exists() else set()) == before
    assert not list(Path(runs_folder("")).glob(f"{spread.study}-{spread.trial_id}-*"))


@pytest.mark.slow
def test_a_killed_worker_is_lost_and_the_trial_runs_again(ray_session, tmp_path):
    from sqlalchemy.orm import Session

    from orchestrator.store import RunStore, open_store
    from tests.test_store import _register

    spread = _trial(str(tmp_path / "art"), workers=2)
    url = f"sqlite:///{tmp_path / 's.db'}"
    with Session(open_store(url)) as session:  # the trial registered as `study run` does
        _register(session, parse_study(TINY), [spread])
        session.commit()
    killed, retries = [], []

    saved = []

    def kill_rank_0(event):  # once its first checkpoint is written, so the retry resumes there
        if isinstance(event, Start) and not killed:
            killed.append(event.pid)
        elif isinstance(event, Checkpoint) and not saved:
            saved.append(event.step)
        elif isinstance(event, Train) and saved and len(killed) == 1:
            os.kill(killed[0], signal.SIGKILL)  # rank 0's process, as a dead node leaves it
            killed.append(0)

    def retried(spec, error, lost):
        retries.append((error, lost))
        recorded.requeue(spec.trial_id, error)

    with RunStore.open_study(url) as store:  # the driver's write path, as run._run_on_ray's
        recorded = store.events([spread.trial_id])
        recorded.queue()

        def record(event):
            recorded.record(spread.trial_id, event)
            kill_rank_0(event)

        events, errors = _run(spread, record, on_retry=retried)
        recorded.flush()
    assert errors == []  # max_retries 0: only a lost trial runs again
    assert len(retries) == 1 and retries[0][1] and "WorkersLost" in retries[0][0]
    assert [e.kind for e in events if isinstance(e, Start | End)] == ["start", "start", "end"]
    again = [e for e in events if isinstance(e, Start)][1]
    assert saved == [25] and again.resumed_step == 25 and again.workers == 2  # from the checkpoint
    resumed = [e for e in events if isinstance(e, Train) and e.step > 25]
    assert resumed and resumed[-1].step == 50  # the trial went on from there to its end
    assert _cpus_free_again(2)
    assert list((tmp_path / "art" / "ray-train").iterdir()) == []  # both launches' folders
    with sqlite3.connect(tmp_path / "s.db") as db:  # the resumed history is not stored twice
        assert db.execute("SELECT status, attempts FROM trials").fetchall() == [("finished", 2)]
        duplicates = db.execute(
            "SELECT COUNT(*) FROM (SELECT trial_pk, name, step FROM metrics "
            "GROUP BY trial_pk, name, step HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        assert duplicates == 0
