"""A law refitted to many weightings of its rows at once (the bootstrap's resamples), at a cost
that grows with the rows no faster than linearly, and in memory capped whatever their number.

Rows that share their variables (a ladder's seeds, a size trained at several budgets) share
the law's prediction and its gradient: the law and its Jacobian are evaluated once per distinct
point, the Huber terms once per row, and the rows' sums gathered per point. That is the same
sum as row by row, in another order, so the same optimum: exact for the Huber loss, where
replacing a point's rows by their mean loss and their count would not be (the Huber terms of
rows spread beyond δ do not add up to the term of their mean). The resamples are refitted in
chunks of at most CHUNK (resample, row) elements each, so memory does not grow with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HUBER_DELTA = 1e-3  # Hoffmann et al. 2022, section D.2
CHUNK = 2_000_000  # (resample, row) elements of one array at once: 16 MB, a dozen alive


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """The Huber loss of residuals r: quadratic within δ, linear beyond."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


@dataclass(frozen=True)
class Points:
    """The rows of a table by the distinct points of its variables: `logs` (variables, points)
    the distinct points, `order` the rows sorted by point, `point` each sorted row's point and
    `starts` each point's first row in that order."""

    logs: np.ndarray
    order: np.ndarray
    point: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, logs: np.ndarray) -> Points:
        """The distinct points of `logs` (variables, rows)."""
        distinct, where = np.unique(logs, axis=1, return_inverse=True)
        order = np.argsort(where.ravel(), kind="stable")
        point = where.ravel()[order]
        return cls(distinct, order, point, np.flatnonzero(np.r_[True, np.diff(point) != 0]))

    def sum(self, x: np.ndarray) -> np.ndarray:
        """Per-row values (S, rows), in sorted order, summed over each point's rows: (S, points)."""
        return np.add.reduceat(x, self.starts, axis=1)


def refit_batch(law, theta, logs, log_l, weights, max_iter: int = 500) -> np.ndarray:
    """Minimise Σ_i w_bi·huber(r_i(θ)) for every row b of `weights` at once, each from `theta`;
    `log_l` is one set of log-losses (n,) or one per row (rows, n).

    Levenberg-Marquardt on the iteratively reweighted least squares of the Huber loss: at θ the
    loss is majorised by Σ w·u·r²/2 with u = min(1, δ/|r|), whose Gauss-Newton step is damped
    until the Huber loss falls. Vectorised over resamples, it replaces a thousand L-BFGS-B runs
    (each needs ~100 iterations at tight tolerances: looser ones stop early, the trap of the
    averaged objective) by one batched loop. A row is done when a step no longer lowers its
    loss by more than 1e-13 relative; a test checks the optima against L-BFGS-B's."""
    points = Points.of(logs)
    log_l = np.broadcast_to(log_l, weights.shape)[:, points.order]
    weights = np.asarray(weights, float)[:, points.order]
    step = max(1, CHUNK // max(weights.shape[1], 1))
    return np.concatenate([
        _refit_chunk(law, theta, points, log_l[i : i + step], weights[i : i + step], max_iter)
        for i in range(0, len(weights), step)
    ]) if len(weights) else np.empty((0, len(theta)))  # fmt: skip


def _refit_chunk(law, theta, points: Points, log_l, weights, max_iter: int) -> np.ndarray:
    """refit_batch on a chunk of resamples, their rows in `points`' order."""
    rows, p = len(weights), len(theta)
    low, high = (np.array(b) for b in zip(*law.bounds(log_l), strict=True))
    low, high = np.tile(low, (rows, 1)), np.tile(high, (rows, 1))
    high[:, -1] = np.where(weights > 0, log_l, np.inf).min(axis=1)  # E below each sample's loss
    thetas = np.clip(np.tile(theta, (rows, 1)), low, high)
    damping = np.full(rows, 1e-4)
    active = np.ones(rows, bool)

    def residuals(th, ll):  # r (S, rows) and the Jacobian per point (S, points, p)
        predicted, jac = law._residuals(th, points.logs, 0.0)
        return predicted[:, points.point] - ll, jac

    r, jac = residuals(thetas, log_l)
    loss = (weights * huber(r)).sum(axis=1)
    eye = np.eye(p)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        w, ri, ji = weights[idx], r[idx], jac[idx]
        wu = w * np.minimum(1.0, HUBER_DELTA / np.maximum(np.abs(ri), 1e-300))
        grad = np.einsum("sg,sgp->sp", points.sum(wu * ri), ji)
        normal = np.einsum("sg,sgp,sgq->spq", points.sum(wu), ji, ji)
        scale = np.einsum("spp->sp", normal) + 1e-12
        lhs = normal + damping[idx, None, None] * scale[:, :, None] * eye
        step = np.linalg.solve(lhs, -grad[..., None])[..., 0]
        trial = np.clip(thetas[idx] + step, low[idx], high[idx])
        r_new, jac_new = residuals(trial, log_l[idx])
        loss_new = (w * huber(r_new)).sum(axis=1)
        better = loss_new < loss[idx]
        gain = (loss[idx] - loss_new) / np.maximum(loss[idx], 1e-300)
        took = idx[better]
        thetas[took], r[took], jac[took], loss[took] = (
            trial[better],
            r_new[better],
            jac_new[better],
            loss_new[better],
        )
        damping[took] = np.maximum(damping[took] * 0.3, 1e-12)
        damping[idx[~better]] *= 10.0
        done = (better & (gain < 1e-13)) | (damping[idx] > 1e12)
        active[idx[done]] = False
    return thetas


def objective_for(law, logs: np.ndarray, log_l: np.ndarray):
    """The law's summed Huber loss over rows (logs, log_l) and its gradient, as a function of a
    batch of θ (S, p) alone; where rows repeat a point, the law is evaluated once per point."""
    points = Points.of(logs)
    if len(points.starts) == logs.shape[1]:  # every row its own point: the law's own sum
        return lambda thetas: law.objective_batch(thetas, logs, log_l)
    log_l = log_l[points.order]

    def batch(thetas):
        predicted, jac = law._residuals(thetas, points.logs, 0.0)
        r = predicted[:, points.point] - log_l
        clipped = points.sum(np.clip(r, -HUBER_DELTA, HUBER_DELTA))  # d huber / d r, per point
        return huber(r).sum(axis=1), np.einsum("sg,sgp->sp", clipped, jac)

    return batch


def in_chunks(batch, thetas: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """`batch` (an objective_for) over many θ, a chunk at a time: memory capped at CHUNK
    elements of (θ, row) whatever the number of rows."""
    step = max(1, CHUNK // max(rows, 1))
    parts = [batch(thetas[i : i + step]) for i in range(0, len(thetas), step)]
    return np.concatenate([f for f, _ in parts]), np.concatenate([g for _, g in parts])
