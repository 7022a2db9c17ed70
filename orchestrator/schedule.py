"""Scheduling trials on Ray: with raytrain.py, the only module that imports ray.

Each trial is one Ray task named after its trial id, asking for the study's resources. The task
is a streaming generator: it runs `trainers.train` and yields every event the trainer reports,
so the driver receives them while the trial runs and writes them to the store. A trial on
several workers is a task too, holding no CPU, that launches them through Ray Train
(orchestrator.raytrain) and yields rank 0's events the same way.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import re
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import ray
from ray._common import utils as ray_utils
from ray.job_config import JobConfig
from ray.util import metrics

import orchestrator
import trainers
from orchestrator import localray, raytrain
from trainers.events import Checkpoint, End, Event, Start, Train, Validation, from_dict, to_dict
from trainers.trial import TrialSpec

AUTH_TOKEN_PATH = Path.home() / ".ray" / "auth_token"
_ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Cluster:
    """What the driver knows of the Ray cluster it is connected to."""

    dashboard_url: str | None
    gpus: float
    started_here: bool  # a local instance this process started (and shuts down)
    token_secured: bool = False  # the token file was readable by others, and now is not
    instance: localray.Instance | None = None  # the local instance started here, if any


def connect(
    address: str | None = None, job: str = "", study: str = "", *,
    start_timeout_s: float | None = None,
) -> Cluster:  # fmt: skip
    """Join the cluster at `address` (or RAY_ADDRESS; "auto": the one `ray start` started on
    this machine), or start a local one, within `start_timeout_s` seconds (localray.start_timeout);
    reuse a live one. The driver's Ray job is named `job` ("study run quickstart": the Name
    column of the dashboard's Jobs list) with the `study` in its metadata. Raises
    ConnectionError saying what to check when the cluster cannot be joined or started."""
    started_here, secured, instance = False, False, None
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        runtime_env = None
        if address:
            _probe(address)
            # Workers on other machines import the task and trainer code from these packages.
            runtime_env = {"py_modules": [orchestrator, trainers]}
        else:
            # Ray turns token authentication on for a local instance, and says on every run
            # how to opt out; we keep it on and say how to sign in instead.
            logging.getLogger(_AUTH_LOGGER).addFilter(_no_opt_out_advice)
            # ray.init runs in a thread of its own here, where Ray says it cannot set its
            # SIGTERM handler: `_catch_sigterm` sets the driver's.
            logging.getLogger(_WORKER_LOGGER).addFilter(_no_thread_warning)
        metadata = {"job_name": job, "study": study} if job else {}
        init = functools.partial(
            ray.init,
            # "local": a new instance, even where `ray start` runs one on this machine
            address=address or "local",
            runtime_env=runtime_env,
            include_dashboard=None if address else True,
            logging_level="WARNING",
            log_to_driver=True,
            job_config=JobConfig(metadata=metadata),
        )
        _SIGTERM.clear()
        _catch_sigterm()  # before a local start, which SIGTERM must be able to end
        try:
            with _loopback(address is None):
                if address:
                    context = init()
                else:  # in a thread, under a time limit: it can hang, deaf to Ctrl-C
                    instance = localray.begin(ray_utils.get_default_ray_temp_dir())
                    timeout = localray.start_timeout(start_timeout_s)
                    context = localray.start_within(init, instance, timeout)
        except BaseException as e:  # a program that called the API keeps its own handler
            _release_sigterm()
            unreachable = (ConnectionError, ray.exceptions.AuthenticationError)
            if isinstance(e, unreachable) and not isinstance(e, localray.StartTimeout):
                raise ConnectionError(_unreachable(address, e)) from None
            raise  # the time limit (its own line), Ctrl-C, SIGTERM
        _catch_sigterm()  # again after a ray.init in this thread, which sets its own
        secured = _private_token()
        started_here = address is None
        dashboard = context.dashboard_url or None
    else:
        dashboard = None  # a Ray instance someone else started: its owner knows its dashboard
    return Cluster(
        dashboard_url=f"http://{dashboard}" if dashboard and "://" not in dashboard else dashboard,
        gpus=ray.cluster_resources().get("GPU", 0.0),
        started_here=started_here,
        token_secured=secured,
        instance=instance,
    )


# Ray gives a node the address other machines reach it on, and its services (the GCS, the
# raylet, the dashboard agent's metrics endpoint, which answers without the dashboard's
# token) listen there; with "clusters" off it takes the loopback address instead. Its switch:
_CLUSTERS = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _loopback(local: bool):
    """A local instance started on 127.0.0.1: every endpoint it opens answers this machine
    only. The switch is set for `ray.init` alone (and the processes it starts), not for later
    connections of this process to a cluster."""
    if not local:
        yield
        return
    from ray._private import ray_constants

    before, saved = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(_CLUSTERS)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[_CLUSTERS] = "0"
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        if saved is None:
            os.environ.pop(_CLUSTERS, None)
        else:
            os.environ[_CLUSTERS] = saved


def _private_token() -> bool:
    """The dashboard's token file readable by its owner alone: Ray writes it 0644, and anyone
    on the machine who reads it can run code on the cluster. True if it had to be changed."""
    try:
        if AUTH_TOKEN_PATH.exists() and AUTH_TOKEN_PATH.stat().st_mode & 0o077:
            AUTH_TOKEN_PATH.chmod(0o600)
            return True
    except OSError:
        pass  # not ours to change (another user's home, a read-only mount)
    return False


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `kill`, Docker, Slurm and Kubernetes send), handled as Ctrl-C is: the
    running trials are marked interrupted and the local Ray instance is shut down."""


_HANDLERS: dict[str, object] = {}  # the handlers `connect` replaced, for `disconnect`
_SIGTERM = threading.Event()  # set by the handler, for `terminated`


def _catch_sigterm() -> None:
    """SIGTERM raises Terminated in the driver (from its main thread only: Python's rule)."""
    if threading.current_thread() is threading.main_thread():
        _HANDLERS.setdefault("SIGTERM", signal.getsignal(signal.SIGTERM))
        signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum, frame) -> None:
    _SIGTERM.set()
    raise Terminated()


def terminated(interrupt: KeyboardInterrupt) -> bool:
    """Whether an interrupt of the run came from SIGTERM: a Terminated, or a plain
    KeyboardInterrupt after the handler ran (Ray, waiting in its own code when the signal
    comes, raises one of its own in place of ours)."""
    return isinstance(interrupt, Terminated) or _SIGTERM.is_set()


_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def _no_opt_out_advice(record: logging.LogRecord) -> bool:
    return "RAY_AUTH_MODE=disabled to opt out" not in record.getMessage()


_WORKER_LOGGER = "ray._private.worker"


def _no_thread_warning(record: logging.LogRecord) -> bool:
    return "SIGTERM handler is not set" not in record.getMessage()


def _probe(address: str) -> None:
    """Fail in seconds, not minutes, when nothing listens at a HOST:PORT address."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto" and the like: Ray resolves them
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ConnectionError(
            f"nothing answers at {address} ({e.strerror or e}): give the address that "
            "`ray start --head` printed on the head node (HOST:6379 by default), and check "
            "that the head is up (`ray status --address HOST:PORT` on it)"
        ) from None


def _unreachable(address: str | None, error: Exception) -> str:
    first = str(error).strip().split(". ")[0]
    if not address:
        return f"cannot start a local Ray instance: {first}"
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        hint = (
            "a cluster started with `ray start` asks for its token by default: export "
            "RAY_AUTH_MODE=token, with the head's token (`ray get-auth-token` on the head "
            f"prints it) in {AUTH_TOKEN_PATH} or in RAY_AUTH_TOKEN"
        )
    else:
        hint = (
            "check that the token here is the head's (`ray get-auth-token` prints it on "
            f"either machine; here it is read from RAY_AUTH_TOKEN or {AUTH_TOKEN_PATH})"
        )
    return f"cannot join the Ray cluster at {address}: {first}; {hint}"


def disconnect(cluster: Cluster) -> None:
    """Shut down a local instance this process started; leave a joined cluster running. The
    SIGTERM handler `connect` set is taken back: a program that called the API keeps its own."""
    if cluster.started_here and ray.is_initialized():
        ray.shutdown()
    if cluster.instance is not None:
        cluster.instance.end()  # agents that outlived their raylet: none is left running
    _release_sigterm()


def _release_sigterm() -> None:
    """The SIGTERM handler `_catch_sigterm` replaced, put back."""
    previous = _HANDLERS.pop("SIGTERM", None)
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def cluster_nodes(address: str, study: str) -> list[dict]:
    """The resources of each live node of the cluster at `address`, joined as the Ray job
    `study plan <study>` (no code shipped: it runs no task), then left running. Raises
    ConnectionError, saying what to check, where it cannot be joined or this process is
    connected to a Ray instance already (whose nodes would be read instead)."""
    _probe(address)  # nothing there: said first, in seconds
    if ray.is_initialized():
        raise ConnectionError(f"this process is connected to a Ray instance already: read the "
                              f"nodes of {address} from a process of its own")  # fmt: skip
    metadata = {"job_name": f"study plan {study}", "study": study}
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False,
                 job_config=JobConfig(metadata=metadata))  # fmt: skip
    except (ConnectionError, ray.exceptions.AuthenticationError) as e:
        raise ConnectionError(_unreachable(address, e)) from None
    try:
        return nodes()
    finally:
        ray.shutdown()  # this driver only: the cluster goes on


def nodes() -> list[dict]:
    """The resources of each live node of the cluster joined ({"CPU": 16.0, "GPU": 8.0, ...})."""
    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


_GAUGES: dict[str, metrics.Gauge] = {}


def _gauge(name: str, description: str) -> metrics.Gauge:
    if name not in _GAUGES:
        _GAUGES[name] = metrics.Gauge(name, description, tag_keys=("study", "trial"))
    return _GAUGES[name]


def _export_metrics(spec: TrialSpec, event: Event) -> None:
    """Trial loss, throughput and progress as Ray application metrics (Prometheus, Grafana)."""
    tags = {"study": spec.study, "trial": spec.trial_id}
    if isinstance(event, Train):
        _gauge("study_trial_train_loss", "training loss of a trial").set(event.loss, tags)
        _gauge("study_trial_tokens_per_second", "training throughput of a trial").set(
            event.tokens_per_s, tags
        )
        _gauge("study_trial_progress", "fraction of the token budget trained").set(
            min(1.0, event.tokens / spec.budget.tokens), tags
        )
    elif isinstance(event, Validation):
        _gauge("study_trial_val_loss", "validation loss of a trial").set(event.val_loss, tags)


# Ray would retry a task whose node died by itself, but a retried streaming generator skips the
# events it had already yielded: the driver would miss the `start` of the new attempt and the
# history it reports again. The driver resubmits such trials itself (see `run_trials`).
@ray.remote(max_retries=0)
def run_trial(spec_dict: dict, scoring: dict | None = None) -> Iterator[dict]:
    """A Ray generator task: train one trial in a thread (or, with `scoring`, score its weights
    again: `trainers.scoring.score_trial`'s checkpoints and skip) and yield its events as they
    come (as plain dicts: `trainers.events.to_dict`; the driver makes them typed again)."""
    # imported in the worker: the driver needs no torch
    from trainers.scoring import score_trial
    from trainers.train import train

    spec = TrialSpec.from_dict(spec_dict)
    events: queue.Queue = queue.Queue()
    done = object()
    failure: list[BaseException] = []

    def report(event: Event) -> None:
        if isinstance(event, Start):
            event = replace(event, node=ray.get_runtime_context().get_node_id()[:12])
        events.put(event)

    def body() -> None:
        try:
            if scoring is None:
                train(spec, report)
            else:
                score_trial(spec, scoring["checkpoints"], report, frozenset(scoring["skip"]))
        except BaseException as e:  # re-raised below, in the task's own thread
            failure.append(e)
        finally:
            events.put(done)

    thread = threading.Thread(target=body, name=f"train-{spec.trial_id}", daemon=True)
    thread.start()
    while (event := events.get()) is not done:
        _export_metrics(spec, event)
        yield to_dict(event)
    thread.join()
    if failure:
        raise failure[0]


# Holds no CPU or GPU: the trial's Ray Train workers take them, and a launcher that held one
# would leave N workers on a machine of N CPUs waiting for it.
@ray.remote(num_cpus=0, max_retries=0)
def run_spread_trial(spec_dict: dict) -> Iterator[dict]:
    """A Ray generator task, as `run_trial` is, for a trial on several workers: train it through
    Ray Train (`raytrain.train_spread`) and yield rank 0's events as they come."""
    spec = TrialSpec.from_dict(spec_dict)
    for event in raytrain.train_spread(spec):
        _export_metrics(spec, event)
        yield to_dict(event)


@ray.remote(max_retries=0)
def _measure_cpu_peak(threads: int, folder: str) -> float:
    """A Ray task: the CPU's peak FLOP/s on `threads` threads (trainers.peak.measure_cpu_peak)."""
    import torch

    from trainers.peak import measure_cpu_peak

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return measure_cpu_peak(folder)["flops"]
    finally:
        torch.set_num_threads(before)  # the worker process trains trials next


def with_cpu_peaks(trials: list[TrialSpec], peaks: dict[int, float], *, use_gpus: bool):
    """The trials, those on the CPU given its peak on their thread count
    (`Placement.cpu_peak_flops`): each count measured once per run (`peaks` keeps them across
    calls), as a task of that many CPUs, one at a time before any trial trains, so that MFU is
    measured against one peak that never moves while the run trains. A trial on a GPU, or with
    the study's `resources.peak_flops`, needs none; a measurement that fails leaves the trainer
    to read or measure it itself."""

    def on_cpu(spec: TrialSpec) -> bool:
        return not (use_gpus and spec.placement.gpus > 0) and not spec.placement.peak_flops

    out = []
    for spec in trials:
        threads = max(1, int(spec.placement.cpus))
        if on_cpu(spec) and threads not in peaks:
            folder = str(Path(spec.placement.storage) / "cache") if spec.placement.storage else ""
            task = _measure_cpu_peak.options(name=f"cpu-peak-{threads}t", num_cpus=threads)
            try:
                peaks[threads] = ray.get(task.remote(threads, folder))
            except ray.exceptions.RayError:  # a peak is not worth a run: the trainer measures
                peaks[threads] = 0.0
        cpu_peak = peaks[threads] if on_cpu(spec) else 0.0
        out.append(replace(spec, placement=replace(spec.placement, cpu_peak_flops=cpu_peak)))
    return out


OnEvent = Callable[[TrialSpec, Event], None]
OnError = Callable[[TrialSpec, str], None]
OnRetry = Callable[[TrialSpec, str, bool], None]

# Failures of the machine rather than of the trial: its node died or its worker process was
# killed. Such a trial runs again (on another node if need be) up to LOST_RETRIES times, apart
# from the study's own `max_retries`.
LOST = (
    ray.exceptions.NodeDiedError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.LocalRayletDiedError,
    ray.exceptions.ObjectLostError,
    raytrain.WorkersLost,  # a worker process of a trial on several workers
)
LOST_RETRIES = 3


def run_trials(
    trials: list[TrialSpec],
    on_event: OnEvent,
    on_error: OnError,
    *,
    use_gpus: bool,
    on_tick: Callable[[], None] = lambda: None,
    poll_s: float = 0.5,
    max_retries: int = 0,
    on_retry: OnRetry = lambda spec, error, lost: None,
    scoring: dict[str, dict] | None = None,
    gates=None,
) -> None:
    """Run trials as Ray tasks, calling back on the driver for each event and each failure;
    with `scoring` (trial id -> {"checkpoints", "skip"}), score their weights instead of
    training them (tasks named `<trial id>:eval`). With `gates` (orchestrator.branches.Gates),
    a branch is submitted only once its trunk has passed its branch point, and fails unstarted
    where its trunk fails for good before it.

    A trial that fails is submitted again up to `max_retries` times, and a trial whose node or
    worker process was lost up to LOST_RETRIES times more (`on_retry` is told why, and whether
    it was lost); it resumes from its last checkpoint. On KeyboardInterrupt, or any error of
    the driver's callbacks, the remaining tasks are cancelled and the exception re-raised.
    """
    running: dict = {}
    retries_left = {spec.trial_id: max_retries for spec in trials}
    lost_left = {spec.trial_id: LOST_RETRIES for spec in trials}

    def submit(spec: TrialSpec) -> None:
        gpus = spec.placement.gpus if use_gpus else 0
        job = (scoring or {}).get(spec.trial_id)
        name = spec.trial_id + (":eval" if job is not None else "")
        spec_run = replace(spec, placement=replace(spec.placement, gpus=gpus))
        if spec.placement.workers > 1 and job is None:  # scoring reads final.pt in one process
            running[run_spread_trial.options(name=name).remote(spec_run.to_dict())] = spec_run
            return
        options = {"name": name, "num_cpus": spec.placement.cpus, "num_gpus": gpus}
        running[run_trial.options(**options).remote(spec_run.to_dict(), job)] = spec_run

    by_id = {spec.trial_id: spec for spec in trials}

    def seen(spec: TrialSpec, event: Event) -> None:
        on_event(spec, event)
        step = _reached(event)
        for branch in gates.passed(spec.trial_id, step) if gates and step is not None else ():
            submit(by_id[branch])

    def failed(spec: TrialSpec, error: str) -> None:
        on_error(spec, error)
        for branch, why in gates.failed(spec.trial_id).items() if gates else ():
            failed(by_id[branch], why)

    for spec in trials:
        if not (gates and gates.held(spec.trial_id)):
            submit(spec)
    try:
        while running:
            ready, _ = ray.wait(list(running), num_returns=len(running), timeout=poll_s)
            for generator in ready:
                spec = running[generator]
                failure = _drain(generator, running, seen)
                if failure is None:
                    continue
                error, lost = failure
                left = lost_left if lost else retries_left
                if left[spec.trial_id] > 0:
                    left[spec.trial_id] -= 1
                    on_retry(spec, error, lost)
                    submit(spec)
                else:
                    failed(spec, error)
            on_tick()
    except BaseException:  # Ctrl-C, SIGTERM, a store that stopped answering: no task left behind
        for generator in running:
            with contextlib.suppress(Exception):  # a cancel that fails must not hide why
                ray.cancel(generator, force=True)
        raise


def _reached(event: Event) -> int | None:
    """The step a trial has reached and kept, as far as its branches care: a checkpoint
    written, a resumed start beyond it, or the end."""
    if isinstance(event, Checkpoint | End):
        return event.step
    return event.resumed_step if isinstance(event, Start) else None


def _drain(generator, running: dict, on_event: OnEvent) -> tuple[str, bool] | None:
    """Take every event a trial's generator has ready; forget the trial when it ends. Returns
    the error text if the trial failed, and whether its node or worker was lost."""
    spec = running[generator]
    while True:
        try:
            ref = next(generator)
        except StopIteration:
            del running[generator]
            return None
        try:
            event = from_dict(ray.get(ref))
        except ray.exceptions.RayError as e:
            del running[generator]
            return _error_text(e), isinstance(e, LOST)
        on_event(spec, event)
        ready, _ = ray.wait([generator], timeout=0)
        if not ready:
            return None


def _error_text(error: BaseException) -> str:
    # RayTaskError's text carries the remote traceback: keep it whole, minus terminal colours.
    return _ANSI_COLOUR.sub("", str(error)).strip()
