"""Fit speed as a user meets it: `study fit --law n` on stores of 4, 6 and 10 sizes (three
architectures each, 1,000 resamples), on an idle machine and with both cores loaded by other
work, and the fits `study run` makes at its end (every law, the zero-shot trends, the
task-loss fits, the report) on the quickstart's store when there is one.

Run: python bench/fit_speed.py   (prints a table; medians of REPEATS runs of the command)

Target (issue 19): under 5 s on 2 cores with 1,000 resamples, with the same estimates. The
stores are real SQLite files registered and written through the calls `study run` makes (the
store's facade and its events recorder); each trial reports a start and an end, with a loss
drawn from a known L(N) per architecture.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from analysis.results import NotFitted, fit_from_json
from orchestrator import api, fitting
from orchestrator.spec import load_study
from orchestrator.stages import register
from orchestrator.store import RunStore
from trainers.events import End, Start

REPEATS = 3
TRUTH = {"decoder": (1.6, 30.0, 0.25), "encoder": (2.2, 40.0, 0.30), "encdec": (2.0, 50.0, 0.30)}
SIZES = ["10K", "25K", "50K", "100K", "200K", "300K", "400K", "1M", "2M", "4M"]
STUDY = """
name: fits{k}
data: {{corpus: "builtin:kjv", tokenizer: bytes, seq_len: 128}}
architectures: [decoder, encoder, encdec]
sizes: [{sizes}]
budget: {{tokens: 500K}}
eval: {{zero_shot: {{tasks: []}}}}
"""


def build_store(folder: Path, k: int) -> str:
    """A store of three architectures at `k` sizes, every trial finished on the law."""
    path = folder / f"fits{k}.yaml"
    path.write_text(STUDY.format(k=k, sizes=", ".join(SIZES[:: max(1, 10 // k)][:k])))
    spec = load_study(path)
    data = api.prepare_data(spec)
    trials = api.trials(spec, data)
    url = f"sqlite:///{folder / f'fits{k}.db'}"
    rng = np.random.default_rng(k)
    with RunStore.open(url) as run_store:
        register(run_store, spec, trials, data)  # as `study run` registers a grid
        events = run_store.events([t.trial_id for t in trials])
        stored = {t.trial_id: t for t in run_store.current_trials()}
        for trial in sorted(trials, key=lambda t: t.hash):  # the order losses were drawn in
            t = stored[trial.trial_id]
            e, a, alpha = TRUTH[t.architecture]
            loss = float((e + a * t.n_params**-alpha) * np.exp(rng.normal(0, 0.01)))
            # measured under the study's evaluation settings (its eval_key)
            start = Start(n_params=t.n_params, total_params=t.total_params, steps=trial.steps,
                          flops_per_token=t.flops_per_token, device="cpu", threads=1,
                          eval_key=trial.eval_key)  # fmt: skip
            end = End(step=trial.steps, tokens=t.tokens, tokens_scored=t.tokens, epochs=1.0,
                      val_loss=loss, wall_s=60.0, tokens_per_s=t.tokens / 60.0,
                      mfu=float("nan"))  # fmt: skip
            events.record(t.trial_id, start)
            events.record(t.trial_id, end)
    return url


def study_fit(url: str) -> tuple[float, dict]:
    """Seconds of `study fit --store URL --law n --json`, as typed, and the fitted exponents."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "fit", "--store", url, "--law", "n", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    laws = {a: fit_from_json(f) for a, f in json.loads(done.stdout)["architectures"].items()}
    return seconds, {
        a: f.error if isinstance(f, NotFitted) else round(f.params["alpha"].estimate, 4)
        for a, f in laws.items()
    }


def _spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def timed(url: str, loaded: bool) -> tuple[float, dict]:
    stop = multiprocessing.Event()
    hogs = [
        multiprocessing.Process(target=_spin, args=(stop,))
        for _ in range(os.cpu_count() if loaded else 0)
    ]
    for hog in hogs:
        hog.start()
    try:
        runs = [study_fit(url) for _ in range(REPEATS)]
    finally:
        stop.set()
        for hog in hogs:
            hog.join()
    assert all(r[1] == runs[0][1] for r in runs), "the estimates changed between runs"
    return statistics.median(r[0] for r in runs), runs[0][1]


def end_of_run(store: Path) -> float | None:
    """Seconds of what `study run` does after its last trial: fit, store and report."""
    if not store.exists():
        return None
    with RunStore.open_study(f"sqlite:///{store}", "quickstart") as run_store:
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                fitting.fit_and_report(run_store, Path(tmp) / "q.html", 1000)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    print("| `study fit --law n`, 1,000 resamples | idle, median s | both cores loaded | alpha |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for k in (4, 6, 10):
            url = build_store(Path(tmp), k)
            idle, alphas = timed(url, loaded=False)
            busy, same = timed(url, loaded=True)
            assert same == alphas
            print(f"| {k} sizes × 3 architectures | {idle:.2f} | {busy:.2f} | {alphas} |",
                  flush=True)  # fmt: skip
    seconds = end_of_run(Path("runs/quickstart.db"))
    if seconds is not None:
        print(f"\nend of `study run` on runs/quickstart.db (fits, trends, task fits, report): "
              f"{seconds:.2f} s median")  # fmt: skip


if __name__ == "__main__":
    main()
