"""The Python API; the `study` CLI is a thin shell over these functions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from rich.console import Console
from sqlalchemy import delete
from sqlalchemy.orm import Session

from orchestrator.grid import expand
from orchestrator.sizes import format_count
from orchestrator.spec import StudySpec, load_study
from orchestrator.store import (
    HEARTBEAT_S,
    Eval,
    Recorder,
    StoreError,
    Study,
    Trial,
    TrialStatus,
    beat,
    clear_fits,
    current_trials,
    default_url,
    evals_of,
    fail_trial,
    fits_of,
    get_study,
    mark_unfinished_interrupted,
    open_store,
    register_study,
    run_active,
    run_lock,
    save_fit,
    stale,
    start_attempt,
    upgrade_store,
)
from trainers.accounting import account
from trainers.data import TokenData, cache_root, load_token_data
from trainers.trial import TrialSpec

# Rough training throughput of one CPU thread on these small models, in FLOP/s (measured on a
# 2-core x86 VM: 20 GFLOP/s at 25K parameters to 50 GFLOP/s at 2.7M); used only by `plan`.
CPU_FLOPS_PER_THREAD = 3e10
EXPORT_COLUMNS = [
    "trial_id",
    "architecture",
    "size",
    "seed",
    "n_params",
    "total_params",
    "tokens",
    "tokens_done",
    "tokens_scored",
    "epochs",
    "flops",
    "lr",
    "status",
    "val_loss",
    "wall_s",
    "tokens_per_s",
    "mfu",
    "attempts",
    "hash",
]


def report_path(study_name: str) -> Path:
    """The default report of a study: `reports/<name>.html` under the current directory."""
    return Path("reports") / f"{study_name}.html"


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
        cache_root(_storage(spec)),
    )
    data.check_fits(spec.data.seq_len + 1)  # the longest window of any objective
    return data


def describe_data(data: dict) -> str:
    """The splits of a study's data in one line: documents and tokens of each."""
    splits = ", ".join(
        f"{split} {data['documents'][split]:,} documents / "
        f"{format_count(data['tokens'][split])} tokens"
        for split in ("train", "validation", "heldout")
    )
    vocab = f"{data['tokenizer']} ({data['vocab_size']:,} tokens)"
    return f"data: {data['corpus']}, tokenizer {vocab}; {splits}"


def store_ngram_baseline(session: Session, study: Study, spec: StudySpec, data: TokenData):
    """Score the study's zero-shot items with a trigram model of the training split and store
    the results once per study (architecture `ngram`), replacing earlier ones."""
    from trainers.ngram import Trigram, score_requests
    from trainers.tasks import CHANCE, make_tasks
    from trainers.zeroshot import item_metrics, requests_of, summarize

    zero_shot = spec.eval.zero_shot
    session.execute(delete(Eval).where(Eval.study_id == study.id, Eval.trial_pk.is_(None)))
    if not zero_shot.tasks:
        return
    model = Trigram(data.train, data.vocab_size)
    tasks = make_tasks(list(data.heldout_documents), zero_shot.items, zero_shot.seed)
    for task in zero_shot.tasks:
        items = tasks[task]
        if not items:
            continue
        loglik = score_requests(model, requests_of(items, data.tokenizer), data.tokenizer.eos_id)
        per_item = item_metrics(loglik, items)
        for row in summarize(per_item, CHANCE[task]):
            session.add(
                Eval(
                    study_id=study.id,
                    trial_pk=None,
                    architecture="ngram",
                    step=0,
                    tokens=len(data.train),
                    task=task,
                    per_item=per_item[row["metric"]].tolist(),
                    **row,
                )
            )


def _storage(spec: StudySpec) -> str:
    # A relative storage path means relative to where the command is run, not to wherever a
    # Ray worker's working directory happens to be.
    return str(Path(spec.storage).resolve()) if spec.storage else ""


def _trials(spec: StudySpec, data: TokenData) -> list[TrialSpec]:
    storage = _storage(spec)
    return [replace(t, storage=storage, data_key=data.key) for t in expand(spec)]


def planned_accounting(trial: TrialSpec, vocab_size: int) -> dict:
    """N, total parameters and FLOPs per token of a trial, from its shape (no torch)."""
    acct = account(trial.architecture, trial.n_layer, trial.n_embd, vocab_size, trial.seq_len)
    return {
        "n_params": acct.n_params,
        "total_params": acct.total_params,
        "flops_per_token": acct.flops_per_token,
        "scored_fraction": acct.scored_fraction,
    }


def plan(spec: StudySpec) -> pd.DataFrame:
    """The grid before anything runs: one row per trial with N, tokens, FLOPs, passes over the
    training split and a time guess. Prepares the token files if they are not there yet."""
    data = prepare_data(spec)
    rows = []
    for trial in _trials(spec, data):
        acct = planned_accounting(trial, data.vocab_size)
        tokens = trial.steps * trial.batch_size * trial.seq_len
        flops = acct["flops_per_token"] * tokens
        rows.append(
            {
                "trial_id": trial.trial_id,
                "shape": f"{trial.n_layer}x{trial.n_embd}x{trial.n_head}",
                "n_params": acct["n_params"],
                "total_params": acct["total_params"],
                "tokens": tokens,
                "steps": trial.steps,
                "lr": trial.lr,
                "flops": float(flops),
                "epochs": tokens / len(data.train),
                "cpu_minutes": flops / (CPU_FLOPS_PER_THREAD * trial.cpus) / 60,
                "hash": trial.hash,
            }
        )
    return pd.DataFrame(rows)


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


def _register(session: Session, spec: StudySpec, trials: list[TrialSpec], data: TokenData) -> Study:
    planned = {t.trial_id: planned_accounting(t, data.vocab_size) for t in trials}
    return register_study(
        session,
        spec.name,
        spec.model_dump(mode="json"),
        spec.hash(),
        trials,
        planned,
        data.summary(),
    )


def run_study(
    path: str | Path,
    store: str | None = None,
    report: str | Path | None = None,
    address: str | None = None,
    console: Console | None = None,
    n_boot: int = 1000,
    wait: bool = False,
) -> RunResult:
    """Run every trial of a study the store does not show finished, then fit and report.

    Raises StudyError for an invalid study file and CorpusError for a corpus that cannot be
    used, before anything is written to the store, and StoreError when another run holds the
    store (unless `wait`: then it waits for it).
    """
    from orchestrator import schedule  # heavy: ray

    console = console or Console(soft_wrap=True)
    spec = load_study(path)
    data = prepare_data(spec)  # before the store is touched: a bad corpus changes nothing
    trials = _trials(spec, data)
    url = store or default_url(spec.name)
    with run_lock(url, wait):
        return _run_locked(schedule, spec, data, trials, url, report, address, console, n_boot)


def _run_locked(schedule, spec, data, trials, url, report, address, console, n_boot):
    """run_study once it holds the store: register, run what is not finished, fit, report."""
    engine = open_store(url)
    result = RunResult(study=spec.name, store_url=url, report=None)
    with Session(engine) as session:
        study = _register(session, spec, trials, data)
        store_ngram_baseline(session, study, spec, data)
        mark_unfinished_interrupted(session, study)
        rows = {t.hash: t for t in current_trials(session, study)}
        to_run: list[tuple[TrialSpec, Trial]] = []
        for trial in trials:
            row = rows[trial.hash]
            if row.status == TrialStatus.finished:
                result.skipped.append(trial.trial_id)
            else:
                to_run.append((trial, row))
        session.commit()
        console.print(
            f"study [bold]{spec.name}[/]: {len(trials)} trials, {len(result.skipped)} already "
            f"finished, {len(to_run)} to run; store {url}",
            highlight=False,
        )
        console.print(describe_data(study.data), highlight=False)

        if to_run:
            _run_on_ray(schedule, spec, to_run, session, console, address, result)

        result.report = Path(report or report_path(spec.name))
        result.fits, result.verdicts = _fit_and_report(session, study, result.report, n_boot)
    engine.dispose()
    return result


def _run_on_ray(schedule, spec, to_run, session, console, address, result) -> None:
    from orchestrator.progress import Progress

    cluster = schedule.connect(address)
    for _, row in to_run:  # counted once the cluster is there to run them
        start_attempt(session, row)
    session.commit()
    if cluster.dashboard_url:
        console.print(
            f"Ray dashboard: {cluster.dashboard_url} (sign in with the token that "
            f"`ray get-auth-token` prints; it is kept in {schedule.AUTH_TOKEN_PATH})",
            highlight=False,
        )
    use_gpus = cluster.gpus > 0
    if spec.resources.wants_gpus and not use_gpus:
        console.print("no GPU in the Ray cluster: trials run on the CPU", highlight=False)
    rows = {trial.trial_id: row for trial, row in to_run}
    progress = Progress([trial for trial, _ in to_run], console)

    recorder = Recorder(session)

    def on_event(trial: TrialSpec, event: dict) -> None:
        recorder.record(rows[trial.trial_id], event)
        progress.update(trial.trial_id, event)
        if event["event"] == "end":
            result.ran.append(trial.trial_id)

    def on_error(trial: TrialSpec, error: str) -> None:
        fail_trial(rows[trial.trial_id], error)
        recorder.flush()
        progress.fail(trial.trial_id)
        result.failed.append(trial.trial_id)
        console.print(f"[red]{trial.trial_id} failed[/]: {last_line(error)}", highlight=False)

    def on_retry(trial: TrialSpec, error: str, lost: bool) -> None:
        row = rows[trial.trial_id]
        start_attempt(session, row)  # counted; its error kept until the retry starts
        row.error = error
        recorder.flush()
        progress.requeue(trial.trial_id)
        what = "lost its node or worker, running again" if lost else "failed, retrying"
        console.print(
            f"[yellow]{trial.trial_id} {what} (attempt {row.attempts})[/]: {last_line(error)}",
            highlight=False,
        )

    last_beat = time.monotonic()

    def on_tick() -> None:
        nonlocal last_beat
        progress.tick()
        if time.monotonic() - last_beat >= HEARTBEAT_S:
            beat(session, list(rows.values()))
            last_beat = time.monotonic()
        recorder.tick()

    # Costliest first: Ray starts queued tasks in order, and a large trial started last would
    # leave the other CPUs idle while it finishes.
    queue = sorted((trial for trial, _ in to_run), key=lambda t: -rows[t.trial_id].flops)
    try:
        with progress:
            schedule.run_trials(
                queue, on_event, on_error, use_gpus, on_tick,
                max_retries=spec.resources.max_retries, on_retry=on_retry,
            )  # fmt: skip
        recorder.flush()
    except KeyboardInterrupt:
        # Ctrl-C may land inside a write: drop what is not committed (a resumed trial reports
        # its history again), then record who was interrupted.
        recorder.discard()
        for row in rows.values():
            if row.status in (TrialStatus.running, TrialStatus.pending):
                fail_trial(row, "interrupted by the user (Ctrl-C)", TrialStatus.interrupted)
        session.commit()
        raise
    finally:
        schedule.disconnect(cluster)


def last_line(error: str) -> str:
    """The line of a traceback that says what went wrong."""
    return error.strip().splitlines()[-1] if error.strip() else "unknown error"


def _fit_and_store(session: Session, study: Study, n_boot: int):
    """Fit the laws and the zero-shot trends of a study, store them (replacing earlier fits),
    and return the report's view of the study."""
    from analysis.fits import fit_study, isfinite_json, storable
    from analysis.frame import evals_frame, metrics_frame, trials_frame
    from analysis.report import MAX_CURVE_POINTS, StudyView
    from analysis.trends import study_trends

    trials = trials_frame(session, study)
    fits = fit_study(trials, n_boot=n_boot)
    evals = evals_frame(session, study)
    trends = study_trends(evals, n_boot=n_boot) if not evals.empty else {}
    clear_fits(session, study)  # a refit replaces every stored fit, laws no longer fitted too
    for architecture, laws in fits.items():
        for law, result in laws.items():
            stored = isfinite_json(storable(result))  # law, params, quality, data, the rest
            params, data = stored.pop("params", {}), stored.pop("data")
            quality = stored.pop("quality", {}) | {k: v for k, v in stored.items() if k != "law"}
            save_fit(session, study, architecture, law, params, quality, data)
    for architecture, result in trends.items():
        for task, t in result["trends"].items():
            save_fit(
                session,
                study,
                architecture,
                f"trend:{task}",
                {"slope": {"estimate": t["slope"], "ci": t["ci"]}},
                {
                    "metric": t["metric"],
                    "spearman_rho": t["spearman_rho"],
                    "p_value": t["p_value"],
                    "verdict": result["verdict"],
                },
                [
                    {"n_params": n, t["metric"]: v}
                    for n, v in zip(t["n_params"], t["values"], strict=True)
                ],
            )
    session.commit()
    return StudyView(
        study.name,
        trials,
        metrics_frame(session, study, max_points=MAX_CURVE_POINTS),
        fits,
        evals,
        trends,
        study.data,
    )


def _fit_and_report(
    session: Session, study: Study, path: str | Path, n_boot: int
) -> tuple[dict, dict]:
    """Fit, store, write the report and the model cards; return the fits and the verdict
    sentence of each architecture."""
    from analysis.report import write_report

    view = _fit_and_store(session, study, n_boot)
    write_report(path, [view])
    return view.fits, {architecture: r["verdict"] for architecture, r in view.trends.items()}


def open_study(path: str | Path | None, store: str | None) -> tuple[str, Session, Study]:
    """The store and study named by a study file, a store URL, or both (for read commands)."""
    if path is None and store is None:
        raise StoreError("give a study file or --store URL")
    spec = load_study(path) if path is not None else None
    url = store or default_url(spec.name)
    engine = open_store(url, create=False)
    session = Session(engine)
    study = get_study(session, spec.name if spec else None)
    return url, session, study


def upgrade(
    path: str | Path | None = None, store: str | None = None
) -> tuple[str, str, Path | None]:
    """Migrate the store of a study (or at a URL) to the schema this version reads; returns the
    schema it had, the one it has now, and the copy kept of the old store (SQLite)."""
    if path is None and store is None:
        raise StoreError("give a study file or --store URL")
    return upgrade_store(store or default_url(load_study(path).name))


STALE = "interrupted: the run that trained it is gone (its driver stopped)"


def status(path: str | Path | None = None, store: str | None = None) -> pd.DataFrame:
    """The trials of a study as the store shows them; trials left `running` or `pending` by a
    run that is gone are shown `interrupted` (the next run resumes them). A run is gone when it
    no longer holds the lock of a SQLite store, or, on a database server, when the heartbeats
    of its trials stop."""
    from analysis.frame import trials_frame

    url, session, study = open_study(path, store)
    with session:
        frame = trials_frame(session, study)
    active = run_active(url)  # a lock tells, for SQLite; elsewhere, the heartbeats
    if active is False:
        gone = frame.status.isin(["running", "pending"])
    elif active is None:
        gone = pd.Series(
            [
                stale(s, None if pd.isna(h) else h)
                for s, h in zip(frame.status, frame.heartbeat_at, strict=True)
            ],
            index=frame.index,
            dtype=bool,
        )
    else:
        return frame
    frame.loc[gone, "status"] = "interrupted"
    frame.loc[gone, "error"] = STALE
    return frame


def export_trials(path: str | Path | None = None, store: str | None = None) -> pd.DataFrame:
    """The trial table for export (CSV or JSON)."""
    return status(path, store)[EXPORT_COLUMNS]


EVAL_COLUMNS = [
    "trial_id",
    "architecture",
    "n_params",
    "tokens",
    "task",
    "metric",
    "value",
    "n_items",
    "chance",
    "ci_low",
    "ci_high",
]


def export_evals(path: str | Path | None = None, store: str | None = None) -> pd.DataFrame:
    """The zero-shot results: one row per trial, evaluation point, task and metric (the
    n-gram baseline as architecture `ngram`)."""
    _, session, study = open_study(path, store)
    with session:
        trials = {t.id: t for t in study.trials}
        rows = []
        for e in evals_of(session, study):
            trial = trials.get(e.trial_pk)
            rows.append(
                {
                    "trial_id": trial.trial_id if trial else None,
                    "architecture": e.architecture,
                    "n_params": trial.n_params if trial else None,
                    "tokens": e.tokens,
                    **{c: getattr(e, c) for c in EVAL_COLUMNS[4:]},
                }
            )
        return pd.DataFrame(rows, columns=EVAL_COLUMNS)


def export_fits(path: str | Path | None = None, store: str | None = None) -> list[dict]:
    """The stored fits of a study."""
    _, session, study = open_study(path, store)
    with session:
        return [
            {
                "architecture": f.architecture,
                "law": f.law,
                "params": f.params,
                "quality": f.quality,
                "data": f.data,
            }
            for f in fits_of(session, study)
        ]


def _source(source: str | Path) -> tuple[str | Path | None, str | None]:
    """A study file (its default store), a store file (*.db) or a SQLAlchemy URL."""
    text = str(source)
    if "://" in text:
        return None, text
    if Path(text).suffix in (".yaml", ".yml"):
        return text, None
    if not Path(text).exists():
        raise StoreError(f"{text}: no such study file or run store")
    return None, f"sqlite:///{text}"


def report(
    sources: list[str | Path] | str | Path | None = None,
    store: str | None = None,
    out: str | Path | None = None,
    n_boot: int = 1000,
) -> Path:
    """Refit the laws from the store(s) and write the report: of one study, or the comparison
    of several (`sources`: study files, store files or URLs), with their model cards."""
    if sources is None or isinstance(sources, str | Path):
        sources = [sources] if sources is not None else []
    if store is not None:
        if len(sources) > 1:
            raise StoreError("--store names one store: give the others as store files or URLs")
        pairs = [(sources[0] if sources else None, store)]
    else:
        pairs = [_source(s) for s in sources]
    if not pairs:
        raise StoreError("give a study file, a store file (runs/NAME.db) or --store URL")
    from analysis.report import write_report

    views = []
    for path, url in pairs:
        _, session, study = open_study(path, url)
        with session:
            views.append(_fit_and_store(session, study, n_boot))
    names = [v.name for v in views]
    if len(set(names)) < len(names):
        raise StoreError(f"two of the stores hold a study of the same name ({', '.join(names)})")
    if out:
        target = Path(out)
    elif len(views) == 1:
        target = report_path(views[0].name)
    else:
        target = Path("reports") / ("compare-" + "-".join(names) + ".html")
    return write_report(target, views)


def to_json(frame: pd.DataFrame) -> str:
    """A DataFrame as a JSON list of objects (NaN as null, times in ISO 8601)."""
    return frame.to_json(orient="records", indent=2, date_format="iso")


def fit_csv(
    path: str | Path,
    law: str,
    columns: dict[str, str],
    filters: list[str] = (),
    drop_highest_loss: int = 0,
    n_boot: int = 1000,
    group: str | None = None,
    compute: float | None = None,
) -> dict:
    """Fit a law (n, nd, isoflop) or the zero-shot trend (trend) to a CSV of results."""
    from analysis.fits import TableError, fit_points, isfinite_json, read_table, storable
    from analysis.trends import trend_json, values_trend, verdict

    frame = read_table(path, law, columns, filters, drop_highest_loss, group)
    if law == "trend":
        name = columns.get("accuracy", "accuracy")
        t = values_trend(frame.N, frame.accuracy, frame.get("n_items"), n_boot=n_boot)
        return isfinite_json(
            {"law": "trend"}
            | trend_json(t)
            | {"interval_from": t["interval_from"], "verdict": verdict(Path(path).name, {name: t})}
        )
    try:
        result = fit_points(law, frame, n_boot, "group" if group else None, compute)
    except ValueError as e:
        raise TableError(f"{path}: {e}") from None
    return isfinite_json(storable(result))


def fit_store(
    path: str | Path | None,
    store: str | None,
    law: str,
    architecture: str | None = None,
    n_boot: int = 1000,
) -> dict:
    """Fit a law to a study's finished trials (or its zero-shot trends): one JSON-ready result
    per architecture, under {"study", "law", "architectures"}."""
    from analysis.fits import fit_study, isfinite_json, storable
    from analysis.frame import evals_frame, trials_frame
    from analysis.trends import study_trends, trend_json

    _, session, study = open_study(path, store)
    with session:
        trials = trials_frame(session, study)
        if architecture is not None and architecture not in set(trials.architecture):
            raise StoreError(
                f"study {study.name!r} has no {architecture!r} trials "
                f"(it has {', '.join(sorted(set(trials.architecture)))})"
            )
        if architecture is not None:
            trials = trials[trials.architecture == architecture]
        out = {}
        if law == "trend":
            evals = evals_frame(session, study)
            if architecture is not None and not evals.empty:
                evals = evals[evals.architecture == architecture]
            for arch, result in (study_trends(evals, n_boot) if not evals.empty else {}).items():
                out[arch] = {
                    "law": "trend",
                    "tasks": {task: trend_json(t) for task, t in result["trends"].items()},
                    "verdict": result["verdict"],
                }
        else:
            for arch, laws in fit_study(trials, n_boot=n_boot, laws=[law]).items():
                out[arch] = storable(laws[law])
        return isfinite_json({"study": study.name, "law": law, "architectures": out})
