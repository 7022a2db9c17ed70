"""Where a run store lives: its URL, its SQLite file, and the error of a store that cannot be
used."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError


class StoreError(RuntimeError):
    """A store that cannot be opened or does not hold what was asked for."""


class NoStudyError(StoreError):
    """A store that opens but holds no study of the name asked for (yet)."""


def default_url(study_name: str) -> str:
    """The store of a study: `runs/<name>.db` under the current directory."""
    return f"sqlite:///runs/{study_name}.db"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite store; None for a store on a database server or in memory."""
    if not url.startswith("sqlite:///") or url.startswith("sqlite:///:memory:"):
        return None
    return Path(url.removeprefix("sqlite:///"))


def on_server(url: str) -> bool:
    """Whether a store is on a PostgreSQL server (where the run lock is an advisory lock)."""
    try:
        return make_url(url).get_backend_name() == "postgresql"
    except ArgumentError:
        return False


@contextmanager
def store_errors(url: str) -> Iterator[None]:
    """Reaching the store at `url`: a URL that is none, a driver not installed, a database that
    cannot be reached or is not a store become a StoreError saying which."""
    try:
        yield
    except ArgumentError:
        raise StoreError(
            f"{url!r} is not a database URL: give one like sqlite:///runs/NAME.db or "
            "postgresql+psycopg://USER@HOST/DATABASE"
        ) from None
    except (ModuleNotFoundError, NoSuchModuleError) as e:
        hint = (
            "pip install 'psycopg[binary]' (the URL postgresql+psycopg://...)"
            if on_server(url)
            else "install the driver that the URL's dialect+driver names"
        )
        raise StoreError(
            f"the store {shown_url(url)} needs a database driver that is not installed "
            f"({getattr(e, 'name', None) or e}): {hint}"
        ) from None
    except DBAPIError as e:
        raise StoreError(store_failure(url, e)) from None


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """A database error while the store at `url` is used (read-only, full, damaged, a server
    gone; `url` "" where it is not known) as a StoreError of one line saying which."""
    try:
        yield
    except DBAPIError as e:
        raise StoreError(store_failure(url, e)) from None


def check_url(url: str) -> None:
    """A store URL that can be used: one SQLAlchemy reads, whose driver is installed (a
    StoreError saying which otherwise); checked before a run prepares its data."""
    with store_errors(url):
        make_url(url).get_dialect().import_dbapi()


def shown_url(url: str) -> str:
    """A store's URL as printed: its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True) if url else ""
    except ArgumentError:
        return url


def first_line(error: Exception) -> str:
    """The first line of a database error: the driver's own message where there is one."""
    return (str(getattr(error, "orig", None) or error).strip().splitlines() or ["?"])[0]


def store_failure(url: str, error: Exception) -> str:
    """One line for a database error on the store at `url` ("" where it is not known), its
    password hidden."""
    first = first_line(error)
    shown = shown_url(url)
    store = f"the store {shown}" if shown else "the run store"
    sqlite = isinstance(getattr(error, "orig", None) or error, sqlite3.Error)
    if sqlite and ("not a database" in first or "malformed" in first):
        return (f"{store} is damaged or not a run store ({first}): restore it from a copy, or "
                "move it aside and run the study again")  # fmt: skip
    if sqlite and ("readonly" in first or "unable to open" in first):
        return (f"{store} cannot be opened for writing ({first}): give it and its folder write "
                "permission (SQLite writes a journal beside it, even to read), or copy it to a "
                "folder you can write")  # fmt: skip
    if "disk is full" in first or "No space left" in first:
        return (f"{store}: the disk is full ({first}): free space and run again; what was "
                "committed before is kept")  # fmt: skip
    return f"cannot use {store}: {first}"
