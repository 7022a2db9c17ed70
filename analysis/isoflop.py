"""The IsoFLOP analysis (Hoffmann et al. 2022, "approach 2"): per compute budget, a parabola of
loss in log N gives the loss-optimal size N_opt(C); least-squares lines through those minima in
log-log give N_opt ∝ C^a and D_opt ∝ C^b.

Its intervals come from the bootstrap as a law's do (analysis/laws.py): resamples draw whole
runs, and where no resample of the runs but the data itself can be fitted, the parabolas'
residuals are resampled instead, said as such.

The loss-at-optimum law (`fit_loss_optimum`, as Marin's ladder forecasts) fits each budget's
parabola only near its minimum (a window around the lowest loss: a parabola over every point
of a wide sweep is biased, and Porian et al. 2024 fit near the minimum), then
L_opt(C) = E + k·C^(−γ) through the minima beside the lines of N_opt and D_opt; its intervals
resample whole budgets (isoFLOP curves), and `LossOptimumSolution.forecast` extends all three
to a budget beyond the grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar

from analysis.laws import N_BOOT, compute_budgets
from analysis.results import (
    BUDGETS,
    RESIDUALS,
    TRIALS,
    Estimate,
    IsoFlopFit,
    LossOptimumFit,
    Minimum,
    OptimumForecast,
)

# A budget's windowed parabola: the sizes within this factor in N of its lowest-loss size. On a
# synthetic Chinchilla law (tests/test_optlaw.py: 15 sizes over 300×) a factor of 3 (about ±2
# steps of 1.5×) cuts the bias of N_opt from +5.6% (every point) to about 1%; narrower windows
# let the noise in, wider ones the curve's asymmetry.
WINDOW = 3.0
LEAST_SIZES = 3  # a parabola's coefficients


@dataclass
class IsoFlopSolution:
    """Hoffmann et al.'s approach 2: per compute budget, a parabola of loss in log N gives the
    loss-optimal N_opt(C); then N_opt ∝ C^a and D_opt ∝ C^b by least squares in log-log."""

    budgets: list[dict]
    lines: np.ndarray  # (a, log N_opt at C = 1, b, log D_opt at C = 1): the lines in log-log
    n_points: int
    n_groups: int
    warnings: list[str] = field(default_factory=list)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_boot: int = 0
    interval: str | None = None  # TRIALS or RESIDUALS: what the intervals resampled; None: none
    boot: np.ndarray | None = None  # (resamples, 4): each resample's lines

    @property
    def a(self) -> float:
        return float(self.lines[0])

    @property
    def b(self) -> float:
        return float(self.lines[2])

    def optimum(self, flops: float, level: float = 0.95) -> tuple[Estimate, Estimate]:
        """N_opt and D_opt at `flops` on the lines through the minima, extended, each with the
        interval of the resamples' lines there (None without resamples or spread)."""
        lines = np.vstack([self.lines] + ([] if self.boot is None else [self.boot]))
        n_opt, d_opt = _allocation(lines, flops)
        return _spread(n_opt, level), _spread(d_opt, level)

    def result(self, warnings=()) -> IsoFlopFit:
        """The analysis as results.IsoFlopFit (its solution kept), with more `warnings`."""
        a, b = (Estimate(getattr(self, n), self.intervals.get(n)) for n in ("a", "b"))
        budgets = tuple(Minimum(**m | {"parabola": tuple(m["parabola"])}) for m in self.budgets)
        said = tuple(self.warnings) + tuple(warnings)
        return IsoFlopFit(n_points=self.n_points, n_groups=self.n_groups, a=a, b=b,
                          budgets=budgets, interval=self.interval, n_boot=self.n_boot,
                          warnings=said, solution=self)  # fmt: skip


def _allocation(lines: np.ndarray, flops: float) -> tuple[np.ndarray, np.ndarray]:
    """N_opt and D_opt at `flops` on each row's lines (a, log N_opt at 1, b, log D_opt at 1)."""
    with np.errstate(over="ignore"):  # a resample's steep line: inf, not an error
        return (np.exp(lines[:, 1] + lines[:, 0] * np.log(flops)),
                np.exp(lines[:, 3] + lines[:, 2] * np.log(flops)))  # fmt: skip


def _spread(values: np.ndarray, level: float) -> Estimate:
    """values[0] with the `level` percentile interval of the resamples' values[1:] (None without
    resamples or spread)."""
    ci, tail = None, 100 * (1 - level) / 2
    if len(values) > 1:
        low, high = (float(v) for v in np.percentile(values[1:], [tail, 100 - tail]))
        ci = (low, high) if high > low else None
    return Estimate(float(values[0]), ci)


def window_text(window: float | None) -> str:
    """The window rule in words, as the output says it."""
    if window is None:
        return "each budget's parabola on every size tried"
    return (f"each budget's parabola on the sizes within {window:g}× of its lowest-loss size "
            f"(the {LEAST_SIZES} nearest it in ln N where fewer lie within)")  # fmt: skip


def _lowest(log_n: np.ndarray, loss: np.ndarray) -> float:
    """The ln N of lowest mean loss (seeds of one size averaged)."""
    sizes = np.unique(log_n)
    return float(sizes[np.argmin([loss[log_n == s].mean() for s in sizes])])


def near_minimum(log_n: np.ndarray, loss: np.ndarray, window: float) -> np.ndarray:
    """Which of a budget's points its windowed parabola uses: those whose size lies within
    `window` (a factor in N) of the size of lowest mean loss, or, where fewer than 3 sizes
    do, those of the 3 sizes nearest it in ln N."""
    sizes, lowest = np.unique(log_n), _lowest(log_n, loss)
    away = np.abs(sizes - lowest)
    kept = sizes[away <= np.log(window) * (1 + 1e-9)]
    if len(kept) < LEAST_SIZES:
        kept = sizes[np.argsort(away, kind="stable")[:LEAST_SIZES]]
    return np.isin(log_n, kept)


def no_parabola(c_mid: float, sizes: int) -> str:
    """The note on a budget of too few sizes for a parabola (the fits and `study plan`)."""
    return f"C = {c_mid:.3g}: {sizes} size(s) tried, a parabola needs {LEAST_SIZES}; left out"


def _minima(n, d, c, loss, budget, window: float | None = None) -> tuple[list[dict], list[str]]:
    """Each budget's parabola and its minimum, where it has 3 sizes or more; a note for each
    budget whose minimum lies outside its sizes (left out). `window`: each parabola on the
    points near its lowest loss only (`near_minimum`), the sizes it used kept, and a note
    also for a budget left out for too few sizes or whose lowest loss is at an end of its
    sizes; None: on every point, as Hoffmann et al."""
    minima, notes = [], []
    for label in np.unique(budget):
        at = np.flatnonzero(budget == label)
        c_mid = float(np.exp(np.mean(np.log(c[at]))))
        sizes = np.unique(np.log(n[at]))
        if len(sizes) < LEAST_SIZES:
            if window is not None:
                notes.append(no_parabola(c_mid, len(sizes)))
            continue
        used = at if window is None else at[near_minimum(np.log(n[at]), loss[at], window)]
        log_n = np.log(n[used])
        curvature, slope, intercept = np.polyfit(log_n, loss[used], 2)
        log_opt = -slope / (2 * curvature) if curvature > 0 else np.nan
        if not (sizes[0] <= log_opt <= sizes[-1]):
            notes.append(
                f"C = {c_mid:.3g}: its loss minimum lies outside the sizes tried; left out"
            )
            continue
        tokens_per_flop = np.median(d[at] * n[at] / c[at])  # C = k·N·D: 1/k
        n_opt = float(np.exp(log_opt))
        minimum = {
            "C": c_mid,
            "N_opt": n_opt,
            "D_opt": float(tokens_per_flop * c_mid / n_opt),
            "loss_min": float(np.polyval([curvature, slope, intercept], log_opt)),
            "n_points": len(used),
            "parabola": [float(curvature), float(slope), float(intercept)],  # loss(ln N)
        }
        if window is not None:
            minimum["sizes"] = [float(v) for v in np.unique(n[used])]
            notes += _at_an_end(c_mid, sizes, _lowest(np.log(n[at]), loss[at]))
        minima.append(minimum)
    return minima, notes


def windowed_minima(n, d, c, loss, window: float | None = WINDOW) -> list[dict]:
    """Each budget's minimum from its windowed parabola (as fit_loss_optimum finds it), for
    the budgets that have one inside their sizes, each with its label of compute_budgets(c)
    under "budget" (so callers match minima to budgets by label, not by a rounded C)."""
    n, d, c, loss = (np.asarray(v, float) for v in (n, d, c, loss))
    budget, minima = compute_budgets(c), []
    for label in np.unique(budget):  # _minima treats each budget alone: the same minima
        at = budget == label
        found = _minima(n[at], d[at], c[at], loss[at], budget[at], window)[0]
        minima += [m | {"budget": int(label)} for m in found]
    return minima


def _at_an_end(c_mid: float, sizes: np.ndarray, lowest: float) -> list[str]:
    """A note where a budget's lowest loss is at its smallest or largest size (ln N): its
    minimum, though inside the sizes, may lie beyond them."""
    if sizes[0] < lowest < sizes[-1]:
        return []
    end = "smallest" if lowest == sizes[0] else "largest"
    return [f"C = {c_mid:.3g}: its lowest loss is at the {end} size tried "
            f"(N = {np.exp(lowest):.3g}); its minimum may lie beyond the sizes; kept"]  # fmt: skip


def _lines(minima: list[dict]) -> np.ndarray | None:
    """(a, log N_opt at C = 1, b, log D_opt at C = 1): the least-squares lines through the
    minima in log-log; None with fewer than 2 minima."""
    if len(minima) < 2:
        return None
    log_c = np.log([m["C"] for m in minima])
    a, n0 = np.polyfit(log_c, np.log([m["N_opt"] for m in minima]), 1)
    b, d0 = np.polyfit(log_c, np.log([m["D_opt"] for m in minima]), 1)
    return np.array([a, n0, b, d0], dtype=float)


def fit_isoflop(
    n, d, c, loss, groups=None, n_boot: int = N_BOOT, *, seed: int = 0
) -> IsoFlopSolution:
    """IsoFLOP analysis of points (N, D, C, loss); the bootstrap resamples whole groups, and
    where that cannot work, the parabolas' residuals."""
    n, d, c, loss = (np.asarray(v, float) for v in (n, d, c, loss))
    budget = compute_budgets(c)
    minima, notes = _minima(n, d, c, loss, budget)
    lines = _lines(minima)
    if lines is None:
        raise ValueError(
            "an IsoFLOP fit needs 2 compute budgets, each with 3 sizes or more and its loss "
            f"minimum inside them; found {len(minima)}"
        )
    groups = np.arange(len(loss)) if groups is None else np.asarray(groups)
    fit = IsoFlopSolution(minima, lines, len(loss), len(np.unique(groups)), notes)
    if not n_boot:
        return fit
    labels, index = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(index == g) for g in range(len(labels))]
    rng = np.random.default_rng(seed)
    boots, supports = [], set()
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        found = _lines(_minima(n[idx], d[idx], c[idx], loss[idx], budget[idx])[0])
        if found is not None:
            boots.append(found)
            supports.add(tuple(np.unique(idx)))
    kind = TRIALS
    if len(supports) <= 1:  # every usable resample is the data itself: no spread to measure
        boots = _residual_lines(fit, n, d, c, loss, budget, n_boot=n_boot, rng=rng)
        kind = RESIDUALS
    if boots:
        fit.boot = np.array(boots)
        fit.n_boot = len(boots)
        for i, name in ((0, "a"), (2, "b")):
            low, high = (float(v) for v in np.percentile(fit.boot[:, i], [2.5, 97.5]))
            if high - low > 1e-9 * max(abs(low), abs(high), 1e-300):
                fit.intervals[name] = (low, high)
            else:
                fit.warnings.append(f"no interval for {name}: every resample gives the same value")
        fit.interval = kind if fit.intervals else None
    return fit


def _residual_lines(fit: IsoFlopSolution, n, d, c, loss, budget, *, n_boot: int, rng) -> list:
    """The lines of resamples that put each budget's parabola's residuals, resampled over all
    budgets, back onto its fitted losses; none (and said why) where the parabolas leave no
    residuals (3 parameters each: no more points than that)."""
    fitted = np.full(len(loss), np.nan)
    for label in np.unique(budget):
        at = budget == label
        if len(np.unique(n[at])) >= 3:
            fitted[at] = np.polyval(np.polyfit(np.log(n[at]), loss[at], 2), np.log(n[at]))
    used = ~np.isnan(fitted)
    points, params = int(used.sum()), 3 * len(np.unique(budget[used]))
    why = "no resample of the runs but the data itself keeps 3 sizes at 2 budgets"
    if points <= params:
        fit.warnings.append(
            f"no intervals: {why}, and {points} points for {params} parabola coefficients "
            "leave no residuals to resample; more sizes per budget would give one"
        )
        return []
    # rescaled for the coefficients fitted, as the residual bootstrap of a law (least squares
    # with a constant term leaves them centred)
    residuals = (loss[used] - fitted[used]) * np.sqrt(points / (points - params))
    boots = []
    for _ in range(n_boot):
        sample = loss.copy()
        sample[used] = fitted[used] + rng.choice(residuals, points)
        found = _lines(_minima(n, d, c, sample, budget)[0])
        if found is not None:
            boots.append(found)
    fit.warnings.append(
        f"{why}, so the intervals come from a residual bootstrap instead: the parabolas' "
        "residuals resampled, taken as independent (points of one run are not: they may be too "
        "narrow)"
    )
    return boots


@dataclass
class LossOptimumSolution:
    """The loss-at-optimum law: each budget's windowed minimum (`budgets`), L_opt(C) =
    E + k·C^(−γ) through them, and the lines of N_opt and D_opt; `boot` holds each resample of
    whole budgets."""

    budgets: list[dict]
    law: np.ndarray  # (E, k at C = c_ref, γ): L_opt(C) = E + k·(C / c_ref)^(−γ)
    c_ref: float  # the budgets' geometric mean: k at C = 1 is astronomically large
    lines: np.ndarray  # as IsoFlopSolution's
    window: float | None  # None: parabolas on every point (for comparison)
    n_points: int
    warnings: list[str] = field(default_factory=list)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    boot: np.ndarray | None = None  # (resamples, 7): each resample's law, then its lines

    def params(self) -> dict[str, float]:
        """E, k (at C = 1 FLOP), γ, a and b."""
        e, k, gamma = self.law
        return {"E": float(e), "k": float(k * self.c_ref**gamma), "gamma": float(gamma),
                "a": float(self.lines[0]), "b": float(self.lines[2])}  # fmt: skip

    def loss(self, flops) -> np.ndarray:
        """L_opt at `flops`."""
        e, k, gamma = self.law
        return e + k * (np.asarray(flops, float) / self.c_ref) ** -gamma

    def forecast(self, flops: float, level: float = 0.95) -> OptimumForecast:
        """L_opt, N_opt and D_opt at `flops` (beyond the grid, or inside it), each with the
        interval of the resamples of whole budgets (none without resamples or spread)."""
        rows = np.vstack([np.r_[self.law, self.lines]] + ([] if self.boot is None else [self.boot]))
        with np.errstate(over="ignore"):
            loss = rows[:, 0] + rows[:, 1] * (flops / self.c_ref) ** -rows[:, 2]
        n_opt, d_opt = _allocation(rows[:, 3:], flops)
        estimates = [_spread(v, level) for v in (loss, n_opt, d_opt)]
        said = () if estimates[0].ci else ("no interval: the resamples of budgets give no spread",)
        return OptimumForecast(flops=flops, method="loss-at-optimum", loss=estimates[0],
                               n_opt=estimates[1], d_opt=estimates[2],
                               interval=BUDGETS if self.boot is not None else None,
                               n_boot=0 if self.boot is None else len(self.boot),
                               warnings=tuple(self.warnings) + said)  # fmt: skip

    def result(self, warnings=()) -> LossOptimumFit:
        """The law as results.LossOptimumFit (its solution kept), with more `warnings`."""
        params = {n: Estimate(v, self.intervals.get(n)) for n, v in self.params().items()}
        budgets = tuple(
            Minimum(**m | {"parabola": tuple(m["parabola"]),
                           "sizes": tuple(m["sizes"]) if "sizes" in m else None})
            for m in self.budgets
        )  # fmt: skip
        return LossOptimumFit(
            n_points=self.n_points, params=params, budgets=budgets,
            window=window_text(self.window), interval=BUDGETS if self.intervals else None,
            n_boot=0 if self.boot is None else len(self.boot),
            warnings=tuple(self.warnings) + tuple(warnings), solution=self,
        )  # fmt: skip


GAMMAS = np.geomspace(1e-3, 2.0, 240)  # L_opt's exponent searched; Chinchilla's is ≈ 0.15


def _profile(gammas: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each γ, (E, k) ≥ 0 minimising the relative squared error of E + k·x^(−γ) to y, and
    that error: a two-coefficient non-negative least squares, solved in closed form (the
    optimum is the free one where feasible, else the best with E = 0 or with k = 0)."""
    w = 1 / y  # relative residuals: the minima's losses differ, their noise scales with them
    a = np.broadcast_to(w, (len(gammas), len(y)))  # E's column
    b = w * x ** -gammas[:, None]  # k's column, (gammas, budgets)
    aa, ab, bb = (a * a).sum(1), (a * b).sum(1), (b * b).sum(1)
    ay, by = (a * w * y).sum(1), (b * w * y).sum(1)
    det = aa * bb - ab**2
    with np.errstate(divide="ignore", invalid="ignore"):
        free = np.stack([(bb * ay - ab * by) / det, (aa * by - ab * ay) / det], 1)
    candidates = [free, np.stack([0 * ay, by / bb], 1), np.stack([ay / aa, 0 * by], 1)]
    best, error = None, np.full(len(gammas), np.inf)
    for coef in candidates:
        feasible = np.isfinite(coef).all(1) & (coef >= 0).all(1)
        sse = ((w * y - coef[:, :1] * a - coef[:, 1:] * b) ** 2).sum(1)
        better = feasible & (sse < error)
        best = coef if best is None else np.where(better[:, None], coef, best)
        error = np.where(better, sse, error)
    return best, error


def _optimum_law(flops: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, bool]:
    """(E, k, γ) of L_opt = E + k·flops^(−γ) (flops scaled to about 1): the best γ of a grid,
    refined between its neighbours; and whether γ sits at an end of the grid."""
    _, error = _profile(GAMMAS, flops, loss)
    i = int(np.argmin(error))
    low, high = GAMMAS[max(i - 1, 0)], GAMMAS[min(i + 1, len(GAMMAS) - 1)]
    found = minimize_scalar(
        lambda g: _profile(np.array([g]), flops, loss)[1][0],
        bounds=(low, high), method="bounded", options={"xatol": 1e-8},
    )  # fmt: skip
    gamma = float(found.x) if found.fun <= error[i] else float(GAMMAS[i])
    coef, _ = _profile(np.array([gamma]), flops, loss)
    return np.r_[coef[0], gamma], i in (0, len(GAMMAS) - 1)


def fit_loss_optimum(
    n, d, c, loss, *, window: float | None = WINDOW, n_boot: int = N_BOOT, seed: int = 0
) -> LossOptimumSolution:
    """The loss-at-optimum law of points (N, D, C, loss): windowed parabolas' minima, L_opt(C)
    through them and the lines of N_opt and D_opt; the bootstrap resamples whole budgets.
    `window` None: parabolas on every point, as fit_isoflop (to measure what the window does).

    Raises ValueError where fewer than 3 budgets have a minimum inside their sizes."""
    n, d, c, loss = (np.asarray(v, float) for v in (n, d, c, loss))
    minima, notes = _minima(n, d, c, loss, compute_budgets(c), window)
    if len(minima) < 3:
        raise ValueError(
            "the loss-at-optimum law (3 parameters) needs 3 compute budgets, each with 3 sizes "
            f"or more and its loss minimum inside them; found {len(minima)}"
        )
    flops = np.array([m["C"] for m in minima])
    lows = np.array([m["loss_min"] for m in minima])
    c_ref = float(np.exp(np.log(flops).mean()))
    law, at_end = _optimum_law(flops / c_ref, lows)
    if at_end:
        notes.append(f"L_opt's γ = {law[2]:.3g} is at an end of its search "
                     f"({GAMMAS[0]:g}-{GAMMAS[-1]:g}): the minima do not pin it down")  # fmt: skip
    if law[0] == 0:
        notes.append("L_opt's E = 0: the minima show no floor, so L_opt is a pure power law of "
                     "C and its forecast falls without bound")  # fmt: skip
    fit = LossOptimumSolution(minima, law, c_ref, _lines(minima), window, len(loss), notes)
    if n_boot:
        _resample_budgets(fit, flops / c_ref, lows, n_boot=n_boot, seed=seed)
    return fit


def _resample_budgets(fit: LossOptimumSolution, x, lows, *, n_boot: int, seed: int) -> None:
    """The bootstrap over whole budgets (isoFLOP curves, each keeping its minimum): each
    resample of 3 distinct budgets or more refits L_opt and the lines; the intervals of E, k,
    γ, a and b follow (none, and said, where the resamples give no spread)."""
    rng, count = np.random.default_rng(seed), len(fit.budgets)
    boots, supports = [], set()
    for _ in range(n_boot):
        pick = np.sort(rng.integers(0, count, count))
        if len(np.unique(pick)) < 3:  # fewer budgets than L_opt's parameters
            continue
        law, _ = _optimum_law(x[pick], lows[pick])
        boots.append(np.r_[law, _lines([fit.budgets[i] for i in pick])])
        supports.add(tuple(np.unique(pick)))
    if len(supports) <= 1:
        fit.warnings.append(f"no intervals: {count} budgets, and no resample of them but all "
                            "of them keeps the 3 that L_opt's parameters need")  # fmt: skip
        return
    fit.boot = np.array(boots)
    gammas = fit.boot[:, 2]
    named = {"E": fit.boot[:, 0], "k": fit.boot[:, 1] * fit.c_ref**gammas, "gamma": gammas,
             "a": fit.boot[:, 3], "b": fit.boot[:, 5]}  # fmt: skip
    for name, values in named.items():
        low, high = (float(v) for v in np.percentile(values, [2.5, 97.5]))
        if high > low:
            fit.intervals[name] = (low, high)
