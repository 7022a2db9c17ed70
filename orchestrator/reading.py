"""The read commands, which need only the store (not the study's data): `status`, the
`export_*` tables, `report`, `fit_store` and `upgrade`. Of a study file only the name is read;
a store file or URL does as well."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from analysis.report.cards import file_name
from orchestrator import fitting
from orchestrator.outputs import check_output_file, output_errors
from orchestrator.spec import study_name
from orchestrator.stages import report_path
from orchestrator.store import (
    EXPORT_COLUMNS,
    NoStudyError,
    RunStore,
    StoreError,
    database_errors,
    default_url,
    run_active,
    sqlite_file,
    stale,
    upgrade_store,
)
from trainers.integrity import verify_final


def open_study(path: str | Path | None, store: str | None) -> RunStore:
    """The study named by a study file, a store URL, or both (for read commands), in its store:
    use it in a `with`, which closes it (its engine and file handles too). Of the study file
    only the name is read: the store holds the rest."""
    if path is None and store is None:
        raise StoreError("give a study file or --store URL")
    name = study_name(path) if path is not None else None
    return RunStore.open_study(store or default_url(name), name)


def finished_hashes(name: str, store: str | None = None) -> set[str]:
    """The hashes of a study's finished trials in its store (runs/<name>.db by default): none
    where there is no store or no such study in it yet (nothing is made here). Raises
    StoreError for a store this version cannot read."""
    url = store or default_url(name)
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return set()
    try:
        with RunStore.open_study(url, name) as run_store:
            return run_store.finished_hashes()
    except NoStudyError:  # not in it yet
        return set()


def already_trained(name: str, hashes: list[str], store: str | None = None) -> str:
    """What `study plan` says of the store before anything trains: how many of the grid's
    trials (their `hashes`) a run would train, and how many it finds finished there (from an
    earlier run, whatever changed since: a changed recipe, a changed sweep)."""
    url = store or default_url(name)
    path = sqlite_file(url)
    try:
        done = finished_hashes(name, store)
    except StoreError as e:  # a store this version cannot read: say so, count nothing
        n = len(hashes)
        return f"to train: {n} of {n} trials unless {url} says otherwise: {e}"
    found = sum(h in done for h in hashes)
    where = f"in {path or url}" if path is None or path.exists() else f"({path} does not exist yet)"
    return (f"to train: {len(hashes) - found} of {len(hashes)} trials; {found} finished already "
            f"{where}")  # fmt: skip


def upgrade(
    path: str | Path | None = None, store: str | None = None
) -> tuple[str, str, Path | None]:
    """Migrate the store of a study (or at a URL) to the schema this version reads; returns the
    schema it had, the one it has now, and the copy kept of the old store (SQLite)."""
    if path is None and store is None:
        raise StoreError("give a study file or --store URL")
    return upgrade_store(store or default_url(study_name(path)))


STALE = "interrupted: the run that trained it is gone (its driver stopped)"


def status(path: str | Path | None = None, store: str | None = None) -> pd.DataFrame:
    """The trials of a study as the store shows them; trials left `running` or `pending` by a
    run that is gone are shown `interrupted` (the next run resumes them). A run is gone when it
    no longer holds the store's lock (SQLite, PostgreSQL), or, on other database servers, when
    the heartbeats of its trials stop. `weights` says why a finished trial's final weights
    cannot be used, where they are gone or another size than the trainer wrote ("" else)."""
    with open_study(path, store) as run_store:
        url, frame = run_store.url, run_store.trials_frame()
    frame["weights"] = [
        verify_final(Path(c), None if pd.isna(b) else int(b), None, full=False)
        if s == "finished" and isinstance(c, str) else ""
        for s, c, b in zip(frame.status, frame.checkpoint, frame.checkpoint_bytes, strict=True)
    ]  # fmt: skip
    active = run_active(url)  # a lock tells, for SQLite and PostgreSQL; elsewhere, heartbeats
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


def export_evals(path: str | Path | None = None, store: str | None = None) -> pd.DataFrame:
    """The zero-shot results: one row per trial, evaluation point, task and metric (the
    n-gram baseline as architecture `ngram`), under every evaluation setting they were
    scored with (`eval_key`)."""
    with open_study(path, store) as run_store:
        return run_store.all_evals_frame()


def export_predictions(path: str | Path | None = None, store: str | None = None) -> pd.DataFrame:
    """The predictions: one row per architecture and budget, with the model chosen (N,
    tokens), the loss predicted and its 95% interval, and what its trial measured (null until
    it has trained) with the relative error."""
    with open_study(path, store) as run_store:
        return run_store.predictions_frame()


def export_fits(path: str | Path | None = None, store: str | None = None) -> list[dict]:
    """The stored fits of a study."""
    with open_study(path, store) as run_store:
        return run_store.fits()


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
) -> tuple[Path, list[str]]:
    """Refit the laws from the store(s) and write the report: of one study, or the comparison
    of several (`sources`: study files, store files or URLs), with their model cards. Returns
    the report's path and the fits' warnings."""
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

    if out:  # a device, a FIFO or a folder is refused before the fits are stored
        check_output_file(out, force=True)
    views = []
    for path, url in pairs:
        with open_study(path, url) as run_store, database_errors(run_store.url):
            if not out and len(pairs) == 1:  # its default path, checked as --out is
                check_output_file(report_path(run_store.name), force=True)
            views.append(fitting.fit_and_store(run_store, n_boot))  # read-only, full: named
    names = [v.name for v in views]
    if len(set(names)) < len(names):
        raise StoreError(f"two of the stores hold a study of the same name ({', '.join(names)})")
    if out:
        target = Path(out)
    elif len(views) == 1:
        target = report_path(views[0].name)
    else:
        target = Path("reports") / (file_name("compare-" + "-".join(names)) + ".html")
    prefix = (lambda v: f"{v.name}: ") if len(views) > 1 else (lambda v: "")
    warnings = [prefix(v) + w for v in views for w in v.fits.warnings()]
    with output_errors(target):
        return write_report(check_output_file(target, force=True), views), warnings


def to_json(frame: pd.DataFrame) -> str:
    """A DataFrame as a JSON list of objects (NaN as null, times in ISO 8601; a cell that
    holds an object, such as a prediction's forecast, as that object; 15 significant digits,
    pandas' most, where its default keeps 10)."""
    return frame.to_json(orient="records", indent=2, date_format="iso", double_precision=15)


def to_csv(frame: pd.DataFrame) -> str:
    """A DataFrame as CSV, a cell that holds an object (a prediction's forecast) as its JSON."""
    text = frame.copy()
    for column in text.columns:
        if any(isinstance(v, dict | list) for v in text[column]):
            text[column] = [json.dumps(v) if isinstance(v, dict | list) else v
                            for v in text[column]]  # fmt: skip
    return text.to_csv(index=False)


def fit_store(
    path: str | Path | None,
    store: str | None,
    law: str,
    architecture: str | None = None,
    n_boot: int = 1000,
    target: str | None = None,
) -> dict:
    """Fit a law to a study's finished trials (or its zero-shot trends, or the two-step
    prediction of accuracy: law "task", at `target` or the largest model held out): one
    JSON-ready result per architecture, under {"study", "law", "architectures"}."""
    with open_study(path, store) as run_store:
        return fitting.fit_stored(run_store, law, architecture, n_boot, target)
