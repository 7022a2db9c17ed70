"""The quickstart as a new user meets it: `study run studies/quickstart.yaml` in a fresh folder,
several times; its wall time (median), and what it prints.

Each run is a new folder (a new store, token files made from scratch, the CPU peak measured
afresh), as after `pip install`. Prints each run's wall time and the median; the number of lines
the run printed to stdout and stderr together, the progress view aside (its lines start with
"[<elapsed>]"); whether the headline (one line per architecture) is last; and the last run's
headline and caveats as printed.

Run: python bench/quickstart.py [--runs 3] [studies/quickstart.yaml]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.spec import load_study

PROGRESS = re.compile(r"^\[\d+(m\d+)?s\] ")  # the progress view's lines when not on a terminal


def run_once(study: Path) -> tuple[float, list[str]]:
    """Wall seconds of one `study run` in a fresh folder, and its output lines (both streams,
    in the order printed)."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / study.name
        shutil.copy(study, local)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "run", local.name],
            cwd=tmp, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
    return wall, done.stdout.splitlines()


def main() -> None:
    """Time the quickstart `--runs` times and print the figures BENCHMARKS.md records."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", nargs="?", default="studies/quickstart.yaml")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    study = Path(args.study)
    architectures = load_study(study).architectures
    walls = []
    for i in range(args.runs):
        wall, lines = run_once(study)
        walls.append(wall)
        shown = [line for line in lines if not PROGRESS.match(line)]
        last = shown[-len(architectures) :]
        headline_last = sorted(line.split(":")[0].strip() for line in last) == sorted(architectures)
        print(f"run {i + 1}: {wall / 60:.2f} min ({wall:.0f} s), {len(shown)} lines printed "
              f"besides the progress view; the headline last: {headline_last}")  # fmt: skip
    print(
        f"median of {len(walls)}: {statistics.median(walls) / 60:.2f} min "
        f"({statistics.median(walls):.0f} s); range {min(walls):.0f}-{max(walls):.0f} s"
    )
    print("the last run printed (progress view aside):")
    for line in shown:
        print("  " + line)


if __name__ == "__main__":
    main()
