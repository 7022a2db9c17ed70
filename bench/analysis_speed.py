"""Analysis speed: a fit with 1,000 bootstrap resamples for 50 trials, and the report of a
store of 200 trials and 1,000,000 metric rows.

Run: python bench/analysis_speed.py   (prints two tables; medians of REPEATS runs)

Targets (issue 6): fit plus 1,000 resamples for 50 trials <= 5 s; the report (refit of every
law with 1,000 resamples, zero-shot trends, model cards, HTML) from the big store <= 10 s.
The store is a real SQLite file, registered and written through the same calls `study run`
makes (the store's facade and its events recorder): each trial reports a start, 1,666 train
events (three metric rows each) and two validations, and an end with a loss drawn from a known
L(N, D); the rate its metric rows went in at is printed too.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.fits import fit_points
from analysis.laws import CHINCHILLA_ND
from orchestrator import api
from orchestrator.spec import load_study
from orchestrator.stages import register
from orchestrator.store import RunStore, TrialEvents, TrialRecord
from trainers.events import End, Start, Train, Validation

REPEATS = 3
TRAINS, VALIDATIONS = 1666, (833, 1666)  # steps: 5,000 metric rows a trial, 1,000,000 in all
TRUTH = {"E": 1.7, "A": 300.0, "B": 150.0, "alpha": 0.34, "beta": 0.30}


def median_time(fn) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def points(sizes, budgets, seeds, rng) -> pd.DataFrame:
    rows = []
    for n in sizes:
        for d in budgets:
            for seed in seeds:
                loss = CHINCHILLA_ND.predict(TRUTH, N=n, D=d) * np.exp(rng.normal(0, 0.01))
                rows.append({"trial_id": f"{n}-{d}-{seed}", "N": n, "D": d, "C": 6 * n * d,
                             "loss": float(loss)})  # fmt: skip
    return pd.DataFrame(rows)


def bench_fits() -> list[tuple[str, float]]:
    rng = np.random.default_rng(0)
    sizes = np.logspace(4.5, 7, 10).round()
    fifty_n = points(sizes, [5e5], range(5), rng)  # 10 sizes x 5 seeds
    fifty_nd = points(sizes, [2e5, 5e5, 1e6, 2e6, 5e6], [0], rng)  # 10 sizes x 5 budgets
    iso = []  # 5 compute budgets x 10 sizes around each budget's optimum
    for c in (1e15, 3e15, 1e16, 3e16, 1e17):
        centre = np.log10(CHINCHILLA_ND.derived(TRUTH, c)["N_opt"])
        for n in np.logspace(centre - 1, centre + 1, 10):
            loss = CHINCHILLA_ND.predict(TRUTH, N=n, D=c / (6 * n)) * np.exp(rng.normal(0, 0.01))
            iso.append({"trial_id": f"{c}-{n}", "N": n, "D": c / (6 * n), "C": c, "loss": loss})
    out = []
    for law, frame in (("n", fifty_n), ("nd", fifty_nd), ("isoflop", pd.DataFrame(iso))):
        seconds = median_time(lambda law=law, frame=frame: fit_points(law, frame, 1000, "trial_id"))
        out.append((f"{law}: 50 trials, fit + 1,000 resamples", seconds))
        print(out[-1], flush=True)
    return out


STUDY = """
name: big
data: {corpus: "builtin:kjv", tokenizer: bytes, seq_len: 128}
architectures: [decoder]
sizes: [10K, 25K, 50K, 100K, 200K, 300K, 400K, 1M, 2M, 4M]
budget: {tokens: [200K, 500K, 1M, 2M]}
seeds: [0, 1, 2, 3, 4]
eval: {zero_shot: {tasks: []}}
"""


def build_store(folder: Path) -> tuple[str, float]:
    """A store of 200 finished trials and 1,000,000 metric rows; the rate the rows went in at."""
    path = folder / "big.yaml"
    path.write_text(STUDY)
    spec = load_study(path)
    data = api.prepare_data(spec)
    trials = api.trials(spec, data)
    url = f"sqlite:///{folder / 'big.db'}"
    rng = np.random.default_rng(1)
    with RunStore.open(url) as run_store:
        register(run_store, spec, trials, data)  # as `study run` registers a grid
        events = run_store.events([t.trial_id for t in trials])
        stored = {t.trial_id: t for t in run_store.current_trials()}
        start = time.perf_counter()
        for trial in sorted(trials, key=lambda t: t.hash):  # the order losses were drawn in
            t = stored[trial.trial_id]
            loss = CHINCHILLA_ND.predict(TRUTH, N=t.n_params, D=t.tokens)
            report_trial(events, t, float(loss * np.exp(rng.normal(0, 0.01))))
        rate = len(trials) * (3 * TRAINS + len(VALIDATIONS)) / (time.perf_counter() - start)
    return url, rate


def report_trial(events: TrialEvents, t: TrialRecord, loss: float) -> None:
    """What a trial's trainer reports, on a curve falling to `loss`, as the driver records it."""
    events.record(t.trial_id, Start(n_params=t.n_params, total_params=t.total_params,
                                    flops_per_token=t.flops_per_token, steps=TRAINS,
                                    device="cpu", threads=1))  # fmt: skip
    for s in range(1, TRAINS + 1):
        curve = loss * (1 + 1 / s)
        events.record(t.trial_id, Train(step=s, tokens=s * 2048, loss=curve, lr=1e-3,
                                        tokens_per_s=5e4))  # fmt: skip
        if s in VALIDATIONS:
            events.record(t.trial_id, Validation(step=s, tokens=s * 2048, val_loss=curve))
        events.tick()
    events.record(t.trial_id, End(step=TRAINS, tokens=t.tokens, tokens_scored=t.tokens,
                                  epochs=1.0, val_loss=loss, wall_s=60.0,
                                  tokens_per_s=t.tokens / 60.0, mfu=float("nan")))  # fmt: skip


def main() -> None:
    print("| fit | median s |")
    print("|---|---|")
    for name, seconds in bench_fits():
        print(f"| {name} | {seconds:.2f} |")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url, rate = build_store(folder)
        target = folder / "reports" / "big.html"
        seconds = median_time(lambda: api.report(store=url, out=target))
        print()
        print("| store: 200 trials, 1,000,000 metric rows | value |")
        print("|---|---|")
        print(f"| metric rows through the driver's write path | {rate:,.0f} rows/s |")
        print(f"| report (refit, trends, cards, HTML), median s | {seconds:.2f} |")
        print(f"| report size | {target.stat().st_size / 1e6:.1f} MB |")


if __name__ == "__main__":
    main()
