"""What a trial on several workers costs to start: a Ray Train trial (2 workers of 1 CPU each)
beside a plain one-worker task, the same tiny trial, on a local Ray instance of 2 CPUs.

For each launch, through `schedule.run_trials` (what `study run` calls): the seconds from its
submission to rank 0's Start event (the trainer has begun: for Ray Train, once the controller,
the placement group, the worker processes and the torch process group are up) and to its first
Train event (one step trained). Each launch waits first until both CPUs are free again (the
previous launch's workers and placement group gone; that wait is timed apart, as "CPUs back").
The two kinds alternate, so that both see the same machine; the table gives each launch and the
median of each kind. Ray itself is started once, before.

Run: python bench/raytrain_startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace

import ray

from orchestrator import schedule
from orchestrator.grid import expand
from orchestrator.spec import parse_study
from trainers.events import Event, Start, Train

# the tiny trial of tests/test_raytrain.py: 50 steps of 8 sequences of 32 tokens, logged each step
TINY = """\
name: startup
data: {seq_len: 32}
architectures: [decoder]
sizes: [25K]
budget: {tokens: 12800}
train: {batch_size: 8, lr: 3.0e-3}
eval: {every_tokens: 6400, tokens: 2K, zero_shot: {tasks: []}}
storage: ""
"""


def launch(workers: int, storage: str) -> dict:
    """One trial on `workers` workers of 1 CPU: seconds from submission to its Start, its first
    Train event and its end, and the seconds it waited before for both CPUs to be free."""
    spec = expand(parse_study(TINY), "", "")[0]
    spec = replace(spec, placement=replace(spec.placement, cpus=1, workers=workers,
                                           storage=storage))  # fmt: skip
    seen: dict[str, float] = {}
    errors: list[str] = []
    start = time.perf_counter()
    while ray.available_resources().get("CPU", 0) < 2:
        time.sleep(0.1)  # the previous launch's CPUs, not yet given back
    seen["free"] = time.perf_counter() - start
    start = time.perf_counter()

    def on_event(_, event: Event) -> None:
        kind = "start" if isinstance(event, Start) else "train" if isinstance(event, Train) else ""
        if kind and kind not in seen:
            seen[kind] = time.perf_counter() - start

    schedule.run_trials([spec], on_event, lambda s, e: errors.append(e), use_gpus=False)
    assert not errors, errors
    return seen | {"end": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    results: dict[str, list[dict]] = {"plain task, 1 worker": [], "Ray Train, 2 workers": []}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for i in range(args.repeats):
                for workers, name in ((1, "plain task, 1 worker"), (2, "Ray Train, 2 workers")):
                    results[name].append(launch(workers, f"{folder}/{name[:5]}{i}"))
    finally:
        ray.shutdown()
    heads = ("CPUs back (s)", "to Start (s)", "to first Train (s)", "to end (s)")
    print(f"{'launch':24} " + " ".join(f"{h:>24}" for h in heads))
    for name, runs in results.items():
        cells = []
        for key in ("free", "start", "train", "end"):
            values = [r[key] for r in runs]
            each = ", ".join(f"{v:.1f}" for v in values)
            cells.append(f"{statistics.median(values):.1f} ({each})")
        print(f"{name:24} " + " ".join(f"{c:>24}" for c in cells))
    print("median (each launch, in order)")


if __name__ == "__main__":
    main()
