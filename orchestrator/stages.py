"""The stages of a run, each a function over one `RunContext`: prepare the data (before the
store is touched), register the trials, train, score, fit and predict, train what verifies the
predictions, verify them, report. A `Mode` chooses which stages run (`STAGES`); run.py holds
the run lock, the queue on Ray, the retries and Ctrl-C, and calls them in order."""

from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console
from rich.markup import escape

from analysis.report.cards import file_name
from analysis.results import StudyFits
from orchestrator import evaluating, fitting, predicting
from orchestrator.evaluating import Scoring
from orchestrator.grid import cells, expand
from orchestrator.sizes import flops_text, format_count
from orchestrator.spec import StudyError, StudySpec, check_beyond_grid, check_spread
from orchestrator.store import RunStore, check_url
from trainers.architectures import account
from trainers.data import TokenData, load_tokens
from trainers.trial import TrialSpec

if TYPE_CHECKING:
    import pandas as pd

    from analysis.headline import Caveats, Headline


def report_path(study_name: str) -> Path:
    """The default report of a study: `reports/<name>.html` under the current directory."""
    return Path("reports") / f"{file_name(study_name)}.html"


def prepare_data(spec: StudySpec) -> TokenData:
    """The study's corpus split and tokenized, its token files written to the cache under
    `storage` (or read from it). Raises CorpusError, naming the file or field, if the corpus
    cannot be read or is too small."""
    data = load_tokens(spec.data.trial_data(), storage_of(spec))
    data.check_fits(spec.data.seq_len + 1)  # the longest window of any objective
    return data


def storage_of(spec: StudySpec) -> str:
    """The study's checkpoint folder as an absolute path ("" for none): a relative one means
    relative to where the command runs, not to wherever a Ray worker's directory is."""
    return str(Path(spec.storage).resolve()) if spec.storage else ""


def trials(spec: StudySpec, data: TokenData) -> list[TrialSpec]:
    """The study's trials as `study run` trains them, on its prepared data. Raises StudyError,
    naming the file, line and field, for a FLOP budget no size of the study can spend or a
    batch that does not split over its trial's workers."""
    check_budgets(spec, data)
    grid = expand(spec, data.key, storage_of(spec), data.vocab_size, len(data.train))
    if not grid:  # every cell left out: nothing to plan or train
        reasons = left_out(spec, data)
        raise StudyError(f"invalid study\n{spec.where('budget')}: no trial to train: every cell "
                         f"of sizes × budgets is left out ({len(reasons)}); the first: "
                         f"{reasons[0]}")  # fmt: skip
    check_spread(spec, grid)
    check_rates(spec, grid)
    return grid


def check_rates(spec: StudySpec, grid: list[TrialSpec]) -> None:
    """Every trial's learning rate, as its recipe computes it, is a positive finite number: a
    recipe's constants may each be valid and their rule still overflow at a trial's N."""
    for trial in grid:
        if not (math.isfinite(trial.optim.lr) and trial.optim.lr > 0):
            field = ("recipe",) if "recipe" in spec.model_fields_set else ("train", "lr")
            raise StudyError(f"invalid study\n{spec.where(*field)}: {trial.trial_id}'s learning "
                             f"rate comes to {trial.optim.lr:g}: the rule's constants give no "
                             "usable rate at its N")  # fmt: skip


def left_out(spec: StudySpec, data: TokenData) -> list[str]:
    """Why each cell of the grid that is not trained is left out, one line each."""
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
    check_beyond_grid(spec, largest, "its costliest cell trains on", extra)


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
    fits: StudyFits = field(default_factory=lambda: StudyFits({}))  # laws, task fits, trends
    verdicts: dict = field(default_factory=dict)  # architecture -> does zero-shot grow with N
    outdated: list[str] = field(default_factory=list)  # finished, not under current eval settings
    scored: list[str] = field(default_factory=list)  # finished trials scored again
    unscored: list[str] = field(default_factory=list)  # those whose weights could not be scored
    headline: Headline | None = None  # one verdict per architecture (analysis.headline)
    caveats: Caveats | None = None  # the fits' warnings, each said once
    predictions: pd.DataFrame | None = None  # the stored ones (store.predictions_frame)


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


class Mode(enum.Enum):
    """What a run does: which of the stages run (`STAGES`)."""

    TRAIN = "train"  # study run, study predict: train, predict, train what verifies it
    PREDICT = "predict"  # study predict --no-train: the predictions stay unverified
    EVAL = "eval"  # study eval: finished trials scored again; nothing trains or predicts

    @property
    def command(self) -> str:
        """The command a run of this mode is, as the Ray job and the dashboard name it."""
        return "study eval" if self is Mode.EVAL else "study run"


class Runner(Protocol):
    """Where trials train and are scored: run.py's Ray cluster, joined when first needed."""

    def train(self, ctx: RunContext, to_run: list[TrialSpec]) -> None: ...

    def score(self, ctx: RunContext, jobs: list) -> None: ...

    def never_fit(self, trials: list[TrialSpec]) -> list[str]: ...

    def close(self) -> None: ...


@dataclass
class RunContext:
    """One run: its inputs, its store once locked, and what each stage leaves for the next."""

    spec: StudySpec
    url: str
    mode: Mode
    console: Console
    result: RunResult
    runner: Runner | None = None
    n_boot: int = 1000
    predict: list[float] = field(default_factory=list)  # budgets beyond the study file's
    scoring: Scoring = field(default_factory=Scoring)
    data: TokenData | None = None
    grid: list[TrialSpec] = field(default_factory=list)
    store: RunStore | None = None
    verifying: list[TrialSpec] = field(default_factory=list)  # trials of stored predictions
    to_run: list[TrialSpec] = field(default_factory=list)
    jobs: list = field(default_factory=list)  # finished trials to score (evaluating.to_score)
    made: list[TrialSpec] = field(default_factory=list)  # trials of the predictions just made

    @property
    def storage(self) -> str:
        """The study's checkpoint folder, absolute ("" for none)."""
        return storage_of(self.spec)


def prepare(ctx: RunContext) -> None:
    """The store's URL checked, the data prepared and the grid expanded, every prediction
    budget beyond it: before the store is touched, so that a bad corpus changes nothing."""
    check_url(ctx.url)  # a URL that is none, or a driver missing: said before data is prepared
    ctx.data = prepare_data(ctx.spec)
    ctx.grid = trials(ctx.spec, ctx.data)
    for why in left_out(ctx.spec, ctx.data) if not ctx.spec.budget.flops else []:
        ctx.console.print(f"left out: {why}", highlight=False, markup=False)  # a size asked for
    check_predictions(ctx.spec, ctx.grid, ctx.data.vocab_size, ctx.predict)


def register_trials(ctx: RunContext) -> None:
    """Record the grid (and the trials of stored predictions), the n-gram baseline and the
    references; mark what a dead driver left running interrupted; find what is to train and
    to score, and say so."""
    spec, data, store, result = ctx.spec, ctx.data, ctx.store, ctx.result
    verifies = ctx.mode is Mode.TRAIN  # else only the verifying trials registered already
    ctx.verifying = predicting.stored_trials(store, spec, data.key, ctx.storage, verifies)
    register(store, spec, ctx.grid + ctx.verifying, data)
    store_ngram_baseline(store, ctx.grid, data)
    store_references(store, spec, ctx.grid, data, ctx.console)
    store.interrupt_left_running()
    queued = ctx.grid + (ctx.verifying if verifies else [])
    ctx.to_run, finished = store.unfinished(queued)
    result.skipped += finished
    checkpoints, pattern = ctx.scoring.checkpoints, ctx.scoring.trials
    ctx.jobs, gone = evaluating.to_score(store, ctx.grid + ctx.verifying, checkpoints, pattern,
                                         ctx.console)  # fmt: skip
    if ctx.mode is Mode.EVAL:
        result.unscored += gone  # `study eval` was asked to score them
        what = (f"{len(ctx.jobs)} finished trials to score ({checkpoints} checkpoints) under "
                "the current evaluation settings; nothing trains")  # fmt: skip
    else:
        what = (f"{len(ctx.grid) + len(ctx.verifying)} trials, {len(result.skipped)} already "
                f"finished, {len(ctx.to_run)} to run")  # fmt: skip
    ctx.console.print(f"study [bold]{spec.name}[/]: {what}; store {ctx.url}", highlight=False)
    ctx.console.print(describe_data(store.data), highlight=False)
    for warning in data.warnings():
        ctx.console.print("[yellow]warning[/]: " + escape(warning), highlight=False)


def train(ctx: RunContext) -> None:
    """Train the trials the store does not show finished."""
    if ctx.to_run:
        ctx.runner.train(ctx, ctx.to_run)


def score(ctx: RunContext) -> None:
    """Score finished trials from their weights where results under the current evaluation
    settings are missing."""
    if ctx.jobs:
        ctx.runner.score(ctx, ctx.jobs)


def fit_and_predict(ctx: RunContext) -> None:
    """Predict (stored, committed) at the study's budgets once its grid is trained."""
    flops = predicting.budgets(ctx.spec, ctx.predict)
    ctx.made = predicting.predict_missing(ctx.store, ctx.spec, ctx.data, ctx.storage, flops,
                                          console=ctx.console, n_boot=ctx.n_boot,
                                          never_fit=ctx.runner.never_fit)  # fmt: skip


def train_verifying(ctx: RunContext) -> None:
    """Register and train the trials that verify the predictions just made."""
    if ctx.made:
        register(ctx.store, ctx.spec, ctx.grid + ctx.verifying + ctx.made, ctx.data)
        to_run, finished = ctx.store.unfinished(ctx.made)
        ctx.result.skipped += finished
        if to_run:
            ctx.runner.train(ctx, to_run)


def verify_predictions(ctx: RunContext) -> None:
    """Store what each prediction's trial measured, once it has, and say how it did."""
    from analysis.predict import verdict
    from analysis.results import stored_forecast

    for p in ctx.store.verify_predictions():
        forecast = stored_forecast(p.fit)
        method = forecast and forecast.method  # none: made before the backtest
        said = verdict(p.predicted_loss, p.ci_low, p.ci_high, p.measured_loss, method)
        ctx.console.print(f"verified {p.architecture} at {flops_text(p.flops)} FLOPs "
                          f"({p.trial_id}): " + said, highlight=False)  # fmt: skip


def report(ctx: RunContext) -> None:
    """Let the cluster go, fit the laws and trends, store them, write the report and cards."""
    if ctx.runner is not None:
        ctx.runner.close()
    console, result = ctx.console, ctx.result
    console.print(fitting.fitting_line(ctx.store, ctx.n_boot), highlight=False)
    started = time.monotonic()
    view = fitting.fit_and_report(ctx.store, result.report, ctx.n_boot)
    console.print(f"fitted in {time.monotonic() - started:.1f} s", highlight=False)
    result.fits = view.fits
    result.outdated = view.outdated
    result.verdicts = {arch: r.verdict for arch, r in view.fits.trends.items()}
    from analysis.headline import caveats_of, headline_of  # heavy: scipy

    result.headline = headline_of(view.fits, view.predictions,  # the report's, the same
                                  next_study=view.next_study)  # fmt: skip
    result.caveats = caveats_of(view.fits, view.trials)  # with a CPU peak measured low
    result.predictions = view.predictions


# What each mode runs once the store is locked (`prepare` runs before, outside the lock).
STAGES = {
    Mode.TRAIN: (register_trials, train, score, fit_and_predict, train_verifying,
                 verify_predictions, report),
    Mode.PREDICT: (register_trials, train, score, fit_and_predict, verify_predictions, report),
    Mode.EVAL: (register_trials, score, verify_predictions, report),
}  # fmt: skip
