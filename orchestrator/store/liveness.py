"""Whether a run is alive: the run lock of a SQLite store, and the heartbeats of trials (for
stores on a database server, where no lock file tells)."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from orchestrator.store.tables import Trial, TrialStatus, utc_now
from orchestrator.store.urls import StoreError, sqlite_file


@contextmanager
def run_lock(url: str, wait: bool = False) -> Iterator[None]:
    """One `study run` at a time on a store: an exclusive lock on `<store file>.lock`, with who
    holds it written inside. The operating system releases it when the holder ends, even by
    SIGKILL, so a dead run never blocks the next. Raises StoreError naming the holder, unless
    `wait`, which blocks until the store is free. Stores on a database server are not locked
    here (their own locking keeps writes consistent)."""
    store = sqlite_file(url)
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
            f"{utc_now().strftime('%Y-%m-%d %H:%M:%S UTC')})\n"
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
    older than STALE_AFTER_S (or missing). For stores on a database server, where no lock file
    tells whether the run is alive."""
    if status not in (TrialStatus.pending, TrialStatus.running):
        return False
    if heartbeat_at is None:
        return True
    return (utc_now() - heartbeat_at).total_seconds() > STALE_AFTER_S
