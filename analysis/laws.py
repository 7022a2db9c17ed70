"""Scaling laws and their robust fits: L(N) = E + A·N^(−α).

The fit follows Hoffmann et al. (2022) and the Epoch AI replication (Besiroglu et al. 2024):
log-sum-exp parameterisation, the Huber loss (δ = 1e-3) of log-loss residuals summed over the
points, L-BFGS-B from a grid of starting points, best start kept.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

HUBER_DELTA = 1e-3  # Hoffmann et al. 2022, section D.2

# Starting points: a = log A, alpha, e = log E. Hoffmann et al. use a similar grid.
START_GRID = {
    "a": np.linspace(0.0, 25.0, 6),
    "alpha": np.array([0.05, 0.2, 0.5, 1.0, 2.0]),
    "e": np.array([-1.0, -0.5, 0.0, 0.5, 1.0]),  # clipped below the smallest log-loss
}


def _huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


@dataclass(frozen=True)
class PowerLawFit:
    """L(N) = E + A·N^(−α), with the quality of the fit and bootstrap intervals."""

    E: float
    A: float
    alpha: float
    n_points: int
    objective: float  # summed Huber loss at the optimum
    rmse_log: float  # root-mean-square residual of log-loss
    on_grid_edge: bool  # the best start lay on the edge of the starting grid
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_boot: int = 0

    def predict(self, n: np.ndarray | float) -> np.ndarray:
        """Predicted loss at N."""
        return self.E + self.A * np.asarray(n, dtype=float) ** (-self.alpha)

    @property
    def params(self) -> dict[str, float]:
        """The parameters by name."""
        return {"E": self.E, "A": self.A, "alpha": self.alpha}


def _objective(theta: np.ndarray, log_n: np.ndarray, log_l: np.ndarray) -> tuple[float, np.ndarray]:
    """Summed Huber loss of log-residuals and its gradient in (a, alpha, e)."""
    a, alpha, e = theta
    power = a - alpha * log_n  # log(A·N^-alpha)
    pred = np.logaddexp(power, e)  # log(A·N^-alpha + E)
    r = pred - log_l
    g = np.clip(r, -HUBER_DELTA, HUBER_DELTA)  # d huber / d r
    w = np.exp(power - pred)  # d pred / d power; d pred / d e = 1 - w
    gw = g * w
    grad = np.array([gw.sum(), -(gw * log_n).sum(), (g - gw).sum()])
    return float(_huber(r).sum()), grad


def _minimize(starts, log_n, log_l, maxiter: int = 2000):
    # log E is kept above -10 (E > 5e-5: a vanishing floor) and below the smallest loss seen
    # (the floor cannot exceed a measured loss); without the bounds a fit whose data show no
    # floor spends hundreds of iterations walking log E towards minus infinity.
    bounds = [(-20.0, 80.0), (-2.0, 5.0), (-10.0, float(np.min(log_l)))]
    best = None
    for start in starts:
        start = np.clip(
            np.asarray(start, dtype=float), [b[0] for b in bounds], [b[1] for b in bounds]
        )
        res = minimize(
            _objective,
            start,
            args=(log_n, log_l),
            jac=True,
            bounds=bounds,
            method="L-BFGS-B",
            options={"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-12},
        )
        if best is None or res.fun < best[0].fun:
            best = (res, start)
    return best


def fit_power_law(
    n_params: np.ndarray, loss: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> PowerLawFit:
    """Fit L(N) = E + A·N^(−α) to (N, loss) points; bootstrap whole points for intervals."""
    n_params, loss = np.asarray(n_params, float), np.asarray(loss, float)
    if len(n_params) < 3 or len(np.unique(n_params)) < 3:
        raise ValueError(f"L(N) has 3 parameters: it needs 3 distinct sizes, got {len(n_params)}")
    log_n, log_l = np.log(n_params), np.log(loss)
    starts = list(itertools.product(*START_GRID.values()))
    res, start = _minimize(starts, log_n, log_l)
    on_edge = any(
        value in (grid[0], grid[-1]) for value, grid in zip(start, START_GRID.values(), strict=True)
    )
    if on_edge:
        warnings.warn(f"the best fit started on the edge of the grid ({start})", stacklevel=2)
    a, alpha, e = res.x
    residuals = np.logaddexp(a - alpha * log_n, e) - log_l

    intervals, boots = {}, []
    rng = np.random.default_rng(seed)
    # Each resample starts from the full fit: it lies near every resample's optimum, and a
    # grid search per resample would cost the grid's 150 starts a thousand times over. A
    # resample is a multiset of points, and the fit does not depend on their order: with few
    # points most draws repeat one (4 points have 35), so each distinct one is fitted once.
    fitted: dict[tuple, tuple[float, float, float]] = {}
    for _ in range(n_boot):
        idx = np.sort(rng.integers(0, len(log_n), len(log_n)))
        if len(np.unique(log_n[idx])) < 3:
            continue  # a resample with fewer than three sizes cannot pin three parameters
        key = tuple(idx)
        if key not in fitted:
            b, _ = _minimize([res.x], log_n[idx], log_l[idx], maxiter=500)
            fitted[key] = (np.exp(b.x[2]), np.exp(b.x[0]), b.x[1])
        boots.append(fitted[key])
    if boots:
        arr = np.array(boots)
        for i, name in enumerate(("E", "A", "alpha")):
            lo, hi = np.percentile(arr[:, i], [2.5, 97.5])
            intervals[name] = (float(lo), float(hi))
    return PowerLawFit(
        E=float(np.exp(e)),
        A=float(np.exp(a)),
        alpha=float(alpha),
        n_points=len(log_n),
        objective=float(res.fun),
        rmse_log=float(np.sqrt(np.mean(residuals**2))),
        on_grid_edge=on_edge,
        intervals=intervals,
        n_boot=len(boots),
    )
