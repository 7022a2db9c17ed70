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

Where the points say their unique tokens (`unique`) and any point repeats its data (D > U),
approach 3 fits the data-constrained law of Muennighoff et al. 2023 (analysis/dataconstrained.py)
in place of the plain L(N, D), named "approach 3 (data-constrained)". Its compute-optimal
forecast assumes fresh data at the target (`epochs` = 1, said in the output), where the law
discounts nothing: there the optimum is L(N, D)'s of the fitted E, A, B, α, β. In the backtest a
left-out budget's optimum is forecast at that budget's own repetition (its points' median D/U).

`forecast_model` forecasts one model's loss (N, D, optionally U) by approach 3 alone, with the
same interval and backtest; its JSON has the forecast's shape with n_opt and d_opt null (the
model is given, not compute-optimal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy.optimize import minimize_scalar

from analysis.dataconstrained import fit_data_constrained, predict_loss
from analysis.isoflop import WINDOW, fit_loss_optimum, windowed_minima
from analysis.laws import CHINCHILLA_ND, LawSolution, compute_budgets
from analysis.results import BUDGETS, Estimate, OptimumForecast, forecast_error, nulls
from analysis.varpro import Flops, allocate, fit_varpro, flop_count, tokens_at

APPROACH_3 = "approach 3"
DATA_CONSTRAINED = "approach 3 (data-constrained)"  # approach 3 where points repeat their data
REPEATS = 1e-9  # D above U by more than this relative part: the point repeats its data
REPEATED = ("points repeat their data (D > U): approach 3 fits the data-constrained law "
            "(Muennighoff et al. 2023)")  # fmt: skip
NO_BACKTEST = ("no backtest: too few budgets to leave one out and refit; the forecast is shown "
               "without one")  # fmt: skip
LOSS_AT_OPTIMUM = "loss-at-optimum"
METHODS = (APPROACH_3, LOSS_AT_OPTIMUM)
RULE = ("the method with the smaller mean absolute backtest error over the budgets both "
        "forecast (the largest such budget's error breaking a tie)")  # fmt: skip
TIE = 1e-12  # mean absolute errors closer than this are a tie


@dataclass(frozen=True)
class Points:
    """The points of a study or CSV: N, D, C and loss (and U, the unique tokens, where known),
    each budget labelled, and the FLOPs per parameter per token they count (k of C = k·N·D; 6
    where C was computed as 6ND)."""

    n: np.ndarray
    d: np.ndarray
    c: np.ndarray
    loss: np.ndarray
    u: np.ndarray | None = None  # None: every point saw fresh data

    @classmethod
    def of(cls, n, d, c, loss, unique=None) -> Points:
        """The points as float arrays, checked: one value of each per point, all positive, and
        no more unique tokens than tokens."""
        given = (n, d, c, loss) if unique is None else (n, d, c, loss, unique)
        arrays = [np.asarray(v, float) for v in given]
        names = "N, D, C and loss" if unique is None else "N, D, C, loss and U"
        if len({len(a) for a in arrays}) != 1:
            raise ValueError(f"{names} must have one value per point")
        if any(np.any(~(a > 0)) for a in arrays):
            raise ValueError(f"{names} must be positive numbers")
        if unique is not None and np.any(arrays[4] > arrays[1] * (1 + REPEATS)):
            raise ValueError("a point has more unique tokens than tokens (U > D): U counts the "
                             "distinct tokens seen, at most D")  # fmt: skip
        return cls(*arrays)

    @property
    def repeats(self) -> bool:
        """Whether any point repeats its data (D > U)."""
        return self.u is not None and bool(np.any(self.d > self.u * (1 + REPEATS)))

    def epochs(self, label: int) -> float:
        """The passes over its data of budget `label`'s points (their median D/U; 1 without U)."""
        at = self.budget == label
        return 1.0 if self.u is None else float(np.median(self.d[at] / self.u[at]))

    @property
    def budget(self) -> np.ndarray:
        return compute_budgets(self.c)

    @cached_property
    def flops(self) -> Flops:
        """Their FLOP count (`flop_count`, fitted once): k of C = k·N·D, or FLOPs per token
        of N."""
        return flop_count(self.n, self.d, self.c)

    def without(self, label: int) -> Points:
        """The points of every budget but `label`."""
        keep = self.budget != label
        u = None if self.u is None else self.u[keep]
        return Points(self.n[keep], self.d[keep], self.c[keep], self.loss[keep], u)


@dataclass(frozen=True)
class Approach3Fit:
    """Approach 3's fitted law: L(N, D) by variable projection, or, where points repeat their
    data, the data-constrained law; the compute-optimal loss and a model's loss under either,
    of its own parameters or of a resample's (`resamples`, whole budgets)."""

    solution: LawSolution
    flops: Flops  # k of C = k·N·D, or FLOPs per token of N
    constrained: bool

    @property
    def method(self) -> str:
        return DATA_CONSTRAINED if self.constrained else APPROACH_3

    def resamples(self) -> list[dict[str, float]]:
        """Each bootstrap resample's parameters (none without a bootstrap)."""
        boot, names = self.solution.boot, self.solution.law.names
        return [] if boot is None else [dict(zip(names, b, strict=True)) for b in boot]

    def optimum(self, compute: float, params=None, epochs: float = 1.0) -> dict[str, float]:
        """The compute-optimal N, D and loss at `compute` FLOPs, the data passed `epochs` times
        (1: fresh data, where the data-constrained law is L(N, D) at L(N, D)'s optimum: N is
        then exactly what its data support, and elsewhere the law's loss is higher)."""
        params = self.solution.params if params is None else params
        n_opt, d_opt = allocate(params, compute, self.flops)
        if not self.constrained or epochs <= 1:
            return {"N_opt": n_opt, "D_opt": d_opt,
                    "loss": float(CHINCHILLA_ND.predict(params, N=n_opt, D=d_opt))}  # fmt: skip

        def loss(log_n: float) -> float:
            d = tokens_at(compute, np.exp(log_n), self.flops)
            return float(predict_loss(params, np.exp(log_n), d, d / epochs))

        # repetition moves the optimum towards larger models, well within 10× of L(N, D)'s
        centre = np.log(n_opt)
        res = minimize_scalar(loss, bounds=(centre - 2.3, centre + 4.6), method="bounded",
                              options={"xatol": 1e-10})  # fmt: skip
        n = float(np.exp(res.x))
        return {"N_opt": n, "D_opt": tokens_at(compute, n, self.flops), "loss": float(res.fun)}

    def loss_at(self, n: float, d: float, u: float | None = None, params=None) -> float:
        """The loss of a model of `n` parameters trained on `d` tokens, `u` of them unique
        (None: fresh data)."""
        params = self.solution.params if params is None else params
        if self.constrained:
            return float(predict_loss(params, n, d, d if u is None else u))
        return float(CHINCHILLA_ND.predict(params, N=n, D=d))

    def loss_estimate(self, n: float, d: float, u: float | None = None) -> Estimate:
        """`loss_at` with the 95% interval of the resamples' losses (none without them)."""
        return _interval(self.loss_at(n, d, u), [self.loss_at(n, d, u, params=p)
                                                 for p in self.resamples()])  # fmt: skip


def fit_approach_3(points: Points, *, n_boot: int = 0, seed: int = 0) -> Approach3Fit:
    """Approach 3 on `points`: the data-constrained law where any point repeats its data, else
    L(N, D) by variable projection; the bootstrap resamples whole budgets. ValueError where
    the law cannot be fitted."""
    if points.repeats:
        solution = fit_data_constrained(points.loss, points.budget, n_boot, seed=seed,
                                        N=points.n, D=points.d, U=points.u)  # fmt: skip
        return Approach3Fit(solution, points.flops, True)
    fit = fit_varpro(points.loss, N=points.n, D=points.d, groups=points.budget, n_boot=n_boot,
                     seed=seed, flops=points.flops)  # fmt: skip
    return Approach3Fit(fit.solution, points.flops, False)


def _interval(best: float, values: list[float], level: float = 0.95) -> Estimate:
    """`best` with the `level` percentile interval of the resamples' `values` (None without
    resamples or spread)."""
    if not values:
        return Estimate(best, None)
    tail = 100 * (1 - level) / 2
    low, high = (float(v) for v in np.percentile(values, [tail, 100 - tail]))
    return Estimate(best, (low, high) if high > low else None)


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
        return None if self.forecast is None else forecast_error(self.forecast, self.observed)

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
    minima = {m["budget"]: m["loss_min"] for m in windowed_minima(
        points.n, points.d, points.c, points.loss, window)}  # fmt: skip
    out = {}
    for label in np.unique(budget):
        at = budget == label
        c_mid = float(np.exp(np.mean(np.log(points.c[at]))))
        low = minima.get(int(label))
        out[int(label)] = ((c_mid, low, "windowed parabola") if low is not None
                           else (c_mid, float(points.loss[at].min()), "lowest loss"))  # fmt: skip
    return out


def _refit(points: Points, method: str, window: float) -> object:
    """The method fitted without resamples (an Approach3Fit or LossOptimumSolution); ValueError
    where it cannot be."""
    if method != LOSS_AT_OPTIMUM:
        if len(np.unique(points.budget)) < 2:
            raise ValueError("L(N, D) needs 2 compute budgets to separate N from D; "
                             f"{len(np.unique(points.budget))} left")  # fmt: skip
        return fit_approach_3(points)
    return fit_loss_optimum(points.n, points.d, points.c, points.loss, window=window, n_boot=0)


def _optimum_loss(fit, method: str, flops: float, epochs: float = 1.0) -> float:
    """The fitted method's optimum loss at `flops` (approach 3's with the data passed `epochs`
    times)."""
    if method == LOSS_AT_OPTIMUM:
        return float(fit.loss(flops))
    return fit.optimum(flops, epochs=epochs)["loss"]


def backtest(
    n, d, c, loss, *, target_c: float | None = None, window: float = WINDOW, unique=None,
    model: tuple[float, float, float | None] | None = None, epochs: float = 1.0,
) -> Backtest:  # fmt: skip
    """Leave each budget out in turn (the largest first), refit each method on the others and
    forecast the left-out budget's optimum loss (and, with `target_c`, the target's, its data
    passed `epochs` times); a method that cannot be refitted without a budget says why in its
    row. `unique`: each point's unique tokens (approach 3 is data-constrained where a point
    repeats its data). `model` (N, D, U or None): approach 3 alone, the target's forecast that
    model's loss."""
    points = Points.of(n, d, c, loss, unique)
    optima = observed_optima(points, window)
    approach_3 = DATA_CONSTRAINED if points.repeats else APPROACH_3
    methods = (approach_3,) if model is not None else (approach_3, LOSS_AT_OPTIMUM)
    rows = []
    for label, (c_mid, observed, source) in sorted(optima.items(), key=lambda kv: -kv[1][0]):
        rest = points.without(label)
        for method in methods:
            try:
                fit = _refit(rest, method, window)
            except ValueError as e:
                rows.append(BacktestRow(c_mid, method, observed, source, why=str(e)))
                continue
            if model is not None:
                at_target = fit.loss_at(*model)
            else:
                at_target = None if target_c is None else _optimum_loss(fit, method, target_c,
                                                                        epochs)  # fmt: skip
            left_out = _optimum_loss(fit, method, c_mid, points.epochs(label))
            rows.append(BacktestRow(c_mid, method, observed, source, left_out, at_target))
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


def _approach_3(
    points: Points, target_c: float, n_boot: int, seed: int, epochs: float = 1.0
) -> tuple[OptimumForecast, Approach3Fit]:
    """Approach 3's forecast at `target_c`, its intervals from resamples of whole budgets, and
    the fit it came from."""
    fit = fit_approach_3(points, n_boot=n_boot, seed=seed)
    best = fit.optimum(target_c, epochs=epochs)
    rows = [fit.optimum(target_c, p, epochs) for p in fit.resamples()]
    estimates = [_interval(best[k], [r[k] for r in rows]) for k in ("loss", "N_opt", "D_opt")]
    said = (data_text(epochs),) if fit.constrained else ()
    return OptimumForecast(flops=target_c, method=fit.method, loss=estimates[0],
                           n_opt=estimates[1], d_opt=estimates[2],
                           interval=BUDGETS if estimates[0].ci else None, n_boot=len(rows),
                           warnings=tuple(fit.solution.warnings) + said), fit  # fmt: skip


def data_text(epochs: float) -> str:
    """What a data-constrained forecast assumes of the target's data, in words."""
    if epochs <= 1:
        return "the forecast assumes fresh data at the target (one pass over its tokens)"
    return f"the forecast assumes the target passes over its data {epochs:g} times"


@dataclass(frozen=True)
class Forecast:
    """Both methods' forecasts at a target budget, the backtest, and the method it picked."""

    target: float
    forecasts: dict[str, OptimumForecast]  # the methods that could be fitted
    backtest: Backtest
    method: str
    reason: str
    warnings: tuple[str, ...] = field(default_factory=tuple)
    fits: dict = field(default_factory=dict, compare=False, repr=False)  # per method: its fit

    @property
    def chosen(self) -> OptimumForecast:
        return self.forecasts[self.method]

    def text(self) -> str:
        """One line: "forecast 2.412 [2.39, 2.44] by loss-at-optimum; backtest: largest budget
        −0.4%, leave-one-out spread ±0.3%"."""
        line = f"forecast {self.chosen.loss.text()} by {self.method} at C = {self.target:.3g}"
        return line + _backtest_text(self.backtest, self.method, self.chosen.loss.estimate)

    def summary(self, name: str) -> str:
        """The chosen forecast, both methods side by side with their backtests, and the rule."""
        lines = [f"{name}: {self.text()}", f"  chosen: {self.reason} ({RULE})"]
        for method, forecast in self.forecasts.items():
            lines.append(f"  {forecast.text()}")
            lines += _backtest_lines(self.backtest, method)
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


def _backtest_text(tested: Backtest, method: str, estimate: float) -> str:
    """The backtest's words, "; backtest: largest budget −0.4%, leave-one-out spread ±0.3%",
    or that there is none."""
    errors = tested.errors(method)
    if not errors:
        return "; no backtest (too few budgets to leave one out)"
    spread = tested.spread(method, estimate)
    line = f"; backtest: largest budget {_percent(errors[max(errors)])}"
    return line + ("" if spread is None else f", leave-one-out spread ±{spread:.1%}")


def _backtest_lines(tested: Backtest, method: str) -> list[str]:
    """The method's backtest, a line per left-out budget."""
    lines = []
    for row in (r for r in tested.rows if r.method == method):
        said = (f"{_percent(row.error)} (forecast {row.forecast:.4g}, observed "
                f"{row.observed:.4g} from its {row.observed_from})" if row.why is None
                else f"none: {row.why}")  # fmt: skip
        lines.append(f"    without C = {row.budget:.3g}: {said}")
    return lines


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
    n, d, c, loss, target_c: float, *, n_boot: int = 200, window: float = WINDOW, seed: int = 0,
    unique=None, epochs: float = 1.0,
) -> Forecast:  # fmt: skip
    """Both methods' forecasts of the compute-optimal loss, N and D at `target_c` FLOPs (the
    intervals resample whole budgets), their backtests, and the method the backtest picks.
    `unique`: each point's unique tokens; where a point repeats its data, approach 3 is the
    data-constrained law, its forecast for the target's data passed `epochs` times (1: fresh).

    Raises ValueError where neither method can be fitted."""
    if not (np.isfinite(target_c) and target_c > 0):
        raise ValueError(f"the target budget must be a positive number of FLOPs, not {target_c}")
    points = Points.of(n, d, c, loss, unique)
    forecasts, fits, notes = {}, {}, []
    approach_3 = DATA_CONSTRAINED if points.repeats else APPROACH_3
    if points.repeats:
        notes.append(f"{REPEATED}; {data_text(epochs)}")
    for method in (approach_3, LOSS_AT_OPTIMUM):
        try:
            if method == approach_3:
                forecasts[method], fits[method] = _approach_3(points, target_c, n_boot, seed,
                                                              epochs)  # fmt: skip
            else:
                fit = fit_loss_optimum(points.n, points.d, points.c, points.loss,
                                       window=window, n_boot=n_boot, seed=seed)  # fmt: skip
                fits[method] = fit
                forecasts[method] = fit.forecast(target_c)
        except ValueError as e:
            notes.append(f"no {method} forecast: {e}")
    if not forecasts:
        raise ValueError("; ".join(notes))
    tested = backtest(n, d, c, loss, target_c=target_c, window=window, unique=unique,
                      epochs=epochs)  # fmt: skip
    method, reason = choose({m: tested.errors(m) for m in forecasts}, tuple(forecasts))
    if not tested.errors(method):
        notes.append(NO_BACKTEST)
    return Forecast(target_c, forecasts, tested, method, reason,
                    tuple(notes + _disagree(forecasts)), fits)  # fmt: skip


@dataclass(frozen=True)
class ModelForecast:
    """The loss of one given model (N parameters, D tokens, U of them unique) by approach 3,
    its interval from resamples of whole budgets, and approach 3's backtest (each budget's
    optimum forecast without it, and how far this model's forecast moves)."""

    n: float
    d: float
    u: float | None  # None: fresh data
    method: str
    loss: Estimate
    n_boot: int
    backtest: Backtest
    warnings: tuple[str, ...] = ()

    def text(self) -> str:
        """One line: "forecast 2.412 [2.39, 2.44] by approach 3 at N = 7e+10, D = 1.4e+12;
        backtest: largest budget −0.4%, leave-one-out spread ±0.3%"."""
        at = f"N = {self.n:.3g}, D = {self.d:.3g}"
        at += "" if self.u is None else f", U = {self.u:.3g}"
        line = f"forecast {self.loss.text()} by {self.method} at {at}"
        return line + _backtest_text(self.backtest, self.method, self.loss.estimate)

    def summary(self, name: str) -> str:
        """The forecast, what its interval resampled, and the backtest a line per budget."""
        said = (f"95% interval: {BUDGETS} of {self.n_boot}" if self.loss.ci
                else "no interval")  # fmt: skip
        lines = [f"{name}: {self.text()}", f"  ({said}; the backtest forecasts each left-out "
                 "budget's optimum loss)"]  # fmt: skip
        return "\n".join(lines + _backtest_lines(self.backtest, self.method))

    def to_json(self) -> dict:
        """{"forecast": {"target": {"N", "D"}, "method", "loss", "ci", "n_opt": null, "d_opt":
        null, "backtest", "spread", ...}}: n_opt and d_opt are null, the model being given."""
        target = {"N": self.n, "D": self.d} | ({} if self.u is None else {"U": self.u})
        return {"forecast": nulls({
            "target": target, "method": self.method, "loss": self.loss.estimate,
            "ci": list(self.loss.ci) if self.loss.ci else None, "n_opt": None, "d_opt": None,
            "backtest": [r.to_json() for r in self.backtest.rows],
            "spread": self.backtest.spread(self.method, self.loss.estimate),
            "interval": BUDGETS if self.loss.ci else None, "n_boot": self.n_boot,
            "warnings": list(self.warnings)})}  # fmt: skip


def forecast_model(
    n, d, c, loss, model: tuple[float, float], *, unique=None, target_unique: float | None = None,
    n_boot: int = 200, window: float = WINDOW, seed: int = 0,
) -> ModelForecast:  # fmt: skip
    """The loss of the model `model` (N, D) by approach 3 (data-constrained where a point
    repeats its data; the model on `target_unique` unique tokens, None: fresh data), with its
    interval from resamples of whole budgets and approach 3's backtest.

    Raises ValueError where approach 3 cannot be fitted."""
    at_n, at_d = (float(v) for v in model)
    if not (np.isfinite([at_n, at_d]).all() and at_n > 0 and at_d > 0):
        raise ValueError(f"the target model needs a positive N and D, not {model}")
    points = Points.of(n, d, c, loss, unique)
    fit = fit_approach_3(points, n_boot=n_boot, seed=seed)
    target = (at_n, at_d, target_unique)
    estimate = fit.loss_estimate(*target)
    tested = backtest(n, d, c, loss, window=window, unique=unique, model=target)
    notes = list(fit.solution.warnings)
    if fit.constrained:
        data = "fresh data" if target_unique is None else f"U = {target_unique:.3g} unique tokens"
        notes.append(f"{REPEATED}; the model is forecast on {data}")
    elif target_unique is not None:
        notes.append("the target's U is not used: no point repeats its data, so approach 3 is "
                     "the plain L(N, D)")  # fmt: skip
    if not tested.errors(fit.method):
        notes.append(NO_BACKTEST)
    return ModelForecast(at_n, at_d, target_unique, fit.method, estimate,
                         len(fit.resamples()), tested, tuple(notes))  # fmt: skip
