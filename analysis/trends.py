"""Does zero-shot accuracy grow with size? Trends of accuracy against log N, per architecture
and task, with intervals from resampling the items, and a sentence that says so plainly."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.results import ArchitectureTrends, Estimate, Trend

N_BOOT = 1000
TASK_LOSS = "bpb"  # the stored metric of a task's loss: bits per byte of the right answer
LOWER_IS_BETTER = ("bits_per_byte", TASK_LOSS)
LOSS_KEY = ":loss"  # a task's loss trend is kept as "<task>:loss" beside its accuracy's


def _trend(n: np.ndarray, values: np.ndarray, boot_slopes: list, metric: str, **rest) -> Trend:
    """The slope of `values` per decade of N (least squares on log10 N), the 95% interval of
    the resampled slopes, and Spearman's rho of values with N and its p-value."""
    slope = float(np.polyfit(np.log10(n), values, 1)[0])
    if boot_slopes:
        low, high = (float(v) for v in np.percentile(boot_slopes, [2.5, 97.5]))
    else:
        low = high = float("nan")
    rho, p_value = _spearman(n, values)
    return Trend(metric=metric, slope=Estimate(slope, (low, high)), spearman_rho=float(rho),
                 p_value=float(p_value), n_params=tuple(n.tolist()),
                 values=tuple(values.tolist()), **rest)  # fmt: skip


def accuracy_trend(n_params, per_item: list, n_boot: int = N_BOOT, seed: int = 0) -> Trend:
    """Slope of accuracy per decade of N (ordinary least squares on log10 N), its 95% interval
    from resampling the items (the same resample for every model: they answered the same
    items), and Spearman's rank correlation of accuracy with N and its p-value."""
    return _items_trend(n_params, per_item, "acc", n_boot, seed)


def _items_trend(n_params, per_item: list, metric: str, n_boot: int, seed: int) -> Trend:
    """The trend of a per-item score's mean over the items, its interval from resampling the
    items (the same resample for every model)."""
    n = np.asarray(n_params, dtype=float)
    x = np.log10(n)
    scores = np.array([np.asarray(p, dtype=float) for p in per_item])  # (models, items)
    rng = np.random.default_rng(seed)
    n_items = scores.shape[1]
    boots = []
    for _ in range(n_boot):
        resampled = scores[:, rng.integers(0, n_items, n_items)].mean(axis=1)
        boots.append(np.polyfit(x, resampled, 1)[0])
    return _trend(n, scores.mean(axis=1), boots, metric)


def values_trend(n_params, accuracy, n_items=None, n_boot: int = N_BOOT, seed: int = 0) -> Trend:
    """accuracy_trend for published numbers, which come without per-item answers: with the
    number of items per model, the interval resamples each accuracy as a binomial draw;
    without it, it resamples the models."""
    n = np.asarray(n_params, dtype=float)
    accuracy = np.asarray(accuracy, dtype=float)
    if len(np.unique(n)) < 2:
        raise ValueError("a trend needs accuracies at 2 sizes or more")
    x = np.log10(n)
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
    interval_from = "binomial draws of each accuracy" if n_items is not None else "models"
    return _trend(n, accuracy, boots, "acc", interval_from=interval_from)


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


def task_loss_trend(n_params, per_item: list, n_boot: int = N_BOOT, seed: int = 0) -> Trend:
    """A task's loss against log10 N (lower is better): the mean over items of the right
    answer's bits per byte given its context, -log2 p(gold) / bytes(gold), the task loss of
    Bhagia et al. 2024 ("Establishing task scaling laws via compute-efficient model ladders").
    A continuous score moves with N long before accuracy leaves chance (Schaeffer et al. 2023).
    Slope per decade, its 95% interval from resampling the items, Spearman's rho and p."""
    return _items_trend(n_params, per_item, TASK_LOSS, n_boot, seed)


def likelihood_trend(n_params, per_window: list, n_boot: int = N_BOOT, seed: int = 0) -> Trend:
    """Held-out bits per byte against log10 N (the likelihood task; lower is better): slope per
    decade, its 95% interval from resampling the held-out windows (the same windows for every
    model), and Spearman's rho of bits per byte with N and its p-value. `per_window` holds each
    model's [nats, bytes] per window."""
    n = np.asarray(n_params, dtype=float)
    x = np.log10(n)
    windows = np.array([np.asarray(w, dtype=float) for w in per_window])  # (models, windows, 2)

    def bpb(idx):
        return windows[:, idx, 0].sum(axis=1) / windows[:, idx, 1].sum(axis=1) / np.log(2)

    count = windows.shape[1]
    rng = np.random.default_rng(seed)
    boots = [np.polyfit(x, bpb(rng.integers(0, count, count)), 1)[0] for _ in range(n_boot)]
    return _trend(n, bpb(np.arange(count)), boots, "bits_per_byte")


def direction(trend: Trend) -> str:
    """better, worse or unclear: whether the slope's interval excludes zero (for bits per byte
    a negative slope is better)."""
    low, high = trend.slope.ci
    if trend.metric in LOWER_IS_BETTER:
        low, high = -high, -low
    return "better" if low > 0 else "worse" if high < 0 else "unclear"


TEST = "the slope's 95% interval"  # what decides a verdict: not Spearman's p (4 sizes: p >= 1/12)
WORDS = {"better": "better", "worse": "worse", "unclear": "no evidence"}


@dataclass(frozen=True)
class TaskVerdict:
    """Whether one task got better or worse with N by the slope's 95% interval ("no evidence"
    where the interval holds 0), its slope per tenfold N and Spearman's p of the metric with N."""

    task: str
    verdict: str  # "better", "worse" or "no evidence"
    metric: str  # "acc" (points per 10x N), "bpb" (task loss) or "bits_per_byte" (held out)
    slope: Estimate
    p_value: float | None = None  # Spearman's, exact for up to 8 sizes

    def text(self) -> str:
        """The slope in words: last_word +3.5 points per 10x N [+1.6, +5.3] (p = 0.017)."""
        low, high = self.slope.ci or (float("nan"), float("nan"))
        p = f" (p = {self.p_value:.2g})" if self.p_value is not None else ""
        if self.metric in LOWER_IS_BETTER:
            what = "task loss" if self.metric == TASK_LOSS else "likelihood"
            return (f"{self.task} {what} {self.slope.estimate:+.3f} bits per byte per 10x N "
                    f"[{low:+.3f}, {high:+.3f}]{p}")  # fmt: skip
        return (f"{self.task} {100 * self.slope.estimate:+.1f} points per 10x N "
                f"[{100 * low:+.1f}, {100 * high:+.1f}]{p}")  # fmt: skip

    def to_json(self) -> dict:
        """The verdict, its slope and p-value as JSON."""
        return {"task": self.task, "verdict": self.verdict, "metric": self.metric,
                "slope": self.slope.to_json(), "p_value": self.p_value}  # fmt: skip


@dataclass(frozen=True)
class Verdicts:
    """An architecture's verdicts: each zero-shot task by accuracy, each by its task loss, and
    held-out likelihood apart (it is no zero-shot task)."""

    accuracy: tuple[TaskVerdict, ...] = ()
    loss: tuple[TaskVerdict, ...] = ()
    likelihood: tuple[TaskVerdict, ...] = ()

    def all(self) -> list[TaskVerdict]:
        """Every verdict, in the order they are said."""
        return [*self.accuracy, *self.loss, *self.likelihood]


def task_verdicts(trends: dict[str, Trend]) -> Verdicts:
    """Each trend's verdict by `direction`, by task: accuracy, task loss, held-out likelihood."""
    out = [TaskVerdict(task.removesuffix(LOSS_KEY), WORDS[direction(t)], t.metric, t.slope,
                       t.p_value)
           for task, t in sorted(trends.items())]  # fmt: skip
    return Verdicts(*(tuple(v for v in out if v.metric == m)
                      for m in ("acc", TASK_LOSS, "bits_per_byte")))  # fmt: skip


def _said(word: str) -> str:
    """A verdict as the summary says it: "better with N", "no evidence either way"."""
    return "no evidence either way" if word == "no evidence" else f"{word} with N"


def _grouped(verdicts: tuple[TaskVerdict, ...], lead: str = "") -> list[str]:
    """The tasks that got better, those that got worse (said plainly), those with no evidence."""
    parts = []
    for word in ("better", "worse", "no evidence"):
        if named := [t.task for t in verdicts if t.verdict == word]:
            parts.append(f"{lead}{_said(word)} on {', '.join(named)}")
    return parts


def zero_shot_words(verdicts: Verdicts) -> str:
    """The verdicts in words: by accuracy, then by task loss, then held-out likelihood apart."""
    parts = _grouped(verdicts.accuracy, "accuracy ") + _grouped(verdicts.loss, "task loss ")
    text = "; ".join(parts) if parts else "no zero-shot task scored at two sizes or more"
    for t in verdicts.likelihood:
        text += f"; held-out likelihood {_said(t.verdict)}"
    return text


def _count(verdicts: tuple[TaskVerdict, ...], by: str) -> str | None:
    """ "on 2 of 3 zero-shot tasks by accuracy", or None where none got better."""
    better = sum(t.verdict == "better" for t in verdicts)
    if not better:
        return None
    many = ("every zero-shot task" if better == len(verdicts)
            else f"{better} of {len(verdicts)} zero-shot tasks")  # fmt: skip
    return f"on {many} by {by}"


def verdict(architecture: str, trends: dict[str, Trend]) -> str:
    """One plain sentence: did larger models of `architecture` do better on the zero-shot
    tasks (by accuracy, by task loss), by which test, which got worse; held-out likelihood
    said apart; every slope with its interval and Spearman's p."""
    if not trends:
        return f"{architecture}: no zero-shot results from two or more sizes to compare."
    v = task_verdicts(trends)
    counts = [c for c in (_count(v.accuracy, "accuracy"), _count(v.loss, "task loss")) if c]
    worse = sorted({t.task for t in v.accuracy + v.loss if t.verdict == "worse"})
    if not v.accuracy and not v.loss:
        lead = "no zero-shot task to judge"
    elif counts:
        lead = "larger models did better " + " and ".join(counts)
    else:
        lead = "the data do not show larger models doing better on any zero-shot task"
    if worse:
        lead += f", and worse on {', '.join(worse)}"
    slopes = "; ".join(t.text() for t in v.all())
    return (f"{architecture}: {lead} (by {TEST}): {zero_shot_words(v)}. "
            f"Slopes with 95% intervals and Spearman's p: {slopes}.")  # fmt: skip


def study_trends(evals: pd.DataFrame, n_boot: int = N_BOOT) -> dict[str, ArchitectureTrends]:
    """Per architecture: the trend of each task (final evaluations; its accuracy `acc`, its
    task loss kept as "<task>:loss", and held-out bits per byte for decoders) and the verdict.
    Needs two sizes or more; the n-gram baseline and the reference models are left out."""
    out = {}
    baseline = (evals.architecture == "ngram") | evals.architecture.str.startswith("ref:")
    models = evals[~baseline]  # the n-gram floor and the reference models are no trials
    kept = models[models.metric.isin(("acc", TASK_LOSS, "bits_per_byte"))]
    for architecture, rows in kept.groupby("architecture"):
        trends = {}
        for (task, metric), task_rows in rows.groupby(["task", "metric"]):
            task_rows = task_rows.sort_values("n_params")
            per_item = list(task_rows.per_item)
            if any(p is None for p in per_item) or len({len(p) for p in per_item}) != 1:
                continue  # results stored before per-item values were kept, or mismatched
            if task_rows.n_params.nunique() < 2:
                continue
            trend = {"bits_per_byte": likelihood_trend, TASK_LOSS: task_loss_trend}.get(
                metric, accuracy_trend
            )
            key = task + LOSS_KEY if metric == TASK_LOSS else task
            trends[key] = trend(task_rows.n_params, per_item, n_boot=n_boot)
        out[architecture] = ArchitectureTrends(trends, verdict(architecture, trends))
    return out
