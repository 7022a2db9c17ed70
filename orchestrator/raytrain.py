"""Trials that span several workers: one trial trained by N processes through Ray Train.

A trial whose placement asks for more than one worker is launched as a `TorchTrainer`: Ray Train
starts one worker process per share of the placement (each with the placement's CPUs and GPUs),
joins them in a torch process group (gloo without GPUs, nccl with them) and runs `_worker` on
each; `trainers.train` finds the group through `torch.distributed` and knows nothing of Ray.
Rank 0 sends the trial's events to the launcher through a Ray queue; the other ranks send none.

Ray Train's own checkpoints and `ray.train.report` are not used: the trainer writes and resumes
from its own `last.pt`, and each launch is a run of its own name, so a stale Ray Train folder is
never resumed by mistake, and no report is throttled by the controller's 2 s poll.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import ray
from ray.util.queue import Empty, Queue

from trainers.events import Event, Start, from_dict, to_dict
from trainers.trial import TrialSpec

# Seconds a rank waits in a collective: rank 0 alone validates, scores zero-shot and writes
# checkpoints while the others wait in their next all_reduce. Ray's default today, said here so
# that a change of it cannot cut a long evaluation short.
COLLECTIVE_TIMEOUT_S = 1800
_POLL_S = 0.5  # how often the launcher looks whether training has ended, between events


class WorkersLost(RuntimeError):
    """A worker process of a multi-worker trial died (its node, or it, was lost): the trial runs
    again from its last checkpoint, as a single-worker trial whose node dies does."""


def _worker(config: dict) -> None:
    """Ray Train's `train_loop_per_worker`: train the trial on this rank; rank 0 reports."""
    from ray.train import get_context

    from trainers.train import train  # in the worker: the driver needs no torch

    spec = TrialSpec.from_dict(config["spec"])
    context = get_context()
    events: Queue = config["events"]

    def report(event: Event) -> None:
        if isinstance(event, Start):  # its workers and strategy are the trainer's own view
            event = replace(event, node=ray.get_runtime_context().get_node_id()[:12])
        events.put(to_dict(event))  # waits until the queue has it: none is lost at the end

    train(spec, report if context.get_world_rank() == 0 else lambda event: None)


def train_spread(spec: TrialSpec) -> Iterator[Event]:
    """Train a trial on its placement's workers through Ray Train, yielding rank 0's events as
    they come; raise the training's error once the workers have ended (WorkersLost where a
    worker process died). Run it in a Ray task that holds no CPU: the workers take them all."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    placement = spec.placement
    # The queue and Ray Train's controller hold no CPU either: an actor asks for one to be
    # scheduled unless told, and N workers on N CPUs would wait on it forever.
    events = Queue(actor_options={"num_cpus": 0})
    resources = {"CPU": placement.cpus} | ({"GPU": placement.gpus} if placement.gpus else {})
    # unique per launch: Ray Train resumes a run of the same name from its folder
    name = f"{spec.study}-{spec.trial_id}-{uuid.uuid4().hex[:8]}"
    root = runs_folder(placement.storage)
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"spec": spec.to_dict(), "events": events},
        scaling_config=ScalingConfig(
            num_workers=placement.workers,
            use_gpu=placement.gpus > 0,
            resources_per_worker=resources,
        ),
        torch_config=TorchConfig(timeout_s=COLLECTIVE_TIMEOUT_S),
        run_config=RunConfig(
            name=name,
            storage_path=root,
            # a retry is the driver's (schedule.run_trials), which counts it and records why
            failure_config=FailureConfig(max_failures=0),
        ),
    )
    failure: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as e:  # re-raised below, in the launcher's own thread
            failure.append(e)

    # fit() blocks until training ends, and sets a SIGINT handler of its own in a main thread
    thread = threading.Thread(target=fit, name=f"fit-{spec.trial_id}", daemon=True)
    thread.start()
    try:
        while True:
            try:
                yield from_dict(events.get(timeout=_POLL_S))
            except Empty:
                if not thread.is_alive() and events.empty():
                    break
    finally:
        events.shutdown(force=True)
    thread.join()
    # it holds only Ray Train's marker of a writable folder: no checkpoint is reported to it
    shutil.rmtree(Path(root, name), ignore_errors=True)
    if failure and _worker_died(failure[0]):
        raise WorkersLost(f"a worker process of {spec.trial_id} died") from failure[0]
    if failure:
        raise failure[0]


def runs_folder(storage: str) -> str:
    """Where Ray Train keeps its runs of the study's trials: under the study's `storage`, or
    without one a folder of the system's temporary files (Ray's default, ~/ray_results, would
    keep a folder of every launch in the home)."""
    if storage:
        return f"{storage}/ray-train"
    return str(Path(tempfile.gettempdir(), "study-ray-train"))


def _worker_died(error: BaseException) -> bool:
    """Whether a training error says a worker process died, not that training failed: Ray
    Train finds a dead worker when its health check fails on the actor's death."""
    failures = getattr(error, "worker_failures", None) or {}  # ray.train.WorkerGroupError's
    causes = [getattr(e, "health_check_failure", e) for e in failures.values()]
    return any(isinstance(e, ray.exceptions.RayActorError) for e in causes)
