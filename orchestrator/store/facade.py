"""`RunStore`: the run store behind one object, as Optuna's RDBStorage and MLflow's
SqlAlchemyStore keep theirs. It holds its engine and its session and commits inside; its
methods are named for what happens (open, hold the lock, register, queue, record events, fail,
interrupt, save fits and predictions, read frames); what they return is plain: DataFrames,
dicts and the ORM-free records below. Nothing outside `orchestrator.store` sees a session."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from functools import partial

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from orchestrator.store import reads, writes
from orchestrator.store.engine import open_store
from orchestrator.store.liveness import ServerLock, beat, hold_lock
from orchestrator.store.tables import Eval, Metric, Study, Trial, TrialStatus
from trainers.events import Event
from trainers.trial import TrialSpec


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the store showed it when read (no session behind it)."""

    trial_id: str
    hash: str
    architecture: str
    size: str
    seed: int
    config: dict
    eval_key: str | None
    n_params: int
    total_params: int
    tokens: int
    flops_per_token: int
    flops: float
    status: TrialStatus
    attempts: int
    tokens_done: int
    tokens_scored: int
    val_loss: float | None
    tokens_per_s: float | None
    mfu: float | None
    epochs: float | None
    node: str | None
    device: str | None
    started_at: datetime | None
    ended_at: datetime | None
    wall_s: float | None
    error: str | None
    checkpoint: str | None
    checkpoint_bytes: int | None
    checkpoint_sha256: str | None
    heartbeat_at: datetime | None
    parent: str | None = None  # a branch: its trunk's hash
    shared_tokens: int | None = None  # a branch: its trunk's tokens it started from

    @property
    def spec(self) -> TrialSpec:
        """The TrialSpec this trial was made from."""
        return TrialSpec.from_dict(self.config)


@dataclass(frozen=True)
class PredictionRecord:
    """One stored prediction (no session behind it): see tables.Prediction."""

    architecture: str
    flops: float
    n_opt: float
    n_opt_from: str
    trial_id: str
    trial_hash: str
    cell: dict
    n_params: int
    tokens: int
    predicted_loss: float
    ci_low: float | None
    ci_high: float | None
    fit: dict
    measured_loss: float | None
    error: float | None
    created_at: datetime | None
    verified_at: datetime | None


def _record(kind, row):
    """An ORM row as the frozen record `kind` (its columns of the same names)."""
    return kind(**{f.name: getattr(row, f.name) for f in fields(kind)})


class RunStore:
    """One study's run store, opened on a URL: `open` for a run (which then registers its
    study), `open_study` for the read commands. Close it (or use it in a `with`): its session
    ends and its engine lets go of every connection and file handle."""

    def __init__(self, url: str, engine: Engine):
        self.url = url
        self._engine = engine
        self._session = Session(engine)
        self._study: Study | None = None

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> RunStore:
        """The store at `url`, its schema created if asked (StoreError as `open_store`)."""
        return cls(url, open_store(url, create))

    @classmethod
    def open_study(cls, url: str, name: str | None = None) -> RunStore:
        """The study called `name` (or the only one) of the store at `url`, which must exist."""
        store = cls.open(url, create=False)
        try:
            store._study = reads.get_study(store._session, name)
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """End the session and let go of the engine's connections."""
        self._session.close()
        self._engine.dispose()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # the study

    @property
    def name(self) -> str:
        """The study's name."""
        return self._study.name

    @property
    def data(self) -> dict | None:
        """The study's splits, as registered (documents and tokens of each)."""
        return self._study.data

    @property
    def study_spec(self) -> dict:
        """The study file as last registered (its validated JSON)."""
        return self._study.spec or {}

    def select_study(self, name: str) -> bool:
        """Work on the study called `name`, if the store holds it; whether it does."""
        self._study = self._session.scalar(select(Study).where(Study.name == name))
        return self._study is not None

    # the run's writes, each committed

    def hold_lock(self, lock: ServerLock, say: Callable[[str], None]) -> None:
        """Make every commit first make sure of the run lock of a store on a server."""
        hold_lock(self._session, lock, say)

    def register(
        self, name: str, trials: list[TrialSpec], *, spec: dict, spec_hash: str, planned: dict,
        data: dict | None,
    ) -> None:  # fmt: skip
        """Record the study and its grid (writes.register_study) and work on it."""
        self._study = writes.register_study(self._session, name, spec, spec_hash, trials,
                                            planned, data=data)  # fmt: skip
        self._session.commit()

    def save_baseline(self, rows: list[dict], eval_key: str, tokens: int) -> None:
        """Store the study's n-gram baseline results, replacing earlier ones."""
        writes.replace_baseline(self._session, self._study, rows, eval_key, tokens)
        self._session.commit()

    def stored_references(self, eval_key: str, text: int, listed: set[str]) -> set[str]:
        """The references stored for these items (writes.references_stored); those no longer
        `listed` are removed."""
        done = writes.references_stored(self._session, self._study, eval_key, text, listed)
        self._session.commit()
        return done

    def save_reference(self, name: str, rows: list[dict], eval_key: str, text: int) -> None:
        """Store a reference model's results, replacing its earlier ones."""
        writes.replace_reference(self._session, self._study, name, rows, eval_key, text)
        self._session.commit()

    def interrupt_left_running(self) -> None:
        """Trials left running by a driver that died are marked interrupted."""
        writes.mark_unfinished_interrupted(self._session, self._study)
        self._session.commit()

    def events(self, trial_ids: list[str], say: Callable[[str], None] = lambda line: None,
               stamped: bool = False) -> TrialEvents:  # fmt: skip
        """The write path of these trials while they train or are scored (`stamped`: each
        commit stamps the study, so that a server that drops a commit's answer replays none)."""
        return TrialEvents(self, trial_ids, say, stamped)

    def verify_predictions(self) -> list[PredictionRecord]:
        """The predictions whose verifying trial has finished since they were made, measured."""
        done = writes.record_measurements(self._session, self._study)
        records = [_record(PredictionRecord, p) for p in done]
        self._session.commit()
        return records

    def save_fits(self, rows: list[dict]) -> None:
        """Store the study's fits, replacing every fit stored before."""
        writes.replace_fits(self._session, self._study, rows)
        self._session.commit()

    def save_prediction(self, **columns) -> None:
        """Keep a prediction, committed before the trial that verifies it trains."""
        writes.store_prediction(self._session, self._study, **columns)
        self._session.commit()

    def rollback(self) -> None:
        """Drop what an interrupted write left half done."""
        self._session.rollback()

    # reads

    def current_trials(self) -> list[TrialRecord]:
        """The trials of the study's latest grid, in grid order."""
        return [_record(TrialRecord, t) for t in reads.current_trials(self._session, self._study)]

    def unfinished(self, specs: list[TrialSpec]) -> tuple[list[TrialSpec], list[str]]:
        """The trials of `specs` the store does not show finished, and the ids of the others."""
        rows = {t.hash: t for t in reads.current_trials(self._session, self._study)}
        to_run, finished = [], []
        for trial in specs:
            if rows[trial.hash].status == TrialStatus.finished:
                finished.append(trial.trial_id)
            else:
                to_run.append(trial)
        return to_run, finished

    def finished_hashes(self) -> set[str]:
        """The identities of the study's finished trials, of its current grid or an earlier one
        (a run trains none of them again)."""
        query = select(Trial.hash).where(Trial.study_id == self._study.id,
                                         Trial.status == TrialStatus.finished)  # fmt: skip
        return set(self._session.scalars(query))

    def registered_hashes(self) -> set[str]:
        """The identities of every trial the store holds for the study, current or not."""
        query = select(Trial.hash).where(Trial.study_id == self._study.id)
        return set(self._session.scalars(query))

    def scored_steps(self, trial: TrialRecord, eval_key: str) -> set[int]:
        """The steps of a trial that have results under the evaluation settings `eval_key`; its
        last step counts when the trial was measured under them (a study without zero-shot
        tasks stores no rows)."""
        query = select(Eval.step).where(Eval.trial_pk == self._pk(trial.trial_id),
                                        Eval.eval_key == eval_key)  # fmt: skip
        steps = set(self._session.scalars(query.distinct()))
        if trial.eval_key == eval_key:
            steps.add(trial.spec.steps)
        return steps

    def metric_points(self, trial_id: str) -> list[tuple]:
        """A trial's metric points (name, value, step, wall time), by name and step."""
        query = (select(Metric.name, Metric.value, Metric.step, Metric.wall_time)
                 .where(Metric.trial_pk == self._pk(trial_id))
                 .order_by(Metric.name, Metric.step))  # fmt: skip
        return [tuple(row) for row in self._session.execute(query)]

    def predictions(self) -> list[PredictionRecord]:
        """The stored predictions of the study, by architecture and budget."""
        return [_record(PredictionRecord, p)
                for p in reads.predictions_of(self._session, self._study)]  # fmt: skip

    def fits(self) -> list[dict]:
        """The stored fits: architecture, law, params, quality and data of each."""
        return [{"architecture": f.architecture, "law": f.law, "params": f.params,
                 "quality": f.quality, "data": f.data}
                for f in reads.fits_of(self._session, self._study)]  # fmt: skip

    def trials_frame(self) -> pd.DataFrame:
        """One row per trial of the study's current grid (reads.trials_frame)."""
        return reads.trials_frame(self._session, self._study)

    def metrics_frame(self, max_points: int | None = None) -> pd.DataFrame:
        """The metric points of the current trials (reads.metrics_frame)."""
        return reads.metrics_frame(self._session, self._study, max_points)

    def evals_frame(self) -> pd.DataFrame:
        """The final zero-shot results under the current settings (reads.evals_frame)."""
        return reads.evals_frame(self._session, self._study)

    def all_evals_frame(self) -> pd.DataFrame:
        """Every zero-shot result, under every setting (reads.all_evals_frame)."""
        return reads.all_evals_frame(self._session, self._study)

    def predictions_frame(self) -> pd.DataFrame:
        """One row per stored prediction (reads.predictions_frame)."""
        return reads.predictions_frame(self._session, self._study)

    def task_points(self) -> pd.DataFrame:
        """The zero-shot points the two-step prediction takes (reads.task_points)."""
        return reads.task_points(self._session, self._study)

    def outdated(self) -> list[str]:
        """The finished trials measured under other evaluation settings (reads.outdated)."""
        return reads.outdated(self._session, self._study)

    def _pk(self, trial_id: str):
        """The primary key of the current trial `trial_id`, as a subquery (one statement per
        trial, where a lookup of every trial would cost a query of them all)."""
        return (select(Trial.id).where(Trial.study_id == self._study.id, Trial.current,
                                       Trial.trial_id == trial_id)
                .scalar_subquery())  # fmt: skip

    def _rows(self, trial_ids: list[str]) -> dict[str, Trial]:
        """The current trials of these ids, as rows of the session."""
        wanted = set(trial_ids)
        return {t.trial_id: t for t in reads.current_trials(self._session, self._study)
                if t.trial_id in wanted}  # fmt: skip


class TrialEvents:
    """What the trainers of some trials report, into the store by trial id: writes.Recorder's
    batched commits (and its replay after a server restart), each change of a trial's status,
    the heartbeats, and what a Ctrl-C leaves."""

    def __init__(self, store: RunStore, trial_ids: list[str], say: Callable[[str], None],
                 stamped: bool):  # fmt: skip
        self._session = store._session
        self._rows = store._rows(trial_ids)
        self._recorder = writes.Recorder(self._session, say, store._study if stamped else None)

    def queue(self) -> None:
        """These trials are about to be (re)queued: pending."""
        for row in self._rows.values():
            writes.queue_trial(row)
        self._session.commit()

    def flops(self, trial_id: str) -> float:
        """A trial's training FLOPs, as registered."""
        return self._rows[trial_id].flops

    def record(self, trial_id: str, event: Event) -> None:
        """Take one event of a trial."""
        self._recorder.record(self._rows[trial_id], event)

    def record_many(self, reported: Iterable[tuple[str, Event]]) -> None:
        """Take many events of these trials (trial id, event), in order, and commit them once:
        what they reported loaded in one go, where `record` commits at each start and end
        (and each commit costs a look at every trial the session holds)."""
        for trial_id, event in reported:
            self._recorder.apply(partial(writes.record_event, self._session,
                                         self._rows[trial_id], event))  # fmt: skip
        self._recorder.flush()

    def fail(self, trial_id: str, error: str) -> None:
        """A trial failed for good: recorded and committed."""
        self._recorder.apply(lambda: writes.fail_trial(self._rows[trial_id], error))
        self._recorder.flush()

    def requeue(self, trial_id: str, error: str) -> tuple[bool, int]:
        """A trial runs again (its `error` kept until it starts): whether its trainer had
        started, and its tries so far."""
        row = self._rows[trial_id]
        started = row.status == TrialStatus.running  # else it failed before its trainer began
        self._recorder.apply(lambda: writes.queue_trial(row, error))
        self._recorder.flush()
        return started, row.attempts

    def beat(self) -> None:
        """Refresh the heartbeat of these trials while they are queued or running."""
        self._recorder.apply(lambda: beat(self._session, list(self._rows.values())))

    def tick(self) -> None:
        """Commit if it is due."""
        self._recorder.tick()

    def flush(self) -> None:
        """Commit everything now."""
        self._recorder.flush()

    def discard(self) -> None:
        """Drop what is not committed (after an interrupted write)."""
        self._recorder.discard()

    def interrupt(self, why: str) -> None:
        """The run stops (Ctrl-C, SIGTERM): what is not committed is dropped (a resumed trial
        reports its history again), and the trials queued or running are interrupted."""
        self._recorder.discard()
        for row in self._rows.values():
            if row.status in (TrialStatus.running, TrialStatus.pending):
                writes.fail_trial(row, why, TrialStatus.interrupted)
        self._session.commit()


__all__ = ["PredictionRecord", "RunStore", "TrialEvents", "TrialRecord"]
