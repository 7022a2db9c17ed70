"""`study run`, `study predict` and `study eval`: the run lock, then the stages of its mode
(orchestrator/stages.py) in order; here the trials are queued on Ray, every event the trainers
report recorded, failed trials retried, heartbeats kept, and Ctrl-C stops the run cleanly."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from orchestrator import capacity, evaluating, fitting, stages
from orchestrator.branches import Gates, from_step_0
from orchestrator.evaluating import Scoring
from orchestrator.outputs import check_run_outputs
from orchestrator.progress import last_line
from orchestrator.spec import StudyError, StudySpec, load_study
from orchestrator.stages import Mode, RunContext, RunResult, report_path
from orchestrator.store import (
    HEARTBEAT_S,
    RunStore,
    database_errors,
    default_url,
    run_lock,
    sqlite_file,
)
from trainers.events import End, Event, Start
from trainers.trial import TrialSpec

__all__ = ["LiveReport", "Mode", "RunResult", "run_study"]


def run_study(
    path: str | Path,
    *,
    store: str | None = None,
    report: str | Path | None = None,
    address: str | None = None,
    console: Console | None = None,
    n_boot: int = 1000,
    wait: bool = False,
    predict: list[float] | None = None,
    mode: Mode = Mode.TRAIN,
    scoring: Scoring | None = None,
) -> RunResult:
    """Run the stages of `mode` on a study: Mode.TRAIN runs every trial the store does not show
    finished, predicts at the budgets of its `predict:` (and `predict`, more FLOP budgets) and
    trains the trials that verify the predictions; Mode.PREDICT leaves those untrained; both
    score again, from their weights, the finished trials whose results under the current
    evaluation settings are missing, never retraining them. Mode.EVAL is the evaluation stage
    alone (`study eval`, what `scoring` says): nothing trains, nothing is predicted. Then fit
    and report.

    Raises StudyError for an invalid study file, StoreError for a store URL that cannot be
    used and CorpusError for a corpus that cannot be, before anything is written; StoreError
    when another run holds the store (unless `wait`: then it waits for it) or the store cannot
    be written.
    """
    from orchestrator import schedule  # heavy: ray

    console = console or Console(soft_wrap=True)
    spec = load_study(path)
    url = store or default_url(spec.name)
    result = RunResult(spec.name, url, Path(report or report_path(spec.name)))
    check_run_outputs(stages.storage_of(spec), sqlite_file(url), result.report)  # before any write
    ctx = RunContext(spec=spec, url=url, mode=mode, console=console, result=result,
                     n_boot=n_boot, predict=list(predict or []),
                     scoring=scoring or Scoring())  # fmt: skip
    stages.prepare(ctx)  # before the store is touched: a bad corpus changes nothing
    ctx.runner = _Ray(schedule, spec, address, console, mode.command)
    try:
        if mode is not Mode.EVAL:  # scoring is one process: any finished trial's weights fit
            ctx.runner.check_fits(ctx.grid)  # a trial that can never be placed: nothing stored
        with database_errors(url), run_lock(url, wait) as lock, RunStore.open(url) as run_store:
            if lock is not None:  # a store on a database server: its lock is held at each commit
                run_store.hold_lock(lock, lambda line: _warn(console, line))
            ctx.store = run_store
            for stage in stages.STAGES[mode]:
                stage(ctx)
    finally:
        ctx.runner.close()
    return result


@dataclass
class _Ray:
    """The Ray cluster a run's trials train and are scored on, joined when first needed."""

    schedule: object
    spec: StudySpec
    address: str | None
    console: Console
    command: str  # the Ray job is `<command> <study>` (Mode.command)
    cluster: object = None
    cpu_peaks: dict[int, float] = field(default_factory=dict)  # thread count -> FLOP/s, per run

    def train(self, ctx: RunContext, to_run: list[TrialSpec]) -> None:
        """Train `to_run`, the report rewritten while they do."""
        live = LiveReport(ctx.store, ctx.result.report, self.console)
        cluster = self._cluster()  # the CPU's peak measured before any trial trains, once
        to_run = self.schedule.with_cpu_peaks(to_run, self.cpu_peaks, use_gpus=cluster.gpus > 0)
        try:
            _run_on_ray(self.schedule, cluster, self.spec, to_run, ctx.store,
                        console=self.console, result=ctx.result, live=live)  # fmt: skip
        except BaseException as e:  # Ctrl-C, a lost store: no page that says it is still live
            live.stop("interrupted" if isinstance(e, KeyboardInterrupt) else type(e).__name__)
            raise

    def check_fits(self, trials: list[TrialSpec]) -> None:
        """Raise StudyError, naming the study file's line, for trials the cluster can never
        place: Ray Train would wait for them forever. Asked only where a trial spans several
        workers or GPUs are required per worker; other studies join the cluster lazily."""
        resources = self.spec.resources
        if lines := self.never_fit(trials):
            field = "workers" if "workers" in resources.model_fields_set else "gpus_per_worker"
            where = self.spec.where("resources", field)
            raise StudyError("invalid study\n" + "\n".join(f"{where}: {line}" for line in lines))

    def never_fit(self, trials: list[TrialSpec]) -> list[str]:
        """One line for each kind of trial the cluster can never place (capacity.never_fits),
        the cluster joined only where a trial spans several workers or requires GPUs."""
        resources = self.spec.resources
        if not resources.gpus_required and all(t.placement.workers == 1 for t in trials):
            return []
        self._cluster()
        return capacity.never_fits(capacity.needs_of(trials), self.schedule.nodes(),
                                   cpu_fallback=not resources.gpus_required)  # fmt: skip

    def score(self, ctx: RunContext, jobs: list) -> None:
        """Score finished trials from their weights (evaluating.score_on_ray)."""
        evaluating.score_on_ray(self.schedule, self._cluster(), jobs, ctx.store, self.console,
                                ctx.result)  # fmt: skip

    def close(self) -> None:
        """Leave the cluster, if it was joined."""
        if self.cluster is not None:
            self.schedule.disconnect(self.cluster)
            self.cluster = None

    def _cluster(self):
        if self.cluster is None:
            self.cluster = _connect(self.schedule, self.spec, self.address, self.console,
                                    self.command)  # fmt: skip
        return self.cluster


def _warn(console: Console, line: str) -> None:
    """A line about the store the run goes on after (a restart, its lock taken again)."""
    console.print(f"[yellow]{escape(line)}[/]", highlight=False)


def _connect(schedule, spec: StudySpec, address: str | None, console: Console, command: str):
    """Join (or start) the Ray cluster the trials run on, as the Ray job `study run <name>`
    (`study eval <name>` for Mode.EVAL), and say where its dashboard is."""
    cluster = schedule.connect(address, job=f"{command} {spec.name}", study=spec.name,
                               start_timeout_s=spec.resources.ray_start_timeout)  # fmt: skip
    if cluster.dashboard_url:
        console.print(
            f"Ray dashboard: {cluster.dashboard_url} (sign in with the token that "
            f"`ray get-auth-token` prints; it is kept in {schedule.AUTH_TOKEN_PATH})",
            highlight=False,
        )
    if cluster.token_secured:
        console.print(f"{schedule.AUTH_TOKEN_PATH} was readable by others: made readable by "
                      "you alone (0600)", highlight=False)  # fmt: skip
    if spec.resources.wants_gpus and cluster.gpus == 0:
        console.print("no GPU in the Ray cluster: trials run on the CPU", highlight=False)
    return cluster


LIVE_REPORT_S = 60.0  # the report is rewritten at most this often while trials train


@dataclass
class LiveReport:
    """The report rewritten while a run trains (at most once per LIVE_REPORT_S): what is
    finished and the curves so far, marked partial; no laws are fitted until the run ends."""

    store: RunStore
    path: Path
    console: Console
    last: float = field(default_factory=time.monotonic)
    every: float = 0.0  # beyond LIVE_REPORT_S when a write is slow: the loop must not wait
    written: bool = False
    failed: bool = False

    def tick(self, flush) -> None:
        """Rewrite the report if it is due, after `flush()` (the events waiting to be stored)."""
        if self.failed or time.monotonic() - self.last < max(self.every, LIVE_REPORT_S):
            return
        flush()
        started = time.monotonic()
        self._write()
        self.last = time.monotonic()
        self.every = 20 * (self.last - started)  # writing takes at most 5% of the time

    def stop(self, why: str) -> None:
        """The run ends early: a page written while it trained says so, and stops reloading."""
        if self.written and not self.failed:
            with contextlib.suppress(Exception):
                self.store.rollback()  # what an interrupted write left half done
                fitting.write_partial_report(self.store, self.path, why)

    def _write(self) -> None:
        try:
            fitting.write_partial_report(self.store, self.path)
            self.written = True
        except Exception as e:  # a report is not worth a run: say so once, and train on
            self.failed = True
            with contextlib.suppress(Exception):  # a failed read must not leave the session
                self.store.rollback()  # unusable for the recorder (its events are flushed)
            self.console.print(f"[yellow]the partial report could not be written[/]: "
                               f"{type(e).__name__}: {e}", highlight=False)  # fmt: skip


def _run_on_ray(
    schedule, cluster, spec, to_run: list[TrialSpec], store: RunStore, *, console: Console,
    result: RunResult, live: LiveReport | None = None,
) -> None:  # fmt: skip
    from orchestrator.progress import Progress

    ids = [trial.trial_id for trial in to_run]
    events = store.events(ids, lambda line: _warn(console, line), stamped=True)
    events.queue()  # pending once the cluster is there to run them
    use_gpus = cluster.gpus > 0
    progress = Progress(to_run, console)

    def on_event(trial: TrialSpec, event: Event) -> None:
        events.record(trial.trial_id, event)
        progress.update(trial.trial_id, event)
        if isinstance(event, Start) and (alone := from_step_0(trial, event)):
            console.print(f"[yellow]warning[/]: {escape(alone)}", highlight=False)
        if isinstance(event, End):
            result.ran.append(trial.trial_id)

    def on_error(trial: TrialSpec, error: str) -> None:
        events.fail(trial.trial_id, error)
        progress.fail(trial.trial_id)
        result.failed.append(trial.trial_id)
        console.print(f"[red]{trial.trial_id} failed[/]: {last_line(error)}", highlight=False)

    def on_retry(trial: TrialSpec, error: str, lost: bool) -> None:
        started, attempts = events.requeue(trial.trial_id, error)  # its error kept till it starts
        progress.requeue(trial.trial_id)
        what = "lost its node or worker" if lost else "failed"
        when = f"on try {attempts}" if started else f"before try {attempts + 1} started"
        console.print(
            f"[yellow]{trial.trial_id} {what} {when}, running again[/]: {last_line(error)}",
            highlight=False,
        )

    last_beat = time.monotonic()

    def on_tick() -> None:
        nonlocal last_beat
        progress.tick()
        if time.monotonic() - last_beat >= HEARTBEAT_S:
            events.beat()
            last_beat = time.monotonic()
        events.tick()
        if live is not None:
            live.tick(events.flush)

    # Costliest first: Ray starts queued tasks in order, and a large trial started last would
    # leave the other CPUs idle while it finishes.
    queue = sorted(to_run, key=lambda t: -events.flops(t.trial_id))
    try:
        with progress:
            schedule.run_trials(
                queue, on_event, on_error, use_gpus=use_gpus, on_tick=on_tick,
                max_retries=spec.resources.max_retries, on_retry=on_retry,
                gates=Gates(queue),  # branches wait for their trunk (one run, many budgets)
            )  # fmt: skip
        events.flush()
    except KeyboardInterrupt as e:
        # Ctrl-C (or SIGTERM) may land inside a write: drop what is not committed (a resumed
        # trial reports its history again), then record who was interrupted.
        why = ("stopped by SIGTERM" if schedule.terminated(e)
               else "interrupted by the user (Ctrl-C)")  # fmt: skip
        events.interrupt(why)
        raise
