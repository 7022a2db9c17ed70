"""Scaling laws as small named objects, and their robust fits.

    L(N)    = E + A·N^(−α)                 (Kaplan et al. 2020, with an irreducible loss E)
    L(N, D) = E + A/N^α + B/D^β            (Hoffmann et al. 2022, "approach 3")

Both are fitted as Hoffmann et al. and the Epoch AI replication (Besiroglu et al. 2024) fit them:
in log-sum-exp form, log L̂ = LSE(a − α·log N, b − β·log D, e) with A = eᵃ, B = eᵇ, E = eᵉ, the
Huber loss (δ = 1e-3) of the log-loss residuals *summed* over the points, minimised by L-BFGS-B
from every point of a grid of starts, the best kept. Summing matters: the mean of the Huber terms
is so small (≈ δ·|r|) that L-BFGS-B's stopping rules end the search far from the optimum, so the
objective is a sum, the tolerances are tight, and a fit whose gradient has not vanished warns.

Intervals come from the bootstrap over *groups* (trials): the points one training run gives are
not independent, so a resample draws whole runs. Each resample starts from the full fit. Where
resampling runs cannot work (every resample that can be fitted is the data itself: as many runs
as parameters), a residual bootstrap stands in, said as such: the fit's residuals, rescaled
for the parameters fitted, are resampled onto its predictions (Davison & Hinkley 1997, chapter
6). It takes the points' errors as independent and alike, and needs more points than
parameters; with no more, there is no interval.

The IsoFLOP analysis (Hoffmann et al.'s approach 2) is in analysis/isoflop.py.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from analysis.refits import (
    CHUNK,
    HUBER_DELTA,
    Points,
    huber,
    in_chunks,
    objective_for,
    refit_batch,
)
from analysis.results import RESIDUALS, TRIALS, Estimate, Holdout, LawFit

N_BOOT = 1000
MAX_STARTS = 50  # starting points run to convergence (see _promising)
MAXITER = 5000  # L-BFGS-B iterations per start
# A fit whose log residuals have a root mean square within this is exact: the objective is a
# sum of Huber terms, never below 0, so no other start could improve on it by more than
# n·EXACT_RESIDUAL²/2, and the starts stop there. With as many points as parameters every start
# gets there, each after hundreds of steps.
EXACT_RESIDUAL = 1e-8
HOLDOUT_STARTS = 10  # the self-test's refit: the best starts of the grid (see _promising)
EXPONENT_BOUND = 5.0  # an exponent's upper bound in the fit: an interval that reaches it is open


@dataclass(frozen=True)
class Law:
    """A sum of power laws and a constant, E + Σ_k C_k·X_k^(−γ_k), with named parameters.

    `terms` names, per power term, its coefficient, its exponent and its variable; the fit
    works on (log C_k, γ_k, ..., log E) in that order."""

    key: str  # what `study fit --law` calls it
    formula: str
    terms: tuple[tuple[str, str, str], ...]  # (coefficient, exponent, variable)
    grid: dict[str, np.ndarray]  # starting values of the fitted parameters, by internal name
    e_below_loss: bool = False  # the log_E grid is offsets below the smallest log-loss seen
    e_span: float = 0.0  # the log_E grid grows, in its own steps, to span this below the loss

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(v for _, _, v in self.terms)

    @property
    def names(self) -> tuple[str, ...]:
        """Natural parameter names, in the order `params` returns them."""
        return ("E",) + tuple(c for c, _, _ in self.terms) + tuple(g for _, g, _ in self.terms)

    def internal_names(self) -> list[str]:
        names = []
        for coefficient, exponent, _ in self.terms:
            names += [f"log_{coefficient}", exponent]
        return names + ["log_E"]

    def bounds(self, log_l: np.ndarray) -> list[tuple[float, float]]:
        # log E stays above -10 (a vanishing floor) and at most the smallest loss seen (the floor
        # cannot exceed a measured loss); without them a fit whose data show no floor walks
        # log E towards minus infinity for hundreds of iterations.
        return [(-20.0, 80.0), (-2.0, EXPONENT_BOUND)] * len(self.terms) + [
            (-10.0, float(np.min(log_l)))
        ]

    def natural(self, theta: np.ndarray) -> dict[str, float]:
        """Internal vector -> named parameters (A = exp(log A), ...)."""
        out = {"E": float(np.exp(theta[-1]))}
        for k, (coefficient, exponent, _) in enumerate(self.terms):
            out[coefficient] = float(np.exp(theta[2 * k]))
            out[exponent] = float(theta[2 * k + 1])
        return {name: out[name] for name in self.names}

    def predict(self, params: dict[str, float], **x) -> np.ndarray:
        """The law's loss at the given variables, e.g. predict(p, N=..., D=...)."""
        total = params["E"]
        for coefficient, exponent, variable in self.terms:
            total = total + params[coefficient] * np.asarray(x[variable], float) ** (
                -params[exponent]
            )
        return np.asarray(total)

    def _terms(self, thetas: np.ndarray, logs: np.ndarray):
        """For a batch of θ (S, p): each term of L̂ over their largest (the power terms, then E)
        with that largest (S, n) and their sum, so log L̂ = top + log(sum), without overflow."""
        coefficient, exponent = thetas[:, 0:-1:2, None], thetas[:, 1:-1:2, None]
        terms = [coefficient[:, k] - exponent[:, k] * logs[k] for k in range(len(self.terms))]
        terms.append(np.broadcast_to(thetas[:, -1, None], terms[0].shape))
        top = np.maximum.reduce(terms)
        exps = [np.exp(t - top) for t in terms]
        return exps, top, sum(exps)

    def _residuals(self, thetas: np.ndarray, logs: np.ndarray, log_l: np.ndarray):
        """Log residuals r = log L̂ - log L (S, n) and dr/dθ (S, n, p) for a batch of θ."""
        exps, top, total = self._terms(thetas, logs)
        jac = np.empty(top.shape + thetas.shape[1:])
        for k in range(len(self.terms)):
            share = exps[k] / total  # d log L̂ / d log C_k: the term's share of L̂
            jac[..., 2 * k] = share
            jac[..., 2 * k + 1] = -share * logs[k]
        jac[..., -1] = exps[-1] / total
        return top + np.log(total) - log_l, jac

    def objective_batch(self, thetas, logs, log_l, weights=None):
        """Summed Huber loss of the log residuals and its gradient, for a batch of parameter
        vectors at once: thetas (S, p) -> (S,), (S, p). `weights` (S, n) counts each point
        (a bootstrap resample is a set of counts)."""
        exps, top, total = self._terms(thetas, logs)
        r = top + np.log(total) - log_l  # log L̂ - log L
        w = 1.0 if weights is None else weights
        loss = (w * huber(r)).sum(axis=1)
        g = w * np.clip(r, -HUBER_DELTA, HUBER_DELTA) / total  # d huber / d r, over the sum
        grad = np.empty_like(thetas)
        for k in range(len(self.terms)):
            gw = g * exps[k]  # d log L̂ / d log C_k is the term's share of L̂
            grad[:, 2 * k] = gw.sum(axis=1)
            grad[:, 2 * k + 1] = -(gw @ logs[k])
        grad[:, -1] = (g * exps[-1]).sum(axis=1)
        return loss, grad

    def objective(self, theta: np.ndarray, logs: np.ndarray, log_l: np.ndarray):
        """objective_batch for one parameter vector (what scipy's minimize calls)."""
        f, g = self.objective_batch(theta[None, :], logs, log_l)
        return float(f[0]), g[0]

    def log_predict(self, theta: np.ndarray, logs: np.ndarray) -> np.ndarray:
        terms = [theta[2 * k] - theta[2 * k + 1] * logs[k] for k in range(len(self.terms))]
        return logsumexp(np.vstack(terms + [np.full(logs.shape[1], theta[-1])]), axis=0)

    def grid_for(self, log_l: np.ndarray) -> dict[str, np.ndarray]:
        """The starting grid for these losses."""
        if self.e_below_loss:
            return self.grid | {"log_E": float(np.min(log_l)) + self.grid["log_E"]}
        if not self.e_span:
            return self.grid
        # today's points kept (the pinned fits start from them: Hoffmann's 4,500 on the
        # Chinchilla runs), more added only outside them: up to the smallest log-loss (the
        # bound; the grid's edge), and down to `e_span` below it where fewer than 3 of today's
        # points lie under that bound
        base, top = self.grid["log_E"], float(np.min(log_l))
        step = base[1] - base[0]
        n_below = max(0, int(np.ceil((base.min() - (top - self.e_span)) / step)))
        n_below = n_below if int((base <= top).sum()) < 3 else 0
        n_above = max(0, int(np.floor((top - base.max()) / step)))
        below = base.min() - step * np.arange(n_below, 0, -1)
        above = base.max() + step * np.arange(1, n_above + 1)
        above = np.append(above, top) if top > base.max() + step * n_above + 1e-9 else above
        return self.grid | {"log_E": np.concatenate([below, base, above])}

    def starts(self, log_l: np.ndarray) -> np.ndarray:
        """Every point of the starting grid, one per row."""
        return np.array(list(itertools.product(*self.grid_for(log_l).values())), dtype=float)

    def derived(self, params: dict[str, float], compute: float | None) -> dict[str, float]:
        """Quantities that follow from the parameters (L(N, D): the compute-optimal allocation)."""
        if self.key != "nd":
            return {}
        alpha, beta, big_a, big_b = params["alpha"], params["beta"], params["A"], params["B"]
        out = {"a": beta / (alpha + beta), "b": alpha / (alpha + beta)}
        if compute:
            # Minimising L(N, C/6N) over N (Hoffmann et al., eq. 4): N_opt = G·(C/6)^a,
            # D_opt = (C/6)^b / G with G = (αA / βB)^(1/(α+β)).
            # in logs: a resample with a tiny alpha + beta would overflow floats (inf, not an error)
            log_g = (np.log(alpha * big_a) - np.log(beta * big_b)) / (alpha + beta)
            log_c = np.log(compute / 6)
            with np.errstate(over="ignore"):
                n_opt = np.exp(log_g + out["a"] * log_c)
                d_opt = np.exp(out["b"] * log_c - log_g)
            out |= {
                "N_opt": float(n_opt),
                "D_opt": float(d_opt),
                "tokens_per_param": float(d_opt / n_opt),
            }
        return out


KAPLAN_N = Law(
    key="n",
    formula="L(N) = E + A·N^(−α)",
    terms=(("A", "alpha", "N"),),
    # E starts between e^-3 and e^-0.01 times the smallest loss: any scale of loss is covered
    # (bytes, BPE tokens, masked tokens), where a fixed grid would leave some outside it.
    grid={
        "log_A": np.linspace(0.0, 25.0, 6),
        "alpha": np.array([0.0, 0.05, 0.2, 0.5, 1.0, 2.0]),  # small models fit α of 0.01-0.1
        "log_E": np.array([-3.0, -1.0, -0.3, -0.1, -0.03, -0.01]),
    },
    e_below_loss=True,
)
# Hoffmann et al.'s grid (section D.2), as the Epoch AI replication used it: 4,500 starts.
CHINCHILLA_ND = Law(
    key="nd",
    formula="L(N, D) = E + A/N^α + B/D^β",
    terms=(("A", "alpha", "N"), ("B", "beta", "D")),
    grid={
        "log_A": np.arange(0.0, 30.0, 5.0),
        "alpha": np.arange(0.0, 2.5, 0.5),
        "log_B": np.arange(0.0, 30.0, 5.0),
        "beta": np.arange(0.0, 2.5, 0.5),
        "log_E": np.arange(-1.0, 1.5, 0.5),  # widened to the data's losses (Law.grid_for)
    },
    e_span=3.0,
)


@dataclass
class LawSolution:
    """The numerical solution of a law fitted to points: the optimum, the bootstrap refits and
    their intervals (the fitting machinery; `result()` is the public results.LawFit)."""

    law: Law
    params: dict[str, float]
    n_points: int
    n_groups: int
    objective: float  # summed Huber loss at the optimum
    rmse_log: float  # root-mean-square residual of log-loss
    warnings: list[str] = field(default_factory=list)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    derived: dict[str, float] = field(default_factory=dict)
    compute: float | None = None  # the budget the derived allocation is quoted at
    boot: np.ndarray | None = None  # (resamples, parameters) in the order of law.names
    n_boot: int = 0
    interval: str | None = None  # TRIALS or RESIDUALS: what the intervals resampled; None: none

    def predict(self, **x) -> np.ndarray:
        return self.law.predict(self.params, **x)

    def band(self, level: float = 0.95, **x) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap interval of the predicted loss at x."""
        if self.boot is None or not len(self.boot):
            pred = self.predict(**x)
            return pred, pred
        preds = np.array(
            [self.law.predict(dict(zip(self.law.names, b, strict=True)), **x) for b in self.boot]
        )
        tail = 100 * (1 - level) / 2
        return np.percentile(preds, tail, axis=0), np.percentile(preds, 100 - tail, axis=0)

    def result(self, warnings=(), holdout: Holdout | None = None) -> LawFit:
        """The fit as results.LawFit (its solution kept, for predictions and bands), with more
        `warnings` and the self-test."""
        return LawFit(
            law=self.law.key, formula=self.law.formula, n_points=self.n_points,
            n_groups=self.n_groups, params=_estimates(self.params, self.intervals),
            derived=_estimates(self.derived, self.intervals), interval=self.interval,
            compute=self.compute, rmse_log=self.rmse_log, huber_objective=self.objective,
            n_boot=self.n_boot, warnings=tuple(self.warnings) + tuple(warnings),
            holdout=holdout, solution=self,
        )  # fmt: skip


def _estimates(values: dict[str, float], intervals: dict) -> dict[str, Estimate]:
    return {name: Estimate(value, intervals.get(name)) for name, value in values.items()}


def _minimize(law: Law, starts, logs, log_l, maxiter: int | None = None):
    """L-BFGS-B from each start at tight tolerances; the best result (the first exact fit,
    where a start finds one: see EXACT_RESIDUAL)."""
    bounds = law.bounds(log_l)
    exact = len(log_l) * EXACT_RESIDUAL**2 / 2  # the Huber objective of such residuals
    low, high = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
    best, batch = None, objective_for(law, logs, log_l)

    def objective(theta):  # law.objective, per distinct point where rows repeat one
        f, g = batch(theta[None, :])
        return float(f[0]), g[0]

    for start in starts:
        res = minimize(
            objective,
            np.clip(start, low, high),
            jac=True,
            bounds=bounds,
            method="L-BFGS-B",
            options={"maxiter": maxiter or MAXITER, "ftol": 1e-15, "gtol": 1e-12},
        )
        if best is None or res.fun < best.fun:
            best = res
        if best.fun <= exact:
            break
    return best


def _promising(law: Law, starts: np.ndarray, logs, log_l, keep: int = MAX_STARTS) -> np.ndarray:
    """The `keep` starts with the lowest objective, when the grid has more.

    Hoffmann et al.'s grid for L(N, D) has 4,500 points and each L-BFGS-B run costs ~5 ms, so
    every start would take half a minute. Most of the grid predicts losses off by orders of
    magnitude (A = e^25 with α = 0, say); the objective at the start, computed for the whole
    grid at once, discards those. On the Chinchilla anchor the best 50 give the same optimum
    as all 4,500 (a test checks it); 92 of the best 200 reach it, the first 10 all do."""
    if len(starts) <= keep:
        return starts
    low, high = (np.array(b) for b in zip(*law.bounds(log_l), strict=True))
    starts = np.clip(starts, low, high)
    values, _ = in_chunks(objective_for(law, logs, log_l), starts, len(log_l))
    return starts[np.argsort(values, kind="stable")[:keep]]


def _check(law: Law, theta: np.ndarray, res, log_l: np.ndarray) -> list[str]:
    """Warnings about a fit: an optimum outside the grid's span, at a bound, or not converged."""
    out, bounds = [], law.bounds(log_l)
    low, high = (np.array(b) for b in zip(*bounds, strict=True))
    at_bound = np.isclose(theta, low) | np.isclose(theta, high)
    grids = law.grid_for(log_l).values()
    for name, value, grid, held in zip(law.internal_names(), theta, grids, at_bound, strict=True):
        if not held and (value <= grid.min() or value >= grid.max()):
            out.append(
                f"the best fit has {name} = {value:.3g}, on or beyond the edge of the starting "
                f"grid [{grid.min():g}, {grid.max():g}]: a better fit may lie beyond it"
            )
    for name, value, held in zip(law.internal_names(), theta, at_bound, strict=True):
        if held:
            out.append(f"{name} = {value:.3g} sits at its bound: the data do not pin it down")
    # Each point's Huber gradient is at most δ; a converged fit's is far below it (a parameter
    # held at its bound may keep a gradient).
    if np.max(np.abs(res.jac[~at_bound]), initial=0.0) > 1e-3 * HUBER_DELTA * len(log_l):
        out.append(f"the optimizer stopped before converging ({res.message})")
    return out


def fit_law(
    law: Law,
    loss,
    groups=None,
    n_boot: int = N_BOOT,
    *,
    seed: int = 0,
    compute: float | None = None,
    n_starts: int = MAX_STARTS,
    **variables,
) -> LawSolution:
    """Fit `law` to points (variables=arrays by name, e.g. N=..., D=...; loss).

    `groups` labels the run each point came from (default: every point its own run); the
    bootstrap resamples whole groups. `compute` is the budget at which the derived
    compute-optimal allocation is quoted (L(N, D) only)."""
    loss = np.asarray(loss, float)
    xs = [np.asarray(variables[v], float) for v in law.variables]
    if np.any(loss <= 0) or any(np.any(x <= 0) for x in xs):
        raise ValueError("losses and every variable of a law must be positive")
    n_params = len(law.internal_names())
    for name, x in zip(law.variables, xs, strict=True):
        if len(np.unique(x)) < 2:
            raise ValueError(f"{law.formula} needs at least 2 distinct values of {name}")
    if len(loss) < n_params:
        raise ValueError(f"{law.formula} has {n_params} parameters: it needs {n_params} points")
    groups = np.arange(len(loss)) if groups is None else np.asarray(groups)
    logs, log_l = np.log(np.vstack(xs)), np.log(loss)

    res = _minimize(law, _promising(law, law.starts(log_l), logs, log_l, n_starts), logs, log_l)
    theta = res.x
    params = law.natural(theta)
    residuals = law.log_predict(theta, logs) - log_l
    fit = LawSolution(
        law=law,
        params=params,
        n_points=len(loss),
        n_groups=len(np.unique(groups)),
        objective=float(res.fun),
        rmse_log=float(np.sqrt(np.mean(residuals**2))),
        warnings=_check(law, theta, res, log_l),
        derived=law.derived(params, compute),
        compute=compute,
    )
    if n_boot:
        bootstrap(fit, theta, logs, log_l, groups, n_boot=n_boot, seed=seed)
    return fit


def refit_counts(fit: LawSolution, loss, counts, **variables) -> list[dict[str, float]]:
    """The law of `fit` fitted again to each row of `counts` (how often each point is drawn in
    a resample), all at once and from `fit`'s optimum: what the bootstrap of a chained
    prediction needs."""
    law = fit.law
    logs = np.log(np.vstack([np.asarray(variables[v], float) for v in law.variables]))
    log_l = np.log(np.asarray(loss, float))
    theta = []
    for coefficient, exponent, _ in law.terms:
        theta += [np.log(fit.params[coefficient]), fit.params[exponent]]
    theta.append(np.log(fit.params["E"]))
    thetas = refit_batch(law, np.array(theta), logs, log_l, np.asarray(counts, float))
    return [law.natural(t) for t in thetas]


def bootstrap(fit: LawSolution, theta, logs, log_l, groups, *, n_boot: int, seed: int) -> None:
    """The intervals of `fit` (optimum `theta`) from resampling whole `groups`, in place. The
    resamples are refitted a chunk at a time: memory stays bounded whatever the rows."""
    labels, index = np.unique(groups, return_inverse=True)
    n_groups, rng = len(labels), np.random.default_rng(seed)
    points, point = Points.of(logs), np.empty(len(log_l), int)
    point[points.order] = points.point  # each row's distinct point, and each variable's value:
    values = [np.unique(x, return_inverse=True)[1].ravel() for x in logs]
    # A resample is a multiset of groups, i.e. a count per group; the fit does not depend on
    # the order. With few groups many draws repeat (4 have 35 distinct): each is fitted once.
    keys, supports, pending, thetas = [], set(), [], {}
    for _ in range(n_boot):
        drawn = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        keys.append(hashlib.blake2b(drawn.tobytes(), digest_size=16).digest())
        if keys[-1] in thetas:
            continue
        counts = drawn[index]  # a count per row
        kept = counts > 0
        thetas[keys[-1]] = None  # None: too few distinct points left to pin the parameters
        distinct = [np.count_nonzero(np.bincount(v[kept])) for v in (point, *values)]
        if distinct[0] < len(theta) or min(distinct[1:]) < 2:
            continue
        supports.add(hashlib.blake2b(kept.tobytes(), digest_size=16).digest())
        pending.append((keys[-1], counts))
        if len(pending) * len(log_l) >= CHUNK:
            _refit_pending(fit.law, theta, logs, log_l, pending, thetas, points=points)
    if len(supports) < 2:
        # every resample that can be fitted holds the same points: each is the data itself,
        # and their spread (none) says nothing of the fit's uncertainty
        why = (
            f"with {n_groups} runs for {len(theta)} parameters, every resample that can be "
            "fitted is the data itself"
            if supports
            else "no bootstrap resample keeps enough distinct points to fit"
        )
        _residual_bootstrap(fit, theta, logs, log_l, n_boot=n_boot, seed=seed, why=why)
        return
    _refit_pending(fit.law, theta, logs, log_l, pending, thetas, points=points)
    set_intervals(fit, [thetas[k] for k in keys if thetas[k] is not None], TRIALS)


def _refit_pending(law: Law, theta, logs, log_l, pending: list, thetas: dict, *, points) -> None:
    """Refit the resamples waiting in `pending` ((key, counts) pairs) into `thetas`; empty it."""
    if pending:
        counts = np.array([c for _, c in pending], float)
        refits = refit_batch(law, theta, logs, log_l, counts, points=points)
        thetas.update(zip([k for k, _ in pending], refits, strict=True))
        pending.clear()


def _residual_bootstrap(fit: LawSolution, theta, logs, log_l, *, n_boot: int, seed: int, why: str):
    """Intervals from resampling the fit's residuals, where resampling runs cannot work (`why`);
    none with no more points than parameters (the fit then leaves no residuals)."""
    n, p = len(log_l), len(theta)
    if n <= p:
        fit.warnings.append(
            f"no intervals: {why}, and {n} points for {p} parameters leave no residuals to "
            "resample; resampling cannot measure the uncertainty (more sizes would)"
        )
        return
    fitted = fit.law.log_predict(theta, logs)
    # a fit of p parameters leaves residuals smaller than its errors: rescaled by sqrt(n / (n - p)),
    # the leverage correction at its average (Davison & Hinkley 1997, chapter 6). Not centred: a
    # Huber fit's residuals balance in their clipped values, not their mean, and shifting them
    # by an outlier's share of the mean would move E, A and B of every resample
    residuals = (log_l - fitted) * np.sqrt(n / (n - p))
    rng = np.random.default_rng(seed)
    thetas, step = [], max(1, CHUNK // n)  # a chunk of resamples at a time: memory capped
    for done in range(0, n_boot, step):  # the same draws as all at once, row after row
        samples = fitted + residuals[rng.integers(0, n, (min(step, n_boot - done), n))]
        thetas.extend(refit_batch(fit.law, theta, logs, samples, np.ones_like(samples)))
    fit.warnings.append(
        f"{why}, so the intervals come from a residual bootstrap instead: the fit's residuals "
        "resampled, taken as independent (points of one run are not: they may be too narrow)"
    )
    set_intervals(fit, thetas, RESIDUALS)


def set_intervals(fit: LawSolution, thetas: list[np.ndarray], kind: str) -> None:
    """The 95% percentile intervals of the parameters and derived quantities over the refits
    `thetas` (one per resample); `kind` says what was resampled."""
    law = fit.law
    boots, derived = [], []
    for theta in thetas:
        params = law.natural(theta)
        boots.append([params[n] for n in law.names])
        derived.append(law.derived(params, fit.compute))
    fit.boot, fit.n_boot = np.array(boots), len(boots)
    columns = {name: fit.boot[:, i] for i, name in enumerate(law.names)}
    columns |= {name: np.array([d[name] for d in derived]) for name in fit.derived}
    fixed = []
    for name, values in columns.items():
        low, high = (float(v) for v in np.percentile(values, [2.5, 97.5]))
        if high - low <= 1e-9 * max(abs(low), abs(high), 1e-300):
            fixed.append(name)  # a zero-width "95%" interval is no interval
            continue
        fit.intervals[name] = (low, high)
    fit.interval = kind if fit.intervals else None
    if fixed:
        fit.warnings.append(
            f"no interval for {', '.join(fixed)}: every resample gives the same value (held at "
            "a bound, or pinned by too few points)"
        )


def fit_power_law(n_params, loss, n_boot: int = N_BOOT, seed: int = 0, groups=None) -> LawSolution:
    """L(N) = E + A·N^(−α) fitted to (N, loss) points."""
    n_params = np.asarray(n_params, float)
    if len(np.unique(n_params)) < 3:
        raise ValueError(
            f"L(N) has 3 parameters: it needs 3 distinct sizes, got {len(np.unique(n_params))}"
        )
    return fit_law(KAPLAN_N, loss, groups=groups, n_boot=n_boot, seed=seed, N=n_params)


def holdout_test(law: Law, loss, groups=None, *, compute=None, **variables) -> Holdout:
    """The self-test: refit without the largest model (L(N)) or the largest compute budget
    (L(N, D): the points with the largest N·D, or of the largest budget of `compute`, a table's
    own FLOP counts, where given), predict the held-out loss, and say how far off the
    prediction was."""
    loss = np.asarray(loss, float)
    xs = {v: np.asarray(variables[v], float) for v in law.variables}
    scale = np.prod(np.vstack(list(xs.values())), axis=0)  # N, or N·D ∝ compute
    top = scale.max()
    held = np.isclose(scale, top, rtol=1e-6)
    if compute is not None:  # models that count FLOPs otherwise share a budget off 6ND
        labels = compute_budgets(compute)
        held = labels == labels.max()
    what = "the largest model" if law.key == "n" else "the largest compute budget"
    try:
        fit = fit_law(
            law,
            loss[~held],
            None if groups is None else np.asarray(groups)[~held],
            n_boot=0,
            n_starts=HOLDOUT_STARTS,
            **{v: x[~held] for v, x in xs.items()},
        )
    except ValueError as e:
        return Holdout(held_out=what, error=f"cannot refit without it: {e}")
    predicted = fit.predict(**{v: x[held] for v, x in xs.items()})
    relative = (predicted - loss[held]) / loss[held]
    where = {"N": float(top)} if law.key == "n" else {"C_6ND": float(6 * top)}
    if compute is not None:  # named C_6ND where the table's FLOPs are 6ND, as without them
        flops = np.asarray(compute, float)[held]
        key = "C_6ND" if np.allclose(flops, 6 * scale[held], rtol=1e-6) else "C"
        where = {key: float(flops.max())}
    return Holdout(
        held_out=what,
        where=where,
        n_points=int(held.sum()),
        predicted=tuple(float(v) for v in predicted),
        actual=tuple(float(v) for v in loss[held]),
        error_pct=float(100 * np.mean(relative)),
    )


def compute_budgets(compute, gap_decades: float = 0.1) -> np.ndarray:
    """Label points by compute budget: sorted log10 C splits wherever two neighbours lie more
    than `gap_decades` apart (a budget's runs land near, not exactly on, its nominal C)."""
    log_c = np.log10(np.asarray(compute, float))
    order = np.argsort(log_c)
    labels = np.empty(len(log_c), dtype=int)
    labels[order] = np.concatenate([[0], np.cumsum(np.diff(log_c[order]) > gap_decades)])
    return labels
