"""End to end: the wall time of `study run` on a study, and what share of it went to training.

Runs `study run FILE` in a fresh folder (a new store, token files made from scratch), times it,
then reads the store: each trial's training-step seconds (tokens / tokens per second, which the
trainer measures on training steps only) and its whole wall time (data loading, evaluations and
zero-shot scoring too). Shares are of the CPU capacity the run had: wall time × the trials that
fit side by side (CPUs / cpus_per_trial).

Run: python bench/end_to_end.py studies/quickstart.yaml [studies/scaling.yaml ...]
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.spec import load_study


def measure(study: Path) -> None:
    spec = load_study(study)
    slots = max(1, (os.cpu_count() or 1) // spec.resources.cpus_per_trial)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / study.name
        shutil.copy(study, local)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "run", str(local)],
            cwd=tmp, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wall = time.perf_counter() - start
        with sqlite3.connect(Path(tmp) / "runs" / f"{spec.name}.db") as db:
            rows = db.execute("SELECT tokens_done, tokens_per_s, wall_s FROM trials").fetchall()
    training = sum(tokens / rate for tokens, rate, _ in rows)
    in_trials = sum(w for _, _, w in rows)
    capacity = wall * slots
    print(
        f"{study}: {len(rows)} trials, {slots} side by side; wall {wall / 60:.1f} min; "
        f"training steps {training / capacity:.0%} of the capacity, whole trials (with data, "
        f"evaluation and zero-shot) {in_trials / capacity:.0%}, the rest (Ray start, data "
        f"preparation, waiting for the last trial, fit and report) {1 - in_trials / capacity:.0%}"
    )


if __name__ == "__main__":
    for path in sys.argv[1:] or ["studies/quickstart.yaml"]:
        measure(Path(path))
