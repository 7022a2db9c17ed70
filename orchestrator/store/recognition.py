"""Whether the file at a SQLite store's path is a run store, found out without writing a byte
of it: a folder, a database of another program, or a file that is no database at all is refused
before the tool opens it for writing (which would switch its journal to WAL) or locks it (which
would make `<file>.lock` beside it)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from orchestrator.store.urls import StoreError, sqlite_file, store_failure

# The tables that mark a run store: alembic's version table, or release 0.1's `schema_info`.
VERSION_TABLE = "study_schema_version"
LEGACY_TABLE = "schema_info"


def refuse_foreign(url: str) -> None:
    """Raise StoreError where the path of a SQLite store holds something that is not a run
    store (a folder, another program's database, a file that is no database); a missing or
    empty file, and every store on a server, passes. Nothing at the path is written."""
    path = sqlite_file(url)
    if path is None or not path.exists():
        return
    if path.is_dir():
        raise StoreError(
            f"the store {url} is a folder, not a file: give a file's path (--store "
            f"sqlite:///{path}/NAME.db), or move the folder aside"
        )
    tables = _tables(url, path)
    if tables and not {VERSION_TABLE, LEGACY_TABLE} & tables:
        shown = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
        raise StoreError(
            f"{url} is not a run store of this tool (no schema version; its tables: {shown}): "
            "it was left as it is; give another path (--store), or move it aside"
        )


def _tables(url: str, path: Path) -> set[str]:
    """The tables of a SQLite file, read through a read-only connection. Without a `-wal` file
    beside it, the file holds every commit, and is read as immutable: SQLite then makes no
    `-wal` or `-shm` file of its own, which a read-only connection to a WAL database would."""
    wal = Path(f"{path}-wal").exists()
    uri = path.resolve().as_uri() + ("?mode=ro" if wal else "?mode=ro&immutable=1")
    try:
        connection = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as e:
        raise StoreError(store_failure(url, e)) from None
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}
    except sqlite3.Error as e:
        raise StoreError(store_failure(url, e)) from None
    finally:
        connection.close()
