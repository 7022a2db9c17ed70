"""What the near-minimum window does to the IsoFLOP minima and to the loss-at-optimum law.

Run: python bench/window_bias.py [--noise 0.001] [--seeds 20]   (prints one table)

A synthetic Chinchilla law (E 1.8, A 400, B 2000, α 0.34, β 0.28; Hoffmann et al. 2022's form)
on five isoFLOP curves, 1e18 to 1e20 FLOPs, each 15 sizes over 300× in N centred on its true
optimum, D = C/6N, relative noise on the loss; per seed, the loss-at-optimum law is fitted with
parabolas on every point and on the window, and compared with the truth: the budgets' mean
N_opt error, and L_opt, N_opt and the 95% interval's cover at 10× the largest budget.
"""

from __future__ import annotations

import argparse

import numpy as np

from analysis.isoflop import WINDOW, fit_loss_optimum
from analysis.laws import CHINCHILLA_ND

TRUE = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.28}
BUDGETS = [1e18, 3e18, 1e19, 3e19, 1e20]
TARGET = 1e21


def optimum(c: float) -> tuple[float, float]:
    """The true compute-optimal N and its loss at C = 6ND."""
    n = CHINCHILLA_ND.derived(TRUE, c)["N_opt"]
    return n, float(CHINCHILLA_ND.predict(TRUE, N=n, D=c / (6 * n)))


def sweep(noise: float, seed: int) -> tuple[np.ndarray, ...]:
    """The five isoFLOP curves of 15 sizes over 300×, with noise."""
    rng, rows = np.random.default_rng(seed), []
    for c in BUDGETS:
        centre = np.log(optimum(c)[0])
        for n in np.exp(centre + np.linspace(-1, 1, 15) * np.log(300) / 2):
            loss = CHINCHILLA_ND.predict(TRUE, N=n, D=c / (6 * n)) * np.exp(rng.normal(0, noise))
            rows.append((n, c / (6 * n), c, float(loss)))
    return tuple(np.array(v) for v in zip(*rows, strict=True))


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--noise", type=float, default=0.001)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    n_true, l_true = optimum(TARGET)
    print(f"| parabolas | N_opt error per budget | L_opt at {TARGET:.0e} | worst | N_opt there "
          "| interval holds L_opt |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for window in (None, WINDOW):
        rows = []
        for seed in range(args.seeds):
            fit = fit_loss_optimum(*sweep(args.noise, seed), window=window, n_boot=300)
            at = fit.forecast(TARGET)
            low, high = at.loss.ci or (np.nan, np.nan)
            bias = np.mean([m["N_opt"] / optimum(m["C"])[0] - 1 for m in fit.budgets])
            rows.append((bias, at.loss.estimate / l_true - 1, at.n_opt.estimate / n_true - 1,
                         low <= l_true <= high))  # fmt: skip
        r = np.array(rows, float)
        name = "every point" if window is None else f"window {window:g}×"
        print(f"| {name} | {r[:, 0].mean():+.2%} ± {r[:, 0].std():.2%} | {r[:, 1].mean():+.2%} "
              f"| {np.abs(r[:, 1]).max():.2%} | {r[:, 2].mean():+.2%} "
              f"| {int(r[:, 3].sum())} of {len(r)} |")  # fmt: skip


if __name__ == "__main__":
    main()
