"""Shared fixtures: one Ray instance for the whole test session, study files in tmp folders."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"
ANCHORS = Path(__file__).parents[1] / "data" / "anchors"  # public data, also read by the README
# A PostgreSQL server the store tests also run against (.ci/run starts one on 127.0.0.1), as
# a URL of a database there that may be used to create and drop others.
POSTGRES = os.environ.get("STUDY_TEST_POSTGRES", "")


@contextlib.contextmanager
def _postgres_database():
    """A fresh database on the PostgreSQL server, dropped afterwards: its URL."""
    if not POSTGRES:
        why = "no PostgreSQL server: set STUDY_TEST_POSTGRES to one (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI runs the store tests on PostgreSQL, never skips them
        pytest.skip(why)
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """An empty run store: a SQLite file, and a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs' / 'st.db'}"
        return
    with _postgres_database() as url:
        yield url


@pytest.fixture
def postgres_store():
    """An empty run store on the PostgreSQL server."""
    with _postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_store(tmp_path):
    """An empty SQLite run store, for what only a file has (its lock file, damage)."""
    return f"sqlite:///{tmp_path / 'runs' / 'st.db'}"


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance shared by every test that schedules trials."""
    import ray

    # "local": a new instance of its own, even where a `ray start` cluster runs on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture
def tiny_study(tmp_path, monkeypatch) -> Path:
    """The tiny study copied into an empty working directory (runs/ and reports/ land there)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "tiny.yaml"
    shutil.copy(ASSETS / "tiny.yaml", path)
    path.write_text(path.read_text() + f"storage: {tmp_path / 'artifacts'}\n")
    return path


def _run_cli(*args: str, cwd, timeout: int = 600, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture
def study_cli():
    """Runs `study ARGS` in a folder, as a user would, and returns the finished process."""
    return _run_cli


@pytest.fixture
def study_here(monkeypatch):
    """Runs `study ARGS` in a folder in this process, and returns what `study_cli` does: the
    exit status, stdout and stderr (an exception's traceback on it, as a child would print).
    A child process spends a second or two importing, and a command that schedules starts a
    Ray instance of its own; here a test that asks for `ray_session` lends it its instance."""
    import traceback

    from typer.testing import CliRunner

    from orchestrator.cli import app

    def run(*args: str, cwd) -> subprocess.CompletedProcess:
        monkeypatch.chdir(cwd)
        result = CliRunner().invoke(app, list(args))
        stderr = result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            stderr += "".join(traceback.format_exception(result.exception))
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, stderr)

    return run
