"""The store's engine and schema: SQLite pragmas, creating a store, alembic migrations."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine

from analysis.results import nulls  # the one NaN-to-null rule (JSON has no NaN)
from orchestrator.store.liveness import run_lock
from orchestrator.store.recognition import LEGACY_TABLE, VERSION_TABLE, refuse_foreign
from orchestrator.store.tables import Base
from orchestrator.store.urls import (
    StoreError,
    on_server,
    sqlite_file,
    store_errors,
    store_failure,
)

__all__ = ["open_store", "store_failure", "upgrade_store"]

# The schema is versioned by alembic (migrations in orchestrator/store/migrations), in a table of
# its own (VERSION_TABLE). Release 0.1 kept its version in `schema_info` (LEGACY_TABLE) instead;
# its last version is the baseline.
SCHEMA_REVISION = "0008"  # the newest migration (a test checks): a store at it opens at once
LEGACY_VERSION = 4
MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (study status) never block the driver
    # In WAL mode, NORMAL syncs at checkpoints, not at every commit: a killed process loses
    # nothing committed; only a power cut may lose the last commits, never the file's integrity.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _json(value) -> str:
    """The JSON of a JSON column, valid on every database."""
    return json.dumps(nulls(value), allow_nan=False)


def _engine(url: str) -> Engine:
    # On a server, a pooled connection is tested before use, so that after a restart the next
    # transaction finds a live one instead of the dead connection's error.
    engine = create_engine(url, pool_pre_ping=on_server(url), json_serializer=_json)
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
    return connection.execute(text(f"SELECT version FROM {LEGACY_TABLE}")).scalar()


def _stored_revision(engine: Engine, url: str) -> tuple[str, bool]:
    """The schema revision of a store that has tables, and whether it is a store of release
    0.1 (its schema_info version 4 is revision 0001). Raises StoreError for a database that is
    not a run store, or a store too old to upgrade."""
    tables = set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        if VERSION_TABLE in tables:
            return _revision(connection), False
        if LEGACY_TABLE not in tables:
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
    than the store); a URL that is none, a driver not installed, a database that cannot be
    reached or is not a store (a damaged file) is a StoreError saying which."""
    with store_errors(url):
        return _open_store(url, create)


def _open_store(url: str, create: bool) -> Engine:
    refuse_foreign(url)  # read-only: a file that is not ours is refused as it was found
    path = sqlite_file(url)
    if path is not None and not path.exists():
        if not create:
            raise StoreError(f"no run store at {path}; run the study first (study run FILE)")
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = _engine(url)
    try:
        _ready(engine, url, create)
    except BaseException:
        engine.dispose()  # a store refused lets go of its file (or connection) at once
        raise
    return engine


def _ready(engine: Engine, url: str, create: bool) -> None:
    """Create the schema of an empty store if asked; raise StoreError for an empty store not
    to be created, and for a store of another schema version."""
    if not inspect(engine).get_table_names():
        if not create:
            raise StoreError(f"the store at {url} is empty; run the study first")
        from alembic import command

        with engine.begin() as connection:
            Base.metadata.create_all(connection)
            config, _ = _migrations(connection)
            command.stamp(config, "head")
        return
    revision, legacy = _stored_revision(engine, url)
    if revision == SCHEMA_REVISION:
        return
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
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise StoreError(f"no run store at {path}; run the study first (study run FILE)")
    with run_lock(url):
        engine = _engine(url)
        try:
            return _upgrade(engine, url, path)
        finally:
            engine.dispose()  # upgraded or refused, the store is let go of


def _upgrade(engine: Engine, url: str, path: Path | None) -> tuple[str, str, Path | None]:
    """upgrade_store on an engine it disposes of."""
    if not inspect(engine).get_table_names():
        raise StoreError(f"no run store at {url}; run the study first (study run FILE)")
    before, legacy = _stored_revision(engine, url)
    if before == SCHEMA_REVISION:
        return before, SCHEMA_REVISION, None
    _refuse_newer(before, url)
    copy = _backup(engine, path, before) if path is not None else None
    from alembic import command

    with engine.begin() as connection:
        config, _ = _migrations(connection)
        if legacy:
            command.stamp(config, "0001")
        command.upgrade(config, "head")
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
