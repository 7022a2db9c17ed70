"""`study run`: prepare the data, take the store's lock, register the grid, queue what is not
finished on Ray, record every event the trainers report, retry, beat, and stop cleanly on
Ctrl-C; then fit and report."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from analysis.cards import file_name
from orchestrator import evaluating, fitting, predicting
from orchestrator.grid import cells, expand
from orchestrator.progress import last_line
from orchestrator.sizes import flops_text, format_count
from orchestrator.spec import StudyError, StudySpec, load_study
from orchestrator.store import (
    HEARTBEAT_S,
    RunStore,
    check_url,
    database_errors,
    default_url,
    run_lock,
)
from trainers.architectures import account
from trainers.data import TokenData, cache_root, load_token_data
from trainers.events import End, Event
from trainers.trial import TrialSpec


def report_path(study_name: str) -> Path:
    """The default report of a study: `reports/<name>.html` under the current directory."""
    return Path("reports") / f"{file_name(study_name)}.html"


def prepare_data(spec: StudySpec) -> TokenData:
    """The study's corpus split and tokenized, its token files written to the cache under
    `storage` (or read from it). Raises CorpusError, naming the file or field, if the corpus
    cannot be read or is too small."""
    data = load_token_data(
        spec.data.corpus_string(),
        spec.data.tokenizer_string(),
        spec.data.val_fraction,
        spec.data.heldout_fraction,
        spec.data.split_seed,
        cache_root(storage_of(spec)),
    )
    data.check_fits(spec.data.seq_len + 1)  # the longest window of any objective
    return data


def storage_of(spec: StudySpec) -> str:
    """The study's checkpoint folder as an absolute path ("" for none): a relative one means
    relative to where the command runs, not to wherever a Ray worker's directory is."""
    return str(Path(spec.storage).resolve()) if spec.storage else ""


def trials(spec: StudySpec, data: TokenData) -> list[TrialSpec]:
    """The study's trials as `study run` trains them, on its prepared data. Raises StudyError,
    naming the file, line and field, for a FLOP budget no size of the study can spend."""
    check_budgets(spec, data)
    return expand(spec, data.key, storage_of(spec), data.vocab_size, len(data.train))


def left_out(spec: StudySpec, data: TokenData) -> list[str]:
    """Why each cell of the grid that is not trained is left out (FLOP budgets), one line each."""
    return [c.left_out for c in cells(spec, data.vocab_size, len(data.train)) if c.left_out]


def check_budgets(spec: StudySpec, data: TokenData) -> None:
    """Every FLOP budget of the study has at least one cell to train."""
    grid = cells(spec, data.vocab_size, len(data.train))
    for i, flops in enumerate(spec.budget.flops or []):
        reasons = [c.left_out for c in grid if c.budget_flops == flops]
        if all(reasons):
            more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
            raise StudyError(
                f"invalid study\n{spec.where('budget', 'flops', i)}: no size of the study can "
                f"spend {flops_text(flops)} FLOPs: {reasons[0]}{more}"
            )


def check_predictions(spec: StudySpec, grid: list[TrialSpec], vocab_size: int, extra=()) -> None:
    """Every prediction budget (the study file's, and `extra` from `study predict --flops`)
    lies beyond the training compute of every cell of the grid: a prediction extrapolates, and
    its model must not be one the laws are fitted on."""
    largest = max((planned_accounting(t, vocab_size)["flops_per_token"] * t.budget.tokens
                   for t in grid), default=0)  # fmt: skip
    asked = [
        (spec.where("predict", "flops", i), c)
        for i, c in enumerate(spec.predict.flops if spec.predict else [])
    ]
    asked += [(f"--flops {c:g}", c) for c in extra]  # fmt: skip
    for where, flops in asked:
        if flops <= largest:
            raise StudyError(
                f"invalid study\n{where}: {flops_text(flops)} FLOPs is not beyond the grid "
                f"(its costliest cell trains on {flops_text(largest)}): a prediction extrapolates"
            )


def planned_accounting(trial: TrialSpec, vocab_size: int) -> dict:
    """N, total parameters and FLOPs per token of a trial, from its shape (no torch)."""
    model = trial.model
    acct = account(model.architecture, model.n_layer, model.n_embd, vocab_size, trial.data.seq_len)
    return {
        "n_params": acct.n_params,
        "total_params": acct.total_params,
        "flops_per_token": acct.flops_per_token,
        "scored_fraction": acct.scored_fraction,
    }


def describe_data(data: dict) -> str:
    """The splits of a study's data in one line: documents and tokens of each."""
    splits = ", ".join(
        f"{split} {data['documents'][split]:,} documents / "
        f"{format_count(data['tokens'][split])} tokens"
        for split in ("train", "validation", "heldout")
    )
    vocab = f"{data['tokenizer']} ({data['vocab_size']:,} tokens)"
    return f"data: {data['corpus']}, tokenizer {vocab}; {splits}"


@dataclass
class RunResult:
    """What `run_study` did."""

    study: str
    store_url: str
    report: Path | None
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    fits: dict = field(default_factory=dict)
    verdicts: dict = field(default_factory=dict)  # architecture -> does zero-shot grow with N
    outdated: list[str] = field(default_factory=list)  # finished, not under current eval settings
    scored: list[str] = field(default_factory=list)  # finished trials scored again
    unscored: list[str] = field(default_factory=list)  # those whose weights could not be scored
    tasks: dict = field(default_factory=dict)  # the two-step accuracy fits (analysis.tasklaw)


def register(store: RunStore, spec: StudySpec, grid: list[TrialSpec], data: TokenData) -> None:
    """Record the study and its grid in the store (new trials pending, known ones kept)."""
    planned = {t.trial_id: planned_accounting(t, data.vocab_size) for t in grid}
    store.register(spec.name, grid, spec=spec.model_dump(mode="json"), spec_hash=spec.hash(),
                   planned=planned, data=data.summary())  # fmt: skip


def store_ngram_baseline(store: RunStore, grid: list[TrialSpec], data: TokenData) -> None:
    """Score the study's zero-shot items with a trigram model of the training split and store
    the results once per study (architecture `ngram`), replacing earlier ones."""
    from trainers.ngram import baseline_results

    settings = grid[0].eval  # one per study: the trials differ only in cadence
    rows = baseline_results(data, settings.tasks, settings.items, settings.seed)
    store.save_baseline(rows, grid[0].eval_key, len(data.train))


def store_references(store: RunStore, spec: StudySpec, grid: list[TrialSpec], data, console):
    """Score each reference model of `eval.references` on the study's zero-shot items, once
    per study and evaluation settings, and store its results (architecture `ref:<name>`). A
    reference that cannot be loaded is said in one line, and the run goes on."""
    if not grid[0].eval.tasks:
        return
    from trainers.references import label, score_reference

    settings, key = grid[0].eval, grid[0].eval_key
    text = int(data.text_bytes.get("heldout", len(data.heldout)))  # the items' source text
    done = store.stored_references(key, text, {label(s) for s in spec.eval.references})
    for source in spec.eval.references:
        name = label(source)
        if name in done:
            continue
        console.print(f"scoring the reference {source} on the zero-shot items", highlight=False)
        try:
            rows = score_reference(source, list(data.heldout_documents), settings.tasks,
                                   settings.items, settings.seed)  # fmt: skip
        except Exception as e:  # a reference is not worth the run: any failure is one line
            why = str(e).splitlines()[0] if str(e) else ""
            console.print(f"[yellow]reference {source} left out[/]: {type(e).__name__}: {why}",
                          highlight=False)  # fmt: skip
            continue
        store.save_reference(name, rows, key, text)
        accuracy = ", ".join(f"{r['task']} {r['value']:.1%}" for r in rows if r["metric"] == "acc")
        console.print(f"{name}: zero-shot accuracy {accuracy}", highlight=False)


def run_study(
    path: str | Path,
    store: str | None = None,
    report: str | Path | None = None,
    address: str | None = None,
    console: Console | None = None,
    n_boot: int = 1000,
    wait: bool = False,
    predict: list[float] = (),
    train_predictions: bool = True,
    scoring: tuple[str, str | None] | None = None,
) -> RunResult:
    """Run every trial of a study the store does not show finished; predict at the budgets of
    its `predict:` (and `predict`, more FLOP budgets) and train the trials that verify the
    predictions (unless not `train_predictions`); then fit and report. Finished trials whose
    results under the current evaluation settings are missing are scored again from their
    weights, never retrained. With `scoring` (checkpoints "final" or "all", a trial-id glob or
    None), the evaluation stage alone (`study eval`): nothing trains, nothing is predicted.

    Raises StudyError for an invalid study file, StoreError for a store URL that cannot be
    used and CorpusError for a corpus that cannot be, before anything is written; StoreError
    when another run holds the store (unless `wait`: then it waits for it) or the store cannot
    be written.
    """
    from orchestrator import schedule  # heavy: ray

    console = console or Console(soft_wrap=True)
    spec = load_study(path)
    url = store or default_url(spec.name)
    check_url(url)  # a URL that is none, or a driver missing: said before data is prepared
    data = prepare_data(spec)  # before the store is touched: a bad corpus changes nothing
    grid = trials(spec, data)
    check_predictions(spec, grid, data.vocab_size, predict)
    run = _Run(schedule, spec, data, grid, console, address, n_boot, predict, train_predictions,
               scoring)  # fmt: skip
    with database_errors(url), run_lock(url, wait) as lock:  # read-only, full: named
        run.lock = lock
        return run.locked(url, report)


@dataclass
class _Run:
    """One `study run` once its inputs are checked."""

    schedule: object
    spec: StudySpec
    data: TokenData
    grid: list[TrialSpec]
    console: Console
    address: str | None
    n_boot: int
    predict: list[float]
    train_predictions: bool
    scoring: tuple[str, str | None] | None  # `study eval`: checkpoints and trial pattern
    cluster: object = None  # the Ray cluster, once joined
    lock: object = None  # the run lock of a store on a database server (held at every commit)

    def locked(self, url: str, report) -> RunResult:
        """Register, run what is not finished, predict and verify, fit, report."""
        spec, data, console = self.spec, self.data, self.console
        result = RunResult(study=spec.name, store_url=url, report=None)
        result.report = Path(report or report_path(spec.name))
        storage = storage_of(spec)
        with RunStore.open(url) as store:
            if self.lock is not None:
                store.hold_lock(self.lock, lambda line: _warn(self.console, line))
            trains = self.train_predictions and self.scoring is None
            verifying = predicting.stored_trials(store, spec, data.key, storage, trains)
            register(store, spec, self.grid + verifying, data)
            store_ngram_baseline(store, self.grid, data)
            store_references(store, spec, self.grid, data, console)
            store.interrupt_left_running()
            queued = self.grid + (verifying if trains else [])
            to_run = self._unfinished(store, queued, result)
            checkpoints, pattern = self.scoring or ("final", None)
            jobs, gone = evaluating.to_score(store, self.grid + verifying, checkpoints,
                                             pattern, console)  # fmt: skip
            if self.scoring is not None:
                result.unscored += gone  # `study eval` was asked to score them
            if self.scoring is None:
                console.print(
                    f"study [bold]{spec.name}[/]: {len(self.grid) + len(verifying)} trials, "
                    f"{len(result.skipped)} already finished, {len(to_run)} to run; store {url}",
                    highlight=False,
                )
            else:
                console.print(
                    f"study [bold]{spec.name}[/]: {len(jobs)} finished trials to score "
                    f"({checkpoints} checkpoints) under the current evaluation settings; "
                    f"nothing trains; store {url}",
                    highlight=False,
                )
            console.print(describe_data(store.data), highlight=False)
            for warning in data.warnings():
                console.print("[yellow]warning[/]: " + escape(warning), highlight=False)
            try:
                if to_run and self.scoring is None:
                    self._train(to_run, store, result)
                if jobs:
                    self._score(jobs, store, result)
                if self.scoring is None:
                    self._predict(store, storage, verifying, result)
            finally:
                if self.cluster is not None:
                    self.schedule.disconnect(self.cluster)
            for p in store.verify_predictions():
                console.print(f"verified {p.architecture} at {flops_text(p.flops)} FLOPs "
                              f"({p.trial_id}): " + _verdict(p), highlight=False)  # fmt: skip

            console.print(fitting.fitting_line(store, self.n_boot), highlight=False)
            started = time.monotonic()
            view = fitting.fit_and_report(store, result.report, self.n_boot)
            console.print(f"fitted in {time.monotonic() - started:.1f} s", highlight=False)
            result.fits, result.outdated, result.tasks = view.fits, view.outdated, view.tasks
            result.verdicts = {arch: r["verdict"] for arch, r in view.trends.items()}
        return result

    def _predict(self, store, storage, verifying, result) -> None:
        """Predict at the study's budgets once its grid is trained; train what verifies them."""
        spec, data = self.spec, self.data
        flops = predicting.budgets(spec, self.predict)
        made = predicting.predict_missing(store, spec, data, storage, flops,
                                          console=self.console, n_boot=self.n_boot)  # fmt: skip
        if made and self.train_predictions:
            register(store, spec, self.grid + verifying + made, data)
            self._train(self._unfinished(store, made, result), store, result)

    def _cluster(self):
        """The Ray cluster, joined (once per run) when first needed."""
        if self.cluster is None:
            self.cluster = _connect(self.schedule, self.spec, self.address, self.console,
                                    self.scoring is not None)  # fmt: skip
        return self.cluster

    def _train(self, to_run, store, result) -> None:
        if not to_run:
            return
        live = LiveReport(store, result.report, self.console)
        try:
            _run_on_ray(self.schedule, self._cluster(), self.spec, to_run, store,
                        console=self.console, result=result, live=live)  # fmt: skip
        except BaseException as e:  # Ctrl-C, a lost store: no page that says it is still live
            live.stop("interrupted" if isinstance(e, KeyboardInterrupt) else type(e).__name__)
            raise

    def _score(self, jobs, store, result) -> None:
        evaluating.score_on_ray(self.schedule, self._cluster(), jobs, store, self.console,
                                result)  # fmt: skip

    @staticmethod
    def _unfinished(store, specs, result) -> list[TrialSpec]:
        """The trials of `specs` the store does not show finished; the finished ones are noted
        skipped."""
        to_run, finished = store.unfinished(specs)
        result.skipped += finished
        return to_run


def _warn(console: Console, line: str) -> None:
    """A line about the store the run goes on after (a restart, its lock taken again)."""
    console.print(f"[yellow]{escape(line)}[/]", highlight=False)


def _verdict(p) -> str:
    from analysis.predict import verdict

    return verdict(p.predicted_loss, p.ci_low, p.ci_high, p.measured_loss)


def _connect(schedule, spec: StudySpec, address: str | None, console: Console, scoring: bool):
    """Join (or start) the Ray cluster the trials run on, as the Ray job `study run <name>`
    (`study eval <name>` when `scoring`), and say where its dashboard is."""
    command = "study eval" if scoring else "study run"
    cluster = schedule.connect(address, job=f"{command} {spec.name}", study=spec.name)
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
    store.queue(ids)  # pending once the cluster is there to run them
    use_gpus = cluster.gpus > 0
    progress = Progress(to_run, console)
    events = store.events(ids, lambda line: _warn(console, line), stamped=True)

    def on_event(trial: TrialSpec, event: Event) -> None:
        events.record(trial.trial_id, event)
        progress.update(trial.trial_id, event)
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
    flops = {t.trial_id: t.flops for t in store.current_trials()}
    queue = sorted(to_run, key=lambda t: -flops[t.trial_id])
    try:
        with progress:
            schedule.run_trials(
                queue, on_event, on_error, use_gpus, on_tick,
                max_retries=spec.resources.max_retries, on_retry=on_retry,
            )  # fmt: skip
        events.flush()
    except KeyboardInterrupt as e:
        # Ctrl-C (or SIGTERM) may land inside a write: drop what is not committed (a resumed
        # trial reports its history again), then record who was interrupted.
        why = ("stopped by SIGTERM" if schedule.terminated(e)
               else "interrupted by the user (Ctrl-C)")  # fmt: skip
        events.interrupt(why)
        raise
