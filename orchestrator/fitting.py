"""Fitting a study: its laws and zero-shot trends from the store, stored back, and the report;
and `study fit` on a store or on a CSV of results."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from threadpoolctl import threadpool_limits

from orchestrator.rulesets import CONSTANTS, constants_of, lr_constants, recipe_line
from orchestrator.store import RunStore, StoreError


def one_blas_thread(fn):
    """Run `fn` with the BLAS (numpy's and scipy's OpenBLAS) on one thread. The fits' matrices
    are small; a BLAS that spreads them over cores that other work keeps busy spins waiting
    for its threads: `study fit` on 4 points took 135 s with both cores of a 2-core machine
    loaded, against 4 s on one thread (bench/fit_speed.py)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


@one_blas_thread
def fit_and_store(store: RunStore, n_boot: int):
    """Fit the laws and the zero-shot trends of a study, store them (replacing earlier fits),
    and return the report's view of the study."""
    from analysis.fits import fit_study
    from analysis.report import MAX_CURVE_POINTS, StudyView
    from analysis.results import StudyFits
    from analysis.tasklaw import study_task_fits
    from analysis.trends import study_trends

    trials, left_out = comparable_trials(store)
    evals = _grid_evals(store, trials)
    trends = study_trends(evals, n_boot=n_boot) if not evals.empty else {}
    points = _grid_task_points(store, trials)
    tasks = study_task_fits(points, n_boot) if not points.empty else {}
    fits = StudyFits(fit_study(trials, n_boot=n_boot), tasks, trends)
    store.save_fits(fits.rows())
    curves = store.metrics_frame(max_points=MAX_CURVE_POINTS)
    view = StudyView(store.name, trials, curves, fits, evals, data=store.data,
                     configs=trial_configs(store))  # fmt: skip
    view.outdated = left_out
    view.predictions = store.predictions_frame()
    view.next_study = store.study_spec.get("next_study")
    view.task_points = points
    return view


def trial_configs(store: RunStore) -> dict[str, dict]:
    """Trial id -> the stored configuration of each current trial (for the model cards)."""
    return {t.trial_id: t.config for t in store.current_trials()}


def fitting_line(store: RunStore, n_boot: int) -> str:
    """What the terminal says as the fits start: what is fitted, on how much."""
    trials, _ = comparable_trials(store)
    finished = trials[(trials.status == "finished") & ~trials.verifies]  # the laws' points
    archs = ", ".join(sorted(set(finished.architecture))) or "no architecture"
    return (
        f"fitting the scaling laws of {archs} on {len(finished)} finished trials "
        f"({n_boot:,} bootstrap resamples each), the zero-shot trends and the task-loss "
        "predictions, then writing the report"
    )


def write_partial_report(store: RunStore, path: str | Path, stopped: str = "") -> Path:
    """The report while trials train: what is finished and the curves so far, no laws fitted
    (nothing is stored); it says that it is partial and when it was written, and, once the run
    has `stopped` before its end, why (then the page no longer reloads itself)."""
    from analysis.report import MAX_CURVE_POINTS, StudyView, write_report
    from analysis.results import StudyFits

    trials, left_out = comparable_trials(store)
    curves = store.metrics_frame(max_points=MAX_CURVE_POINTS)
    view = StudyView(store.name, trials, curves, StudyFits({}), _grid_evals(store, trials),
                     data=store.data, outdated=left_out,
                     configs=trial_configs(store))  # fmt: skip
    finished = int((trials.status == "finished").sum())
    running = int((trials.status == "running").sum())
    view.partial = (
        f"{finished} of {len(trials)} trials finished, {running} running; the laws, trends "
        "and predictions are fitted when the run ends"
    )
    view.stopped, view.new_cards_only = stopped, True
    return write_report(path, [view])


def _grid_evals(store: RunStore, trials):
    """The final zero-shot results of the grid (those of trials verifying a prediction left
    out, as from every law) and the n-gram baseline."""
    evals = store.evals_frame()
    if evals.empty:
        return evals
    verifying = set(trials.trial_id[trials.verifies])
    return evals[~evals.trial_id.isin(verifying)].reset_index(drop=True)


def _grid_task_points(store: RunStore, trials):
    """The zero-shot points of the grid's trials (those verifying a prediction left out, as
    from every law)."""
    points = store.task_points()
    return points[points.run.isin(set(trials.trial_id[~trials.verifies]))].reset_index(drop=True)


def comparable_trials(store: RunStore):
    """The study's trials, those measured under other evaluation settings than the current ones
    shown `outdated` (their validation loss is not comparable with the others': no law is
    fitted to them and no figure draws them), and the ids of those. Column `verifies` marks
    the trials that verify a prediction: the laws are fitted on the grid without them."""
    trials = store.trials_frame()
    left_out = store.outdated()
    trials.loc[trials.trial_id.isin(left_out), "status"] = "outdated"
    trials["verifies"] = trials.hash.isin({p.trial_hash for p in store.predictions()})
    return trials, left_out


def fit_and_report(store: RunStore, path: str | Path, n_boot: int):
    """Fit, store, write the report and the model cards; return the report's view."""
    from analysis.report import write_report

    view = fit_and_store(store, n_boot)
    write_report(path, [view])
    return view


@one_blas_thread
def fit_csv(
    path: str | Path,
    law: str,
    columns: dict[str, str],
    *,
    filters: Sequence[str] = (),
    drop_highest_loss: int = 0,
    n_boot: int = 1000,
    group: str | None = None,
    compute: float | None = None,
    target: str | None = None,
):
    """Fit a law (n, nd, isoflop: a `results.Fit`; forecast: an `analysis.forecast.Forecast`
    at `target` "C=FLOPS", or a `ModelForecast` at "N=COUNT,D=COUNT"), the zero-shot trend
    (trend: a `results.TableTrend`) or the two-step prediction of accuracy (task,
    `results.TaskFits`; at `target`, "N=...,D=...", else the largest run held out) to a CSV;
    `results.json_of` gives the JSON.
    Raises TableError where the table cannot be fitted (for task: where no task can be)."""
    from analysis.fits import TableError, best_runs, fit_points, read_table
    from analysis.results import TableTrend
    from analysis.trends import values_trend, verdict

    if law == "lr":
        raise TableError(f"{path}: --law lr fits a study's learning-rate sweep from its store, "
                         "not a CSV")  # fmt: skip
    if target is not None and law not in ("task", "forecast", "nd"):
        raise TableError(f"--target is for --law task or nd (N=..,D=..) or forecast (C=.. or "
                         f"N=..,D=..), not {law}")  # fmt: skip
    at = _nd_point(target) if law == "nd" and target is not None else None  # before the fit
    wanted = _forecast_target(target) if law == "forecast" else None
    frame = read_table(path, law, columns, filters, drop_highest_loss, group)
    if law == "forecast":
        return _forecast_table(path, frame, wanted, n_boot)
    if law == "task":
        from analysis.tasklaw import fit_table, parse_target

        try:
            at = parse_target(target) if target else None
        except ValueError as e:
            raise TableError(str(e)) from None
        result = fit_table(frame.rename(columns={"group": "run"}), at, n_boot)
        failed = result.failed()
        if failed and len(failed) == len(result.tasks):
            task, error = next(iter(failed.items()))
            raise TableError(f"{path}: no task could be fitted ({task}: {error.error})")
        return result
    if law == "trend":
        name = columns.get("accuracy", "accuracy")
        t = values_trend(frame.N, frame.accuracy, frame.get("n_items"), n_boot=n_boot)
        return TableTrend(t, verdict(Path(path).name, {name: t}))
    # a run is a group's rows (or each row); in a sweep, each cell's best run stands for it
    runs = frame.assign(trial_id=frame["group"] if group else frame.index.astype(str))
    points, best, notes = best_runs(runs)
    unit = "trial_id" if best is not None else ("group" if group else None)
    try:
        result = fit_points(law, points, n_boot, unit, compute,
                            c_given=frame.attrs.get("c_given", False))  # fmt: skip
    except ValueError as e:
        raise TableError(f"{path}: {e}") from None
    if best is not None:
        result = replace(result, warnings=result.warnings + tuple(notes), envelope=tuple(best))
    return result if at is None else replace(result, target=_nd_target(result, at))


def _nd_point(target: str) -> dict[str, float]:
    """`--law nd --target N=..,D=..` as {"N", "D"}; TableError where malformed."""
    from analysis.fits import TableError
    from analysis.tasklaw import parse_target

    try:
        at = parse_target(target)
    except ValueError as e:
        raise TableError(str(e)) from None
    if "D" not in at:
        raise TableError(f"--target {target!r}: --law nd needs N=COUNT,D=COUNT")
    return at


def _nd_target(fit, at: dict[str, float]) -> dict:
    """That point's loss by L(N, D) and its 95% interval from the bootstrap's resamples (None
    without them)."""
    loss = float(fit.predict(N=at["N"], D=at["D"]))
    low, high = fit.band(N=at["N"], D=at["D"])
    ci = [float(low), float(high)] if fit.n_boot else None
    return {"N": at["N"], "D": at["D"], "loss": loss, "ci": ci}


FORECAST_TARGET = ("--law forecast needs --target C=FLOPS (the compute-optimal loss at that "
                   "budget) or N=COUNT,D=COUNT (that model's loss; U=COUNT: its unique tokens), "
                   "each a positive number")  # fmt: skip


def _forecast_target(target: str | None) -> dict[str, float]:
    """`--law forecast --target` as {"C"} or {"N", "D"} (and "U"); TableError where malformed."""
    from analysis.fits import TableError
    from analysis.tasklaw import UNITS

    if target is None:
        raise TableError(FORECAST_TARGET)
    at = {}
    for part in target.split(","):
        name, sep, value = part.partition("=")
        name, number = name.strip().upper(), value.strip().upper()
        if not sep or name not in ("C", "N", "D", "U") or name in at:
            raise TableError(f"{FORECAST_TARGET}, not {target!r}")
        try:
            scale = UNITS.get(number[-1:], 1.0)  # 7B, 2.8T as --law task reads them
            at[name] = float(number[:-1] if number[-1:] in UNITS else number) * scale
        except ValueError:
            raise TableError(f"{FORECAST_TARGET}, not {target!r}") from None
        if not 0 < at[name] < float("inf"):
            raise TableError(f"{FORECAST_TARGET}, not {target!r}")
    if "C" in at and len(at) > 1:
        raise TableError(f"--target {target!r}: give C=FLOPS (the compute-optimal model) or "
                         "N=COUNT,D=COUNT (a given model), not both")  # fmt: skip
    if "C" not in at and not {"N", "D"} <= set(at):
        raise TableError(f"{FORECAST_TARGET}, not {target!r}: N and D go together")
    return at


def _unique_tokens(path, frame):
    """The table's unique tokens per row (column U or unique_tokens), checked; None without."""
    from analysis.fits import TableError

    if "U" not in frame:
        return None
    bad = frame.U.isna() | ~(frame.U > 0) | (frame.U > frame.D * (1 + 1e-9))
    if bad.any():
        label = bad.idxmax()  # the first bad row; the header is line 1
        raise TableError(f"{path}, line {label + 2}: the unique tokens U must be a positive "
                         f"number, at most D = {frame.D[label]:.4g}; got "
                         f"{frame.U[label]}")  # fmt: skip
    return frame.U


def _forecast_table(path, frame, at: dict[str, float], n_boot: int):
    """`--law forecast`: at {"C"}, both methods' forecasts, their backtests and the method the
    backtest picks (an `analysis.forecast.Forecast`); at {"N", "D"}, that model's loss by
    approach 3 with its backtest (a `ModelForecast`). Approach 3 is the data-constrained law
    where the table's U (or unique_tokens) says a row repeats its data."""
    from analysis.fits import TableError
    from analysis.forecast import forecast, forecast_model

    unique = _unique_tokens(path, frame)
    points = (frame.N, frame.D, frame.C, frame.loss)
    try:
        if "C" in at:
            return forecast(*points, at["C"], n_boot=n_boot, unique=unique)
        return forecast_model(*points, (at["N"], at["D"]), unique=unique,
                              target_unique=at.get("U"), n_boot=n_boot)  # fmt: skip
    except ValueError as e:
        raise TableError(f"{path}: {e}") from None


@one_blas_thread
def fit_stored(
    store: RunStore,
    law: str,
    architecture: str | None = None,
    n_boot: int = 1000,
    target: str | None = None,
) -> dict:
    """Fit a law to a study's finished trials (or its zero-shot trends): one result per
    architecture (a `results.Fit`, `results.TaskFits` or `results.ArchitectureTrends`), under
    {"study", "law", "architectures"}; `results.json_of` gives the JSON."""
    from analysis.fits import fit_study
    from analysis.trends import study_trends

    trials, _ = comparable_trials(store)
    if architecture is not None and architecture not in set(trials.architecture):
        raise StoreError(
            f"study {store.name!r} has no {architecture!r} trials "
            f"(it has {', '.join(sorted(set(trials.architecture)))})"
        )
    if architecture is not None:
        trials = trials[trials.architecture == architecture]
    out = {}
    if law == "lr":
        sets = store.study_spec.get("recipe") or {"name": "fixed"}
        for arch in sorted(set(trials.architecture)):
            out[arch] = fit_lr(trials, arch, sets, n_boot, store.name)
    elif law == "task":
        from analysis.tasklaw import fit_table, parse_target

        try:
            at = parse_target(target) if target else None
        except ValueError as e:
            raise StoreError(str(e)) from None
        points = _grid_task_points(store, trials)
        if architecture is not None:
            points = points[points.architecture == architecture]
        for arch, rows in points.groupby("architecture", sort=True):
            out[str(arch)] = fit_table(rows, at, n_boot)
    elif law == "forecast":
        out = _forecast_store(store, trials, target, n_boot)
    elif law == "trend":
        evals = _grid_evals(store, trials)
        if architecture is not None and not evals.empty:
            evals = evals[evals.architecture == architecture]
        out |= study_trends(evals, n_boot) if not evals.empty else {}
    else:
        for arch, laws in fit_study(trials, n_boot=n_boot, laws=[law]).items():
            out[arch] = laws[law]
    return {"study": store.name, "law": law, "architectures": out}


def _forecast_store(store: RunStore, trials, target: str | None, n_boot: int) -> dict:
    """`--law forecast` on a store: each architecture's forecast at `target` ("C=FLOPS"; else
    at each budget of the study's `predict:`), as `--csv` makes it (`_forecast_table`), on the
    points its predictions are fitted to (the grid, without the trials that verify them)."""
    from analysis.fits import TableError
    from analysis.predict import grid_points
    from orchestrator.sizes import flops_text

    flops = (store.study_spec.get("predict") or {}).get("flops") or []
    targets = (
        {"": target}
        if target is not None
        else {f" at {flops_text(float(c))} FLOPs": f"C={c}" for c in sorted(map(float, flops))}
    )
    if not targets:
        raise StoreError(f"study {store.name!r} has no predict: flops; give --target C=FLOPS")
    out = {}
    for arch in sorted(set(trials.architecture)):
        points, _ = grid_points(trials, arch)
        if points.empty:
            raise StoreError(f"study {store.name!r}, {arch}: no finished trial to forecast from")
        for label, at in targets.items():
            name = arch if len(targets) == 1 else arch + label
            try:
                out[name] = _forecast_table(f"study {store.name!r}, {arch}", points,
                                            _forecast_target(at), n_boot)  # fmt: skip
            except TableError as e:
                raise StoreError(str(e)) from None
    return out


@dataclass(frozen=True)
class LrFit:
    """lr*(N) = a·N^b fitted to the best rates of a learning-rate sweep, and the `recipe:` line
    that trains the next study at exactly those rates."""

    a: object  # analysis.results.Estimate
    b: object
    envelope: tuple[dict, ...]  # the sweep's cells: N, D, best_lr, loss, at_edge
    recipe: dict  # the constants to paste, name included
    warnings: tuple[str, ...] = ()

    def summary(self, name: str) -> str:
        """The fit, its points and the lines to paste, for the terminal."""
        fitted = [row for row in self.envelope if not row["at_edge"]]
        sizes = len({row["N"] for row in fitted})
        constants = {k: v for k, v in self.recipe.items() if k != "name"}
        return (
            f"{name}: lr*(N) = a·N^b with a = {self.a.text()}, b = {self.b.text()} "
            f"(95% intervals, bootstrap over cells), from the best rates (each a parabola's "
            f"vertex in log lr) of {len(fitted)} "
            f"cells of {sizes} sizes\npaste into the next study file (these constants "
            f"reproduce the fitted rates):\n  {recipe_line(self.recipe['name'], constants)}"
        )

    def to_json(self) -> dict:
        """The fit as `study fit --law lr --json` prints it."""
        from analysis.results import nulls

        return {"law": "lr", "formula": "lr*(N) = a·N^b",
                "params": {"a": self.a.to_json(), "b": self.b.to_json()},
                "recipe": self.recipe, "envelope": nulls(list(self.envelope)),
                "warnings": list(self.warnings)}  # fmt: skip


def recipe_for_all(fits: dict[str, LrFit]) -> str:
    """The one `recipe:` line (and a heading) that trains every architecture of `fits` at its
    fitted rates: a constant the architectures share is one value, else one per architecture."""
    recipes = {arch: fit.recipe for arch, fit in fits.items()}
    name = next(iter(recipes.values()))["name"]
    constants = {}
    for key in dict.fromkeys(k for r in recipes.values() for k in r if k != "name"):
        values = {arch: r[key] for arch, r in recipes.items() if key in r}
        same = len(set(values.values())) == 1 and len(values) == len(recipes)
        constants[key] = next(iter(values.values())) if same else values
    return f"every architecture at its rates:\n  {recipe_line(name, constants)}"


def fit_lr(trials, architecture: str, recipe: dict, n_boot: int, study: str) -> LrFit:
    """Fit lr*(N) to an architecture's learning-rate sweep (its best-rate envelope, cells at an
    end of the sweep left out); the recipe to paste keeps the study's rule set where it is a
    rule of N (olmo, porian), else porian's. Raises StoreError without a sweep."""
    from analysis.fits import best_runs, fit_lr_power, law_points, vertex_rates

    frame = law_points(trials, architecture)
    points, best, notes = best_runs(frame)
    if best is None:
        raise StoreError(
            f"study {study!r} has no finished learning-rate sweep of {architecture}: no cell was "
            "trained at several rates (sweep them with train.lr: {sweep: [0.25, 0.5, 1, 2, 4]})"
        )
    # a best rate needs a rate tried on each side (where the others failed, it has none)
    tried = frame.groupby(["N", "D"]).lr.nunique()
    enough = [tried[(n, d)] >= 3 for n, d in zip(points.N, points.D, strict=True)]
    few = points[[not e for e in enough]]
    points = points[enough]
    notes += [f"{len(few)} cells left out: fewer than 3 of their rates finished: "
              + ", ".join(f"N={n:.3g} D={d:.3g}" for n, d in zip(few.N, few.D, strict=True))
              ] if len(few) else []  # fmt: skip
    try:
        fit = fit_lr_power(points.N, vertex_rates(frame, points), n_boot)
    except ValueError as e:
        raise StoreError(f"study {study!r}, {architecture}: {e} ({'; '.join(notes)})") from None
    name = recipe["name"] if "lr_ref" in CONSTANTS.get(recipe["name"], {}) else "porian"
    given = {}
    for key, value in recipe.items():  # a constant given per architecture: this one's
        value = value.get(architecture) if isinstance(value, dict) else value
        if key != "name" and value is not None:
            given[key] = value
    given = given if name == recipe["name"] else {}
    new = given | lr_constants(constants_of(name, given), fit["a"].estimate, fit["b"].estimate)
    return LrFit(fit["a"], fit["b"], tuple(best), {"name": name} | new, tuple(notes))
