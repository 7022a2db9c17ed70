"""The `study` command line: each command checks its flags and calls `orchestrator.api`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from orchestrator.helptext import FLAG, App, Group
from orchestrator.printing import frame_table, grid_tables, plan_footer, plan_warnings
from orchestrator.spec import StudyError
from orchestrator.store import StoreError
from trainers.corpora import CorpusError

app = App(
    cls=Group,
    help="Scaling studies of language-model pre-training: a YAML grid trained on Ray, stored "
    "in SQLite, fitted and reported. `study new NAME` writes a study file to start from.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def _version(asked: bool) -> None:
    if asked:
        from orchestrator.starting import versions

        console.print(versions(), highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="print the version (torch's and ray's too)",
            metavar=FLAG,
        ),
    ] = False,
) -> None:
    """The options before any command."""


StudyFile = Annotated[Path, typer.Argument(help="the study YAML file", show_default=False)]
OptionalStudyFile = Annotated[
    Path | None, typer.Argument(help="the study YAML file (or give --store)", show_default=False)
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store", help="SQLAlchemy URL of the run store (default: sqlite:///runs/<name>.db)"
    ),
]

NBootOption = Annotated[
    int, typer.Option("--n-boot", min=0, help="bootstrap resamples for the fit intervals")
]


def _fail(message: str, code: int = 2) -> None:
    errors.print(f"error: {message}", highlight=False, markup=False)
    raise typer.Exit(code)


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="the study's name: writes NAME.yaml here")],
    force: Annotated[
        bool, typer.Option("--force", help="overwrite NAME.yaml if it exists", metavar=FLAG)
    ] = False,
) -> None:
    """Write a commented study file to start from (the quickstart's study, each field with its
    alternatives), ready for `study plan` and `study run`."""
    from orchestrator.starting import StartError, new_study

    try:
        path = new_study(name, Path.cwd(), force=force)
    except StartError as e:
        _fail(str(e))
    console.print(f"wrote {path.name}: `study plan {path.name}` shows its trials, `study run "
                  f"{path.name}` trains them", highlight=False, markup=False)  # fmt: skip


ReportOption = Annotated[
    Path | None, typer.Option(help="report file (default: reports/<name>.html)")
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        help="Ray cluster to join, e.g. auto or HEAD_IP:6379 "
        "(default: RAY_ADDRESS, else a local instance)"
    ),
]
WaitOption = Annotated[
    bool,
    typer.Option("--wait", help="if another run holds the store, wait for it to end", metavar=FLAG),
]


@app.command()
def run(
    study: StudyFile,
    store: StoreOption = None,
    report: ReportOption = None,
    address: AddressOption = None,
    n_boot: NBootOption = 1000,
    wait: WaitOption = False,
    as_json: Annotated[bool, typer.Option("--json", metavar=FLAG, help="end on one JSON document "
                       "on stdout: headline, caveats, trials (the rest on stderr)")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", metavar=FLAG, help="print only the "
                     "caveats and the headline (and errors)")] = False,
) -> None:
    """Train the trials the store does not show finished, predict and verify (`predict:`), fit
    the laws, write the report."""
    _run(study, store=store, report=report, address=address, n_boot=n_boot, wait=wait,
         as_json=as_json, quiet=quiet)  # fmt: skip


@app.command()
def predict(
    study: StudyFile,
    flops: Annotated[
        list[str],
        typer.Option("--flops", help="a FLOP budget beyond the grid: 1e13, 10T (repeatable)"),
    ],
    store: StoreOption = None,
    train: Annotated[
        bool,
        typer.Option(
            "--train/--no-train",
            help="train the models that verify the predictions (else a later run does)",
            metavar=FLAG,
        ),
    ] = True,
    report: ReportOption = None,
    address: AddressOption = None,
    n_boot: NBootOption = 1000,
    wait: WaitOption = False,
) -> None:
    """Predict the compute-optimal model and its loss at FLOP budgets beyond the grid, store
    the predictions, then train those models to verify them (the grid first, if unfinished)."""
    from orchestrator.sizes import parse_count

    budgets = []
    for text in flops:
        try:
            budgets.append(float(parse_count(text)))
        except ValueError as e:
            _fail(f"--flops {text!r}: {e}")
    from orchestrator.stages import Mode

    _run(study, store=store, report=report, address=address, n_boot=n_boot, wait=wait,
         predict=budgets, mode=Mode.TRAIN if train else Mode.PREDICT)  # fmt: skip


@app.command(name="eval")
def eval_(
    study: StudyFile,
    trials: Annotated[
        str | None, typer.Option("--trials", help="score the trials whose id matches this glob")
    ] = None,
    checkpoints: Annotated[
        str,
        typer.Option(
            help="final: the final weights; all: every checkpoint kept (train.keep_checkpoints)"
        ),
    ] = "final",
    store: StoreOption = None,
    report: ReportOption = None,
    address: AddressOption = None,
    n_boot: NBootOption = 1000,
    wait: WaitOption = False,
) -> None:
    """Score finished trials again from their weights under the study's current evaluation
    settings (more items, other tasks, a new seed), where results are missing; nothing trains."""
    _run(study, store=store, report=report, address=address, n_boot=n_boot, wait=wait,
         trials=trials, checkpoints=checkpoints, evaluate=True)  # fmt: skip


def _run(study: Path, evaluate: bool = False, as_json=False, quiet=False, **options) -> None:
    """`study run`, `predict` and `eval` (`evaluate`): run, then print the fits, the verdicts,
    the report (`as_json`: all on stderr but one JSON document; `quiet`: the ending alone)."""
    from orchestrator import api
    from orchestrator.ending import print_end, silent

    try:
        start = api.evaluate_study if evaluate else api.run_study
        shown = errors if as_json else silent() if quiet else console
        result = start(study, console=shown, **options)
    except (StudyError, StoreError, CorpusError, ConnectionError) as e:
        _fail(str(e))
    except KeyboardInterrupt as e:
        from orchestrator import schedule  # imported by the run that was stopped

        signal = "SIGTERM" if schedule.terminated(e) else "Ctrl-C"
        errors.print(f"interrupted ({signal}): running trials are marked interrupted; run "
                     "again to resume")  # fmt: skip
        raise typer.Exit(143 if signal == "SIGTERM" else 130) from None
    print_end(result, console, errors, as_json=as_json, quiet=quiet)  # caveats, then headline
    if result.unscored:
        _fail(f"{len(result.unscored)} trial(s) could not be scored: "
              f"{', '.join(result.unscored)}", code=1)  # fmt: skip
    if result.failed:
        _fail(
            f"{len(result.failed)} trial(s) failed: {', '.join(result.failed)} "
            "(their errors are in `study status` and the report)",
            code=1,
        )


@app.command()
def plan(
    study: StudyFile,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="print JSON: trials (with identity), caveats, time", metavar=FLAG
        ),
    ] = False,
    address: Annotated[
        str | None,
        typer.Option(help="a Ray cluster (HEAD_IP:6379, auto) to check the trials against: "
                     "which ones its nodes could never place (default: this machine)"),
    ] = None,
) -> None:
    """Show the grid before anything runs: N, tokens, the recipe's batch, lr, warmup and β2,
    FLOPs, the run's time on this machine, what its fits will warn of, and what is done."""
    from orchestrator import api
    from orchestrator.printing import before_training, plan_json
    from orchestrator.spec import load_study

    try:
        spec = load_study(study)
        prepared = api.prepare_data(spec)
        frame = api.plan(spec, prepared)
        data = prepared.summary()
    except (StudyError, CorpusError) as e:
        _fail(str(e))
    cluster = None
    if address is not None:
        try:
            cluster = (f"the cluster at {address}", api.cluster_nodes(address, spec.name))
        except ConnectionError as e:
            _fail(str(e))
    warnings = plan_warnings(frame, spec, data["tokens"]["train"], cluster)
    if as_json:
        sys.stdout.write(plan_json(frame, spec, warnings) + "\n")
        return
    sys.stdout.write(grid_tables(frame, spec.name, by_budget=bool(spec.budget.flops)))
    for why in api.left_out(spec, prepared):
        console.print(f"left out: {why}", highlight=False, markup=False)
    if spec.predict:
        from orchestrator.sizes import flops_text

        budgets = ", ".join(flops_text(c) for c in sorted(spec.predict.flops))
        console.print(
            f"predict at {budgets} FLOPs: once the grid is trained, the compute-optimal model "
            "of each architecture there and its loss are predicted and stored, then that "
            "model is trained to verify it (one trial per budget, not counted below)",
            highlight=False,
        )
    console.print(api.describe_data(data), highlight=False)
    for warning in prepared.warnings():
        console.print("[yellow]warning[/]: " + escape(warning), highlight=False)
    for line in plan_footer(frame, spec):
        console.print(line, highlight=False, markup=False)
    console.print(api.already_trained(spec.name, list(frame.hash)), highlight=False)
    for warning in warnings:
        console.print("[yellow]warning[/]: " + escape(warning), highlight=False)
    for line in before_training(frame, spec):
        console.print(line, highlight=False, markup=False)


@app.command()
def status(
    study: OptionalStudyFile = None,
    store: StoreOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print a JSON list of trials", metavar=FLAG)
    ] = False,
) -> None:
    """Show the trials of a study as the store shows them."""
    from orchestrator import api

    try:
        frame = api.status(study, store)
    except (StudyError, StoreError) as e:
        _fail(str(e))
    if as_json:
        sys.stdout.write(api.to_json(frame) + "\n")
        return
    columns = ["trial_id", "status", "attempts", "n_params", "tokens_done", "val_loss", "wall_s",
               "device"]  # fmt: skip
    if "workers" in frame and (frame.workers.fillna(1) > 1).any():  # a trial on several
        columns += ["workers", "strategy"]
    counts = frame.status.value_counts()
    summary = ", ".join(f"{n:,} {status}" for status, n in counts.items())
    sys.stdout.write(frame_table(frame[columns], f"{len(frame):,} trials: {summary}"))
    failed: dict[str, list[str]] = {}  # each error once, with the trials it names
    for trial_id, error in zip(frame.trial_id, frame.error, strict=True):
        if isinstance(error, str):
            failed.setdefault(api.last_line(error), []).append(trial_id)
    for error, ids in failed.items():
        more = f" and {len(ids) - 3:,} more" if len(ids) > 3 else ""
        console.print(f"[red]{', '.join(ids[:3])}{more}[/]: {escape(error)}", highlight=False)
    for trial_id, why in zip(frame.trial_id, frame.weights, strict=True):
        if why:
            console.print(f"[yellow]{trial_id}[/]: finished, but {escape(why)}: its results stand; "
                          "study export and study eval cannot use it", highlight=False)  # fmt: skip


@app.command()
def upgrade(study: OptionalStudyFile = None, store: StoreOption = None) -> None:
    """Migrate a run store made by an earlier version of the tool to this version's schema."""
    from orchestrator import api

    try:
        before, after, copy = api.upgrade(study, store)
    except (StudyError, StoreError) as e:
        _fail(str(e))
    if before == after:
        console.print(f"the store is at schema {after} already; nothing to do", highlight=False)
        return
    kept = f"; the old store is kept as {copy}" if copy else ""
    console.print(f"upgraded the store from schema {before} to {after}{kept}", highlight=False)


@app.command()
def report(
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            help="study files, store files (runs/NAME.db) or store URLs; two or more are "
            "compared side by side",
            show_default=False,
        ),
    ] = None,
    store: StoreOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="report file (default: reports/<name>.html, or compare-A-B.html)"
        ),
    ] = None,
    n_boot: NBootOption = 1000,
) -> None:
    """Refit the laws from the store(s) and write the HTML report and the model cards."""
    from orchestrator import api

    try:
        path, warnings = api.report(sources or [], store, out, n_boot)
    except (StudyError, StoreError) as e:
        _fail(str(e), getattr(e, "code", 2))  # 1: a full disk
    for warning in warnings:
        errors.print(f"warning: {warning}", highlight=False, markup=False)
    console.print(f"report: {path}", highlight=False)


@app.command()
def export(
    study: OptionalStudyFile = None,
    store: StoreOption = None,
    what: Annotated[
        str, typer.Option(help="trials, evals, fits, predictions, models, tasks or mlflow")
    ] = "trials",
    fmt: Annotated[str, typer.Option("--format", help="csv or json (fits: json only)")] = "csv",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="file to write (default: stdout); models, tasks: a new folder"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing --out file",
                                        metavar=FLAG)] = False,  # fmt: skip
    trials: Annotated[
        str | None,
        typer.Option(
            "--trials",
            metavar="PATTERN",
            help="models: the trial ids to export (a "
            "glob such as 'decoder-*'; default: every finished trial)",
        ),
    ] = None,  # fmt: skip
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="URI",
            help="mlflow: the tracking URI (sqlite:///mlflow.db, http://host:5000, a folder)",
        ),
    ] = None,  # fmt: skip
) -> None:
    """Export the trial table, the zero-shot results, the predictions (CSV or JSON), the fits
    (JSON), the finished trials as Hugging Face model folders (--what models --out DIR), the
    zero-shot items as lm-evaluation-harness tasks (--what tasks --out DIR), or every trial as
    an MLflow run (--what mlflow --to URI)."""
    from orchestrator import api

    exports = {"trials": api.export_trials, "evals": api.export_evals,
               "predictions": api.export_predictions}  # fmt: skip
    if what not in (*exports, "fits", "models", "tasks", "mlflow"):
        _fail(f"--what must be trials, evals, fits, predictions, models, tasks or mlflow, not "
              f"{what!r}")  # fmt: skip
    if trials is not None and what != "models":
        _fail("--trials is for --what models")
    if what == "mlflow":
        if not to:
            _fail("--what mlflow needs --to URI, the MLflow tracking store")
        try:
            for trial_id, run_id, done in api.export_mlflow(study, store, to):
                console.print(f"{trial_id}: run {run_id} {done}", highlight=False, markup=False)
        except (StudyError, StoreError) as e:
            _fail(str(e))
        return
    if to is not None:
        _fail("--to is for --what mlflow")
    if what == "tasks":
        if out is None:
            _fail("--what tasks needs --out DIR, a folder that does not exist yet")
        try:
            for path in api.export_tasks(study, store, out):
                console.print(str(path), highlight=False, markup=False)
        except (StudyError, StoreError) as e:
            _fail(str(e), getattr(e, "code", 2))
        return
    if what == "models":
        if out is None:
            _fail("--what models needs --out DIR, a folder that does not exist yet")
        try:
            folders, notes = api.export_models(study, store, out, trials)
        except (StudyError, StoreError) as e:
            _fail(str(e), getattr(e, "code", 2))
        for note in notes:
            errors.print(note, highlight=False, markup=False)
        for folder in folders:
            console.print(str(folder), highlight=False, markup=False)
        return
    if fmt not in ("csv", "json") or (what == "fits" and fmt != "json"):
        _fail(f"--format {fmt!r} is not available for --what {what}")
    try:
        if what == "fits":
            text = json.dumps(api.export_fits(study, store), indent=2)
        else:
            frame = exports[what](study, store)
            text = api.to_csv(frame) if fmt == "csv" else api.to_json(frame)
        if out:
            api.write_output(out, text, force=force)
    except (StudyError, StoreError) as e:
        _fail(str(e), getattr(e, "code", 2))  # OutputError: 1 for a full disk
    if not out:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


LAWS = ("n", "nd", "isoflop", "optimum", "forecast", "trend", "task", "lr", "data-constrained")


def _column(name: str, default: str):
    return Annotated[str, typer.Option(f"--{name}", help=f"the CSV column of {default}")]


@app.command()
def fit(
    study: OptionalStudyFile = None,
    store: StoreOption = None,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="fit a CSV of results instead of a run store")
    ] = None,
    law: Annotated[
        str,
        typer.Option(
            help="n: L(N) = E + A·N^-α; nd: L(N, D) = E + A/N^α + B/D^β; isoflop: N_opt ∝ C^a, "
            "D_opt ∝ C^b; optimum: L_opt(C) = E + k·C^-γ on each budget's windowed minimum; "
            "forecast: the loss at --target by approach 3 and by loss-at-optimum, with their "
            "backtests, and the method the backtest picks; trend: zero-shot accuracy against "
            "N; task: accuracy predicted in two steps, task loss from (N, D), accuracy from "
            "task loss; lr: lr*(N) = a·N^b from a learning-rate sweep, and the recipe: line "
            "to paste; data-constrained: L(N, D, U) of Muennighoff et al. 2023 (a U column)"
        ),
    ] = "n",
    as_json: Annotated[
        bool, typer.Option("--json", help="print one JSON object", metavar=FLAG)
    ] = False,
    n_col: _column("n", "N, parameters") = "N",
    d_col: _column("d", "D, training tokens (if absent: C / 6N)") = "D",
    c_col: _column("c", "C, training FLOPs (if absent: 6ND)") = "C",
    loss_col: _column("loss", "the loss") = "loss",
    accuracy_col: _column("accuracy", "zero-shot accuracy (trend)") = "accuracy",
    n_items_col: _column("n-items", "items behind each accuracy (trend; optional)") = "n_items",
    lr_col: _column("lr", "the peak learning rate (optional: fits each cell's best rate)") = "lr",
    task_col: _column("task", "the task (law task)") = "task",
    task_loss_col: _column("task-loss", "the task loss, bits per byte of the answer (task)") = (
        "task_loss"
    ),
    chance_col: _column("chance", "the chance accuracy of the task (task; if absent: 0)") = (
        "chance"
    ),
    group: Annotated[
        str | None, typer.Option(help="CSV column naming the run of each row (bootstrap unit)")
    ] = None,
    where: Annotated[
        list[str] | None, typer.Option("--where", help="keep CSV rows where COLUMN=VALUE")
    ] = None,
    drop_highest_loss: Annotated[
        int, typer.Option(min=0, help="drop this many highest-loss rows (Epoch AI drops 5)")
    ] = 0,
    compute: Annotated[
        float | None,
        typer.Option(help="nd: FLOP budget for the compute-optimal N, D (default: largest C)"),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="task, nd: N=COUNT,D=COUNT (task: the largest run); forecast: C= or N,D"),
    ] = None,
    architecture: Annotated[
        str | None, typer.Option(help="store: fit this architecture only")
    ] = None,
    n_boot: NBootOption = 1000,
) -> None:
    """Fit a scaling law to a study's run store, or to a CSV of published results."""
    from orchestrator import api

    if law not in LAWS:
        _fail(f"--law must be one of {', '.join(LAWS)}, not {law!r}")
    if csv is not None and (study is not None or store is not None):
        _fail("give --csv or a study (file or --store), not both")
    from analysis.fits import TableError
    from analysis.results import json_of

    try:
        if csv is not None:
            columns = {"N": n_col, "D": d_col, "C": c_col, "loss": loss_col}
            columns |= {
                "accuracy": accuracy_col,
                "n_items": n_items_col,
                "lr": lr_col,
                "task": task_col,
                "task_loss": task_loss_col,
                "chance": chance_col,
            }
            results = {csv.name: api.fit_csv(
                csv, law, columns, filters=where or [], drop_highest_loss=drop_highest_loss,
                n_boot=n_boot, group=group, compute=compute, target=target,
            )}  # fmt: skip
            shown = results[csv.name]
        else:
            shown = api.fit_store(study, store, law, architecture, n_boot, target)
            results = shown["architectures"]
    except (StudyError, StoreError, TableError) as e:
        _fail(str(e))
    if law == "task":  # as `study run` and `study report` print them, with --json too
        for name, result in sorted(results.items()):
            for warning in result.all_warnings(name):
                errors.print(f"warning: {warning}", highlight=False, markup=False)
    if as_json:
        sys.stdout.write(json.dumps(json_of(shown), indent=2) + "\n")
        return
    for name, result in results.items():
        if law == "trend":  # a results.TableTrend or ArchitectureTrends
            console.print(result.verdict, highlight=False)
            continue
        if law == "task":
            for line in result.lines(name):
                console.print(line, highlight=False, markup=False)
            continue
        console.print(result.summary(name), highlight=False, markup=False)
        for warning in result.warnings:
            errors.print(f"warning: {warning}", highlight=False, markup=False)
    if law == "lr" and len(results) > 1:  # one line for every architecture's rates
        console.print(api.recipe_for_all(results), highlight=False, markup=False)


def main() -> None:
    """Entry point of the `study` console script. A database error that reaches it (a store
    damaged past its first pages, a server gone mid-read) is one line and exit 2."""
    from orchestrator.store import database_errors

    try:
        with database_errors(""):
            app()
    except StoreError as e:
        errors.print(f"error: {e}", highlight=False, markup=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
