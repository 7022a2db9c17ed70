"""A law refitted to many weightings of its rows at once (the bootstrap's resamples), at a cost
that grows with the rows no faster than linearly, and in memory capped whatever their number.

Rows that share their variables (a ladder's seeds, a size trained at several budgets) share
the law's prediction and its gradient: the law and its Jacobian are evaluated once per distinct
point, and the Huber sums gathered per point. That is the same sum as row by row, in another
order, so the same optimum: exact for the Huber loss, where replacing a point's rows by their
mean loss and their count would not be (the Huber terms of rows spread beyond δ do not add up
to the term of their mean). Where many rows share a point, its rows sorted by loss give the
sums on each side of δ by prefix sums, so a step costs O(points), not O(rows). The resamples
are refitted in chunks of at most CHUNK (resample, row) elements, so memory stays bounded.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

HUBER_DELTA = 1e-3  # Hoffmann et al. 2022, section D.2
CHUNK = 2_000_000  # (resample, row) elements of one array at once: 16 MB, a dozen alive
NEWTON_ROWS = 2_000  # rows from which steps near Newton's pay (drawn_rows)
NEWTON_KAPPA = 0.01  # the share of the IRLS curvature kept beyond δ there: never singular
REPEATED = 8  # rows per point from which the sorted sums (O(points) a step) pay for sorting


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """The Huber loss of residuals r: quadratic within δ, linear beyond."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def normal_equations(slope: np.ndarray, curve: np.ndarray, jac: np.ndarray):
    """The gradient Σ slope·J (S, p) and the Gauss-Newton matrix Σ curve·J·Jᵀ (S, p, p) of a
    batch, from per-point slopes and curvatures (S, points) and Jacobians (S, points, p): batched
    matrix products, which run far faster than the equivalent einsums."""
    grad = np.matmul(slope[:, None, :], jac)[:, 0]
    return grad, np.matmul(jac.transpose(0, 2, 1) * curve[:, None, :], jac)


def drawn_rows(logs: np.ndarray, log_l: np.ndarray, weights: np.ndarray):
    """The Huber sums of a chunk of resamples (`weights` (S, rows)) at θ, row by row, over each
    resample's drawn rows only (a resample of n rows leaves about 37% of them out: as much
    less work), for _refit_chunk. From NEWTON_ROWS rows the curvature of a row beyond δ is
    NEWTON_KAPPA of the IRLS one (δ/|r|): steps near Newton's, the same optimum in a fifth of
    the iterations; below, the IRLS one, which never lets a step overshoot on few rows."""
    kappa = NEWTON_KAPPA if weights.shape[1] >= NEWTON_ROWS else 1.0
    drawn = int((weights > 0).sum(axis=1).max(initial=1))
    keep = np.argsort(weights == 0, axis=1, kind="stable")[:, :drawn]  # drawn rows, in order
    x = logs[:, keep]  # (variables, S, drawn)
    y = log_l[keep] if log_l.ndim == 1 else np.take_along_axis(log_l, keep, axis=1)
    w = np.take_along_axis(weights, keep, axis=1)

    def terms(r):  # each row's Huber loss, slope and curvature at its residual r
        a = np.abs(r)
        inside = a <= HUBER_DELTA
        loss = np.where(inside, 0.5 * r * r, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))
        curve = np.where(inside, 1.0, kappa * HUBER_DELTA / np.maximum(a, 1e-300))
        return loss, np.clip(r, -HUBER_DELTA, HUBER_DELTA), curve

    def evaluate(law, thetas, idx):
        if log_l.ndim == 1 and len(idx) > 1 and (thetas == thetas[0]).all():
            # one θ for all (the chunk's start): each row's terms once, weighed by products
            r, jac = law._residuals(thetas[:1], logs, log_l)
            loss, slope, curve = terms(r[0])
            outer = jac[0][:, :, None] * jac[0][:, None, :]  # (rows, p, p)
            wi, p = weights[idx], thetas.shape[1]
            normal = wi @ (curve[:, None, None] * outer).reshape(len(curve), p * p)
            return wi @ loss, wi @ (slope[:, None] * jac[0]), normal.reshape(-1, p, p)
        r, jac = law._residuals(thetas, x[:, idx], y[idx])
        loss, slope, curve = terms(r)
        wi = w[idx]
        return (wi * loss).sum(1), *normal_equations(wi * slope, wi * curve, jac)

    return evaluate


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

    def evaluator(self, log_l, weights):
        """The Huber sums of a chunk of resamples (`weights`, `log_l`: rows in this order) at θ,
        from each row's residual, gathered per point (see _refit_chunk)."""

        if 2 * len(self.starts) >= len(self.point):  # few rows share a point: row by row
            return drawn_rows(self.logs[:, self.point], log_l, weights)

        def evaluate(law, thetas, idx):
            predicted, jac = law._residuals(thetas, self.logs, 0.0)
            r = predicted[:, self.point] - (log_l if log_l.ndim == 1 else log_l[idx])
            w = weights[idx]
            wu = w * np.minimum(1.0, HUBER_DELTA / np.maximum(np.abs(r), 1e-300))
            slope, curve = self.sum(wu * r), self.sum(wu)
            return (w * huber(r)).sum(axis=1), *normal_equations(slope, curve, jac)

        return evaluate


@dataclass(frozen=True)
class Sorted:
    """A table's rows sorted by point and then by loss, for the sums over a point's rows on
    each side of δ by prefix sums: a step costs O(points · log rows), not O(rows). The losses
    are centred on their point's mean, which keeps the sums of squares from cancelling."""

    points: Points
    order: np.ndarray  # the rows in this order
    centre: np.ndarray  # (points,) each point's mean log-loss
    z: np.ndarray  # (rows,) log-loss minus its point's centre
    key: np.ndarray  # (rows,) point · span + z: increasing, for one searchsorted
    span: float
    ends: np.ndarray  # (points + 1,) each point's first row, then the row count

    @classmethod
    def of(cls, points: Points, log_l: np.ndarray) -> Sorted:
        """The rows of `points` with their log-losses `log_l` (rows,)."""
        where = np.empty(len(log_l), int)
        where[points.order] = points.point
        order = np.lexsort((log_l, where))
        point, y = where[order], log_l[order]
        centre = np.bincount(point, y) / np.bincount(point)
        z = y - centre[point]
        span = 4.0 * (np.abs(z).max() + HUBER_DELTA) + 1.0
        ends = np.r_[np.flatnonzero(np.r_[True, np.diff(point) != 0]), len(y)]
        return cls(points, order, centre, z, point * span + z, span, ends)

    def evaluator(self, _log_l, weights):
        """The Huber sums of a chunk of resamples (`weights`: rows in this order) at θ, from
        prefix sums of the weights, weighted z and z² (see _refit_chunk)."""
        zero = np.zeros((len(weights), 1))
        sums = [np.hstack([zero, np.cumsum(weights * x, axis=1)]) for x in (1.0, self.z, self.z**2)]
        first, last = self.ends[:-1], self.ends[1:]
        base = np.arange(len(first)) * self.span
        half, d = self.span / 2 - HUBER_DELTA, HUBER_DELTA

        def evaluate(law, thetas, idx):
            predicted, jac = law._residuals(thetas, self.points.logs, 0.0)
            phi = predicted - self.centre  # (S, points), on the scale of z
            edges = [np.searchsorted(self.key, base + np.clip(phi + e, -half, half), side=side)
                     for e, side in ((-d, "left"), (d, "right"))]  # fmt: skip
            cut = [np.broadcast_to(first, phi.shape), *edges, np.broadcast_to(last, phi.shape)]
            # W, Z, Q: the weights, weighted z and z² of the rows below f - δ, within, above f + δ
            at = np.asarray(idx)[:, None]  # each resample's row of the prefix sums
            (w_lo, w_in, w_hi), (z_lo, z_in, z_hi), (_, q_in, _) = (
                [s[at, b] - s[at, a] for a, b in itertools.pairwise(cut)] for s in sums
            )
            loss = d * (phi * w_lo - z_lo) + 0.5 * (phi**2 * w_in - 2 * phi * z_in + q_in)
            loss += d * (z_hi - phi * w_hi) - 0.5 * d * d * (w_lo + w_hi)
            slope = d * w_lo + (phi * w_in - z_in) - d * w_hi  # Σ w·clip(r), r = f - log L
            # Σ w·min(1, δ/|r|) beyond δ is at least W²/Σ w|r| (Jensen): a curvature, not the
            # IRLS one exactly; the steps differ, not the optimum (where the slope vanishes)
            with np.errstate(divide="ignore", invalid="ignore"):
                far = np.nan_to_num(w_lo**2 / (phi * w_lo - z_lo), posinf=0.0)
                far += np.nan_to_num(w_hi**2 / (z_hi - phi * w_hi), posinf=0.0)
            return loss.sum(axis=1), *normal_equations(slope, w_in + d * far, jac)

        return evaluate


def refit_batch(
    law, theta, logs, log_l, weights, *, max_iter: int = 500, points=None
) -> np.ndarray:
    """Minimise Σ_i w_bi·huber(r_i(θ)) for every row b of `weights` at once, each from `theta`;
    `log_l` is one set of log-losses (n,) or one per row (rows, n).

    Levenberg-Marquardt on the iteratively reweighted least squares of the Huber loss: at θ the
    loss is majorised by Σ w·u·r²/2 with u = min(1, δ/|r|), whose Gauss-Newton step is damped
    until the Huber loss falls. Vectorised over resamples, it replaces a thousand L-BFGS-B runs
    (each needs ~100 iterations at tight tolerances: looser ones stop early, the trap of the
    averaged objective) by one batched loop. A row is done when a step no longer lowers its
    loss by more than 1e-13 relative; a test checks the optima against L-BFGS-B's. Where rows
    share one set of losses and repeat their points REPEATED times or more, the sums come
    from the rows sorted by loss (Sorted). `points`: Points.of(logs), where known already."""
    points, log_l = points or Points.of(logs), np.asarray(log_l, float)
    weights = np.asarray(weights, float)
    if log_l.ndim == 1 and weights.shape[1] >= REPEATED * len(points.starts):
        rows = Sorted.of(points, log_l)
        order, make = rows.order, rows.evaluator
    else:
        order, make = points.order, points.evaluator
    log_l, weights = log_l[..., order], weights[:, order]
    low, high = (np.array(b) for b in zip(*law.bounds([0.0]), strict=True))
    step = max(1, CHUNK // max(weights.shape[1], 1))
    out = []
    for i in range(0, len(weights), step):
        w = weights[i : i + step]
        ll = log_l if log_l.ndim == 1 else log_l[i : i + step]
        bounds = (np.tile(low, (len(w), 1)), np.tile(high, (len(w), 1)))
        bounds[1][:, -1] = np.where(w > 0, ll, np.inf).min(axis=1)  # E below each sample's loss
        out.append(_refit_chunk(theta, make(ll, w), bounds, law=law, max_iter=max_iter))
    return np.concatenate(out) if out else np.empty((0, len(theta)))


def _refit_chunk(theta, evaluate, bounds, *, law, max_iter: int) -> np.ndarray:
    """refit_batch on a chunk of resamples, whose sums `evaluate(law, thetas, which)` gives:
    the Huber loss (S,), its gradient (S, p) and Gauss-Newton matrix (S, p, p)."""
    low, high = bounds
    rows, p = len(low), len(theta)
    thetas = np.clip(np.tile(theta, (rows, 1)), low, high)
    damping = np.full(rows, 1e-4)
    active = np.ones(rows, bool)
    loss, grad, normal = evaluate(law, thetas, np.arange(rows))
    eye = np.eye(p)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        scale = np.einsum("spp->sp", normal[idx]) + 1e-12
        lhs = normal[idx] + damping[idx, None, None] * scale[:, :, None] * eye
        step = np.linalg.solve(lhs, -grad[idx][..., None])[..., 0]
        trial = np.clip(thetas[idx] + step, low[idx], high[idx])
        loss_new, grad_new, normal_new = evaluate(law, trial, idx)
        better = loss_new < loss[idx]
        gain = (loss[idx] - loss_new) / np.maximum(loss[idx], 1e-300)
        # a rejected step whose own model foresees no gain: at the optimum, not short of it
        model = grad[idx] + 0.5 * np.einsum("spq,sq->sp", normal[idx], step)
        foreseen = -np.einsum("sp,sp->s", model, step)
        stuck = ~better & (foreseen < 1e-13 * np.maximum(loss[idx], 1e-300))
        took = idx[better]
        thetas[took], loss[took] = trial[better], loss_new[better]
        grad[took], normal[took] = grad_new[better], normal_new[better]
        damping[took] = np.maximum(damping[took] * 0.3, 1e-12)
        damping[idx[~better]] *= 10.0
        done = (better & (gain < 1e-13)) | stuck | (damping[idx] > 1e12)
        active[idx[done]] = False
    return thetas


def objective_for(law, logs: np.ndarray, log_l: np.ndarray):
    """The law's summed Huber loss over rows (logs, log_l) and its gradient, as a function of a
    batch of θ (S, p) alone; where rows repeat a point, the law is evaluated once per point."""
    points = Points.of(logs)
    if 2 * len(points.starts) >= logs.shape[1]:  # few rows share a point: the law's own sum
        return lambda thetas: law.objective_batch(thetas, logs, log_l)
    if len(log_l) >= REPEATED * len(points.starts):  # sums from the rows sorted by loss
        ones = np.ones((1, len(log_l)))
        evaluate = Sorted.of(points, np.asarray(log_l, float)).evaluator(None, ones)

        def sorted_batch(thetas):
            loss, grad, _ = evaluate(law, thetas, np.zeros(len(thetas), int))
            return loss, grad

        return sorted_batch
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
