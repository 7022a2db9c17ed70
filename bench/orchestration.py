"""What orchestration costs: `study run` against the same training calls in a plain loop, and
how well a study of small trials keeps the CPUs busy.

overhead  20 tiny trials, one at a time (each takes both CPUs), through `api.run_study` (what
          `study run` calls) and through `trainers.train.train` in a plain loop. Ray's start
          (`schedule.connect`) and the fit and report at the end are timed apart; what is left
          beyond the plain loop, per trial, is the orchestration overhead: the store, task
          submission, the worker, the events' trip to the driver.
packing   12 small trials of one CPU each on the 2-CPU local instance: the share of CPU time in
          use (from /proc/stat) while at least as many trials remain as there are CPUs, and the
          torch threads each trial reports.

Run: python bench/orchestration.py [--repeats 3]   (Linux: reads /proc/stat)
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from orchestrator import api, fitting, schedule
from orchestrator.spec import load_study
from trainers.train import train

TINY = """
name: overhead
data: {{corpus: "builtin:kjv", tokenizer: bytes, seq_len: 64}}
architectures: [decoder]
sizes: [10K]
budget: {{tokens: 16K}}
seeds: {seeds}
train: {{batch_size: 8}}
eval: {{tokens: 1K, zero_shot: {{tasks: []}}}}
resources: {{cpus_per_trial: 2}}
storage: {storage}
"""

PACKED = """
name: packing
data: {{corpus: "builtin:kjv", tokenizer: bytes, seq_len: 64}}
architectures: [decoder]
sizes: [25K, 50K, 100K]
budget: {{tokens: 160K}}
seeds: [0, 1, 2, 3]
train: {{batch_size: 8}}
eval: {{tokens: 2K, zero_shot: {{tasks: []}}}}
resources: {{cpus_per_trial: 1}}
storage: {storage}
"""


class _Timed:
    """Wraps a function and adds up the seconds spent in it."""

    def __init__(self, owner, name: str):
        self.owner, self.name, self.inner, self.seconds = owner, name, getattr(owner, name), 0.0
        setattr(owner, name, self)

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start

    def restore(self) -> None:
        setattr(self.owner, self.name, self.inner)


def overhead(folder: Path, n_trials: int) -> dict:
    study = folder / "overhead.yaml"
    study.write_text(TINY.format(seeds=list(range(n_trials)), storage=folder / "artifacts"))
    spec = load_study(study)
    trials = api.trials(spec, api.prepare_data(spec))  # the token files, made once here
    start = time.perf_counter()
    for trial in trials:
        train(replace(trial, placement=replace(trial.placement, storage="")), lambda event: None)
    plain = time.perf_counter() - start

    connect = _Timed(schedule, "connect")
    disconnect = _Timed(schedule, "disconnect")
    fit = _Timed(fitting, "fit_and_report")
    try:
        start = time.perf_counter()
        result = api.run_study(
            study, store=f"sqlite:///{folder / 'overhead.db'}", report=folder / "r.html",
            console=Console(file=open(os.devnull, "w")), n_boot=0,
        )  # fmt: skip
        total = time.perf_counter() - start
    finally:
        for timed in (connect, disconnect, fit):
            timed.restore()
    assert len(result.ran) == n_trials and not result.failed
    ray_start = connect.seconds + disconnect.seconds
    rest = total - ray_start - fit.seconds
    return {
        "plain": plain,
        "total": total,
        "ray": ray_start,
        "fit": fit.seconds,
        "per_trial": (rest - plain) / n_trials,
    }


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    return sum(values) - idle, sum(values)


def packing(folder: Path) -> dict:
    study = folder / "packing.yaml"
    study.write_text(PACKED.format(storage=folder / "artifacts"))
    store = folder / "packing.db"
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        busy, total = _cpu_times()
        while not done.wait(0.5):
            busy2, total2 = _cpu_times()
            try:
                with sqlite3.connect(store) as db:
                    (left,) = db.execute(
                        "SELECT COUNT(*) FROM trials WHERE status IN ('pending', 'running')"
                    ).fetchone()
                    (running,) = db.execute(
                        "SELECT COUNT(*) FROM trials WHERE status = 'running'"
                    ).fetchone()
            except sqlite3.Error:
                left = running = 0
            if running and left >= os.cpu_count():  # not the tail, where CPUs must idle
                samples.append((busy2 - busy) / max(1, total2 - total))
            busy, total = busy2, total2

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        api.run_study(
            study, store=f"sqlite:///{store}", report=folder / "p.html",
            console=Console(file=open(os.devnull, "w")), n_boot=0,
        )  # fmt: skip
    finally:
        done.set()
        sampler.join()
    with sqlite3.connect(store) as db:
        devices = sorted({d for (d,) in db.execute("SELECT device FROM trials")})
    return {"utilisation": statistics.mean(samples), "samples": len(samples), "devices": devices}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(overhead(Path(tmp), args.trials))
        print({k: round(v, 2) for k, v in runs[-1].items()}, flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(
        f"\noverhead, {args.trials} trials one at a time, median of {args.repeats}: plain loop "
        f"{med['plain']:.1f} s; study run {med['total']:.1f} s = Ray start and stop "
        f"{med['ray']:.1f} s + fit and report {med['fit']:.1f} s + the rest; overhead beyond "
        f"the plain loop {med['per_trial']:.2f} s per trial"
    )
    with tempfile.TemporaryDirectory() as tmp:
        packed = packing(Path(tmp))
    print(
        f"packing, 12 one-CPU trials on {os.cpu_count()} CPUs: CPU busy "
        f"{packed['utilisation']:.1%} while trials remain ({packed['samples']} samples of "
        f"0.5 s); trials ran on {', '.join(packed['devices'])}"
    )


if __name__ == "__main__":
    main()
