"""Every read of the run store: studies, their current trials, zero-shot results and fits, and
the DataFrames that analysis and the report take."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.orm import Session

from analysis.results import stored_forecast, stored_optimum
from orchestrator.store.tables import Eval, Fit, Metric, Prediction, Study, Trial
from orchestrator.store.urls import NoStudyError, StoreError


def get_study(session: Session, name: str | None = None) -> Study:
    """The study called `name`, or the only study in the store."""
    studies = session.scalars(select(Study)).all()
    if name is not None:
        studies = [s for s in studies if s.name == name]
    if not studies:
        raise NoStudyError(f"the store holds no study{f' named {name!r}' if name else ''}")
    if len(studies) > 1:
        names = ", ".join(s.name for s in studies)
        raise StoreError(f"the store holds several studies ({names}); name one")
    return studies[0]


def select_current(study: Study, *columns):
    """A query of the trials of the study's latest grid (whole rows, or `columns`), in grid
    order (architecture, N, tokens, seed)."""
    return (
        select(*(columns or (Trial,)))
        .where(Trial.study_id == study.id, Trial.current)
        .order_by(Trial.architecture, Trial.n_params, Trial.tokens, Trial.seed, Trial.id)
    )


def current_trials(session: Session, study: Study) -> list[Trial]:
    """The trials of the study's latest grid, in grid order (architecture, N, tokens, seed)."""
    return list(session.scalars(select_current(study)))


def evals_of(session: Session, study: Study) -> list[Eval]:
    """The zero-shot results of a study's current trials and of its n-gram baseline."""
    current = select(Trial.id).where(Trial.study_id == study.id, Trial.current)
    query = select(Eval).where(
        Eval.study_id == study.id, (Eval.trial_pk.in_(current)) | (Eval.trial_pk.is_(None))
    )
    return list(session.scalars(query.order_by(Eval.id)))


def predictions_of(session: Session, study: Study) -> list[Prediction]:
    """The stored predictions of a study, by architecture and budget."""
    query = select(Prediction).where(Prediction.study_id == study.id)
    return list(session.scalars(query.order_by(Prediction.architecture, Prediction.flops)))


PREDICTION_COLUMNS = [
    "architecture",
    "flops",
    "n_params",
    "tokens",
    "predicted_loss",
    "ci_low",
    "ci_high",
    "measured_loss",
    "error",
    "trial_id",
    "n_opt",
    "n_opt_ci_low",
    "n_opt_ci_high",
    "d_opt",
    "d_opt_ci_low",
    "d_opt_ci_high",
    "n_opt_from",
    "method",
    "forecast",
    "created_at",
    "verified_at",
]


def _optimum(p: Prediction) -> dict:
    """N_opt's interval and D_opt with its interval, as the fit behind a prediction keeps them
    (null where it has none, and for predictions made before D_opt was kept); the method and
    the forecast (`Forecast.to_json()["forecast"]` and its line: both methods, the backtest)
    it came from, null for predictions made before the backtest."""
    n_opt, d_opt = stored_optimum(p.fit)
    n_ci, d_ci = n_opt.ci or (None, None), d_opt.ci or (None, None)
    forecast = stored_forecast(p.fit)
    return {"n_opt_ci_low": n_ci[0], "n_opt_ci_high": n_ci[1], "d_opt": d_opt.estimate,
            "d_opt_ci_low": d_ci[0], "d_opt_ci_high": d_ci[1],
            "method": forecast and forecast.method,
            "forecast": forecast and forecast.json}  # fmt: skip


def predictions_frame(session: Session, study: Study) -> pd.DataFrame:
    """One row per stored prediction: what was predicted (architecture, flops, the cell's N and
    tokens, the loss and its 95% interval; the compute-optimal N and D there, with theirs),
    what its trial measured (null until it has trained), the relative error and the trial."""
    rows = []
    for p in predictions_of(session, study):
        optimum = _optimum(p)
        rows.append([optimum[c] if c in optimum else getattr(p, c) for c in PREDICTION_COLUMNS])
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)


def fits_of(session: Session, study: Study) -> list[Fit]:
    """The stored fits of a study."""
    return list(session.scalars(select(Fit).where(Fit.study_id == study.id).order_by(Fit.id)))


# The columns of `study export --what trials`, in their public order; the trial frame holds
# these and then the driver's own (where and when a trial ran, why it failed, its weights).
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
TRIAL_COLUMNS = EXPORT_COLUMNS + [
    "device",
    "node",
    "heartbeat_at",
    "error",
    "checkpoint",
    "checkpoint_bytes",
    "checkpoint_sha256",
    "parent",
    "compute",
    "workers",
    "strategy",
]


def trials_frame(session: Session, study: Study) -> pd.DataFrame:
    """One row per trial of the study's current grid. Read as plain rows, the lr straight from
    the stored configuration: 10,000 trials in about a tenth of a second."""
    special = {
        "lr": Trial.config[("optim", "lr")].as_float(),
        "status": type_coerce(Trial.status, String),  # the text, without the enum's processing
        # the FLOPs it trained itself: a branch's trunk trained (and is charged) its prefix
        "compute": Trial.flops - Trial.flops_per_token * func.coalesce(Trial.shared_tokens, 0),
    }
    columns = [special[c].label(c) if c in special else getattr(Trial, c) for c in TRIAL_COLUMNS]
    rows = [tuple(row) for row in session.execute(select_current(study, *columns))]
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS)  # tuples: pandas is slow on Row objects


def metrics_frame(session: Session, study: Study, max_points: int | None = None):
    """The metric points of the study's current trials: trial_id, step, tokens, name, value.

    With `max_points`, each trial's curve of each metric is thinned to about that many evenly
    spaced points (its first and last kept): what a plot needs. The rows are read through the
    driver's cursor in index order and thinned in Python: a million rows in about 1.5 s, where
    SQLAlchemy's rows take 4 s and a window query in SQLite 3 s."""
    columns = ["trial_id", "step", "tokens", "name", "value"]
    names = {t.id: t.trial_id for t in current_trials(session, study)}
    if not names:
        return pd.DataFrame(columns=columns)
    query = (
        select(Metric.trial_pk, Metric.step, Metric.tokens, Metric.name, Metric.value)
        .where(Metric.trial_pk.in_(list(names)))
        .order_by(Metric.trial_pk, Metric.name, Metric.step)
    )
    sql = str(query.compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
    cursor = session.connection().connection.cursor()  # the driver's: no per-row objects
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not rows:
        return pd.DataFrame(columns=columns)
    if max_points:
        curve = [(row[0], row[3]) for row in rows]  # one trial (pk) and one metric name
        starts = [i for i in range(len(rows)) if i == 0 or curve[i] != curve[i - 1]]
        ends = starts[1:] + [len(rows)]
        keep = [np.unique(np.linspace(a, b - 1, min(b - a, max_points)).round().astype(int))
                for a, b in zip(starts, ends, strict=True)]  # fmt: skip
        rows = [rows[i] for i in np.concatenate(keep).tolist()]
    pk, step, tokens, name, value = zip(*rows, strict=True)
    trial_ids = [names[k] for k in pk]
    return pd.DataFrame(dict(zip(columns, (trial_ids, step, tokens, name, value), strict=True)))


def eval_keys(trials: list[Trial]) -> dict[int, str]:
    """The key of each trial's current evaluation settings, by primary key."""
    return {t.id: t.spec.eval_key for t in trials}


def outdated(session: Session, study: Study) -> list[str]:
    """The finished current trials measured (validation loss, zero-shot results) under other
    evaluation settings than the study's current ones: their training is current (same hash),
    their measurements are not comparable with the others'."""
    trials = [t for t in current_trials(session, study) if t.status.value == "finished"]
    keys = eval_keys(trials)
    return [t.trial_id for t in trials if t.eval_key != keys[t.id]]


def evals_frame(session: Session, study: Study) -> pd.DataFrame:
    """The final zero-shot results of each current trial and the n-gram baseline under the
    study's current evaluation settings: one row per trial (or baseline), task and metric,
    with the per-item values. Results under earlier settings stay in the store (and in
    `study export --what evals`) but are not mixed in."""
    trials = {t.id: t for t in current_trials(session, study)}
    keys = eval_keys(list(trials.values()))
    current = set(keys.values())
    rows = [
        {
            "trial_id": trials[e.trial_pk].trial_id if e.trial_pk else None,
            "architecture": e.architecture,
            "n_params": trials[e.trial_pk].n_params if e.trial_pk else None,
            "step": e.step,
            "task": e.task,
            "metric": e.metric,
            "value": e.value,
            "n_items": e.n_items,
            "chance": e.chance,
            "ci_low": e.ci_low,
            "ci_high": e.ci_high,
            "per_item": e.per_item,
        }
        for e in evals_of(session, study)
        if (e.eval_key in current if e.trial_pk is None else e.eval_key == keys[e.trial_pk])
        and (e.trial_pk is None or trials[e.trial_pk].status.value == "finished")
    ]
    columns = ["trial_id", "architecture", "n_params", "step", "task", "metric", "value"]
    frame = pd.DataFrame(
        rows, columns=columns + ["n_items", "chance", "ci_low", "ci_high", "per_item"]
    )
    if frame.empty:
        return frame
    last = frame.groupby("trial_id", dropna=False).step.transform("max")
    return frame[frame.step == last].reset_index(drop=True)  # the end of each trial


EVAL_COLUMNS = [
    "trial_id",
    "architecture",
    "n_params",
    "step",
    "tokens",
    "task",
    "metric",
    "value",
    "n_items",
    "chance",
    "ci_low",
    "ci_high",
    "eval_key",
]


def all_evals_frame(session: Session, study: Study) -> pd.DataFrame:
    """Every zero-shot result of the study's trials and of its n-gram baseline (architecture
    `ngram`, no trial), at every step scored and under every evaluation setting (`eval_key`):
    one row per trial, step, task and metric; what `study export --what evals` writes."""
    trials = {t.id: t for t in study.trials}
    rows = []
    for e in evals_of(session, study):
        trial = trials.get(e.trial_pk)
        rows.append([trial.trial_id if trial else None, e.architecture,
                     trial.n_params if trial else None,
                     *(getattr(e, c) for c in EVAL_COLUMNS[3:])])  # fmt: skip
    return pd.DataFrame(rows, columns=EVAL_COLUMNS)


def task_points(session: Session, study: Study) -> pd.DataFrame:
    """Every zero-shot evaluation of the study's finished current trials under its current
    evaluation settings, at every step scored (the final one and any kept checkpoint): one row
    per trial, step and task with run (the trial id), architecture, task, N, D (tokens seen
    at that step), step, task_loss (bpb), accuracy (acc) with its interval and chance, and
    whether the step is the trial's last. What the two-step prediction of accuracy takes."""
    trials = {t.id: t for t in current_trials(session, study) if t.status.value == "finished"}
    keys = eval_keys(list(trials.values()))
    columns = ["run", "architecture", "task", "N", "D", "step", "task_loss", "accuracy",
               "ci_low", "ci_high", "chance", "final"]  # fmt: skip
    cells: dict[tuple, dict] = {}
    for e in evals_of(session, study):
        trial = trials.get(e.trial_pk)
        if trial is None or e.eval_key != keys[trial.id] or e.metric not in ("acc", "bpb"):
            continue
        row = cells.setdefault((trial.id, e.step, e.task), {
            "run": trial.trial_id, "architecture": trial.architecture, "task": e.task,
            "N": float(trial.n_params), "D": float(e.tokens), "step": e.step,
            "final": e.step == trial.spec.steps,
        })  # fmt: skip
        if e.metric == "bpb":
            row["task_loss"] = e.value
        else:
            row |= {"accuracy": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high,
                    "chance": e.chance}  # fmt: skip
    frame = pd.DataFrame(list(cells.values()), columns=columns)
    return frame.dropna(subset=["task_loss", "accuracy"]).reset_index(drop=True)
