"""The IsoFLOP analysis (Hoffmann et al. 2022, "approach 2"): per compute budget, a parabola of
loss in log N gives the loss-optimal size N_opt(C); least-squares lines through those minima in
log-log give N_opt ∝ C^a and D_opt ∝ C^b.

Its intervals come from the bootstrap as a law's do (analysis/laws.py): resamples draw whole
runs, and where no resample of the runs but the data itself can be fitted, the parabolas'
residuals are resampled instead, said as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis.laws import N_BOOT, compute_budgets
from analysis.results import RESIDUALS, TRIALS, Estimate, IsoFlopFit, Minimum


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
        with np.errstate(over="ignore"):  # a resample's steep line: inf, not an error
            n_opt = np.exp(lines[:, 1] + lines[:, 0] * np.log(flops))
            d_opt = np.exp(lines[:, 3] + lines[:, 2] * np.log(flops))
        out, tail = [], 100 * (1 - level) / 2
        for values in (n_opt, d_opt):
            ci = None
            if len(values) > 1:
                low, high = (float(v) for v in np.percentile(values[1:], [tail, 100 - tail]))
                ci = (low, high) if high > low else None
            out.append(Estimate(float(values[0]), ci))
        return out[0], out[1]

    def result(self, warnings=()) -> IsoFlopFit:
        """The analysis as results.IsoFlopFit (its solution kept), with more `warnings`."""
        a, b = (Estimate(getattr(self, n), self.intervals.get(n)) for n in ("a", "b"))
        budgets = tuple(Minimum(**m | {"parabola": tuple(m["parabola"])}) for m in self.budgets)
        said = tuple(self.warnings) + tuple(warnings)
        return IsoFlopFit(n_points=self.n_points, n_groups=self.n_groups, a=a, b=b,
                          budgets=budgets, interval=self.interval, n_boot=self.n_boot,
                          warnings=said, solution=self)  # fmt: skip


def _minima(n, d, c, loss, budget) -> tuple[list[dict], list[str]]:
    """Each budget's parabola and its minimum, where it has 3 sizes or more; a note for each
    budget whose minimum lies outside its sizes."""
    minima, notes = [], []
    for label in np.unique(budget):
        at = budget == label
        log_n = np.log(n[at])
        c_mid = float(np.exp(np.mean(np.log(c[at]))))
        if len(np.unique(log_n)) < 3:
            continue
        curvature, slope, intercept = np.polyfit(log_n, loss[at], 2)
        log_opt = -slope / (2 * curvature) if curvature > 0 else np.nan
        if not (log_n.min() <= log_opt <= log_n.max()):
            notes.append(
                f"C = {c_mid:.3g}: its loss minimum lies outside the sizes tried; left out"
            )
            continue
        tokens_per_flop = np.median(d[at] * n[at] / c[at])  # C = k·N·D: 1/k
        n_opt = float(np.exp(log_opt))
        minima.append(
            {
                "C": c_mid,
                "N_opt": n_opt,
                "D_opt": float(tokens_per_flop * c_mid / n_opt),
                "loss_min": float(np.polyval([curvature, slope, intercept], log_opt)),
                "n_points": int(at.sum()),
                "parabola": [float(curvature), float(slope), float(intercept)],  # loss(ln N)
            }
        )
    return minima, notes


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
