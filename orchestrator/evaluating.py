"""The evaluation stage: finished trials scored again from the weights they left, under the
study's current evaluation settings, as Ray tasks like trials; nothing is retrained.

`study run` scores by itself the finished trials whose final results under the current settings
are missing (more items, another task, a new seed); `study eval` does it on demand, for some
trials (`--trials PATTERN`) or for every kept checkpoint (`--checkpoints all`). Results are
keyed by the settings (`evals.eval_key`) and the step, so earlier ones stay."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from rich.console import Console

from orchestrator.progress import last_line
from orchestrator.store import RunStore, StoreError, TrialRecord, TrialStatus
from trainers.events import Event, Scored, ZeroShotProgress
from trainers.integrity import verify_final
from trainers.trial import TrialSpec

CHECKPOINTS = ("final", "all")


@dataclass(frozen=True)
class Scoring:
    """What is scored: the final weights or (`checkpoints` "all") every kept checkpoint, of
    the trials whose id matches the glob `trials` (every trial without one). `--checkpoints` is
    checked here, once: a StoreError names what it must be."""

    checkpoints: str = "final"
    trials: str | None = None

    def __post_init__(self):
        if self.checkpoints not in CHECKPOINTS:
            raise StoreError(f"--checkpoints must be {' or '.join(CHECKPOINTS)}, "
                             f"not {self.checkpoints!r}")  # fmt: skip


def weights_left(trial: TrialRecord) -> set[int]:
    """The steps a finished trial left weights of: its last (final.pt) and the kept evaluation
    points (step-N.pt beside it), none where final.pt is not as the trainer wrote it (size and
    checksum). `storage` is a shared path on a cluster, so the driver sees them as the workers
    do."""
    final = Path(trial.checkpoint) if trial.checkpoint else None
    if final is None or verify_final(final, trial.checkpoint_bytes, trial.checkpoint_sha256):
        return set()  # gone, or not as the trainer wrote it
    kept = (p.stem.removeprefix("step-") for p in final.parent.glob("step-*.pt"))
    return {trial.spec.steps} | {int(k) for k in kept if k.isdigit()}


def to_score(
    store: RunStore,
    grid: list[TrialSpec],
    checkpoints: str = "final",
    pattern: str | None = None,
    console: Console | None = None,
) -> tuple[list[tuple[TrialSpec, TrialRecord, dict]], list[str]]:
    """The finished trials of the grid (those whose id matches `pattern`, a glob) that have
    something to score under the current evaluation settings, each with its job: its final
    weights when their results are missing, or (`checkpoints` "all") each kept checkpoint
    without results (for a study without zero-shot tasks, only the final weights: their
    validation loss is all there is to measure). Trials whose final weights are gone are left
    out, said on `console`, and returned by id beside the jobs."""
    by_hash = {t.hash: t for t in grid}
    jobs, gone = [], []
    for row in store.current_trials():
        spec = by_hash.get(row.hash)
        if spec is None or row.status != TrialStatus.finished:
            continue
        if pattern is not None and not fnmatchcase(row.trial_id, pattern):
            continue
        done = store.scored_steps(row, spec.eval_key)
        every = checkpoints == "all" and spec.eval.tasks
        if not every and spec.steps in done:
            continue  # its final results are there: no need to look at (or read) its weights
        left = weights_left(row)  # one look at the folder, and the final weights verified
        wanted = left | {spec.steps} if every else {spec.steps}
        if wanted <= done:
            continue
        if spec.steps not in left:
            gone.append(row.trial_id)
            continue
        jobs.append((spec, row, {"checkpoints": checkpoints, "skip": sorted(done)}))
    if gone and console is not None:
        shown = ", ".join(gone[:3]) + (f" and {len(gone) - 3} more" if len(gone) > 3 else "")
        console.print(
            f"[yellow]warning[/]: {len(gone)} finished trial(s) ({shown}) have no results under "
            "the current evaluation settings and no final weights to score (gone with their "
            "storage, or broken: study status says which): they stay as they were",
            highlight=False,
        )
    return jobs, gone


def score_on_ray(
    schedule, cluster, jobs: list[tuple[TrialSpec, TrialRecord, dict]], store: RunStore,
    console: Console, result,
) -> None:  # fmt: skip
    """Score trials on the cluster and store what each reports. A trial that cannot be scored
    (its weights are gone) is said and stays as it was: finished, its earlier results kept."""
    from orchestrator.progress import Progress

    progress = Progress([spec for spec, _, _ in jobs], console)
    recorder = store.events([spec.trial_id for spec, _, _ in jobs])

    def on_event(spec: TrialSpec, event: Event) -> None:
        if isinstance(event, ZeroShotProgress):  # the items scored so far: the terminal's alone
            progress.update(spec.trial_id, event)
        if not isinstance(event, Scored):
            return
        recorder.record(spec.trial_id, event)
        progress.update(spec.trial_id, event)
        if spec.trial_id not in result.scored:
            result.scored.append(spec.trial_id)

    def on_error(spec: TrialSpec, error: str) -> None:
        recorder.flush()
        result.unscored.append(spec.trial_id)
        console.print(f"[red]{spec.trial_id} not scored[/]: {last_line(error)}", highlight=False)

    try:
        with progress:
            schedule.run_trials(
                [spec for spec, _, _ in jobs], on_event, on_error, use_gpus=cluster.gpus > 0,
                on_tick=progress.tick, scoring={spec.trial_id: job for spec, _, job in jobs},
            )  # fmt: skip
        recorder.flush()
    except KeyboardInterrupt:
        recorder.discard()  # what was scored and committed stays; the trials stay finished
        raise
