"""`study fit --csv` on large tables: 1,000, 10,000 and 100,000 rows, each command in a fresh
process, its seconds and its peak memory (the child's ru_maxrss).

The tables come from a known law with 1% log-normal noise: a ladder of 10 sizes, each trained
at 3 budgets (0.5x, 1x, 2x of 20 tokens per parameter) and seen again and again, as the rows of
many seeds and checkpoints repeat a ladder's points, fitted by L(N) and by L(N, D); and one
table whose every N is distinct (log-uniform), fitted by L(N); and the rows of three runs, one
size each (`--group run`), which are too few to resample, so their residuals are resampled
instead. 1,000 resamples (the default).

Run: PYTHONPATH=. python bench/csv_scale.py [--sizes 1000 10000 100000] [--tables runs]
(prints a table)

Target (issue 35): 100,000 rows in under 30 s and 1 GB; before, they were killed at 22.4 GB
after 379 s (1,000 rows: 6 s; 10,000: 49 s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TRUTH = {"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 410.0, "beta": 0.28}
LADDER = np.geomspace(1e7, 1e9, 10)
CASES = {  # name: (table, --law, more flags)
    "ladder, L(N)": ("ladder", "n", ()),
    "ladder, L(N, D)": ("ladder", "nd", ()),
    "distinct N, L(N)": ("distinct", "n", ()),
    # too few runs to resample: their residuals are resampled instead
    "3 runs, L(N)": ("runs", "n", ("--group", "run")),
}


def table(kind: str, rows: int, seed: int = 0) -> str:
    """A CSV of `rows` rows of the known law: a repeated ladder (N, D, loss) or distinct N."""
    rng = np.random.default_rng(seed)
    if kind == "ladder":
        n = rng.choice(LADDER, rows)
        d = 20 * n * rng.choice([0.5, 1.0, 2.0], rows)
        clean = TRUTH["E"] + TRUTH["A"] * n ** -TRUTH["alpha"] + TRUTH["B"] * d ** -TRUTH["beta"]
        columns = {"N": n, "D": d}
    elif kind == "runs":  # the rows of three runs (their logged points), one size each
        run = rng.integers(0, 3, rows)
        n = np.array([1e7, 1e8, 1e9])[run]
        clean = TRUTH["E"] + TRUTH["A"] * n ** -TRUTH["alpha"]
        columns = {"N": n, "run": run}
    else:
        n = np.exp(rng.uniform(np.log(1e7), np.log(1e9), rows))
        clean = TRUTH["E"] + TRUTH["A"] * n ** -TRUTH["alpha"]
        columns = {"N": n}
    loss = clean * np.exp(rng.normal(0.0, 0.01, rows))
    lines = [",".join([*columns, "loss"])]
    values = zip(*columns.values(), loss, strict=True)
    lines += [",".join(f"{v:.9g}" for v in row) for row in values]
    return "\n".join(lines) + "\n"


def measure(path: Path, law: str, *flags: str) -> tuple[float, float, int]:
    """Seconds, peak memory (MB) and exit status of `study fit --csv path --law law`, alone in
    a fresh process (a child of a child: ru_maxrss of RUSAGE_CHILDREN is then its own)."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "s = time.perf_counter() - t\n"
        "print(s, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)\n"
    )
    study = [sys.executable, "-m", "orchestrator.cli", "fit", "--csv", str(path), "--law", law,
             *flags]  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe, *study], capture_output=True, text=True,
                         check=True, env=os.environ | {"PYTHONPATH": os.getcwd()})  # fmt: skip
    seconds, kilobytes, rc = out.stdout.split()
    return float(seconds), int(kilobytes) / 1024, int(rc)


def main() -> None:
    """Print one row per case and size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    kinds = ["ladder", "distinct", "runs"]
    parser.add_argument("--tables", nargs="+", choices=kinds, default=kinds, help="default: all")
    args = parser.parse_args()
    sizes = args.sizes
    print(f"{'case':<20} {'rows':>8} {'seconds':>8} {'peak MB':>8}  exit")
    with tempfile.TemporaryDirectory() as folder:
        for name, (kind, law, flags) in CASES.items():
            if kind not in args.tables:
                continue
            for rows in sizes:
                path = Path(folder) / f"{kind}-{rows}.csv"
                if not path.exists():
                    path.write_text(table(kind, rows))
                seconds, megabytes, rc = measure(path, law, *flags)
                print(f"{name:<20} {rows:>8,} {seconds:>8.1f} {megabytes:>8.0f}  {rc}", flush=True)


if __name__ == "__main__":
    main()
