"""Whether a run is alive: the run lock of a store (a lock file beside a SQLite store, an
advisory lock on a PostgreSQL server), and the heartbeats of trials (for other database servers,
where no lock tells)."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, event, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from orchestrator.store.recognition import refuse_foreign
from orchestrator.store.tables import Trial, TrialStatus, utc_now
from orchestrator.store.urls import StoreError, on_server, shown_url, sqlite_file, store_errors

# The key of the run lock on a PostgreSQL server: advisory locks are per database, so one key
# locks one store. Two int4 keys ("STUD", 1): pg_locks shows them as classid and objid.
LOCK_KEY = {"a": 0x53545544, "b": 1}


def _holder() -> str:
    return (f"study run (pid {os.getpid()} on {socket.gethostname()}, since "
            f"{utc_now().strftime('%Y-%m-%d %H:%M:%S UTC')})")  # fmt: skip


def _in_use(store, holder: str) -> StoreError:
    return StoreError(
        f"the store {store} is in use by {holder}: wait for that run to finish (or stop it), "
        "or pass --wait to start when it does"
    )


@contextmanager
def run_lock(url: str, wait: bool = False) -> Iterator[ServerLock | None]:
    """One `study run` at a time on a store. For SQLite, an exclusive lock on `<store
    file>.lock`, with who holds it written inside; on PostgreSQL, a session advisory lock held
    by a connection of its own, named for who holds it. Either is released when the holder
    ends, even by SIGKILL (the operating system closes the file, the server the connection), so
    a dead run never blocks the next. Raises StoreError naming the holder, unless `wait`, which
    blocks until the store is free. Stores on other database servers are not locked here.
    Yields the server's lock (to check, and take again after the server restarts), or None."""
    if on_server(url):
        with _server_lock(url, wait) as lock:
            yield lock
        return
    store = sqlite_file(url)
    if store is None:
        yield None
        return
    refuse_foreign(url)  # no lock file beside a file that is not a run store
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{store}.lock", "a+") as handle:
        try:
            _acquire(handle, wait)
        except BlockingIOError:
            handle.seek(0)
            raise _in_use(store, handle.read().strip() or "another process") from None
        handle.seek(0)
        handle.truncate()
        handle.write(_holder() + "\n")
        handle.flush()
        try:
            yield None  # a file lock needs no renewing
        finally:
            handle.seek(0)
            handle.truncate()  # the file stays; the lock goes with the handle


_HOLDERS = text(
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :a AND l.objid = :b "
    "AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database "
    "WHERE datname = current_database())"
)


class ServerLock:
    """The run lock on a PostgreSQL server: a session advisory lock, held by a connection of
    its own (named for who holds it, as pg_stat_activity shows). A server that restarts drops
    it with the connection; `ensure` takes it again, unless another run took it meanwhile."""

    def __init__(self, url: str):
        self.url = url
        self.engine = create_engine(url, poolclass=NullPool)  # its own connection, not pooled
        self.connection = None

    def take(self, wait: bool = False) -> None:
        """Take the lock (waiting for it with `wait`); StoreError naming who holds it else.
        A server that cannot be reached raises the driver's error."""
        connection = self.engine.connect()
        try:
            # who holds it, for a second run to name (pg_stat_activity keeps 63 characters)
            connection.execute(text("SELECT set_config('application_name', :name, false)"),
                               {"name": _holder()[:63]})  # fmt: skip
            if wait:
                connection.execute(text("SELECT pg_advisory_lock(:a, :b)"), LOCK_KEY)
            elif not connection.execute(text("SELECT pg_try_advisory_lock(:a, :b)"),
                                        LOCK_KEY).scalar():  # fmt: skip
                holder = connection.execute(_HOLDERS, LOCK_KEY).scalar()
                raise _in_use(shown_url(self.url), holder or "another study run")
            connection.commit()  # the lock is the session's; no transaction stays open
        except BaseException:
            connection.invalidate()  # closed: a lock it may have taken goes with it
            raise
        self.connection = connection

    def ensure(self) -> bool:
        """That the lock is still held: its connection answers. After a server dropped it (a
        restart, a failover), take the lock again and return True; StoreError if another run
        holds it now, the driver's error if the server cannot be reached."""
        try:
            if self.connection is not None:
                self.connection.execute(text("SELECT 1"))
                self.connection.rollback()
                return False
        except DBAPIError:
            self.connection.invalidate()  # gone with the server's session, and the lock with it
        self.connection = None
        try:
            self.take()
        except StoreError as e:
            raise StoreError(f"{e} (it took the store while this run's connection was down; "
                             "this run stops)") from None  # fmt: skip
        return True

    def release(self) -> None:
        try:
            if self.connection is not None:
                self.connection.execute(text("SELECT pg_advisory_unlock(:a, :b)"), LOCK_KEY)
                self.connection.close()
        except Exception:  # a server gone: the lock went with the connection
            self.connection.invalidate()
        finally:
            self.connection = None
            self.engine.dispose()


@contextmanager
def _server_lock(url: str, wait: bool) -> Iterator[ServerLock]:
    with store_errors(url):  # a URL that is none, a driver not installed, a server away
        lock = ServerLock(url)
        try:
            lock.take(wait)
        except BaseException:
            lock.release()
            raise
    try:
        yield lock
    finally:
        lock.release()


def hold_lock(session: Session, lock: ServerLock, say=lambda line: None) -> None:
    """Make every commit of `session` first make sure of the run lock: after a server restart
    (which drops the lock with its connection, while the session's pool reconnects unseen) the
    lock is taken again before anything more is written, or, if another run took it, the
    commit fails with a StoreError and nothing more is written."""

    def before_commit(_session) -> None:
        if lock.ensure():
            say("the store's server dropped this run's connections; its run lock is held again")

    event.listen(session, "before_commit", before_commit)


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
    a database server other than PostgreSQL). A trial the store shows running while no run is
    active was left by a driver that died."""
    if on_server(url):
        with store_errors(url):
            engine = create_engine(url, poolclass=NullPool)
            try:
                with engine.connect() as connection:
                    return connection.execute(_HOLDERS, LOCK_KEY).first() is not None
            finally:
                engine.dispose()
    store = sqlite_file(url)
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
        .values(heartbeat_at=utc_now())
    )


def stale(status: str, heartbeat_at: datetime | None) -> bool:
    """Whether a trial the store shows queued or running has lost its run: its heartbeat is
    older than STALE_AFTER_S (or missing). For stores on a database server where no lock tells
    whether the run is alive."""
    if status not in (TrialStatus.pending, TrialStatus.running):
        return False
    if heartbeat_at is None:
        return True
    return (utc_now() - heartbeat_at).total_seconds() > STALE_AFTER_S
