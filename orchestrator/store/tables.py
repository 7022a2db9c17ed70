"""The run store's tables: studies, trials, metrics, zero-shot results, fits and predictions."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from trainers.trial import TrialSpec


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # naive UTC: SQLite keeps no time zones


# A count of tokens or parameters: 64 bits on every database (PostgreSQL's INTEGER has 32; a
# SQLite INTEGER has 64 already, and stays INTEGER so that its rowid keys are unchanged).
Count = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class TrialStatus(enum.StrEnum):
    """Where a trial stands; only `finished` trials are skipped by a rerun."""

    pending = "pending"
    running = "running"
    finished = "finished"
    failed = "failed"
    interrupted = "interrupted"


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spec: Mapped[dict] = mapped_column(JSON)  # the latest validated study file
    spec_hash: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict | None] = mapped_column(JSON)  # the splits: documents and tokens of each
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
    trials: Mapped[list[Trial]] = relationship(back_populates="study", cascade="all, delete")


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("study_id", "hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    trial_id: Mapped[str] = mapped_column(String(200))
    hash: Mapped[str] = mapped_column(String(64))
    current: Mapped[bool] = mapped_column(default=True)  # in the grid of the latest study file
    architecture: Mapped[str] = mapped_column(String(40))
    size: Mapped[str] = mapped_column(String(40))
    seed: Mapped[int]
    config: Mapped[dict] = mapped_column(JSON)
    eval_key: Mapped[str | None] = mapped_column(String(16))  # the settings it was measured under
    n_params: Mapped[int] = mapped_column(Count)  # non-embedding N; planned, then measured
    total_params: Mapped[int] = mapped_column(Count)
    tokens: Mapped[int] = mapped_column(Count)  # the budget
    flops_per_token: Mapped[int] = mapped_column(Count)
    flops: Mapped[float]  # training compute C = flops_per_token × tokens trained
    status: Mapped[TrialStatus] = mapped_column(
        Enum(TrialStatus, name="trial_status", create_constraint=True, length=20),
        default=TrialStatus.pending,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    tokens_done: Mapped[int] = mapped_column(Count, default=0)  # tokens processed
    tokens_scored: Mapped[int] = mapped_column(Count, default=0)  # tokens the loss was computed on
    val_loss: Mapped[float | None]
    tokens_per_s: Mapped[float | None]  # training steps only
    mfu: Mapped[float | None]  # model FLOPs utilisation against the trial's peak
    epochs: Mapped[float | None]  # passes over the training split
    node: Mapped[str | None] = mapped_column(String(200))
    device: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    wall_s: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(Text)
    checkpoint: Mapped[str | None] = mapped_column(Text)
    checkpoint_bytes: Mapped[int | None] = mapped_column(Count)  # final.pt as written and
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(64))  # read back by the trainer
    heartbeat_at: Mapped[datetime | None]  # refreshed by the driver while the trial runs
    parent: Mapped[str | None] = mapped_column(String(64))  # a branch: its trunk's hash
    shared_tokens: Mapped[int | None] = mapped_column(Count)  # a branch: its trunk's tokens it
    # started from (trained, and counted in the study's compute, once: by the trunk)
    workers: Mapped[int | None]  # processes it trained on (Ray Train workers); null: one,
    # from before the column
    strategy: Mapped[str | None] = mapped_column(String(10))  # how they shared it: "ddp"
    study: Mapped[Study] = relationship(back_populates="trials")

    @property
    def spec(self) -> TrialSpec:
        """The TrialSpec this row was made from."""
        return TrialSpec.from_dict(self.config)


class Metric(Base):
    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_trial_name_step", "trial_pk", "name", "step"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    trial_pk: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    step: Mapped[int]
    tokens: Mapped[int] = mapped_column(Count)
    name: Mapped[str] = mapped_column(String(60))
    value: Mapped[float]
    wall_time: Mapped[datetime] = mapped_column(default=utc_now)


class Eval(Base):
    """One zero-shot result: a trial's (or the study's n-gram baseline's) metric on a task."""

    __tablename__ = "evals"
    __table_args__ = (Index("ix_evals_study_task", "study_id", "task"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    trial_pk: Mapped[int | None] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    architecture: Mapped[str] = mapped_column(String(40))  # "ngram" for the baseline
    eval_key: Mapped[str | None] = mapped_column(String(16))  # the evaluation settings' key
    step: Mapped[int]
    tokens: Mapped[int] = mapped_column(Count)
    task: Mapped[str] = mapped_column(String(60))
    metric: Mapped[str] = mapped_column(String(60))
    value: Mapped[float | None]
    n_items: Mapped[int]
    chance: Mapped[float | None]
    ci_low: Mapped[float | None]
    ci_high: Mapped[float | None]
    per_item: Mapped[list | None] = mapped_column(JSON)  # for intervals over items


class Fit(Base):
    __tablename__ = "fits"
    __table_args__ = (UniqueConstraint("study_id", "architecture", "law"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    architecture: Mapped[str] = mapped_column(String(40))
    law: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict] = mapped_column(JSON)
    quality: Mapped[dict] = mapped_column(JSON)
    data: Mapped[list] = mapped_column(JSON)  # the points fitted: trial ids, N, loss
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Prediction(Base):
    """A loss predicted at a compute budget beyond the grid, stored before the trial that
    verifies it trains (`trial_hash`: that trial's identity), then its measured loss."""

    __tablename__ = "predictions"
    # one per budget and training setup: a prediction made for other training settings stays
    __table_args__ = (UniqueConstraint("study_id", "architecture", "flops", "trial_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    architecture: Mapped[str] = mapped_column(String(40))
    flops: Mapped[float]  # the budget predicted
    n_opt: Mapped[float]  # the compute-optimal N the fits give there
    n_opt_from: Mapped[str] = mapped_column(String(40))  # "isoflop" or "nd"
    trial_id: Mapped[str] = mapped_column(String(200))  # the trial that verifies it
    trial_hash: Mapped[str] = mapped_column(String(64))
    cell: Mapped[dict] = mapped_column(JSON)  # its shape, label, tokens, lr and seed
    n_params: Mapped[int] = mapped_column(Count)
    tokens: Mapped[int] = mapped_column(Count)
    predicted_loss: Mapped[float]
    ci_low: Mapped[float | None]  # 95% bootstrap interval; null where the fit gives none
    ci_high: Mapped[float | None]
    fit: Mapped[dict] = mapped_column(JSON)  # the law it came from and the trials it was fitted on
    measured_loss: Mapped[float | None]
    error: Mapped[float | None]  # predicted / measured - 1, as the backtest
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    verified_at: Mapped[datetime | None]
