"""The local Ray instance a run starts: started within a time limit, and none of its processes
left behind, however the run ends.

`ray.init` can hang for many minutes (under memory pressure its raylet waits for workers that
never register) inside native code, where Ctrl-C is not seen. So it runs in a thread of its own,
and the driver waits for it with a deadline, awake to signals. Where it gives up, it ends the
processes of the instance it was starting: Ray's processes that its own process started (and
theirs) since the start began, and any process that names the instance's session folder (Ray's
agents, which outlive a raylet killed before them). Processes of another Ray instance are never
touched, not even ones this process started earlier (the shared instance of a test session).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

DEFAULT_START_TIMEOUT_S = 180.0  # a start on a loaded laptop takes ~10 s; minutes mean a hang
TIMEOUT_ENV = "STUDY_RAY_START_TIMEOUT"  # seconds; overrides the study file's
_GRACE_S = 3.0  # between SIGTERM and SIGKILL for what is left of an instance
_ROUNDS = 5  # times the processes are looked for again, as some start others while ending


class StartTimeout(ConnectionError):
    """The local Ray instance did not start within its time limit (its processes ended)."""


@dataclass(frozen=True)
class Instance:
    """A local Ray instance this process started (or began to): the processes that were its
    own beforehand, to tell them from the instance's, and where Ray keeps its sessions."""

    temp_dir: Path  # Ray's folder for sessions (/tmp/ray, or under RAY_TMPDIR)
    since: float  # when the start began (time.time())
    before: frozenset[int]  # this process's descendants then: another instance's
    # Set when the instance has ended: the thread that started it waits for it, as Ray ties
    # its processes' lives to that thread's (PR_SET_PDEATHSIG: they die when it ends).
    ended: threading.Event = field(default_factory=threading.Event)

    def session_dir(self) -> Path | None:
        """The session folder of this instance: Ray names it after the process that started it
        (`session_<date>_<pid>`); the newest one made since the start began."""
        made = [path for path in self.temp_dir.glob(f"session_*_{os.getpid()}")
                if _made_at(path) >= self.since - 1]  # fmt: skip
        return max(made, default=None, key=lambda path: path.name)

    def processes(self) -> list[psutil.Process]:
        """The live processes of this instance (see the module's docstring)."""
        found = {p.pid: p for p in psutil.Process().children(recursive=True)
                 if not self.before & _ancestors(p) and _of_ray(p)}  # fmt: skip
        session = self.session_dir()
        if session is not None:
            for process in psutil.process_iter(["cmdline", "uids"]):
                try:
                    ours = process.info["uids"] and process.info["uids"].real == os.getuid()
                    if ours and str(session) in " ".join(process.info["cmdline"] or ()):
                        found.setdefault(process.pid, process)
                except (psutil.Error, TypeError):
                    continue
        found.pop(os.getpid(), None)
        return list(found.values())

    def end(self) -> int:
        """End what is left of this instance's processes (SIGTERM, then SIGKILL after a grace);
        how many there were. Looked for again until none is found: a raylet ended while it
        starts may have started its agents meanwhile."""
        ended = 0
        for _ in range(_ROUNDS):
            processes = self.processes()
            if not processes:
                break
            ended += len(processes)
            for process in processes:
                try:
                    process.terminate()
                except psutil.Error:
                    pass
            _, alive = psutil.wait_procs(processes, timeout=_GRACE_S)
            for process in alive:
                try:
                    process.kill()
                except psutil.Error:
                    pass
            psutil.wait_procs(alive, timeout=_GRACE_S)
        self.ended.set()
        return ended


def _made_at(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _of_ray(process: psutil.Process) -> bool:
    """Whether a process is one of Ray's (its GCS, raylet, dashboard, agents, workers, all of
    which name ray in their command line), not one the program calling the API started."""
    try:
        return "ray" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def _ancestors(process: psutil.Process) -> frozenset[int]:
    """The pids between `process` (included) and this process (excluded)."""
    pids, me = set(), os.getpid()
    try:
        while process is not None and process.pid != me:
            pids.add(process.pid)
            process = process.parent()
    except psutil.Error:
        pass
    return frozenset(pids)


def start_timeout(from_study: float | None) -> float:
    """The time limit of a local Ray start, in seconds: STUDY_RAY_START_TIMEOUT where set, else
    the study file's `resources: ray_start_timeout`, else DEFAULT_START_TIMEOUT_S."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if text:
        try:
            seconds = float(text)
        except ValueError:
            raise ConnectionError(f"{TIMEOUT_ENV}={text!r} is not a number of seconds") from None
        if not seconds > 0:
            raise ConnectionError(f"{TIMEOUT_ENV}={text!r}: give a number of seconds above 0")
        return seconds
    return from_study or DEFAULT_START_TIMEOUT_S


def begin(temp_dir: str | Path) -> Instance:
    """The instance about to be started, with Ray's folder for sessions."""
    before = frozenset(p.pid for p in psutil.Process().children(recursive=True))
    return Instance(temp_dir=Path(temp_dir), since=time.time(), before=before)


def start_within(init: Callable[[], object], instance: Instance, timeout_s: float):
    """What `init()` (a ray.init starting `instance`) returns, waited for at most `timeout_s`
    seconds; the thread it ran in lives on until `instance.end()`. On the deadline the
    instance's processes are ended and StartTimeout says where its logs are; on Ctrl-C or
    SIGTERM meanwhile they are ended and the interrupt goes on. An error of `init` is raised
    as it came."""
    outcome: dict[str, object] = {}
    done = threading.Event()

    def body() -> None:
        try:
            outcome["value"] = init()
        except BaseException as e:  # re-raised in the driver's thread below
            outcome["error"] = e
        finally:
            done.set()
        instance.ended.wait()  # Ray's GCS and raylet live as long as this thread does

    threading.Thread(target=body, name="ray-start", daemon=True).start()
    try:
        if not done.wait(timeout_s):
            session = instance.session_dir()
            logs = session / "logs" if session else instance.temp_dir
            raise StartTimeout(
                f"the local Ray instance did not start within {timeout_s:g} s (its raylet, GCS "
                f"or workers; the machine may be short of memory): its logs are in {logs}. Free "
                f"memory, or allow longer with `resources: {{ray_start_timeout: SECONDS}}` in "
                f"the study file (or {TIMEOUT_ENV})"
            )
    except BaseException:  # the deadline, Ctrl-C, SIGTERM: nothing of the instance stays
        instance.end()
        raise
    if "error" in outcome:
        instance.end()  # a start that failed halfway leaves none of its processes either
        raise outcome["error"]
    return outcome["value"]
