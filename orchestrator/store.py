"""The run store: studies, trials, metrics and fits in SQLite (any SQLAlchemy URL works).

Only the driver process writes it. Functions here take a `Session`; callers own transactions.
"""

from __future__ import annotations

import enum
import fcntl
import math
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    Enum,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from trainers.trial import TrialSpec, device_label

# The schema is versioned by alembic (migrations in orchestrator/migrations), in a table of its
# own. Release 0.1 kept its version in `schema_info` instead; its last version is the baseline.
VERSION_TABLE = "study_schema_version"
SCHEMA_REVISION = "0002"  # the newest migration (a test checks): a store at it opens at once
LEGACY_VERSION = 4
MIGRATIONS = Path(__file__).parent / "migrations"


class StoreError(RuntimeError):
    """A store that cannot be opened or does not hold what was asked for."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # naive UTC: SQLite keeps no time zones


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
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now)
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
    n_params: Mapped[int]  # non-embedding N; planned from the shape, then measured
    total_params: Mapped[int]
    tokens: Mapped[int]  # the budget
    flops_per_token: Mapped[int]
    flops: Mapped[float]  # training compute C = flops_per_token × tokens trained
    status: Mapped[TrialStatus] = mapped_column(
        Enum(TrialStatus, name="trial_status", create_constraint=True, length=20),
        default=TrialStatus.pending,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    tokens_done: Mapped[int] = mapped_column(default=0)  # tokens processed
    tokens_scored: Mapped[int] = mapped_column(default=0)  # tokens the loss was computed on
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
    heartbeat_at: Mapped[datetime | None]  # refreshed by the driver while the trial runs
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
    tokens: Mapped[int]
    name: Mapped[str] = mapped_column(String(60))
    value: Mapped[float]
    wall_time: Mapped[datetime] = mapped_column(default=_now)


class Eval(Base):
    """One zero-shot result: a trial's (or the study's n-gram baseline's) metric on a task."""

    __tablename__ = "evals"
    __table_args__ = (Index("ix_evals_study_task", "study_id", "task"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    trial_pk: Mapped[int | None] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    architecture: Mapped[str] = mapped_column(String(40))  # "ngram" for the baseline
    step: Mapped[int]
    tokens: Mapped[int]
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
    created_at: Mapped[datetime] = mapped_column(default=_now)


def default_url(study_name: str) -> str:
    """The store of a study: `runs/<name>.db` under the current directory."""
    return f"sqlite:///runs/{study_name}.db"


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite store; None for a store on a database server or in memory."""
    if not url.startswith("sqlite:///") or url.startswith("sqlite:///:memory:"):
        return None
    return Path(url.removeprefix("sqlite:///"))


@contextmanager
def run_lock(url: str, wait: bool = False) -> Iterator[None]:
    """One `study run` at a time on a store: an exclusive lock on `<store file>.lock`, with who
    holds it written inside. The operating system releases it when the holder ends, even by
    SIGKILL, so a dead run never blocks the next. Raises StoreError naming the holder, unless
    `wait`, which blocks until the store is free. Stores on a database server are not locked
    here (their own locking keeps writes consistent)."""
    store = _sqlite_file(url)
    if store is None:
        yield
        return
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{store}.lock", "a+") as handle:
        try:
            _acquire(handle, wait)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise StoreError(
                f"the store {store} is in use by {holder}: wait for that run to finish (or "
                "stop it), or pass --wait to start when it does"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            f"study run (pid {os.getpid()} on {socket.gethostname()}, since "
            f"{_now().strftime('%Y-%m-%d %H:%M:%S UTC')})\n"
        )
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()  # the file stays; the lock goes with the handle


def _acquire(handle, wait: bool) -> None:
    if wait:
        fcntl.flock(handle, fcntl.LOCK_EX)
        return
    for attempt in range(5):  # `study status` may be probing the lock for a moment
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == 4:
                raise
            time.sleep(0.1)


def run_active(url: str) -> bool | None:
    """Whether a `study run` holds the store now; None where that cannot be known (a store on
    a database server). A trial the store shows running while no run is active was left by a
    driver that died."""
    store = _sqlite_file(url)
    if store is None:
        return None
    lock = Path(f"{store}.lock")
    if not lock.exists():
        return False
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (study status) never block the driver
    # In WAL mode, NORMAL syncs at checkpoints, not at every commit: a killed process loses
    # nothing committed; only a power cut may lose the last commits, never the file's integrity.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _engine(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _migrations(connection):
    """Alembic's config on a connection, and the migration scripts (imported here: alembic
    takes a third of a second to import, which commands that only read need not pay)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config, ScriptDirectory.from_config(config)


def _revision(connection) -> str | None:
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def _legacy_version(connection) -> int | None:
    return connection.execute(text("SELECT version FROM schema_info")).scalar()


def _stored_revision(engine: Engine, url: str) -> tuple[str, bool]:
    """The schema revision of a store that has tables, and whether it is a store of release
    0.1 (its schema_info version 4 is revision 0001). Raises StoreError for a database that is
    not a run store, or a store too old to upgrade."""
    tables = set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        if VERSION_TABLE in tables:
            return _revision(connection), False
        if "schema_info" not in tables:
            raise StoreError(f"{url} is not a run store of this tool (no schema version)")
        version = _legacy_version(connection)
    if version != LEGACY_VERSION:
        raise StoreError(
            f"the store at {url} has schema version {version}, from a release too old to "
            "upgrade; move it aside and run the study again"
        )
    return "0001", True


def _refuse_newer(revision: str, url: str) -> None:
    """Raise StoreError if `revision` is none of this tool's migrations: a newer tool made it."""
    _, scripts = _migrations(None)
    if revision not in {script.revision for script in scripts.walk_revisions()}:
        raise StoreError(
            f"the store at {url} has schema {revision}, newer than this version of the tool "
            f"knows (it reads {SCHEMA_REVISION}): upgrade the tool instead (pip install -U "
            "scaling-study)"
        )


def open_store(url: str, create: bool = True) -> Engine:
    """An engine on the store at `url`; creates the schema if asked. A store of another schema
    version is refused, with the command that upgrades it (or a word that the tool is older
    than the store)."""
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        if not create:
            raise StoreError(f"no run store at {path}; run the study first (study run FILE)")
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = _engine(url)
    if not inspect(engine).get_table_names():
        if not create:
            raise StoreError(f"the store at {url} is empty; run the study first")
        from alembic import command

        with engine.begin() as connection:
            Base.metadata.create_all(connection)
            config, _ = _migrations(connection)
            command.stamp(config, "head")
        return engine
    revision, legacy = _stored_revision(engine, url)
    if revision == SCHEMA_REVISION:
        return engine
    _refuse_newer(revision, url)
    upgrade = f"upgrade it with `study upgrade --store {url}` (it keeps a copy of the old one)"
    if legacy:
        raise StoreError(f"the store at {url} is from release 0.1 (schema 4); {upgrade}")
    raise StoreError(
        f"the store at {url} has schema {revision}; this tool reads {SCHEMA_REVISION}: {upgrade}"
    )


def upgrade_store(url: str) -> tuple[str, str, Path | None]:
    """Migrate a store to the schema this tool reads, under the run lock (so never under a
    running study). A SQLite store is copied first, beside itself. Returns the revision it had,
    the revision it has now and the copy. Raises StoreError if there is nothing to upgrade."""
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        raise StoreError(f"no run store at {path}; run the study first (study run FILE)")
    with run_lock(url):
        engine = _engine(url)
        if not inspect(engine).get_table_names():
            raise StoreError(f"no run store at {url}; run the study first (study run FILE)")
        before, legacy = _stored_revision(engine, url)
        if before == SCHEMA_REVISION:
            engine.dispose()
            return before, SCHEMA_REVISION, None
        _refuse_newer(before, url)
        copy = _backup(engine, path, before) if path is not None else None
        from alembic import command

        with engine.begin() as connection:
            config, _ = _migrations(connection)
            if legacy:
                command.stamp(config, "0001")
            command.upgrade(config, "head")
        engine.dispose()
        return before, SCHEMA_REVISION, copy


def _backup(engine: Engine, path: Path, revision: str) -> Path:
    """A consistent copy of a SQLite store (WAL included) beside it, named for its revision."""
    copy = path.with_name(f"{path.name}.schema-{revision}.bak")
    raw = engine.raw_connection()
    try:
        target = sqlite3.connect(copy)
        raw.driver_connection.backup(target)
        target.close()
    finally:
        raw.close()
    return copy


def register_study(
    session: Session,
    name: str,
    spec: dict,
    spec_hash: str,
    trials: list[TrialSpec],
    planned: dict,
    data: dict | None = None,
) -> Study:
    """Record the study and its grid: new trials as pending, known ones (by hash) kept.

    `planned` maps trial ids to {n_params, total_params, flops_per_token}; `data` describes the
    splits (documents and tokens of each). Trials of an earlier
    version of the study file that are not in this grid stay in the store, marked not current.
    """
    study = session.scalar(select(Study).where(Study.name == name))
    if study is None:
        study = Study(name=name, spec=spec, spec_hash=spec_hash)
        session.add(study)
        session.flush()
    else:
        study.spec, study.spec_hash, study.updated_at = spec, spec_hash, _now()
    study.data = data
    known = {t.hash: t for t in study.trials}
    hashes = {t.hash for t in trials}
    for row in known.values():
        row.current = row.hash in hashes
    for spec_ in trials:
        row = known.get(spec_.hash)
        if row is not None:
            row.trial_id, row.config = spec_.trial_id, spec_.to_dict()  # placement may change
            continue
        plan = planned[spec_.trial_id]
        session.add(
            Trial(
                study=study,
                trial_id=spec_.trial_id,
                hash=spec_.hash,
                architecture=spec_.architecture,
                size=spec_.size,
                seed=spec_.seed,
                config=spec_.to_dict(),
                n_params=plan["n_params"],
                total_params=plan["total_params"],
                tokens=spec_.tokens,
                flops_per_token=plan["flops_per_token"],
                flops=float(plan["flops_per_token"]) * spec_.tokens,
            )
        )
    session.flush()
    return study


def get_study(session: Session, name: str | None = None) -> Study:
    """The study called `name`, or the only study in the store."""
    studies = session.scalars(select(Study)).all()
    if name is not None:
        studies = [s for s in studies if s.name == name]
    if not studies:
        raise StoreError(f"the store holds no study{f' named {name!r}' if name else ''}")
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


def start_attempt(session: Session, trial: Trial) -> None:
    """A trial is about to be (re)queued: count the attempt. Its metrics stay until the trainer
    starts (and reports them again if it resumes from a checkpoint)."""
    trial.attempts += 1
    trial.status = TrialStatus.pending
    trial.error = None
    trial.heartbeat_at = _now()


def record_event(
    session: Session, trial: Trial, event: dict, metrics: list[dict] | None = None
) -> None:
    """Write one event reported by a trainer. Its metric rows are appended to `metrics` when
    given (for the caller to insert with others in one statement), else inserted now."""
    kind = event["event"]
    trial.heartbeat_at = when = _now()
    insert_now = metrics is None
    metrics = [] if metrics is None else metrics

    def point(name: str, value) -> dict:
        return {"trial_pk": trial.id, "step": event["step"], "tokens": event["tokens"],
                "wall_time": when, "name": name, "value": float(value)}  # fmt: skip

    if kind == "start":
        # a resumed trainer reports its history up to the checkpoint again, right after this
        session.execute(delete(Metric).where(Metric.trial_pk == trial.id))
        session.execute(delete(Eval).where(Eval.trial_pk == trial.id))
        trial.tokens_done = event.get("resumed_tokens", 0)
        trial.val_loss = None
        trial.status = TrialStatus.running
        trial.error = None  # a retry starts afresh; the console said why it was needed
        trial.started_at = _now()
        trial.n_params = event["n_params"]
        trial.total_params = event["total_params"]
        trial.flops_per_token = event["flops_per_token"]
        trial.device = device_label(event)
        trial.node = event.get("node") or event.get("host")
    elif kind == "train":
        trial.tokens_done = event["tokens"]
        metrics += [
            point("train_loss", event["loss"]),
            point("lr", event["lr"]),
            point("tokens_per_s", event["tokens_per_s"]),
        ]
    elif kind == "eval":
        metrics.append(point("val_loss", event["val_loss"]))
        trial.val_loss = float(event["val_loss"])
    elif kind == "zeroshot":
        for row in event["results"]:
            session.add(
                Eval(
                    study_id=trial.study_id,
                    trial_pk=trial.id,
                    architecture=trial.architecture,
                    step=event["step"],
                    tokens=event["tokens"],
                    **{k: _finite(v) if k != "per_item" else v for k, v in row.items()},
                )
            )
    elif kind == "checkpoint":
        trial.checkpoint = event["path"]
    elif kind == "end":
        trial.status = TrialStatus.finished
        trial.ended_at = _now()
        trial.tokens_done = event["tokens"]
        trial.val_loss = float(event["val_loss"])
        trial.wall_s = float(event["wall_s"])
        trial.tokens_per_s = float(event["tokens_per_s"])
        trial.tokens_scored = event["tokens_scored"]
        trial.mfu = event["mfu"] if math.isfinite(event["mfu"]) else None
        trial.epochs = event.get("epochs")
        trial.flops = float(trial.flops_per_token) * event["tokens"]
        trial.checkpoint = event.get("checkpoint") or None
    else:
        raise ValueError(f"unknown event {kind!r}")
    if insert_now and metrics:
        session.execute(insert(Metric.__table__), metrics)


class Recorder:
    """The driver's write path: trial events into the store, committed in batches.

    Metric rows wait in memory and go in with one statement per commit. A commit comes at
    every `tick` once COMMIT_S has passed, and at once for the events that change what `study
    status` shows (a trial starting or ending). What a killed driver had not committed is
    reported again when the trial resumes: a trainer replays its history from its checkpoint.
    """

    COMMIT_S = 1.0

    def __init__(self, session: Session):
        self.session = session
        self.metrics: list[dict] = []
        self.last_commit = time.monotonic()

    def record(self, trial: Trial, event: dict) -> None:
        """Take one event of a trial."""
        if event["event"] == "start":
            self.flush()  # rows of an earlier attempt go in before `start` deletes them
        record_event(self.session, trial, event, self.metrics)
        if event["event"] in ("start", "end"):
            self.flush()

    def tick(self) -> None:
        """Commit if COMMIT_S has passed since the last commit."""
        if time.monotonic() - self.last_commit >= self.COMMIT_S:
            self.flush()

    def flush(self) -> None:
        """Insert the waiting metric rows and commit everything."""
        if self.metrics:  # Core's executemany: the ORM's bulk path costs twice as much per row
            self.session.execute(insert(Metric.__table__), self.metrics)
            self.metrics.clear()
        self.session.commit()
        self.last_commit = time.monotonic()

    def discard(self) -> None:
        """Drop what is not committed (after an interrupted write)."""
        self.metrics.clear()
        self.session.rollback()


def _finite(value):
    """NaN and infinities are stored as NULL (SQLite and JSON have no NaN)."""
    return value if not isinstance(value, float) or math.isfinite(value) else None


def evals_of(session: Session, study: Study) -> list[Eval]:
    """The zero-shot results of a study's current trials and of its n-gram baseline."""
    current = select(Trial.id).where(Trial.study_id == study.id, Trial.current)
    query = select(Eval).where(
        Eval.study_id == study.id, (Eval.trial_pk.in_(current)) | (Eval.trial_pk.is_(None))
    )
    return list(session.scalars(query.order_by(Eval.id)))


def fail_trial(trial: Trial, error: str, status: TrialStatus = TrialStatus.failed) -> None:
    """Record that a trial failed (or was interrupted) and why."""
    trial.status = status
    trial.error = error
    trial.ended_at = _now()


def save_fit(
    session: Session,
    study: Study,
    architecture: str,
    law: str,
    params: dict,
    quality: dict,
    data: list,
) -> Fit:
    """Store a fit, replacing the previous fit of the same law for the same architecture."""
    session.execute(
        delete(Fit).where(
            Fit.study_id == study.id, Fit.architecture == architecture, Fit.law == law
        )
    )
    fit = Fit(
        study_id=study.id,
        architecture=architecture,
        law=law,
        params=params,
        quality=quality,
        data=data,
    )
    session.add(fit)
    return fit


def clear_fits(session: Session, study: Study) -> None:
    """Delete every stored fit of a study (before a refit stores the new ones)."""
    session.execute(delete(Fit).where(Fit.study_id == study.id))


def fits_of(session: Session, study: Study) -> list[Fit]:
    """The stored fits of a study."""
    return list(session.scalars(select(Fit).where(Fit.study_id == study.id).order_by(Fit.id)))


HEARTBEAT_S = 30.0  # how often a run refreshes the heartbeat of the trials it holds
STALE_AFTER_S = 4 * HEARTBEAT_S  # a heartbeat older than this: the run is gone


def beat(session: Session, trials: list[Trial]) -> None:
    """Refresh the heartbeat of the trials a live run still holds (queued or running)."""
    session.execute(
        update(Trial)
        .where(
            Trial.id.in_([t.id for t in trials]),
            Trial.status.in_([TrialStatus.pending, TrialStatus.running]),
        )
        .values(heartbeat_at=_now())
    )


def stale(status: str, heartbeat_at: datetime | None) -> bool:
    """Whether a trial the store shows queued or running has lost its run: its heartbeat is
    older than STALE_AFTER_S (or missing). For stores on a database server, where no lock file
    tells whether the run is alive."""
    if status not in (TrialStatus.pending, TrialStatus.running):
        return False
    if heartbeat_at is None:
        return True
    return (_now() - heartbeat_at).total_seconds() > STALE_AFTER_S


def mark_unfinished_interrupted(session: Session, study: Study) -> None:
    """Trials left `running` by a driver that died are interrupted, not running."""
    session.execute(
        update(Trial)
        .where(Trial.study_id == study.id, Trial.status == TrialStatus.running)
        .values(status=TrialStatus.interrupted, error="the driver stopped while it ran")
    )
