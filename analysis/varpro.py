"""Hoffmann et al.'s approach 3 by variable projection: L(N, D) = E + A/N^α + B/D^β.

For fixed exponents (α, β) the law is linear in (E, A, B) ≥ 0, so the fit splits in two
(Golub & Pereyra 1973, "variable projection"): an inner solve for (E, A, B) at given (α, β),
and an outer search over (α, β) alone, of the *projected* objective φ(α, β) = min over
(E, A, B) ≥ 0 of the objective. As in analysis/laws.py (Hoffmann et al. 2022; Besiroglu et al.
2024, Epoch AI), the objective is the Huber loss (δ = 1e-3) of the log-loss residuals, summed.

That objective is not a least squares in (E, A, B): log(E + A·N^−α + B·D^−β) is not linear in
them, and Huber is not a square. So the inner step is an iteratively reweighted, linearised
non-negative least squares (scipy.optimize.nnls on the columns [1, N^−α, D^−β]): at the current
(E, A, B), with predicted loss p and residual r = log p − log L, the Huber loss is majorised by
the weighted square u·r²/2, u = min(1, δ/|r|), and log p is linearised, r' ≈ r − 1 + X·θ'/p;
the NNLS of those rows gives the next (E, A, B), its step halved until the Huber loss falls.
It starts from the NNLS of the relative residuals (rows X/L, target 1) and stops at a
relative gain under 1e-12, so φ is the true projected objective to about 1e-12 of itself.

The outer search is deterministic: φ on a fixed grid of (α, β) (GRID, 0.05 to 1.5, the range
of published fits, by 0.05; each grid point ranked after GRID_INNER_ITER inner steps), then
Nelder-Mead over (α, β) from the best grid point. Not L-BFGS-B: φ is smooth only piecewise
(each point's Huber term switches between its square and its line, and NNLS between its active
sets), and L-BFGS-B with φ's envelope-theorem gradient stopped on the Chinchilla anchor at
α = 0.347314, β = 0.367177, 1e-9 of the objective above the optimum and 1e-4 off in B, where
Nelder-Mead reaches the multi-start fit's optimum to 7 digits. Last, all five parameters are
polished jointly by L-BFGS-B on laws.py's objective (its log-sum-exp form, bounds and
tolerances) from the projected optimum: it moves the Chinchilla fit by under 1e-7, and makes
the result an optimum of the very objective laws.fit_law minimises, with its convergence check.
`VarproFit.projected` keeps the optimum before the polish. The flat valley of this objective is
why agreement needs care: on the anchor, optima 1e-9 apart in the objective differ by 1e-4 in B.

Intervals are laws.py's: the bootstrap over groups (whole runs, or whole budgets), each
resample refitted from the full fit. The compute-optimal allocation follows in closed form for
C = k·N·D (k = 6 by default; Hoffmann et al., eq. 4), or numerically where the study counts
FLOPs per token by a function of N.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.optimize import minimize, minimize_scalar, nnls

from analysis.laws import CHINCHILLA_ND, HUBER_DELTA, MAXITER, N_BOOT, LawSolution, bootstrap, huber

GRID_STEP = 0.05
GRID = np.round(np.arange(0.05, 1.5001, GRID_STEP), 2)  # α and β: the published range, 0.05-1.5
GRID_INNER_ITER = 8  # the grid only ranks its points: a few reweighted steps do (measured)
EXPONENT_BOUNDS = (1e-3, 5.0)  # the outer search's; an exponent of 0 duplicates E's column
INNER_ITER = 200  # reweighted NNLS steps per (α, β); the Chinchilla anchor needs ~30
INNER_TOL = 1e-12  # relative gain of the Huber loss below which the inner solve stops
SIX = 6.0  # C = 6·N·D (Kaplan et al. 2020): the FLOPs per parameter per token

Flops = float | Callable[[np.ndarray], np.ndarray]  # k of C = k·N·D, or FLOPs per token of N
SAME_K = 1e-6  # C/(N·D) spread less than this (in logs): one k for every point


OVERHEAD_EXPONENTS = np.linspace(0.05, 0.95, 91)  # s of the overhead b·N^s, searched


@dataclass(frozen=True)
class PerToken:
    """FLOPs per token as a function of N: k·N plus an overhead that grows as a power of N,
    b·N^s (attention, the output layer), as a study counts them (orchestrator/recipe.py: k is
    6 for a decoder, less for an encoder-decoder, whose decoder reads only the targets)."""

    k: float
    b: float
    s: float

    def __call__(self, n):
        return self.k * n + self.b * np.power(n, self.s)


def flop_count(n, d, c) -> Flops:
    """The FLOP count of points (N, D, C): k of C = k·N·D where every point has the same k (a
    CSV's 6ND) or the points have fewer than 3 sizes (their median k); else k·N + b·N^s FLOPs
    per token, k and b non-negative least squares in relative error for each s of a grid, the
    best s kept (a study's count: C/(N·D) runs from ~25 at 4K parameters to ~9 at 200K)."""
    n, d, c = (np.asarray(v, float) for v in (n, d, c))
    k = c / (n * d)
    if np.ptp(np.log(k)) < SAME_K or len(np.unique(n)) < 3:
        return float(np.median(k))
    per_token = c / d
    best = None
    for s in OVERHEAD_EXPONENTS:
        design = np.column_stack([n, n**s]) / per_token[:, None]  # relative: each point alike
        coef, misfit = nnls(design, np.ones(len(n)))
        if best is None or misfit < best[0]:
            best = (misfit, float(s), coef)
    _, s, (slope, b) = best
    return PerToken(float(slope), float(b), s)


def tokens_at(compute: float, n: float, flops: Flops) -> float:
    """The tokens that `compute` FLOPs train a model of `n` parameters on."""
    return compute / (flops(n) if callable(flops) else flops * n)


@dataclass(frozen=True)
class Points:
    """The points fitted, with their logs computed once."""

    n: np.ndarray
    d: np.ndarray
    loss: np.ndarray

    @cached_property
    def log_n(self) -> np.ndarray:
        return np.log(self.n)

    @cached_property
    def log_d(self) -> np.ndarray:
        return np.log(self.d)

    @cached_property
    def log_l(self) -> np.ndarray:
        return np.log(self.loss)

    def columns(self, alpha: float, beta: float) -> np.ndarray:
        """The linear model's columns [1, N^−α, D^−β] (n, 3)."""
        return np.column_stack([np.ones_like(self.n), self.n**-alpha, self.d**-beta])


@dataclass(frozen=True)
class Projection:
    """The inner solve at one (α, β): the linear parameters and the Huber loss they reach."""

    alpha: float
    beta: float
    coef: np.ndarray  # (E, A, B) ≥ 0
    objective: float  # the summed Huber loss of the log residuals
    steps: int  # reweighted NNLS steps taken


def _huber_loss(x: np.ndarray, coef: np.ndarray, log_l: np.ndarray) -> tuple[float, np.ndarray]:
    """The summed Huber loss of the log residuals of the linear model x·coef, and its residuals
    (infinite loss where the model predicts no loss at some point)."""
    p = x @ coef
    if np.any(p <= 0):
        return np.inf, np.full_like(p, np.inf)
    r = np.log(p) - log_l
    return float(huber(r).sum()), r


def project(points: Points, alpha: float, beta: float, max_iter: int = INNER_ITER) -> Projection:
    """The Huber-optimal (E, A, B) ≥ 0 at fixed (α, β), by reweighted, linearised NNLS."""
    x, log_l = points.columns(alpha, beta), points.log_l
    coef, _ = nnls(x / points.loss[:, None], np.ones_like(log_l))  # relative residuals' NNLS
    loss, r = _huber_loss(x, coef, log_l)
    steps = 0
    while steps < max_iter:
        steps += 1
        p = x @ coef
        w = np.sqrt(np.minimum(1.0, HUBER_DELTA / np.maximum(np.abs(r), 1e-300)))
        target, _ = nnls(w[:, None] * x / p[:, None], w * (1.0 - r))
        step, new = 1.0, (np.inf, r)
        while step > 1e-6:  # halved until the Huber loss falls (the linearisation can overshoot)
            trial = coef + step * (target - coef)  # convex: stays non-negative
            new = _huber_loss(x, trial, log_l)
            if new[0] < loss:
                break
            step /= 2
        if not new[0] < loss:
            break
        gain = (loss - new[0]) / max(loss, 1e-300)
        coef, (loss, r) = trial, new
        if gain < INNER_TOL:
            break
    return Projection(alpha, beta, coef, loss, steps)


def search(points: Points, grid: np.ndarray = GRID) -> Projection:
    """The best point of the projected objective on the grid of (α, β), α-major (ties: the
    first)."""
    best = None  # the grid's point is solved fully only once it is chosen
    for alpha in grid:
        for beta in grid:
            trial = project(points, float(alpha), float(beta), GRID_INNER_ITER)
            if best is None or trial.objective < best.objective:
                best = trial
    return project(points, best.alpha, best.beta)


def refine(points: Points, start: Projection, step: float = GRID_STEP) -> Projection:
    """The projected objective minimised over (α, β) by Nelder-Mead from `start`, its first
    simplex one grid step wide."""
    a, b = start.alpha, start.beta
    res = minimize(
        lambda ab: project(points, float(ab[0]), float(ab[1])).objective, [a, b],
        method="Nelder-Mead", bounds=[EXPONENT_BOUNDS] * 2,
        options={"xatol": 1e-8, "fatol": 1e-18, "maxiter": 1000,
                 "initial_simplex": [[a, b], [a + step, b], [a, b + step]]},
    )  # fmt: skip
    best = project(points, float(res.x[0]), float(res.x[1]))
    return best if best.objective <= start.objective else start


def _theta(projection: Projection, log_l: np.ndarray) -> np.ndarray:
    """(E, A, B, α, β) as laws.py's internal vector (log A, α, log B, β, log E), in bounds."""
    e, a, b = np.maximum(projection.coef, 1e-300)
    theta = np.array([np.log(a), projection.alpha, np.log(b), projection.beta, np.log(e)])
    low, high = (np.array(v) for v in zip(*CHINCHILLA_ND.bounds(log_l), strict=True))
    return np.clip(theta, low, high)


def polish(points: Points, projection: Projection):
    """All five parameters from the projected optimum, by L-BFGS-B on laws.py's objective."""
    logs, log_l = np.vstack([points.log_n, points.log_d]), points.log_l
    return minimize(
        CHINCHILLA_ND.objective, _theta(projection, log_l), args=(logs, log_l), jac=True,
        bounds=CHINCHILLA_ND.bounds(log_l), method="L-BFGS-B",
        options={"maxiter": MAXITER, "ftol": 1e-15, "gtol": 1e-12},
    )  # fmt: skip


def allocate(params: dict[str, float], compute: float, flops: Flops = SIX) -> tuple[float, float]:
    """The loss-optimal (N, D) at `compute` FLOPs: closed form for C = k·N·D (`flops` = k),
    Brent's method in log N where `flops` is a function giving FLOPs per token of N."""
    alpha, beta, big_a, big_b = params["alpha"], params["beta"], params["A"], params["B"]
    if not callable(flops):
        # Minimising L(N, C/kN) over N (Hoffmann et al., eq. 4): N_opt = G·(C/k)^(β/(α+β)),
        # D_opt = (C/k)^(α/(α+β)) / G with G = (αA / βB)^(1/(α+β)); in logs, against overflow
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # A or B at 0: NaN
            log_g = (np.log(alpha * big_a) - np.log(beta * big_b)) / (alpha + beta)
            log_c = np.log(compute / flops)
            n_opt = np.exp(log_g + beta / (alpha + beta) * log_c)
            d_opt = np.exp(alpha / (alpha + beta) * log_c - log_g)
        return float(n_opt), float(d_opt)

    def loss(log_n: float) -> float:
        n = np.exp(log_n)
        return float(CHINCHILLA_ND.predict(params, N=n, D=compute / flops(n)))

    # L(N, C/f(N)) is a sum of two exponentials in log N for f ∝ N (convex, one minimum);
    # searched from 1 parameter to C/6, where 6N FLOPs per token leave one token
    res = minimize_scalar(loss, bounds=(0.0, np.log(compute / SIX)), method="bounded",
                          options={"xatol": 1e-10})  # fmt: skip
    n_opt = float(np.exp(res.x))
    return n_opt, float(tokens_at(compute, n_opt, flops))


@dataclass(frozen=True)
class VarproFit:
    """L(N, D) fitted by variable projection: laws.py's solution (parameters, intervals,
    bands, `result()`), the projected optimum before the joint polish, and the FLOP count the
    compute-optimal allocation uses."""

    solution: LawSolution
    projected: dict[str, float]  # (E, A, B, α, β) at the projected optimum, before the polish
    grid_best: tuple[float, float]  # (α, β): the grid's best point, where the search began
    flops: Flops = SIX

    @property
    def params(self) -> dict[str, float]:
        return self.solution.params

    def predict(self, **x) -> np.ndarray:
        """The fitted law's loss at N=..., D=..."""
        return self.solution.predict(**x)

    def optimum(self, compute: float, params: dict[str, float] | None = None) -> dict[str, float]:
        """The compute-optimal N, D and loss at `compute` FLOPs (of `params`: a resample's)."""
        params = self.params if params is None else params
        n_opt, d_opt = allocate(params, compute, self.flops)
        loss = float(CHINCHILLA_ND.predict(params, N=n_opt, D=d_opt))
        return {"N_opt": n_opt, "D_opt": d_opt, "loss": loss}

    def optimum_interval(self, compute: float, level: float = 0.95) -> dict[str, tuple]:
        """The bootstrap's percentile interval of each of `optimum`'s values (empty: none)."""
        boot = self.solution.boot
        if boot is None or not len(boot):
            return {}
        names = CHINCHILLA_ND.names
        rows = [self.optimum(compute, dict(zip(names, b, strict=True))) for b in boot]
        tail = 100 * (1 - level) / 2
        return {
            k: tuple(float(v) for v in np.percentile([r[k] for r in rows], [tail, 100 - tail]))
            for k in rows[0]
        }


def _warnings(projection: Projection, res, n_points: int) -> list[str]:
    out = []
    for name, value in (("alpha", projection.alpha), ("beta", projection.beta)):
        if value <= GRID.min() or value >= GRID.max():
            out.append(
                f"the projected optimum has {name} = {value:.3g}, on or beyond the edge of the "
                f"exponent grid [{GRID.min():g}, {GRID.max():g}]: the data do not pin it down"
            )
    # as laws.py checks its fits: each point's Huber gradient is at most δ
    if np.max(np.abs(res.jac)) > 1e-3 * HUBER_DELTA * n_points:
        out.append(f"the joint polish stopped before converging ({res.message})")
    return out


def fit_varpro(
    loss,
    *,
    N,
    D,
    groups=None,
    n_boot: int = N_BOOT,
    seed: int = 0,
    compute: float | None = None,
    flops: Flops = SIX,
) -> VarproFit:
    """Fit L(N, D) = E + A/N^α + B/D^β to (N, D, loss) points by variable projection.

    `groups` labels the run (or budget) of each point; the bootstrap resamples whole groups.
    `compute` is where the solution's derived allocation is quoted (with C = 6ND only: for
    another `flops`, ask `VarproFit.optimum`)."""
    points = Points(*(np.asarray(v, float) for v in (N, D, loss)))
    if not (len(points.n) == len(points.d) == len(points.loss)):
        raise ValueError("N, D and loss must have one value per point")
    if np.any(points.loss <= 0) or np.any(points.n <= 0) or np.any(points.d <= 0):
        raise ValueError("losses, N and D must be positive")
    for name, x in (("N", points.n), ("D", points.d)):
        if len(np.unique(x)) < 2:
            raise ValueError(f"{CHINCHILLA_ND.formula} needs at least 2 distinct values of {name}")
    if len(points.loss) < 5:
        raise ValueError(f"{CHINCHILLA_ND.formula} has 5 parameters: it needs 5 points")
    groups = np.arange(len(points.loss)) if groups is None else np.asarray(groups)
    start = search(points)
    projected = refine(points, start)
    res = polish(points, projected)
    logs, log_l = np.vstack([points.log_n, points.log_d]), points.log_l
    params = CHINCHILLA_ND.natural(res.x)
    residuals = CHINCHILLA_ND.log_predict(res.x, logs) - log_l
    quoted = compute if not callable(flops) and flops == SIX else None
    solution = LawSolution(
        law=CHINCHILLA_ND, params=params, n_points=len(log_l), n_groups=len(np.unique(groups)),
        objective=float(res.fun), rmse_log=float(np.sqrt(np.mean(residuals**2))),
        warnings=_warnings(projected, res, len(log_l)),
        derived=CHINCHILLA_ND.derived(params, quoted), compute=quoted,
    )  # fmt: skip
    if n_boot:
        bootstrap(solution, res.x, logs, log_l, groups, n_boot=n_boot, seed=seed)
    e, a, b = (float(v) for v in projected.coef)
    return VarproFit(
        solution=solution,
        projected={"E": e, "A": a, "B": b, "alpha": projected.alpha, "beta": projected.beta},
        grid_best=(start.alpha, start.beta),
        flops=flops,
    )
