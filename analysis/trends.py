"""Does zero-shot accuracy grow with size? Trends of accuracy against log N, per architecture
and task, with intervals from resampling the items, and a sentence that says so plainly."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

N_BOOT = 1000


def accuracy_trend(n_params, per_item: list, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Slope of accuracy per decade of N (ordinary least squares on log10 N), its 95% interval
    from resampling the items (the same resample for every model: they answered the same
    items), and Spearman's rank correlation of accuracy with N and its p-value."""
    n = np.asarray(n_params, dtype=float)
    x = np.log10(n)
    scores = np.array([np.asarray(p, dtype=float) for p in per_item])  # (models, items)
    accuracy = scores.mean(axis=1)
    slope = float(np.polyfit(x, accuracy, 1)[0])
    rng = np.random.default_rng(seed)
    n_items = scores.shape[1]
    boots = []
    for _ in range(n_boot):
        resampled = scores[:, rng.integers(0, n_items, n_items)].mean(axis=1)
        boots.append(np.polyfit(x, resampled, 1)[0])
    low, high = (float(v) for v in np.percentile(boots, [2.5, 97.5])) if boots else (np.nan,) * 2
    rho, p_value = _spearman(n, accuracy)
    return {
        "slope": slope,
        "ci": [low, high],
        "spearman_rho": float(rho),
        "p_value": float(p_value),
        "accuracy": accuracy.tolist(),
        "n_params": n.tolist(),
    }


def values_trend(n_params, accuracy, n_items=None, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """accuracy_trend for published numbers, which come without per-item answers: with the
    number of items per model, the interval resamples each accuracy as a binomial draw;
    without it, it resamples the models."""
    n = np.asarray(n_params, dtype=float)
    accuracy = np.asarray(accuracy, dtype=float)
    if len(np.unique(n)) < 2:
        raise ValueError("a trend needs accuracies at 2 sizes or more")
    x = np.log10(n)
    slope = float(np.polyfit(x, accuracy, 1)[0])
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        if n_items is not None:
            items = np.asarray(n_items, dtype=int)
            draw = rng.binomial(items, np.clip(accuracy, 0, 1)) / items
            boots.append(np.polyfit(x, draw, 1)[0])
        else:
            idx = rng.integers(0, len(x), len(x))
            if len(np.unique(x[idx])) >= 2:
                boots.append(np.polyfit(x[idx], accuracy[idx], 1)[0])
    low, high = (float(v) for v in np.percentile(boots, [2.5, 97.5])) if boots else (np.nan,) * 2
    rho, p_value = _spearman(n, accuracy)
    return {
        "slope": slope,
        "ci": [low, high],
        "spearman_rho": float(rho),
        "p_value": float(p_value),
        "accuracy": accuracy.tolist(),
        "n_params": n.tolist(),
        "interval_from": "binomial draws of each accuracy" if n_items is not None else "models",
    }


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value: exact over all orderings for up to 8 sizes
    (the t approximation says p = 0 for 4 points in perfect order; the truth is 1/12)."""
    if np.ptp(y) == 0:  # every size scored the same: no ordering to speak of
        return 0.0, 1.0
    rho = float(stats.spearmanr(x, y).statistic)
    if len(x) > 8:
        return rho, float(stats.spearmanr(x, y).pvalue)
    # Spearman's rho is Pearson's r of the ranks: computed for every ordering at once.
    orders = np.array(list(itertools.permutations(stats.rankdata(y))))
    rx = stats.rankdata(x)
    rx, orders = rx - rx.mean(), orders - orders.mean(axis=1, keepdims=True)
    rhos = orders @ rx / (np.linalg.norm(orders, axis=1) * np.linalg.norm(rx))
    return rho, float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))


def direction(trend: dict) -> str:
    """better, worse or unclear: whether the slope's interval excludes zero."""
    low, high = trend["ci"]
    return "better" if low > 0 else "worse" if high < 0 else "unclear"


def verdict(architecture: str, trends: dict[str, dict]) -> str:
    """One plain sentence: did larger models of `architecture` do better, and how surely."""
    if not trends:
        return f"{architecture}: no zero-shot results from two or more sizes to compare."
    parts, better = [], 0
    for task, t in sorted(trends.items()):
        kind = direction(t)
        better += kind == "better"
        low, high = t["ci"]
        parts.append(
            f"{task} {100 * t['slope']:+.1f} points per 10x N (95% CI {100 * low:+.1f} to "
            f"{100 * high:+.1f}; Spearman rho {t['spearman_rho']:.2f}, p = {t['p_value']:.2g})"
        )
    if better == len(trends):
        lead = "larger models did better on every task"
    elif better:
        lead = f"larger models did better on {better} of {len(trends)} tasks"
    else:
        lead = "the data do not show larger models doing better on any task"
    return f"{architecture}: {lead}: " + "; ".join(parts) + "."


def study_trends(evals: pd.DataFrame, n_boot: int = N_BOOT) -> dict[str, dict]:
    """Per architecture: the accuracy trend of each task (final evaluations, metric `acc`)
    and the verdict. Needs two sizes or more; the n-gram baseline is left out."""
    out = {}
    acc = evals[(evals.metric == "acc") & (evals.architecture != "ngram")]
    for architecture, rows in acc.groupby("architecture"):
        trends = {}
        for task, task_rows in rows.groupby("task"):
            task_rows = task_rows.sort_values("n_params")
            lengths = {len(p) for p in task_rows.per_item}
            if task_rows.n_params.nunique() < 2 or len(lengths) != 1:
                continue
            trends[task] = accuracy_trend(
                task_rows.n_params, list(task_rows.per_item), n_boot=n_boot
            )
        out[architecture] = {"trends": trends, "verdict": verdict(architecture, trends)}
    return out
