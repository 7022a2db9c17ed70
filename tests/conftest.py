"""Shared fixtures: one Ray instance for the whole test session, study files in tmp folders."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"


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
    text = (
        path.read_text().replace("name: tiny", "name: tiny")
        + f"storage: {tmp_path / 'artifacts'}\n"
    )
    path.write_text(text)
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
