"""The data-constrained law of Muennighoff et al. 2023 ("Scaling Data-Constrained Language
Models", arXiv 2305.16264): L(N, D) of Hoffmann et al. with the data and the parameters
replaced by what they are worth when the data repeat.

    D′ = U_D + U_D·R*_D·(1 − exp(−R_D/R*_D)),  R_D = D/U_D − 1  (repetitions: epochs − 1)
    N′ = U_N + U_N·R*_N·(1 − exp(−R_N/R*_N)),  R_N = N/U_N − 1
    U_N = min(N, N_opt(U_D))                      (the compute-optimal size for U_D tokens)
    L  = E + A/N′^α + B/D′^β

A repeated token is worth less each epoch, and the worth decays with the time constant R*_D
(in epochs beyond the first); parameters beyond what the unique data support decay alike with
R*_N. So D′ never exceeds U_D·(1 + R*_D): past a few R*_D, more epochs buy nothing.

The fit has two stages. L(N, D) (E, A, B, α, β) is fitted as analysis/laws.py fits it (Huber on
log loss, the Hoffmann grid of starts) on the points trained for one epoch (D = U_D). Then
R*_D, and R*_N where the points have parameters in excess of their unique data, are fitted with
those held: the summed Huber loss of the log residuals, L-BFGS-B from a fixed grid of starts in
log R*, the best kept. A point of one epoch whose model exceeds N_opt(D) is read as plain
L(N, D) in the first stage, where the law discounts its parameters a little (by R*_N); the
points of a study near its optimum are not. Intervals: the bootstrap over runs, each resample
refitting both stages (the first batched from the full fit, laws.refit_counts).

Stores: a trial repeats its data when its `epochs` > 1 (U = tokens / epochs); `study fit --law
data-constrained` fits them, and the forecast (analysis/forecast.py) fits it as its approach 3
where any point repeats its data.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from analysis.laws import (
    CHINCHILLA_ND,
    N_BOOT,
    TRIALS,
    LawSolution,
    fit_law,
    huber,
    refit_counts,
    set_intervals,
)

# The fit printed in the README of github.com/huggingface/datablations ("Parametric Fit"):
# a, b, e, alpha, beta, rd_star, rn_star = [6.255414, 7.3049974, 0.6254804, 0.3526596,
# 0.3526596, 15.387756, 5.309743], with A = e^a, B = e^b, E = e^e. The paper rounds them to
# R*_D ≈ 15.4 and R*_N ≈ 5.3.
R_D_STAR = 15.387756
R_N_STAR = 5.309743
PUBLISHED = {
    "E": float(np.exp(0.6254804)),
    "A": float(np.exp(6.255414)),
    "B": float(np.exp(7.3049974)),
    "alpha": 0.3526596,
    "beta": 0.3526596,
    "R_D_star": R_D_STAR,
    "R_N_star": R_N_STAR,
}
NAMES = ("E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star")
STAR_GRID = np.log([1.0, 3.0, 10.0, 30.0, 100.0])  # starting values of log R*
STAR_BOUNDS = (np.log(0.01), np.log(1e4))  # past 1e4 epochs repetition is as good as new data
MIN_EXCESS = 3  # points with excess parameters (R_N ≥ EXCESS) before R*_N is fitted
EXCESS = 0.5  # a model 1.5× the compute-optimal size for its unique tokens


def repetitions(total, unique) -> np.ndarray:
    """R = total/unique − 1, the repetitions beyond the first pass (0 where none)."""
    return np.maximum(np.asarray(total, float) / np.asarray(unique, float) - 1.0, 0.0)


def effective(unique, total, r_star: float) -> np.ndarray:
    """U + U·R*·(1 − exp(−R/R*)) with R = total/unique − 1: what `total` is worth when only
    `unique` of it is new (the same form for tokens, D′, and for parameters, N′)."""
    unique = np.asarray(unique, float)
    return unique + unique * r_star * -np.expm1(-repetitions(total, unique) / r_star)


def effective_data(D, U, r_star: float = R_D_STAR) -> np.ndarray:
    """D′: the effective data of D tokens of which U are unique."""
    return effective(U, D, r_star)


def optimal_params(tokens, params: dict[str, float]) -> np.ndarray:
    """N_opt(D): the compute-optimal size for `tokens` under L(N, D) with `params`, i.e. the N
    whose compute-optimal D is `tokens` (the repository's D_to_N: G·(D·G)^(β/α) with
    G = (αA / βB)^(1/(α+β)), from Hoffmann et al.'s eq. 4)."""
    alpha, beta = params["alpha"], params["beta"]
    log_g = (np.log(alpha * params["A"]) - np.log(beta * params["B"])) / (alpha + beta)
    return np.exp(log_g + (beta / alpha) * (np.log(np.asarray(tokens, float)) + log_g))


def unique_params(N, U, params: dict[str, float]) -> np.ndarray:
    """U_N = min(N, N_opt(U)): the parameters the unique data support."""
    return np.minimum(np.asarray(N, float), optimal_params(U, params))


def effective_params(N, U, params: dict[str, float], r_star: float = R_N_STAR) -> np.ndarray:
    """N′: the effective parameters of a model of N trained on U unique tokens."""
    return effective(unique_params(N, U, params), N, r_star)


def predict_loss(params: dict[str, float], N, D, U) -> np.ndarray:
    """The law's loss for N parameters trained on D tokens, U of them unique."""
    n_eff = effective_params(N, U, params, params["R_N_star"])
    d_eff = effective_data(D, U, params["R_D_star"])
    return (
        params["E"] + params["A"] / n_eff ** params["alpha"] + params["B"] / d_eff ** params["beta"]
    )


@dataclass(frozen=True)
class DataConstrainedLaw:
    """The law as laws.LawSolution sees one: its names, parameters from a vector in natural
    units, its predictions; so the solution's result, bands and intervals are laws.py's."""

    key: str = "data-constrained"
    formula: str = "L = E + A/N′^α + B/D′^β (D′, N′: effective data and parameters)"
    names: tuple[str, ...] = NAMES

    def natural(self, theta) -> dict[str, float]:
        """Vector in the order of `names` -> named parameters."""
        return {name: float(v) for name, v in zip(self.names, theta, strict=True)}

    def predict(self, params: dict[str, float], **x) -> np.ndarray:
        """The loss at N, D and U."""
        return np.asarray(predict_loss(params, x["N"], x["D"], x["U"]))

    def derived(self, params: dict[str, float], compute: float | None) -> dict[str, float]:
        """The worth of data repeated for 4 epochs, relative to as much new data."""
        return {"worth_4_epochs": float(effective_data(4.0, 1.0, params["R_D_star"]) / 4.0)}


DATA_CONSTRAINED = DataConstrainedLaw()


@dataclass(frozen=True)
class _Points:
    """The points of a fit in the form the second stage needs."""

    N: np.ndarray
    D: np.ndarray
    U: np.ndarray
    log_l: np.ndarray


def _star_loss(log_stars, base: dict[str, float], pts: _Points, weights, fitted) -> float:
    """Summed (weighted) Huber loss of the log residuals with the R* named in `fitted` at
    exp(log_stars) and everything else at `base`."""
    params = base | {name: float(np.exp(v)) for name, v in zip(fitted, log_stars, strict=True)}
    with np.errstate(over="ignore", invalid="ignore"):
        r = np.log(predict_loss(params, pts.N, pts.D, pts.U)) - pts.log_l
    return float(np.sum(weights * huber(np.where(np.isfinite(r), r, 1e3))))


def _fit_stars(base: dict[str, float], pts: _Points, weights, fitted, starts):
    """L-BFGS-B over log R* from each start; the best result."""
    best = None
    for start in starts:
        res = minimize(
            _star_loss,
            np.asarray(start, float),
            args=(base, pts, weights, fitted),
            method="L-BFGS-B",
            bounds=[STAR_BOUNDS] * len(fitted),
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 1000},
        )
        if best is None or res.fun < best.fun:
            best = res
    return best


def _check_points(loss, N, D, U) -> None:
    if np.any(loss <= 0) or np.any(N <= 0) or np.any(D <= 0) or np.any(U <= 0):
        raise ValueError("losses, N, D and U must be positive")
    over = np.flatnonzero(U > D * (1 + 1e-9))
    if len(over):
        i = over[0]
        raise ValueError(
            f"a point has more unique tokens than tokens (U = {U[i]:.4g} > D = {D[i]:.4g}): "
            "U counts the distinct tokens seen, at most D"
        )
    if not np.any(D > U * (1 + 1e-9)):
        raise ValueError(
            "no point repeats its data (D = U everywhere): R*_D needs points trained for "
            "more than one epoch"
        )


def fit_data_constrained(
    loss, groups=None, n_boot: int = N_BOOT, *, seed: int = 0, N, D, U
) -> LawSolution:
    """Fit the data-constrained law to points (N parameters, D tokens, U unique tokens, loss):
    L(N, D) on the points of one epoch, then R*_D (and R*_N where the data show excess
    parameters) on all, with bootstrap intervals over `groups` (runs; default each point).

    Raises ValueError where the points cannot pin the law down."""
    loss, N, D, U = (np.asarray(v, float) for v in (loss, N, D, U))
    _check_points(loss, N, D, U)
    once = ~(D > U * (1 + 1e-9))
    n_params = len(CHINCHILLA_ND.internal_names())
    if once.sum() < n_params:
        raise ValueError(
            f"L(N, D) is fitted first on the points of one epoch (D = U): it needs {n_params} "
            f"of them, got {int(once.sum())}"
        )
    groups = np.arange(len(loss)) if groups is None else np.asarray(groups)
    first = fit_law(CHINCHILLA_ND, loss[once], groups[once], n_boot=0, N=N[once], D=D[once])
    # L(N, D) is the law only where a point's model does not exceed what its data support
    # (R_N ≈ 0); oversized models of one epoch are left to the second stage, which sees R*_N
    plain = once & (repetitions(N, unique_params(N, U, first.params)) < EXCESS)
    if plain.sum() >= n_params and len(np.unique(N[plain])) > 1 and len(np.unique(D[plain])) > 1:
        once = plain
        first = fit_law(CHINCHILLA_ND, loss[once], groups[once], n_boot=0, N=N[once], D=D[once])
    pts = _Points(N, D, U, np.log(loss))
    excess = repetitions(N, unique_params(N, U, first.params)) >= EXCESS
    fitted = ("R_D_star", "R_N_star") if excess.sum() >= MIN_EXCESS else ("R_D_star",)
    base = first.params | {"R_D_star": R_D_STAR, "R_N_star": R_N_STAR}
    res = _fit_stars(base, pts, 1.0, fitted, itertools.product(STAR_GRID, repeat=len(fitted)))
    params = base | {name: float(np.exp(v)) for name, v in zip(fitted, res.x, strict=True)}
    warnings = [f"L(N, D) from the {int(once.sum())} points of one epoch: {w}"
                for w in first.warnings]  # fmt: skip
    if "R_N_star" not in fitted:
        warnings.append(
            f"R_N_star held at the published {R_N_STAR:g} (Muennighoff et al. 2023): fewer than "
            f"{MIN_EXCESS} points have a model {1 + EXCESS:g}× or more the compute-optimal "
            "size for its unique tokens, so the data do not pin it down"
        )
    for name, value in zip(fitted, res.x, strict=True):
        if np.isclose(value, STAR_BOUNDS[0]) or np.isclose(value, STAR_BOUNDS[1]):
            warnings.append(
                f"{name} = {np.exp(value):.3g} sits at its bound: the data do not pin it down "
                "(repeat for more epochs)"
            )
    residuals = np.log(predict_loss(params, N, D, U)) - pts.log_l
    fit = LawSolution(
        law=DATA_CONSTRAINED, params={n: params[n] for n in NAMES}, n_points=len(loss),
        n_groups=len(np.unique(groups)), objective=float(res.fun),
        rmse_log=float(np.sqrt(np.mean(residuals**2))), warnings=warnings,
        derived=DATA_CONSTRAINED.derived(params, None),
    )  # fmt: skip
    if n_boot:
        _bootstrap(fit, first, pts, once, groups, fitted=fitted, n_boot=n_boot, seed=seed)
    return fit


def _bootstrap(fit, first, pts: _Points, once, groups, *, fitted, n_boot: int, seed: int):
    """Resample runs; refit L(N, D) on each resample's points of one epoch (batched, from the
    full fit), then its R* from the full fit's."""
    labels, index = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    counts = []
    for _ in range(n_boot):
        drawn = np.bincount(rng.integers(0, len(labels), len(labels)), minlength=len(labels))
        c = drawn[index].astype(float)
        kept = c[once] > 0
        if (
            kept.sum() < len(CHINCHILLA_ND.internal_names())
            or len(np.unique(pts.N[once][kept])) < 2
            or len(np.unique(pts.D[once][kept])) < 2
            or not np.any(c[~once] > 0)
        ):
            continue  # too few points of one epoch, or none repeated, to refit both stages
        counts.append(c)
    if not counts:
        fit.warnings.append("no bootstrap resample keeps enough points to refit: no intervals")
        return
    once_counts = np.array([c[once] for c in counts])
    stage1 = refit_counts(first, np.exp(pts.log_l[once]), once_counts,
                          N=pts.N[once], D=pts.D[once])  # fmt: skip
    start = [np.log(fit.params[name]) for name in fitted]
    thetas = []
    for params, c in zip(stage1, counts, strict=True):
        base = params | {n: fit.params[n] for n in ("R_D_star", "R_N_star")}
        res = _fit_stars(base, pts, c, fitted, [start])
        stars = base | {n: float(np.exp(v)) for n, v in zip(fitted, res.x, strict=True)}
        thetas.append(np.array([stars[n] for n in NAMES]))
    set_intervals(fit, thetas, TRIALS)
