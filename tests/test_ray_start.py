"""Starting the local Ray instance under a time limit (`resources: ray_start_timeout`): a start
that hangs ends in one line naming its logs, and leaves none of its processes running, nor after
Ctrl-C or SIGTERM; the processes of another Ray instance (the test session's) are never
touched."""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

ASSETS = Path(__file__).parent / "assets"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _sleeper(*args: str) -> list[str]:
    """A command line that sleeps for five minutes, `args` in its command line."""
    return [sys.executable, "-c", "import time; time.sleep(300)", *args]


def test_a_start_that_hangs_ends_in_one_line_and_leaves_no_process(tmp_path, monkeypatch):
    """ray.init replaced by one that makes a session folder, starts a process as the raylet
    would (a child of this process) and one as an agent that outlived its raylet would (no
    longer a child, but naming the session folder), then hangs. After the time limit both are
    ended; a process of Ray that this process had started before is not."""
    from orchestrator import localray, schedule

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv(localray.TIMEOUT_ENV, raising=False)
    earlier = subprocess.Popen(_sleeper("ray::IDLE"))  # another instance's worker
    session = tmp_path / "ray" / f"session_2026-01-01_00-00-00_000000_{os.getpid()}"
    started: dict[str, int] = {}
    hang = threading.Event()

    def init(**_options):
        (session / "logs").mkdir(parents=True)
        started["raylet"] = subprocess.Popen(_sleeper("ray-raylet")).pid
        agent = subprocess.run(  # started by a shell that exits: its parent is gone
            ["sh", "-c", shlex.join(_sleeper(f"--session-dir={session}")) + " >/dev/null & echo $!"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        started["agent"] = int(agent.stdout)
        hang.wait()  # as a raylet waiting for workers that never register

    handler = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(schedule.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(schedule.ray, "init", init)
    try:
        began = time.monotonic()
        with pytest.raises(localray.StartTimeout) as caught:
            schedule.connect(start_timeout_s=2)
        assert time.monotonic() - began < 2 + 15  # the limit, and the processes' grace
        said = str(caught.value)
        assert "\n" not in said and "did not start within 2 s" in said
        assert f"its logs are in {session / 'logs'}" in said and "ray_start_timeout" in said
        assert set(started) == {"raylet", "agent"}
        for pid in started.values():
            assert _gone(pid), pid
        assert not _gone(earlier.pid)  # not this instance's
        assert signal.getsignal(signal.SIGTERM) == handler  # the caller's, as before
    finally:
        hang.set()
        for pid in started.values():
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        earlier.kill()
        earlier.wait()
        schedule.disconnect(schedule.Cluster(dashboard_url=None, gpus=0, started_here=False))


def test_the_time_limit_is_the_study_files_unless_the_environment_says(monkeypatch):
    from orchestrator import localray
    from orchestrator.spec.resources import ResourcesSpec

    monkeypatch.delenv(localray.TIMEOUT_ENV, raising=False)
    assert ResourcesSpec().ray_start_timeout == localray.DEFAULT_START_TIMEOUT_S == 180
    assert ResourcesSpec(ray_start_timeout=600).ray_start_timeout == 600
    assert localray.start_timeout(600) == 600
    assert localray.start_timeout(None) == 180
    monkeypatch.setenv(localray.TIMEOUT_ENV, "30")
    assert localray.start_timeout(600) == 30
    for bad in ("soon", "0", "-5"):
        monkeypatch.setenv(localray.TIMEOUT_ENV, bad)
        with pytest.raises(ConnectionError, match=localray.TIMEOUT_ENV):
            localray.start_timeout(600)
    with pytest.raises(ValueError):
        ResourcesSpec(ray_start_timeout=0)


def _work(tmp_path: Path) -> Path:
    tiny = (ASSETS / "tiny.yaml").read_text()
    (tmp_path / "tiny.yaml").write_text(tiny + "storage: artifacts\n")
    return tmp_path


def _ours_left(pid: int) -> list[str]:
    """The command lines of processes still running that belong to the Ray session of the
    driver `pid` (Ray names the session folder after it)."""
    left = []
    for process in psutil.process_iter(["cmdline", "status"]):
        line = " ".join(process.info["cmdline"] or ())
        if f"_{pid}/" in line or line.endswith(f"_{pid}"):
            if process.info["status"] != psutil.STATUS_ZOMBIE:
                left.append(line[:200])
    return left


def _driver(tmp_path: Path, timeout: str) -> subprocess.Popen:
    """`study run tiny.yaml` as a user starts it from a terminal (Ctrl-C not ignored)."""
    env = {**os.environ, "STUDY_RAY_START_TIMEOUT": timeout, "RAY_ADDRESS": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "run", "tiny.yaml"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


@pytest.mark.slow
def test_a_real_start_cut_short_ends_in_one_line_and_leaves_no_process(tmp_path):
    """A limit of one second, shorter than any real start: the run ends with exit 2 and one
    line naming the session's logs folder, and no process of that session runs on."""
    driver = _driver(_work(tmp_path), "1")
    _, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 2, stderr[-3000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "did not start within 1 s" in lines[0], stderr[-3000:]
    logs = lines[0].split("its logs are in ")[1].split(". ")[0]
    assert Path(logs).is_dir() and f"_{driver.pid}" in logs
    time.sleep(1)
    assert _ours_left(driver.pid) == []


@pytest.mark.slow
@pytest.mark.parametrize("sent, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])  # fmt: skip
def test_ctrl_c_or_sigterm_while_ray_starts_ends_the_run_and_its_processes(tmp_path, sent, status):
    """Ctrl-C or SIGTERM once the raylet is starting: the run ends in seconds with its usual
    line and status, and no process of its Ray session runs on."""
    # A session folder of an earlier run whose driver had the same (recycled) pid is not this
    # run's: a signal sent on seeing it could reach the driver before Python handles SIGINT.
    pattern = f"{tempfile_root()}/ray/session_*_*/logs/raylet.out"
    earlier = set(glob.glob(pattern))
    driver = _driver(_work(tmp_path), "300")
    deadline = time.monotonic() + 240
    while not [p for p in glob.glob(pattern.replace("_*/", f"_{driver.pid}/"))
               if p not in earlier]:  # fmt: skip
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.1)
    sent_at = time.monotonic()
    driver.send_signal(sent)
    _, stderr = driver.communicate(timeout=60)
    assert time.monotonic() - sent_at < 30
    assert driver.returncode == status, stderr[-3000:]
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr[-3000:]
    time.sleep(1)
    assert _ours_left(driver.pid) == []


def tempfile_root() -> str:
    """Where Ray keeps its sessions' folder `ray/` (ray._common.utils.get_default_ray_temp_dir)."""
    from ray._common.utils import get_default_system_temp_dir

    return get_default_system_temp_dir()


def test_no_session_folder_is_needed_to_say_where_the_logs_are(tmp_path):
    """A start that hangs before Ray made its session folder names Ray's folder instead."""
    from orchestrator import localray

    hang = threading.Event()
    instance = localray.begin(tmp_path)
    try:
        with pytest.raises(localray.StartTimeout, match=f"its logs are in {tmp_path}"):
            localray.start_within(hang.wait, instance, 0.2)
    finally:
        hang.set()
    shutil.rmtree(tmp_path, ignore_errors=True)
