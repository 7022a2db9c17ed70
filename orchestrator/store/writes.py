"""Every write of the run store: registering a study, the driver's batched recorder of trainer
events, each change of a trial's status, and fits. Only the driver writes the store; functions
here take a `Session`, and callers own transactions."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError, PendingRollbackError
from sqlalchemy.orm import Session

from analysis.results import forecast_error, nulls
from orchestrator.store.tables import (
    Eval,
    Fit,
    Metric,
    Prediction,
    Study,
    Trial,
    TrialStatus,
    utc_now,
)
from orchestrator.store.urls import StoreError, first_line
from trainers.events import (
    Checkpoint,
    End,
    Event,
    Scored,
    Start,
    Train,
    Validation,
    ZeroShot,
    ZeroShotProgress,
)
from trainers.trial import TrialSpec


def register_study(
    session: Session,
    name: str,
    spec: dict,
    spec_hash: str,
    trials: list[TrialSpec],
    planned: dict,
    *,
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
        study.spec, study.spec_hash, study.updated_at = spec, spec_hash, utc_now()
    study.data = data
    known = {t.hash: t for t in study.trials}
    hashes = {t.hash for t in trials}
    parents = {t.trial_id: t.hash for t in trials}  # a branch's trunk, by id in the grid
    for row in known.values():
        row.current = row.hash in hashes
    for spec_ in trials:
        row = known.get(spec_.hash)
        if row is not None:
            row.trial_id, row.config = spec_.trial_id, spec_.to_dict()  # placement may change
            row.parent = parents.get(spec_.placement.parent)  # one run for many budgets, or not
            continue
        plan = planned[spec_.trial_id]
        session.add(
            Trial(
                study=study,
                trial_id=spec_.trial_id,
                hash=spec_.hash,
                architecture=spec_.model.architecture,
                size=spec_.size,
                seed=spec_.seed,
                config=spec_.to_dict(),
                n_params=plan["n_params"],
                total_params=plan["total_params"],
                tokens=spec_.budget.tokens,
                flops_per_token=plan["flops_per_token"],
                flops=float(plan["flops_per_token"]) * spec_.budget.tokens,
                parent=parents.get(spec_.placement.parent),
            )
        )
    session.flush()
    return study


def queue_trial(trial: Trial, error: str | None = None) -> None:
    """A trial is about to be (re)queued: pending. Its try is counted when its trainer starts;
    its metrics stay until then (and are reported again if it resumes from a checkpoint); so
    does the `error` of a retried try."""
    trial.status = TrialStatus.pending
    trial.error = error
    trial.heartbeat_at = utc_now()


def record_event(
    session: Session, trial: Trial, event: Event, metrics: list[dict] | None = None
) -> None:
    """Write one event reported by a trainer. Its metric rows are appended to `metrics` when
    given (for the caller to insert with others in one statement), else inserted now."""
    trial.heartbeat_at = when = utc_now()
    insert_now = metrics is None
    metrics = [] if metrics is None else metrics

    def point(name: str, value) -> dict:
        return {"trial_pk": trial.id, "step": event.step, "tokens": event.tokens,
                "wall_time": when, "name": name, "value": float(value)}  # fmt: skip

    match event:
        case Start():
            # a resumed trainer reports its history up to the checkpoint again, right after this
            session.execute(delete(Metric).where(Metric.trial_pk == trial.id))
            session.execute(delete(Eval).where(Eval.trial_pk == trial.id))
            trial.tokens_done = event.resumed_tokens
            trial.shared_tokens = event.inherited_tokens or None  # a branch's trunk trained them
            trial.val_loss = None
            trial.status = TrialStatus.running
            trial.attempts += 1  # a try is counted when it starts, not while it waits
            trial.error = None  # a retry starts afresh; the console said why it was needed
            trial.started_at = utc_now()
            trial.n_params = event.n_params
            trial.total_params = event.total_params
            trial.flops_per_token = event.flops_per_token
            trial.device = event.device_label
            trial.eval_key = event.eval_key or None
            trial.node = (event.node or event.host)[:200]  # the column's size everywhere
            trial.workers = event.workers  # null: a trial from before there were several
            trial.strategy = event.strategy or None
        case Train():
            trial.tokens_done = event.tokens
            metrics += [
                point("train_loss", event.loss),
                point("lr", event.lr),
                point("tokens_per_s", event.tokens_per_s),
            ]
        case Validation():
            metrics.append(point("val_loss", event.val_loss))
            trial.val_loss = float(event.val_loss)
        case ZeroShot():
            _add_results(session, trial.study_id, trial, event.results, eval_key=event.eval_key,
                         step=event.step, tokens=event.tokens)  # fmt: skip
        case Scored():
            # scored again: its results at this step under these settings replace any earlier
            session.execute(delete(Eval).where(Eval.trial_pk == trial.id,
                                               Eval.eval_key == event.eval_key,
                                               Eval.step == event.step))  # fmt: skip
            _add_results(session, trial.study_id, trial, event.results, eval_key=event.eval_key,
                         step=event.step, tokens=event.tokens)  # fmt: skip
            if event.final:  # measured now under the current settings
                trial.val_loss = float(event.val_loss)
                trial.eval_key = event.eval_key
        case ZeroShotProgress():
            pass  # progress of the terminal's alone: its heartbeat is all the store keeps
        case Checkpoint():
            trial.checkpoint = event.path
        case End():
            trial.status = TrialStatus.finished
            trial.ended_at = utc_now()
            trial.tokens_done = event.tokens
            trial.val_loss = float(event.val_loss)
            trial.wall_s = float(event.wall_s)
            trial.tokens_per_s = float(event.tokens_per_s)
            trial.tokens_scored = event.tokens_scored
            trial.mfu = event.mfu if math.isfinite(event.mfu) else None
            trial.epochs = event.epochs
            trial.flops = float(trial.flops_per_token) * event.tokens
            trial.checkpoint = event.checkpoint or None
            trial.checkpoint_bytes = event.checkpoint_bytes or None
            trial.checkpoint_sha256 = event.checkpoint_sha256 or None
        case _:
            raise TypeError(f"not a trainer event: {event!r}")
    if insert_now and metrics:
        session.execute(insert(Metric.__table__), metrics)


class Recorder:
    """The driver's write path: trial events into the store, committed in batches.

    Metric rows wait in memory and go in with one statement per commit. A commit comes at
    every `tick` once COMMIT_S has passed, and at once for the events that change what `study
    status` shows (a trial starting or ending). What a killed driver had not committed is
    reported again when the trial resumes: a trainer replays its history from its checkpoint.

    On a database server, every change since the last commit is kept (`apply`), so that a
    server that drops the connections (a restart, a failover) loses nothing: the recorder
    waits for it up to RETRY_S and replays the changes (each commit first makes sure of the
    run lock, whose connection went too: liveness.hold_lock); a server still gone then is a
    StoreError, and the run stops. A server may also commit a batch and drop the connection
    before saying so: each commit of a `study`'s recorder stamps the study row (`updated_at`),
    and a stamp found there means the batch is in, so it is not replayed.
    """

    COMMIT_S = 1.0
    RETRY_S = 60.0  # how long a store that stopped answering is waited for
    RETRY_EVERY_S = 2.0

    def __init__(self, session: Session, say: Callable[[str], None] = lambda line: None,
                 study: Study | None = None):  # fmt: skip
        self.session = session
        self.metrics: list[dict] = []
        self.changes: list[Callable[[], None]] = []  # since the last commit, to replay
        self.last_commit = time.monotonic()
        self.say = say
        self.retries = session.get_bind().dialect.name != "sqlite"  # a file does not restart
        self.study_id = study.id if study is not None and self.retries else None
        self.stamp = None  # of the commit last tried

    def apply(self, change: Callable[[], None]) -> None:
        """Make a change of the store's rows (kept until it is committed)."""
        self.changes.append(change)
        try:
            change()
        except (DBAPIError, PendingRollbackError) as e:
            self._recover(e)

    def record(self, trial: Trial, event: Event) -> None:
        """Take one event of a trial."""
        if isinstance(event, Start):
            self.flush()  # rows of an earlier attempt go in before `start` deletes them
        self.apply(lambda: record_event(self.session, trial, event, self.metrics))
        if isinstance(event, Start | End | Scored):
            self.flush()

    def tick(self) -> None:
        """Commit if COMMIT_S has passed since the last commit."""
        if time.monotonic() - self.last_commit >= self.COMMIT_S:
            self.flush()

    def flush(self) -> None:
        """Insert the waiting metric rows and commit everything."""
        try:
            self._commit()
        except (DBAPIError, PendingRollbackError) as e:
            self._recover(e)

    def _commit(self) -> None:
        if self.metrics:  # Core's executemany: the ORM's bulk path costs twice as much per row
            self.session.execute(insert(Metric.__table__), self.metrics)
        if self.study_id is not None and (self.changes or self.metrics):
            self.stamp = utc_now()
            self.session.execute(update(Study).where(Study.id == self.study_id)
                                 .values(updated_at=self.stamp))  # fmt: skip
        self.session.commit()
        self.metrics.clear()
        self.changes.clear()
        self.stamp = None  # in: nothing to look for
        self.last_commit = time.monotonic()

    def _recover(self, error: DBAPIError | PendingRollbackError) -> None:
        """Wait for a server that dropped the connection; replay what was not committed."""
        if not (self.retries and _connection_lost(error)):
            raise error
        first = first_line(error)
        self.say(f"the store stopped answering ({first}); trying again for {self.RETRY_S:.0f} s")
        deadline = time.monotonic() + self.RETRY_S
        while True:
            self._rollback()
            time.sleep(max(0.0, min(self.RETRY_EVERY_S, deadline - time.monotonic())))
            try:
                if self._landed():
                    self.metrics.clear()
                    self.changes.clear()
                    self.say("the store answers again; its last write had gone in")
                    return
                for change in self.changes:
                    change()
                self._commit()
                self.say("the store answers again; nothing was lost")
                return
            except (DBAPIError, PendingRollbackError) as e:
                if not _connection_lost(e):
                    raise
                first = first_line(e)
                if time.monotonic() >= deadline:
                    self._rollback()
                    raise StoreError(
                        f"the store stopped answering for {self.RETRY_S:.0f} s ({first}): the "
                        "run stops; run the study again when the database is back (its trials "
                        "resume from their checkpoints)"
                    ) from None

    def _landed(self) -> bool:
        """Whether the commit that failed went in all the same (its stamp is there)."""
        if self.stamp is None:
            return False
        stored = self.session.scalar(select(Study.updated_at).where(Study.id == self.study_id))
        self.session.rollback()  # the read's transaction, before anything is replayed
        return stored == self.stamp

    def _rollback(self) -> None:
        self.metrics.clear()  # the changes replayed make them again
        try:
            self.session.rollback()
        except DBAPIError:
            pass  # the connection is gone; the session starts afresh on its next use

    def discard(self) -> None:
        """Drop what is not committed (after an interrupted write)."""
        self.metrics.clear()
        self.changes.clear()
        self.stamp = None
        self.session.rollback()


def _connection_lost(error: DBAPIError | PendingRollbackError) -> bool:
    """A server that went away (or is not back yet), as opposed to a statement it refused; a
    session left waiting for a rollback by a read that failed so."""
    if isinstance(error, PendingRollbackError):
        return True
    return error.connection_invalidated or isinstance(error, OperationalError)


def _add_results(
    session, study_id: int, trial: Trial | None, rows: list[dict], *, eval_key: str, step: int,
    tokens: int, baseline: str = "ngram",
) -> None:  # fmt: skip
    """Zero-shot result rows of a trial (or, without one, of the study's n-gram baseline or a
    reference model, `baseline`)."""
    for row in rows:
        session.add(
            Eval(
                study_id=study_id,
                trial_pk=trial.id if trial is not None else None,
                architecture=trial.architecture if trial is not None else baseline,
                eval_key=eval_key,
                step=step,
                tokens=tokens,
                **{k: nulls(v) if k != "per_item" else v for k, v in row.items()},
            )
        )


def replace_baseline(
    session: Session, study: Study, rows: list[dict], eval_key: str, tokens: int
) -> None:
    """Store the study's n-gram baseline results (architecture `ngram`, no trial), replacing
    earlier ones: `tokens` is the size of the training split it counted."""
    session.execute(delete(Eval).where(Eval.study_id == study.id, Eval.trial_pk.is_(None),
                                       Eval.architecture == "ngram"))  # fmt: skip
    _add_results(session, study.id, None, rows, eval_key=eval_key, step=0, tokens=tokens)


def references_stored(
    session: Session, study: Study, eval_key: str, text: int, listed: set[str]
) -> set[str]:
    """The references (`ref:<name>`) whose results the store holds for these items: under
    `eval_key` (tasks, items, seed) and on held-out text of `text` bytes (the items' source:
    another corpus or split changes it). Those no longer `listed` are removed."""
    session.execute(delete(Eval).where(Eval.study_id == study.id, Eval.trial_pk.is_(None),
                                       Eval.architecture.startswith("ref:"),
                                       Eval.architecture.not_in(listed)))  # fmt: skip
    return set(session.scalars(
        select(Eval.architecture).where(Eval.study_id == study.id, Eval.trial_pk.is_(None),
                                        Eval.architecture.startswith("ref:"),
                                        Eval.eval_key == eval_key, Eval.tokens == text)
    ))  # fmt: skip


def replace_reference(
    session: Session, study: Study, name: str, rows: list[dict], eval_key: str, text: int
) -> None:
    """Store a reference model's results (architecture `ref:<name>`, no trial; `tokens` holds
    the bytes of held-out text its items came from), replacing its earlier ones."""
    session.execute(delete(Eval).where(Eval.study_id == study.id, Eval.trial_pk.is_(None),
                                       Eval.architecture == name))  # fmt: skip
    _add_results(session, study.id, None, rows, eval_key=eval_key, step=0, tokens=text,
                 baseline=name)  # fmt: skip


def fail_trial(trial: Trial, error: str, status: TrialStatus = TrialStatus.failed) -> None:
    """Record that a trial failed (or was interrupted) and why."""
    trial.status = status
    trial.error = error
    trial.ended_at = utc_now()


def replace_fits(session: Session, study: Study, rows: list[dict]) -> None:
    """Store a study's fits (rows of architecture, law, params, quality, data), replacing every
    fit stored before: laws no longer fitted go too."""
    session.execute(delete(Fit).where(Fit.study_id == study.id))
    session.add_all(Fit(study_id=study.id, **row) for row in rows)


def mark_unfinished_interrupted(session: Session, study: Study) -> None:
    """Trials left `running` by a driver that died are interrupted, not running."""
    session.execute(
        update(Trial)
        .where(Trial.study_id == study.id, Trial.status == TrialStatus.running)
        .values(status=TrialStatus.interrupted, error="the driver stopped while it ran")
    )


def store_prediction(session: Session, study: Study, **columns) -> Prediction:
    """Keep a prediction (architecture, flops, the cell that verifies it, the loss predicted
    and the fit it came from); the caller commits it before that cell trains. A prediction is
    stored once: the (study, architecture, flops) it is for is unique."""
    prediction = Prediction(study_id=study.id, **columns)
    session.add(prediction)
    session.flush()
    return prediction


def record_measurements(session: Session, study: Study) -> list[Prediction]:
    """The predictions whose verifying trial has finished since they were made, with its
    measured validation loss and the relative error stored; the others are left as they are."""
    finished = {
        t.hash: t
        for t in study.trials
        if t.status == TrialStatus.finished and t.val_loss is not None
    }
    done = []
    for p in session.scalars(select(Prediction).where(Prediction.study_id == study.id)):
        trial = finished.get(p.trial_hash)
        if p.measured_loss is None and trial is not None:
            p.measured_loss = float(trial.val_loss)
            p.error = forecast_error(p.predicted_loss, p.measured_loss)
            p.verified_at = utc_now()
            done.append(p)
    return done
