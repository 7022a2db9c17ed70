"""The run store as pandas DataFrames: one row per trial, one row per metric point."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from orchestrator.store import Metric, Study, Trial, current_trials, evals_of

TRIAL_COLUMNS = [
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
    "attempts",
    "wall_s",
    "tokens_per_s",
    "mfu",
    "device",
    "node",
    "hash",
    "error",
]


def trials_frame(session: Session, study: Study) -> pd.DataFrame:
    """One row per trial of the study's current grid."""
    rows = []
    for t in current_trials(session, study):
        row = {c: getattr(t, c) for c in TRIAL_COLUMNS if c not in ("status", "lr")}
        rows.append(row | {"status": t.status.value, "lr": t.config["lr"]})
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS)


def metrics_frame(session: Session, study: Study, max_points: int | None = None):
    """The metric points of the study's current trials: trial_id, step, tokens, name, value.

    With `max_points`, each trial's curve of each metric is thinned in SQL to about that many
    evenly spaced points (its last always kept): what a plot needs, without reading a long
    run's every step."""
    ids = [t.id for t in current_trials(session, study)]
    if not ids:
        return pd.DataFrame(columns=["trial_id", "step", "tokens", "name", "value"])
    numbered = (
        select(
            Metric.trial_pk, Metric.step, Metric.tokens, Metric.name, Metric.value, Metric.id,
            func.row_number().over(partition_by=(Metric.trial_pk, Metric.name),
                                   order_by=Metric.id).label("rank"),
            func.count().over(partition_by=(Metric.trial_pk, Metric.name)).label("total"),
        )
        .where(Metric.trial_pk.in_(ids))
        .subquery()
    )  # fmt: skip
    query = select(
        Trial.trial_id, numbered.c.step, numbered.c.tokens, numbered.c.name, numbered.c.value
    ).join(Trial, Trial.id == numbered.c.trial_pk)
    if max_points:
        stride = case((numbered.c.total > max_points, numbered.c.total / max_points), else_=1)
        query = query.where(
            ((numbered.c.rank - 1) % stride == 0) | (numbered.c.rank == numbered.c.total)
        )
    query = query.order_by(numbered.c.trial_pk, numbered.c.id)
    frame = pd.read_sql_query(query, session.connection())
    return frame.set_axis(["trial_id", "step", "tokens", "name", "value"], axis=1)


def evals_frame(session: Session, study: Study) -> pd.DataFrame:
    """The final zero-shot results of each current trial and the n-gram baseline: one row per
    trial (or baseline), task and metric, with the per-item values."""
    trials = {t.id: t for t in current_trials(session, study)}
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
        if e.trial_pk is None or trials[e.trial_pk].status.value == "finished"
    ]
    columns = ["trial_id", "architecture", "n_params", "step", "task", "metric", "value"]
    frame = pd.DataFrame(
        rows, columns=columns + ["n_items", "chance", "ci_low", "ci_high", "per_item"]
    )
    if frame.empty:
        return frame
    last = frame.groupby("trial_id", dropna=False).step.transform("max")
    return frame[frame.step == last].reset_index(drop=True)  # the end of each trial
