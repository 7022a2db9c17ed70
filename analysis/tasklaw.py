"""Predicting zero-shot accuracy in two steps (Bhagia et al. 2024, the OLMo model ladder):

1. task loss against size and data on each run's final checkpoint,
   L(N, D) = E + A/N^α + B/D^β, fitted as the other laws are (Huber on log loss, many starts);
   L(N) = E + A/N^α where every run saw the same tokens;
2. accuracy against task loss on every checkpoint of every run, a sigmoid
   acc(L) = a / (1 + exp(−k (L − L0))) + b with k < 0 (accuracy falls as the loss grows),
   bounded to [chance, 1]: b ≥ chance and a + b ≤ 1;

chained: the accuracy at a target (N, D), with 95% intervals from resampling whole runs.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from analysis.laws import CHINCHILLA_ND, KAPLAN_N, N_BOOT, fit_law, refit_counts
from analysis.results import Estimate, NotFitted, Step1, Step2, TaskFit, TaskFits

SIGMOID = "acc(L) = a / (1 + exp(−k (L − L0))) + b"


def sigmoid(loss, a: float, b: float, k: float, l0: float) -> np.ndarray:
    """The step-2 curve: accuracy at task loss `loss`."""
    with np.errstate(over="ignore"):
        return a / (1.0 + np.exp(-k * (np.asarray(loss, float) - l0))) + b


def _natural(theta) -> dict[str, float]:
    """(b, s, k, L0) -> a, b, k, L0, with a = s·(1 − b): a + b ≤ 1 by construction."""
    b, s, k, l0 = theta
    return {"a": float(s * (1 - b)), "b": float(b), "k": float(k), "L0": float(l0)}


def fit_sigmoid(loss, acc, chance: float, start: dict | None = None) -> dict[str, float]:
    """Least squares of accuracy against task loss, bounded: b in [chance, 1], a + b ≤ 1,
    k ≤ 0; from a grid of starts (or from `start`, a fit to refine)."""
    loss, acc = np.asarray(loss, float), np.asarray(acc, float)
    low_l, high_l = float(loss.min()), float(loss.max())
    span = max(high_l - low_l, 1e-6)
    lower = [chance, 0.0, -50.0 / span, low_l - 3 * span]
    upper = [1.0, 1.0, 0.0, high_l + 3 * span]

    def residuals(theta):
        p = _natural(theta)
        return sigmoid(loss, p["a"], p["b"], p["k"], p["L0"]) - acc

    if start is not None:
        b = start["b"]
        starts = [[b, start["a"] / (1 - b) if b < 1 else 0.0, start["k"], start["L0"]]]
    else:
        starts = [
            [chance, s, -k / span, l0]
            for s in (0.3, 0.8)
            for k in (2.0, 8.0)
            for l0 in (low_l, (low_l + high_l) / 2, high_l)
        ]
    best = None
    for x0 in starts:
        x0 = np.clip(x0, lower, np.nextafter(np.array(upper), -np.inf))
        res = least_squares(residuals, x0, bounds=(lower, upper), method="trf")
        if best is None or res.cost < best.cost:
            best = res
    return _natural(best.x)


def refit_sigmoids(loss, acc, chance: float, start: dict, weights) -> list[dict[str, float]]:
    """`fit_sigmoid` again for each row of `weights` (how often each point is drawn in a
    resample), all at once from `start`: Levenberg-Marquardt on the weighted squares, each step
    kept inside the bounds."""
    loss, acc, weights = (np.asarray(v, float) for v in (loss, acc, weights))
    rows = len(weights)
    span = max(float(loss.max() - loss.min()), 1e-6)
    low = np.array([chance, 0.0, -50.0 / span, loss.min() - 3 * span])
    high = np.array([1.0, 1.0, 0.0, loss.max() + 3 * span])
    b = start["b"]
    theta = np.array([b, start["a"] / (1 - b) if b < 1 else 0.0, start["k"], start["L0"]])
    thetas = np.tile(np.clip(theta, low, high), (rows, 1))

    def residuals(t):
        b, s, k, l0 = (t[:, i, None] for i in range(4))
        with np.errstate(over="ignore"):
            sig = 1.0 / (1.0 + np.exp(-k * (loss - l0)))
        a = s * (1 - b)
        r = a * sig + b - acc
        slope = a * sig * (1 - sig)
        jac = np.stack([1 - s * sig, (1 - b) * sig, slope * (loss - l0),
                        -slope * k * np.ones_like(loss)], axis=-1)  # fmt: skip
        return r, jac

    r, jac = residuals(thetas)
    cost = (weights * r**2).sum(axis=1)
    damping = np.full(rows, 1e-3)
    active = np.ones(rows, bool)
    for _ in range(200):
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        w, ri, ji = weights[idx], r[idx], jac[idx]
        grad = np.einsum("sn,snp->sp", w * ri, ji)
        normal = np.einsum("sn,snp,snq->spq", w, ji, ji)
        scale = np.einsum("spp->sp", normal) + 1e-12
        lhs = normal + damping[idx, None, None] * scale[:, :, None] * np.eye(4)
        step = np.linalg.solve(lhs, -grad[..., None])[..., 0]
        trial = np.clip(thetas[idx] + step, low, high)
        r_new, jac_new = residuals(trial)
        cost_new = (w * r_new**2).sum(axis=1)
        better = cost_new < cost[idx]
        gain = (cost[idx] - cost_new) / np.maximum(cost[idx], 1e-300)
        took = idx[better]
        thetas[took], r[took], jac[took], cost[took] = (
            trial[better], r_new[better], jac_new[better], cost_new[better],
        )  # fmt: skip
        damping[took] = np.maximum(damping[took] * 0.3, 1e-12)
        damping[idx[~better]] *= 10.0
        done = (better & (gain < 1e-12)) | (damping[idx] > 1e10)
        active[idx[done]] = False
    return [_natural(t) for t in thetas]


def _step1(final: pd.DataFrame, n_boot: int = 0):
    """Task loss against (N, D) on the final checkpoints, or against N when D is one value."""
    law = CHINCHILLA_ND if final.D.nunique() >= 2 else KAPLAN_N
    variables = {"N": final.N} | ({"D": final.D} if law is CHINCHILLA_ND else {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_law(law, final.task_loss, None, n_boot, **variables)
    fit.warnings += [str(w.message) for w in caught]
    return fit


def _runs(points: pd.DataFrame) -> pd.DataFrame:
    """Each run's final checkpoint (its largest D)."""
    return points.loc[points.groupby("run").D.idxmax()]


# How Bhagia et al.'s released code treats the checkpoints (allenai/OLMo-ladder), nearly: step
# 1 takes each run's task loss as a mean over its last checkpoints (theirs: the last 5 of dense
# ones; ours: those in the last LAST of its tokens, so that sparse checkpoints are not averaged
# over half a run), step 2 drops each run's first SKIP of checkpoints and smooths loss and
# accuracy over WINDOW of them (fewer where a run has fewer than 10·WINDOW: a window over a
# large part of a run would pull the points off the curve), and adds the ideal point (task
# loss 0, accuracy 1).
LAST, SKIP, WINDOW = 0.1, 0.1, 5


def _final_losses(points: pd.DataFrame) -> pd.DataFrame:
    """Per run: N, its final D and the mean task loss of its checkpoints in the last LAST of
    its tokens (its final one at least)."""
    rows = []
    for run, group in points.sort_values("D").groupby("run", sort=True):
        final = float(group.D.iloc[-1])
        late = group[group.D >= (1 - LAST) * final]
        rows.append({"run": run, "N": float(group.N.iloc[-1]), "D": final,
                     "task_loss": float(late.task_loss.mean())})  # fmt: skip
    return pd.DataFrame(rows, columns=["run", "N", "D", "task_loss"])


def _curve_points(points: pd.DataFrame) -> pd.DataFrame:
    """The checkpoints step 2 is fitted on: per run, the first SKIP dropped and the rest
    smoothed over WINDOW; then the ideal point (run None)."""
    parts = []
    for _, group in points.sort_values("D").groupby("run", sort=True):
        group = group.iloc[int(SKIP * len(group)) :]
        window = max(1, min(WINDOW, len(group) // 10))  # sparse checkpoints are not smoothed
        smooth = group[["task_loss", "accuracy"]].rolling(window, min_periods=1).mean()
        parts.append(group[["run"]].assign(task_loss=smooth.task_loss, accuracy=smooth.accuracy))
    ideal = pd.DataFrame([{"run": None, "task_loss": 0.0, "accuracy": 1.0}])
    return pd.concat([*parts, ideal], ignore_index=True)


def two_step_runs(several_token_counts: bool) -> int:
    """The runs the two-step fit needs: more than its step 1 (L(N, D) where the runs saw
    several token counts, else L(N)) has parameters."""
    law = CHINCHILLA_ND if several_token_counts else KAPLAN_N
    return len(law.internal_names()) + 1


def predict_task(
    points: pd.DataFrame,
    target: dict[str, float],
    chance: float,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> TaskFit:
    """The two-step prediction of one task's accuracy at `target` ({"N", "D"}) from points with
    columns run, N, D, task_loss, accuracy (one row per checkpoint; a run's largest D is its
    final checkpoint). Raises ValueError when the points cannot support it."""
    points = points.dropna(subset=["task_loss", "accuracy"])
    final = _final_losses(points)
    need = two_step_runs(final.D.nunique() >= 2)
    if len(final) < need:
        raise ValueError(f"the two-step fit needs {need} runs; got {len(final)}")
    step1 = _step1(final)
    law = step1.law
    x = {"N": target["N"]} | ({"D": target["D"]} if law is CHINCHILLA_ND else {})
    fitted_on = _curve_points(points)
    curve = fit_sigmoid(fitted_on.task_loss, fitted_on.accuracy, chance)
    loss_hat = float(law.predict(step1.params, **x))
    acc_hat = float(sigmoid(loss_hat, **{k: curve[k] for k in ("a", "b", "k")}, l0=curve["L0"]))
    runs = np.array(sorted(set(points.run)))
    rng = np.random.default_rng(seed)
    final_index = {r: i for i, r in enumerate(final.run)}
    index = {r: i for i, r in enumerate(runs)}
    point_run = np.array([index.get(r, -1) for r in fitted_on.run])  # -1: the ideal point
    final_counts, point_counts = [], []
    for _ in range(n_boot):  # a resample draws whole runs: every checkpoint of each run drawn
        drawn = np.bincount(rng.integers(0, len(runs), len(runs)), minlength=len(runs))
        kept = [r for r, c in zip(runs, drawn, strict=True) if c]
        sample = final[final.run.isin(kept)]
        if sample.N.nunique() < 2 or (law is CHINCHILLA_ND and sample.D.nunique() < 2):
            continue
        counts = np.zeros(len(final))
        for r, c in zip(runs, drawn, strict=True):
            counts[final_index[r]] = c
        final_counts.append(counts)
        point_counts.append(np.where(point_run >= 0, drawn[point_run], 1))
    boots: dict[str, list[float]] = {"task_loss": [], "accuracy": []}
    if final_counts:
        variables = {v: final[v] for v in law.variables}
        step1_boot = refit_counts(step1, final.task_loss, final_counts, **variables)
        step2_boot = refit_sigmoids(fitted_on.task_loss, fitted_on.accuracy, chance, curve,
                                    point_counts)  # fmt: skip
        for params, fitted in zip(step1_boot, step2_boot, strict=True):
            b_loss = float(law.predict(params, **x))
            boots["task_loss"].append(b_loss)
            boots["accuracy"].append(float(sigmoid(b_loss, fitted["a"], fitted["b"],
                                                   fitted["k"], fitted["L0"])))  # fmt: skip
            for name, value in params.items():
                boots.setdefault(f"step1:{name}", []).append(value)
            for name, value in fitted.items():
                boots.setdefault(f"step2:{name}", []).append(value)
    fitted_curve = sigmoid(fitted_on.task_loss, curve["a"], curve["b"], curve["k"], curve["L0"])
    step1_fit = Step1(formula=law.formula,
                      params={k: _entry(v, boots.get(f"step1:{k}", []))
                              for k, v in step1.params.items()},
                      n_points=step1.n_points, rmse_log=step1.rmse_log,
                      warnings=tuple(step1.warnings))  # fmt: skip
    step2_fit = Step2(formula=SIGMOID,
                      params={k: _entry(v, boots.get(f"step2:{k}", [])) for k, v in curve.items()},
                      n_points=len(fitted_on),
                      rmse=float(np.sqrt(np.mean((fitted_curve - fitted_on.accuracy) ** 2))),
                      chance=chance)  # fmt: skip
    return TaskFit(task_loss=_entry(loss_hat, boots["task_loss"]),
                   accuracy=_entry(acc_hat, boots["accuracy"]), step1=step1_fit, step2=step2_fit,
                   target=dict(target), n_runs=len(runs),
                   n_boot=len(boots["accuracy"]))  # fmt: skip


def _entry(estimate: float, boots: list[float]) -> Estimate:
    """An estimate with its 95% bootstrap interval (none where the resamples give no spread)."""
    ci = None
    if len(boots) >= 2:
        low, high = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
        if high > low:
            ci = (low, high)
    return Estimate(float(estimate), ci)


def holdout_largest(points: pd.DataFrame, chance: float, n_boot: int = N_BOOT) -> TaskFit:
    """The self-test: the largest model held out (every run of its size, all their
    checkpoints), the final accuracy of its longest run predicted from the smaller runs at its
    (N, D), beside what it measured."""
    final = _runs(points)
    biggest = final[final.N == final.N.max()]
    largest = biggest.loc[biggest.D.idxmax()]  # of its runs, the one that saw the most tokens
    rest = points[points.N < largest.N]  # every run of that size out, not only one
    try:
        result = predict_task(rest, {"N": float(largest.N), "D": float(largest.D)}, chance, n_boot)
    except ValueError as e:  # "got 3" on a study of 4 sizes reads as a miscount: say why
        raise ValueError(f"{e} once the largest size is held out to test the fit") from e
    ci = None
    if {"ci_low", "ci_high"} <= set(largest.index) and pd.notna(largest.get("ci_low")):
        ci = (float(largest.ci_low), float(largest.ci_high))  # over the items
    return replace(result, held_out=str(largest.run),
                   measured=Estimate(float(largest.accuracy), ci),
                   measured_task_loss=float(largest.task_loss))  # fmt: skip


def study_task_fits(points: pd.DataFrame, n_boot: int = N_BOOT) -> dict[str, TaskFits]:
    """The self-test of the two-step prediction for each architecture and task of a study
    (`store.task_points`), where there are runs enough, by architecture."""
    out = {}
    for architecture, rows in points.groupby("architecture", sort=True):
        out[str(architecture)] = fit_table(rows, None, n_boot)
    return out


UNITS = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


def parse_target(text: str) -> dict[str, float]:
    """`--target N=7e9,D=2.8e12` (or N=7B,D=2.8T) as {"N": 7e9, "D": 2.8e12}. Raises
    ValueError naming the problem."""
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip().upper()
        if not sep or name not in ("N", "D"):
            raise ValueError(f"--target {text!r}: give N=COUNT,D=COUNT (e.g. N=7e9,D=2.8e12)")
        number = value.strip().upper()
        scale = UNITS.get(number[-1:], 1)
        try:
            out[name] = float(number[:-1] if number[-1:] in UNITS else number) * scale
        except ValueError:
            raise ValueError(f"--target {text!r}: {value.strip()!r} is not a count") from None
        if not out[name] > 0:
            raise ValueError(f"--target {text!r}: {name} must be positive")
    if "N" not in out:
        raise ValueError(f"--target {text!r}: N is missing")
    return out


# Said where a table has no chance levels: a floor of 0 lets step 2 put the sigmoid's floor
# below the task's chance, which the points above chance do not pin down.
NO_CHANCE = (
    "the table has no chance column: chance accuracy was taken as 0 for every task, so each "
    "sigmoid is bounded to [0, 1]; give each task's chance accuracy in a column `chance` (or "
    "name the column with --chance)"
)


def fit_table(frame: pd.DataFrame, target: dict | None, n_boot: int = N_BOOT) -> TaskFits:
    """The two-step fit of every task of a table (columns run, task, N, D, task_loss,
    accuracy, chance): at `target`, or, without one, the self-test (the largest model held out
    and predicted). One entry per task, `NotFitted` where a task cannot be fitted; the fits'
    `warnings` say where chance was taken as 0 (a table without a chance column)."""
    tasks = {}
    for task, rows in frame.groupby("task", sort=True):
        chance = float(rows.chance.iloc[0]) if "chance" in rows else 0.0
        try:
            if target is None:
                tasks[str(task)] = holdout_largest(rows, chance, n_boot)
            else:
                if "D" not in target and rows.D.nunique() >= 2:
                    raise ValueError("--target needs D as well: the runs saw several token counts")
                tasks[str(task)] = predict_task(rows, target, chance, n_boot)
        except ValueError as e:
            tasks[str(task)] = NotFitted(law="task", error=str(e))
    return TaskFits(tasks, () if "chance" in frame else (NO_CHANCE,))
