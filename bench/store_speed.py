"""The run store's speed on the paths a study uses: the driver writing what trials report, and
`study status` reading a large study.

ingest  the driver's write path (`RunStore.events`, its batched recorder, as `study run` uses
        it): trials report start, train events (three metric rows each) and evaluations, and
        the driver commits as it does during a run; rows/s counts metric rows.
status  `api.status` (what `study status` prints) on a store of many trials, and the whole
        `study status` command, as JSON and as the table, in a fresh process (Python's start
        and the imports included, and timed apart).

Run: python bench/store_speed.py [--trials 10000] [--events 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator import api
from orchestrator.grid import expand
from orchestrator.spec import parse_study
from orchestrator.store import RunStore
from trainers.events import End, Start, Train, Validation

STUDY = """
name: bench
architectures: [decoder]
sizes: [25K]
budget: {{tokens: 600K}}
seeds: {seeds}
"""


def _study(store: RunStore, n_trials: int) -> list[str]:
    """Register a study of `n_trials` trials (one size, many seeds); their ids."""
    spec = parse_study(STUDY.format(seeds=list(range(n_trials))))
    trials = expand(spec, "", "")
    planned = dict.fromkeys(
        (t.trial_id for t in trials),
        {"n_params": 25_000, "total_params": 37_000, "flops_per_token": 150_000},
    )
    store.register(spec.name, trials, spec=spec.model_dump(mode="json"), spec_hash=spec.hash(),
                   planned=planned, data=None)  # fmt: skip
    return [t.trial_id for t in trials]


START = Start(n_params=25_472, total_params=37_856, flops_per_token=150_000, device="cpu",
              threads=1, steps=1)  # fmt: skip
END = End(step=10, tokens=40_960, tokens_scored=40_960, val_loss=3.0, wall_s=5.0,
          tokens_per_s=5e4, mfu=0.3, epochs=1.0)  # fmt: skip


def ingest(folder: Path, n_trials: int, n_events: int) -> float:
    """Metric rows per second through the driver's write path."""
    with RunStore.open(f"sqlite:///{folder / 'ingest.db'}") as store:
        trial_ids = _study(store, n_trials)
        events = store.events(trial_ids)
        start = time.perf_counter()
        for trial_id in trial_ids:
            events.record(trial_id, START)
        per_trial = n_events // n_trials
        for step in range(1, per_trial + 1):
            for trial_id in trial_ids:  # trials report side by side, as they run
                event = Train(step=step, tokens=step * 4096, loss=3.0, lr=1e-3, tokens_per_s=5e4)
                events.record(trial_id, event)
                if step % 10 == 0:
                    events.record(trial_id, Validation(step=step, tokens=step * 4096,
                                                       val_loss=3.1))  # fmt: skip
            events.tick()
        events.flush()
        elapsed = time.perf_counter() - start
        count = len(store.metrics_frame())  # the rows that went in, read back
    return count / elapsed


def status_store(folder: Path, n_trials: int) -> str:
    """A store of `n_trials` trials, most finished, with their metrics summarised."""
    url = f"sqlite:///{folder / 'status.db'}"
    with RunStore.open(url) as store:
        trial_ids = _study(store, n_trials)
        reported = [(trial_id, event) for i, trial_id in enumerate(trial_ids)
                    for event in ((START, END) if i % 10 else (START,))]  # fmt: skip
        store.events(trial_ids).record_many(reported)  # one commit at the end: a quick setup
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10_000, help="trials in the status store")
    parser.add_argument("--events", type=int, default=20_000, help="train events ingested")
    parser.add_argument("--ingest-trials", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rates = []
        for _ in range(args.repeats):
            (folder / "ingest.db").unlink(missing_ok=True)
            rates.append(ingest(folder, args.ingest_trials, args.events))
        print(
            f"ingest: {statistics.median(rates):,.0f} metric rows/s (median of {args.repeats}; "
            f"{args.events:,} train events from {args.ingest_trials} trials, 3 rows each)"
        )
        url = status_store(folder, args.trials)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            frame = api.status(store=url)
            times.append(time.perf_counter() - start)
        assert len(frame) == args.trials
        print(f"api.status on {args.trials:,} trials: {statistics.median(times) * 1e3:.0f} ms")
        for flags in (["--json"], []):
            command = [sys.executable, "-m", "orchestrator.cli", "status", "--store", url, *flags]
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                times.append(time.perf_counter() - start)
            print(
                f"study status {' '.join(flags)} on {args.trials:,} trials, a fresh process: "
                f"{statistics.median(times) * 1e3:.0f} ms"
            )
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import orchestrator.api"], check=True)
        print(
            f"of which starting Python and importing: {(time.perf_counter() - start) * 1e3:.0f} ms"
        )


if __name__ == "__main__":
    main()
