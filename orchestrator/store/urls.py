"""Where a run store lives: its URL, its SQLite file, and the error of a store that cannot be
used."""

from __future__ import annotations

from pathlib import Path


class StoreError(RuntimeError):
    """A store that cannot be opened or does not hold what was asked for."""


def default_url(study_name: str) -> str:
    """The store of a study: `runs/<name>.db` under the current directory."""
    return f"sqlite:///runs/{study_name}.db"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite store; None for a store on a database server or in memory."""
    if not url.startswith("sqlite:///") or url.startswith("sqlite:///:memory:"):
        return None
    return Path(url.removeprefix("sqlite:///"))
