"""Analysis speed: a fit with 1,000 bootstrap resamples for 50 trials, and the report of a
store of 200 trials and 1,000,000 metric rows.

Run: python bench/analysis_speed.py   (prints two tables; medians of REPEATS runs)

Targets (issue 6): fit plus 1,000 resamples for 50 trials <= 5 s; the report (refit of every
law with 1,000 resamples, zero-shot trends, model cards, HTML) from the big store <= 10 s.
The store is a real SQLite file, registered through the same calls `study run` makes; its
trials are marked finished with losses drawn from a known L(N, D), and its metric rows are
inserted in bulk (the ingest rate is printed too).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from analysis.fits import fit_points
from analysis.laws import CHINCHILLA_ND
from orchestrator import api
from orchestrator.spec import load_study
from orchestrator.stages import register
from orchestrator.store import Metric, RunStore, Trial, TrialStatus, get_study, open_store

REPEATS = 3
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
    """A store of 200 finished trials and 1,000,000 metric rows; the rows' insert rate."""
    path = folder / "big.yaml"
    path.write_text(STUDY)
    spec = load_study(path)
    data = api.prepare_data(spec)
    trials = api.trials(spec, data)
    url = f"sqlite:///{folder / 'big.db'}"
    with RunStore.open(url) as run_store:
        register(run_store, spec, trials, data)  # as `study run` registers a grid
    engine = open_store(url)
    rng = np.random.default_rng(1)
    with Session(engine) as session:
        study = get_study(session, spec.name)
        rows = list(session.scalars(select(Trial).where(Trial.study_id == study.id)))
        for t in rows:
            t.status, t.tokens_done, t.wall_s = TrialStatus.finished, t.tokens, 60.0
            loss = CHINCHILLA_ND.predict(TRUTH, N=t.n_params, D=t.tokens)
            t.val_loss = float(loss * np.exp(rng.normal(0, 0.01)))
        session.commit()
        per_trial = 1_000_000 // len(rows)
        start = time.perf_counter()
        for t in rows:
            steps = np.arange(1, per_trial + 1)
            session.execute(
                insert(Metric),
                [
                    {"trial_pk": t.id, "step": int(s), "tokens": int(s) * 2048,
                     "name": "train_loss", "value": float(t.val_loss * (1 + 1 / s))}
                    for s in steps
                ],
            )  # fmt: skip
        session.commit()
        rate = len(rows) * per_trial / (time.perf_counter() - start)
    return url, rate


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
        print(f"| bulk metric insert | {rate:,.0f} rows/s |")
        print(f"| report (refit, trends, cards, HTML), median s | {seconds:.2f} |")
        print(f"| report size | {target.stat().st_size / 1e6:.1f} MB |")


if __name__ == "__main__":
    main()
