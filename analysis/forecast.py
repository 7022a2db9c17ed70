"""A forecast of the compute-optimal loss that says how far to trust it: both methods' forecasts
(approach 3, the full L(N, D) by variable projection, and the loss-at-optimum law), each method's
backtest, and the method its backtest picks.

The backtest leaves each compute budget out in turn (the largest first), refits each method on
the others, forecasts the left-out budget's optimum loss, and compares it with the optimum that
budget shows: the minimum of its windowed parabola, as fit_loss_optimum finds it, or, where the
budget has no such minimum (fewer than 3 sizes, or a minimum outside them), its lowest loss
(said in each row). Its errors are relative: forecast / observed − 1.

The rule that picks the method (`choose`): on the budgets that both methods forecast, the smaller
mean absolute error wins; the largest such budget's absolute error breaks a tie. A method with no
backtest error cannot win over one with; where neither has one, approach 3 (which needs the
fewest budgets) is chosen, and said. The leave-one-out spread is how far the target's forecast
moves, at most, when one budget is left out (as the Open Athena replication measures it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis.isoflop import WINDOW, fit_loss_optimum, windowed_minima
from analysis.laws import compute_budgets
from analysis.results import BUDGETS, Estimate, OptimumForecast, nulls
from analysis.varpro import fit_varpro

APPROACH_3 = "approach 3"
LOSS_AT_OPTIMUM = "loss-at-optimum"
METHODS = (APPROACH_3, LOSS_AT_OPTIMUM)
RULE = ("the method with the smaller mean absolute backtest error over the budgets both "
        "forecast (the largest such budget's error breaking a tie)")  # fmt: skip
TIE = 1e-12  # mean absolute errors closer than this are a tie


@dataclass(frozen=True)
class Points:
    """The points of a study or CSV: N, D, C and loss, each budget labelled, and the FLOPs per
    parameter per token they count (k of C = k·N·D; 6 where C was computed as 6ND)."""

    n: np.ndarray
    d: np.ndarray
    c: np.ndarray
    loss: np.ndarray

    @classmethod
    def of(cls, n, d, c, loss) -> Points:
        """The points as float arrays, checked: one value of each per point, all positive."""
        arrays = [np.asarray(v, float) for v in (n, d, c, loss)]
        if len({len(a) for a in arrays}) != 1:
            raise ValueError("N, D, C and loss must have one value per point")
        if any(np.any(~(a > 0)) for a in arrays):
            raise ValueError("N, D, C and loss must be positive numbers")
        return cls(*arrays)

    @property
    def budget(self) -> np.ndarray:
        return compute_budgets(self.c)

    @property
    def flops(self) -> float:
        return float(np.median(self.c / (self.n * self.d)))

    def without(self, label: int) -> Points:
        """The points of every budget but `label`."""
        keep = self.budget != label
        return Points(self.n[keep], self.d[keep], self.c[keep], self.loss[keep])


@dataclass(frozen=True)
class BacktestRow:
    """One method's forecast of one left-out budget's optimum loss, or why there is none."""

    budget: float  # the left-out budget's C (its points' geometric mean)
    method: str
    observed: float  # that budget's optimum loss
    observed_from: str  # "windowed parabola" or "lowest loss"
    forecast: float | None = None
    target: float | None = None  # the refit's forecast at the target budget, where one is given
    why: str | None = None  # why the method could not be refitted without this budget

    @property
    def error(self) -> float | None:
        return None if self.forecast is None else self.forecast / self.observed - 1

    def to_json(self) -> dict:
        return nulls({"budget": self.budget, "method": self.method, "error": self.error,
                      "forecast": self.forecast, "observed": self.observed,
                      "observed_from": self.observed_from, "why": self.why})  # fmt: skip


@dataclass(frozen=True)
class Backtest:
    """Each budget left out in turn, the largest first: one row per budget and method."""

    rows: tuple[BacktestRow, ...]

    def errors(self, method: str) -> dict[float, float]:
        """Budget C -> the method's relative error (the budgets it could forecast)."""
        return {r.budget: r.error for r in self.rows if r.method == method and r.error is not None}

    def spread(self, method: str, forecast: float) -> float | None:
        """The largest relative move of the target's forecast when one budget is left out."""
        moved = [r.target / forecast - 1 for r in self.rows
                 if r.method == method and r.target is not None]  # fmt: skip
        return max(np.abs(moved)) if moved else None


def observed_optima(points: Points, window: float = WINDOW) -> dict[int, tuple[float, float, str]]:
    """Budget label -> (its C, its optimum loss, where that comes from): the windowed parabola's
    minimum, or the budget's lowest loss where it has none."""
    budget = points.budget
    minima = {round(np.log(m["C"]), 9): m["loss_min"] for m in windowed_minima(
        points.n, points.d, points.c, points.loss, window)}  # fmt: skip
    out = {}
    for label in np.unique(budget):
        at = budget == label
        c_mid = float(np.exp(np.mean(np.log(points.c[at]))))
        low = minima.get(round(np.log(c_mid), 9))
        out[int(label)] = ((c_mid, low, "windowed parabola") if low is not None
                           else (c_mid, float(points.loss[at].min()), "lowest loss"))  # fmt: skip
    return out


def _refit(points: Points, method: str, window: float) -> object:
    """The method fitted without resamples (a VarproFit or LossOptimumSolution); ValueError
    where it cannot be."""
    if method == APPROACH_3:
        if len(np.unique(points.budget)) < 2:
            raise ValueError("L(N, D) needs 2 compute budgets to separate N from D; "
                             f"{len(np.unique(points.budget))} left")  # fmt: skip
        return fit_varpro(points.loss, N=points.n, D=points.d, n_boot=0, flops=points.flops)
    return fit_loss_optimum(points.n, points.d, points.c, points.loss, window=window, n_boot=0)


def _optimum_loss(fit, method: str, flops: float) -> float:
    """The fitted method's optimum loss at `flops`."""
    return fit.optimum(flops)["loss"] if method == APPROACH_3 else float(fit.loss(flops))


def backtest(n, d, c, loss, *, target_c: float | None = None, window: float = WINDOW) -> Backtest:
    """Leave each budget out in turn (the largest first), refit each method on the others and
    forecast the left-out budget's optimum loss (and, with `target_c`, the target's); a method
    that cannot be refitted without a budget says why in its row."""
    points = Points.of(n, d, c, loss)
    optima = observed_optima(points, window)
    rows = []
    for label, (c_mid, observed, source) in sorted(optima.items(), key=lambda kv: -kv[1][0]):
        rest = points.without(label)
        for method in METHODS:
            try:
                fit = _refit(rest, method, window)
            except ValueError as e:
                rows.append(BacktestRow(c_mid, method, observed, source, why=str(e)))
                continue
            at_target = None if target_c is None else _optimum_loss(fit, method, target_c)
            rows.append(BacktestRow(c_mid, method, observed, source,
                                    _optimum_loss(fit, method, c_mid), at_target))  # fmt: skip
    return Backtest(tuple(rows))


def choose(errors: dict[str, dict[float, float]], methods=METHODS) -> tuple[str, str]:
    """The method the backtest picks among `methods` from each one's errors (budget C ->
    relative error), and why, by RULE."""
    have = [m for m in methods if errors.get(m)]
    if not have:
        return methods[0], f"no backtest: too few budgets to leave one out; {methods[0]} by default"
    if len(have) == 1:
        return have[0], f"only {have[0]} could be backtested"
    shared = sorted(set.intersection(*(set(errors[m]) for m in have)))
    if not shared:
        return have[0], f"the methods forecast no budget in common; {have[0]} by default"
    mean = {m: float(np.mean([abs(errors[m][b]) for b in shared])) for m in have}
    largest = {m: abs(errors[m][shared[-1]]) for m in have}
    first, second = sorted(have, key=lambda m: mean[m])
    if mean[second] - mean[first] < TIE and largest[second] < largest[first]:
        first, second = second, first
    return first, (f"mean absolute backtest error {mean[first]:.2%} against {second}'s "
                   f"{mean[second]:.2%} over {len(shared)} budgets")  # fmt: skip


def _approach_3(points: Points, target_c: float, n_boot: int, seed: int) -> OptimumForecast:
    """Approach 3's forecast at `target_c`, its intervals from resamples of whole budgets."""
    fit = fit_varpro(points.loss, N=points.n, D=points.d, groups=points.budget, n_boot=n_boot,
                     seed=seed, flops=points.flops)  # fmt: skip
    best, ci = fit.optimum(target_c), fit.optimum_interval(target_c)
    estimates = [Estimate(best[k], ci.get(k) if ci.get(k, (0, 0))[1] > ci.get(k, (0, 0))[0]
                          else None) for k in ("loss", "N_opt", "D_opt")]  # fmt: skip
    boot = fit.solution.boot
    count = 0 if boot is None else len(boot)
    return OptimumForecast(flops=target_c, method=APPROACH_3, loss=estimates[0],
                           n_opt=estimates[1], d_opt=estimates[2],
                           interval=BUDGETS if estimates[0].ci else None, n_boot=count,
                           warnings=tuple(fit.solution.warnings))  # fmt: skip


@dataclass(frozen=True)
class Forecast:
    """Both methods' forecasts at a target budget, the backtest, and the method it picked."""

    target: float
    forecasts: dict[str, OptimumForecast]  # the methods that could be fitted
    backtest: Backtest
    method: str
    reason: str
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def chosen(self) -> OptimumForecast:
        return self.forecasts[self.method]

    def text(self) -> str:
        """One line: "forecast 2.412 [2.39, 2.44] by loss-at-optimum; backtest: largest budget
        −0.4%, leave-one-out spread ±0.3%"."""
        line = f"forecast {self.chosen.loss.text()} by {self.method} at C = {self.target:.3g}"
        errors = self.backtest.errors(self.method)
        if not errors:
            return line + "; no backtest (too few budgets to leave one out)"
        spread = self.backtest.spread(self.method, self.chosen.loss.estimate)
        line += f"; backtest: largest budget {_percent(errors[max(errors)])}"
        return line + ("" if spread is None else f", leave-one-out spread ±{spread:.1%}")

    def summary(self, name: str) -> str:
        """The chosen forecast, both methods side by side with their backtests, and the rule."""
        lines = [f"{name}: {self.text()}", f"  chosen: {self.reason} ({RULE})"]
        for method, forecast in self.forecasts.items():
            lines.append(f"  {forecast.text()}")
            for row in (r for r in self.backtest.rows if r.method == method):
                said = (f"{_percent(row.error)} (forecast {row.forecast:.4g}, observed "
                        f"{row.observed:.4g} from its {row.observed_from})" if row.why is None
                        else f"none: {row.why}")  # fmt: skip
                lines.append(f"    without C = {row.budget:.3g}: {said}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        """{"forecast": {"target", "method", "loss", "ci", "n_opt", "d_opt", "backtest", ...}}."""
        chosen = self.chosen.to_json()
        entry = {k: chosen.get(k) for k in ("target", "method", "loss", "ci", "n_opt", "d_opt")}
        entry |= {"backtest": [r.to_json() for r in self.backtest.rows], "rule": RULE,
                  "reason": self.reason,
                  "methods": {m: f.to_json() for m, f in self.forecasts.items()},
                  "warnings": list(self.warnings)}  # fmt: skip
        return {"forecast": nulls(entry)}


def _percent(error: float) -> str:
    return f"{error:+.1%}".replace("-", "−")


def _disagree(forecasts: dict[str, OptimumForecast]) -> list[str]:
    """A warning where both methods' loss intervals exist and do not overlap."""
    if len(forecasts) < 2:
        return []
    (m1, f1), (m2, f2) = forecasts.items()
    if f1.loss.ci is None or f2.loss.ci is None:
        return []
    if f1.loss.ci[1] < f2.loss.ci[0] or f2.loss.ci[1] < f1.loss.ci[0]:
        return [f"the methods disagree beyond their intervals: {m1} {f1.loss.text()}, "
                f"{m2} {f2.loss.text()}"]  # fmt: skip
    return []


def forecast(
    n, d, c, loss, target_c: float, *, n_boot: int = 200, window: float = WINDOW, seed: int = 0
) -> Forecast:
    """Both methods' forecasts of the compute-optimal loss, N and D at `target_c` FLOPs (the
    intervals resample whole budgets), their backtests, and the method the backtest picks.

    Raises ValueError where neither method can be fitted."""
    if not (np.isfinite(target_c) and target_c > 0):
        raise ValueError(f"the target budget must be a positive number of FLOPs, not {target_c}")
    points = Points.of(n, d, c, loss)
    forecasts, notes = {}, []
    for method in METHODS:
        try:
            forecasts[method] = (
                _approach_3(points, target_c, n_boot, seed) if method == APPROACH_3 else
                fit_loss_optimum(points.n, points.d, points.c, points.loss, window=window,
                                 n_boot=n_boot, seed=seed).forecast(target_c)
            )  # fmt: skip
        except ValueError as e:
            notes.append(f"no {method} forecast: {e}")
    if not forecasts:
        raise ValueError("; ".join(notes))
    tested = backtest(n, d, c, loss, target_c=target_c, window=window)
    method, reason = choose({m: tested.errors(m) for m in forecasts}, tuple(forecasts))
    if not tested.errors(method):
        notes.append("no backtest: too few budgets to leave one out and refit; the forecast "
                     "is shown without one")  # fmt: skip
    return Forecast(target_c, forecasts, tested, method, reason,
                    tuple(notes + _disagree(forecasts)))  # fmt: skip
