"""Speed of L(N, D) by variable projection (analysis/varpro.py) beside laws.py's multi-start
fit, without the bootstrap: 200 and 1,000 points on isoFLOP grids of a known law (Epoch AI's
fit of the Chinchilla runs) with 0.3% noise, and the Chinchilla anchor's 240 runs.

Run: PYTHONPATH=. python bench/varpro_speed.py   (prints a table; medians of REPEATS fits)

Target (issue 32): under 2 s for 200 points, deterministic.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from analysis.laws import CHINCHILLA_ND, fit_law
from analysis.varpro import allocate, fit_varpro
from tests.test_laws import anchor_points

REPEATS = 3
TRUTH = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.35, "beta": 0.37}


def points(n_points: int, sizes: int = 10, seed: int = 0) -> tuple[np.ndarray, ...]:
    """`n_points` points: n_points / sizes budgets from 1e17 FLOPs by 10^0.1, `sizes` each."""
    rng = np.random.default_rng(seed)
    n, d = [], []
    for c in 1e17 * 10 ** (0.1 * np.arange(n_points // sizes)):
        grid = allocate(TRUTH, c)[0] * np.logspace(-0.6, 0.6, sizes)
        n += list(grid)
        d += list(c / (6 * grid))
    n, d = np.array(n), np.array(d)
    loss = CHINCHILLA_ND.predict(TRUTH, N=n, D=d) * np.exp(rng.normal(0, 0.003, len(n)))
    return n, d, loss


def by_varpro(n, d, loss) -> dict:
    """The parameters fitted by variable projection."""
    return fit_varpro(loss, N=n, D=d, n_boot=0).params


def by_multi_start(n, d, loss) -> dict:
    """The parameters fitted by laws.py's multi-start search."""
    return fit_law(CHINCHILLA_ND, loss, n_boot=0, N=n, D=d).params


def timed(fit, *data) -> tuple[float, dict]:
    """Median seconds of `fit(*data)` over REPEATS calls, and its parameters (the same each
    time)."""
    times, params = [], []
    for _ in range(REPEATS):
        start = time.perf_counter()
        params.append(fit(*data))
        times.append(time.perf_counter() - start)
    assert all(p == params[0] for p in params), "a fit changed between runs"
    return statistics.median(times), params[0]


def main() -> None:
    print("| points | variable projection, s | multi-start (laws.fit_law), s | α, β (varpro) |")
    print("|---|---|---|---|")
    anchor = anchor_points()
    cases = [(f"{k:,} synthetic", points(k)) for k in (200, 1000)]
    cases.append(("240 Chinchilla", (anchor.N.to_numpy(), anchor.D.to_numpy(), anchor.loss)))
    for name, data in cases:
        vp, params = timed(by_varpro, *data)
        ms, _ = timed(by_multi_start, *data)
        print(f"| {name} | {vp:.2f} | {ms:.2f} | {params['alpha']:.4f}, {params['beta']:.4f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
