"""Fitting the study's laws to its finished trials (or to a table of published results)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from analysis.dataconstrained import fit_data_constrained
from analysis.isoflop import fit_isoflop, fit_loss_optimum
from analysis.laws import CHINCHILLA_ND, KAPLAN_N, N_BOOT, fit_law, holdout_test
from analysis.results import Estimate, Fit, NotFitted


def fit_points(
    law: str,
    frame: pd.DataFrame,
    n_boot: int = N_BOOT,
    group: str | None = None,
    compute: float | None = None,
    *,
    c_given: bool = False,
) -> Fit:
    """Fit one law to a table with columns N, D, C, loss (those the law needs), with the
    held-out self-test (none for an IsoFLOP analysis); `group` names the column whose values
    are runs (the bootstrap resamples them whole); `c_given`: C is the table's own FLOP count
    (not 6ND), and the self-test of L(N, D) holds out its largest budget by it.

    Raises ValueError with the reason when the points cannot pin the law down."""
    groups = frame[group].to_numpy() if group else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if law == "n":
            if frame.N.nunique() < 3:
                raise ValueError(f"L(N) needs 3 distinct sizes; got {frame.N.nunique()}")
            solution = fit_law(KAPLAN_N, frame.loss, groups, n_boot, N=frame.N)
            check = holdout_test(KAPLAN_N, frame.loss, groups, N=frame.N)
        elif law == "nd":
            compute = compute or float(frame.C.max())
            solution = fit_law(
                CHINCHILLA_ND, frame.loss, groups, n_boot, compute=compute, N=frame.N, D=frame.D
            )
            check = holdout_test(CHINCHILLA_ND, frame.loss, groups, N=frame.N, D=frame.D,
                                 compute=frame.C if c_given else None)  # fmt: skip
        elif law == "isoflop":
            solution = fit_isoflop(frame.N, frame.D, frame.C, frame.loss, groups, n_boot)
            check = None
        elif law == "optimum":  # its bootstrap resamples whole budgets, not runs
            solution = fit_loss_optimum(frame.N, frame.D, frame.C, frame.loss, n_boot=n_boot)
            check = None
        elif law == "data-constrained":
            solution = fit_data_constrained(frame.loss, groups, n_boot, N=frame.N, D=frame.D,
                                            U=frame.U)  # fmt: skip
            check = None
        else:
            raise ValueError(f"unknown law {law!r}: n, nd, isoflop, optimum or data-constrained")
    said = list(dict.fromkeys(str(w.message) for w in caught))  # each said once
    fit = solution.result() if check is None else solution.result(holdout=check)
    said += _implausible(fit.values())  # L(N, D)'s a and b are derived
    if law == "n" and "D" in frame:
        said += _far_from_optimal(frame)
    return replace(fit, warnings=fit.warnings + tuple(said))


# Exponents published fits find (Kaplan 2020: alpha_N 0.076; Hoffmann 2022: 0.34, 0.28;
# Besiroglu 2024: 0.35, 0.37; compute-optimal a, b: 0.46-0.73): outside these the points do
# not pin the law down, whatever its intervals say.
PLAUSIBLE = {"alpha": (0.05, 1.5), "beta": (0.05, 1.5), "a": (0.2, 0.9), "b": (0.1, 0.8)}
FEW_TOKENS_PER_PARAM = 5  # far below the compute-optimal ~20 (Hoffmann et al. 2022)


def _implausible(params: dict[str, Estimate]) -> list[str]:
    out = []
    for name, (low, high) in PLAUSIBLE.items():
        value = params[name].estimate if name in params else None
        if value is not None and np.isfinite(value) and not low <= value <= high:
            out.append(
                f"{name} = {value:.3g} is outside {low:g}-{high:g}, the range of published fits: "
                "these points do not pin the law down"
            )
    return out


def starved(frame: pd.DataFrame) -> bool:
    """Whether most points (columns N, D) saw fewer than FEW_TOKENS_PER_PARAM tokens a parameter."""
    return bool(len(frame)) and bool(((frame.D / frame.N) < FEW_TOKENS_PER_PARAM).mean() > 0.5)


def _far_from_optimal(frame: pd.DataFrame) -> list[str]:
    """A warning when most trials saw far fewer tokens than compute-optimal per parameter."""
    ratio = frame.D / frame.N
    if starved(frame):
        return [
            f"most trials saw fewer than {FEW_TOKENS_PER_PARAM} tokens per parameter (median "
            f"{ratio.median():.2g}; compute-optimal is about 20): the larger models are starved "
            "of data and the loss saturates, so L(N) at a fixed token budget measures the data "
            "more than the model; give budgets in tokens per parameter (chinchilla) or FLOPs"
        ]
    return []


def fit_study(
    trials: pd.DataFrame, n_boot: int = N_BOOT, laws: list[str] | None = None
) -> dict[str, dict[str, Fit]]:
    """The laws each architecture's finished trials can support, by architecture and law:

    - L(N) on final validation loss, from 3 sizes up;
    - L(N, D) when the trials span 2 token budgets or more (5 parameters: 5 points up), not
      one budget given in tokens per parameter;
    - IsoFLOP when 2 compute budgets each have 3 sizes or more.

    Every finished trial is one point and one bootstrap group (seeds are not averaged, so their
    spread widens the intervals), except in a learning-rate sweep: there each cell is one
    point, its best run (see `envelope`), and cells whose best rate is at an end of the sweep
    are left out. A law the points cannot support is `NotFitted`. `laws` asks for those laws
    only, whether or not the trials span several budgets."""
    results: dict[str, dict[str, Fit]] = {}
    for architecture in sorted(trials.architecture.unique()):
        frame, best, notes = best_runs(law_points(trials, architecture))
        results[architecture] = {}
        for i, (law, points) in enumerate(laws_of(frame, laws).items()):
            said = notes if i == 0 else []  # the cells left out, said once per architecture
            try:
                if points.empty and notes:
                    raise ValueError("no cell is left to fit: " + notes[0])
                result = fit_points(law, points, n_boot, group="trial_id")
                result = replace(result, warnings=result.warnings + tuple(said))
            except ValueError as e:
                result = NotFitted(law=law, error=str(e), warnings=tuple(said))
            envelope = None if best is None else tuple(best)
            results[architecture][law] = replace(
                result, envelope=envelope, data=tuple(points.to_dict("records"))
            )
    return results


def laws_of(frame: pd.DataFrame, laws: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """The laws fitted to an architecture's points (columns N, D, C, ...), each with the points
    it is fitted to: those of `laws`, or those the points support (L(N) where sizes share a
    budget, L(N, D) and IsoFLOP where they span token counts)."""
    # L(N) at one budget (the largest): points trained on fewer tokens are another curve.
    # A grid of FLOP budgets has no token budget that several sizes share: no L(N) there.
    budget = budgets(frame)
    points_of = {"n": frame[budget == budget.max()], "nd": frame, "isoflop": frame,
                 "optimum": frame, "data-constrained": frame}  # fmt: skip
    shared = budget.nunique() <= 1 or frame.groupby(budget).N.nunique().max() >= 3
    # D in proportion to N (one tokens-per-parameter budget) is one curve of N: L(N, D)
    # cannot tell N's term from D's there, and there is no second budget for IsoFLOP.
    several = ["nd", "isoflop"] if frame.D.nunique() >= 2 and budget.nunique() >= 2 else []
    return {law: points_of[law] for law in laws or ((["n"] if shared else []) + several)}


def budgets(frame: pd.DataFrame) -> pd.Series:
    """Each point's budget: its tokens where sizes share token counts, else its tokens per
    parameter to 2 significant digits where sizes share those (multiples of the Chinchilla
    ratio); a FLOP grid shares neither."""
    if frame.D.nunique() <= 1 or frame.groupby("D").N.nunique().max() >= 3:
        return frame.D
    per_param = (frame.D / frame.N).map(lambda r: float(f"{r:.2g}"))
    return per_param if frame.groupby(per_param).N.nunique().max() >= 3 else frame.D


def law_points(trials: pd.DataFrame, architecture: str) -> pd.DataFrame:
    """An architecture's finished trials as the points a law is fitted to: trial_id, N, D, C,
    loss (the final validation loss), lr and U (the unique tokens: D / epochs where a trial
    repeated its data, epochs > 1); without the trials that verify a prediction
    (column `verifies`), which the laws must not see."""
    rows = trials[
        (trials.architecture == architecture)
        & (trials.status == "finished")
        & trials.val_loss.notna()
        & ~trials.get("verifies", pd.Series(False, index=trials.index)).astype(bool)
    ]
    return pd.DataFrame(
        {
            "trial_id": rows.trial_id,
            "N": rows.n_params.astype(float),
            "D": rows.tokens.astype(float),
            "C": rows.flops.astype(float),
            "loss": rows.val_loss.astype(float),
            "lr": rows.lr.astype(float) if "lr" in rows else np.nan,
            "U": rows.tokens / rows.epochs.clip(lower=1) if "epochs" in rows else rows.tokens,
        }
    ).astype({"U": float})


def envelope(frame: pd.DataFrame) -> pd.DataFrame:
    """The best-learning-rate envelope of a sweep (the OLMo and Porian et al. 2024 practice):
    seeds averaged first, then per cell (N, D) the learning rate with the lowest loss. One row
    per cell: N, D, C, loss, best_lr, at_edge (the best rate is the smallest or the largest
    tried, so the cell's true optimum may lie beyond the sweep) and the trial_id of one of its
    runs (the bootstrap's unit)."""
    runs = frame.groupby(["N", "D", "lr"], as_index=False).agg(
        loss=("loss", "mean"), C=("C", "mean"), trial_id=("trial_id", "first")
    )
    rows = []
    for (n, d), cell in runs.groupby(["N", "D"]):
        top = cell.loc[cell.loss.idxmin()]
        rates = sorted(cell.lr)
        rows.append({"N": n, "D": d, "C": top.C, "loss": top.loss, "best_lr": top.lr,
                     "at_edge": len(rates) > 1 and top.lr in (rates[0], rates[-1]),
                     "trial_id": top.trial_id})  # fmt: skip
    return pd.DataFrame(rows, columns=["N", "D", "C", "loss", "best_lr", "at_edge", "trial_id"])


def best_runs(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[dict] | None, list[str]]:
    """The points a law is fitted to, with a learning-rate sweep: the envelope's cells not at an
    edge of the sweep (`lr` their best rate), the envelope as rows (N, D, best_lr, loss,
    at_edge) and the note naming the cells left out. Without a sweep (no cell tried several
    rates): the points as they are, None and no note. A table without D or C (an L(N) table)
    is one cell per N."""
    cell = [c for c in ("N", "D") if c in frame]
    if "lr" not in frame or frame.empty or not frame.groupby(cell).lr.nunique().max() > 1:
        return frame, None, []
    absent = [c for c in ("D", "C") if c not in frame]
    best = envelope(frame.assign(**dict.fromkeys(absent, 1.0)))  # placeholders, dropped below
    points = best[~best.at_edge].rename(columns={"best_lr": "lr"}).drop(columns=absent)
    shown = [c for c in ("N", "D", "best_lr", "loss", "at_edge") if c not in absent]
    return points, best[shown].to_dict("records"), edge_notes(best)


def edge_notes(best: pd.DataFrame) -> list[str]:
    edge = best[best.at_edge]
    if edge.empty:
        return []
    cells = ", ".join(f"N={n:.3g} D={d:.3g} (lr {lr:.3g})"
                      for n, d, lr in zip(edge.N, edge.D, edge.best_lr, strict=True))  # fmt: skip
    return [
        f"{len(edge)} of {len(best)} cells left out: their best learning rate is at an end of "
        f"the sweep, so their optimum was not tried: {cells}"
    ]


class TableError(ValueError):
    """A results table that cannot be fitted: the message names the file, column and line."""


LAW_COLUMNS = {"n": ("N", "loss"), "nd": ("N", "D", "loss"), "isoflop": ("N", "D", "C", "loss"),
               "optimum": ("N", "D", "C", "loss"), "forecast": ("N", "D", "C", "loss"),
               "task": ("N", "D", "task_loss", "accuracy"),
               "data-constrained": ("N", "D", "U", "loss")}  # fmt: skip
UNIQUE_COLUMNS = ("U", "unique_tokens")  # the names a CSV may give the unique tokens


def _bad_rows(path, column: pd.Series, bad: pd.Series, need: str, shown: int = 5) -> str:
    """The refusal of a column's bad rows, naming the first `shown` by their line in the file
    (the header is line 1) with their values, and how many more there are."""
    labels = bad[bad].index[:shown]
    lines = ", ".join(str(label + 2) for label in labels)
    values = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in column[labels])
    more = f" and {int(bad.sum()) - len(labels)} more" if bad.sum() > len(labels) else ""
    where = f"line {lines}" if bad.sum() == 1 else f"lines {lines}{more}"
    return f"{path}, {where}: {need}, got {values}"


def read_table(
    path,
    law: str,
    columns: dict[str, str],
    filters: Sequence[str] = (),
    drop_highest_loss: int = 0,
    group: str | None = None,
) -> pd.DataFrame:
    """Read a CSV of results into the columns a law needs (N, D, C, loss; or N, accuracy and
    optionally n_items for `trend`), renamed from `columns` (our name -> the file's).

    D = C / 6N when the file has C but no D, and C = 6ND the other way round (the
    approximation the published fits use); attrs["c_given"] says whether the file gave C.
    `filters` keep rows where COLUMN=VALUE;
    `drop_highest_loss` drops that many highest-loss rows (the Epoch AI replication drops 5);
    `group` names a column that labels runs (kept as "group", for the bootstrap)."""
    try:
        raw = pd.read_csv(path)
    except pd.errors.EmptyDataError:  # no bytes, or only blank lines: not even a header
        raise TableError(f"{path}: the file is empty: a CSV needs a header line and rows") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise TableError(f"{path}: cannot read it as CSV: {e}") from None
    if raw.empty and not filters:
        raise TableError(f"{path}: the file has a header ({', '.join(map(str, raw.columns))}) "
                         "but no rows")  # fmt: skip
    for condition in filters:
        column, sep, value = condition.partition("=")
        if not sep or column not in raw.columns:
            raise TableError(
                f"{path}: --where {condition!r} must be COLUMN=VALUE with a column of the file "
                f"({', '.join(map(str, raw.columns))})"
            )
        raw = raw[raw[column].astype(str) == value]
    if raw.empty:
        raise TableError(f"{path}: no rows left to fit")
    needed = ("N", "accuracy") if law == "trend" else LAW_COLUMNS[law]
    out = pd.DataFrame(index=raw.index)
    found = [c for c in UNIQUE_COLUMNS if c in raw.columns]
    columns = {"U": found[0] if found else "U"} | columns
    for ours in ("N", "D", "C", "U", "loss", "accuracy", "n_items", "lr", "task_loss", "chance"):
        theirs = columns.get(ours, ours)
        if ours == "lr" and theirs != "lr" and theirs not in raw.columns:
            raise TableError(f"{path}: --lr {theirs!r} is not a column of the file")
        if theirs in raw.columns:
            values = pd.to_numeric(raw[theirs], errors="coerce")
            # NaN, inf and -inf fail both tests below: a non-finite value is refused as NaN is
            if ours in ("accuracy", "chance"):
                bad, want = ~((values >= 0) & (values <= 1)), "a number in [0, 1]"
            else:
                bad, want = ~((values > 0) & (values < np.inf)), "a positive finite number"
            extra = {"trend": ("n_items",), "task": ("chance",)}.get(law, ("C", "D", "lr"))
            if (ours in needed or ours in extra) and bad.any():
                need = f"column {theirs!r} needs {want}"
                raise TableError(_bad_rows(path, raw[theirs], bad, need))
            out[ours] = values.astype(float)
    if "D" not in out and {"N", "C"} <= set(out):
        out["D"] = out.C / (6 * out.N)
    c_given = "C" in out
    if "C" not in out and {"N", "D"} <= set(out):
        out["C"] = 6 * out.N * out.D
    missing = [c for c in needed if c not in out]
    if "U" in missing:
        raise TableError(f"{path}: the law {law!r} needs each row's unique tokens, a column "
                         f"{' or '.join(UNIQUE_COLUMNS)}; the file has "
                         f"{', '.join(map(str, raw.columns))}")  # fmt: skip
    if "U" in needed and not missing and (out.U > out.D * (1 + 1e-9)).any():
        label = (out.U > out.D * (1 + 1e-9)).idxmax()
        raise TableError(f"{path}, line {label + 2}: more unique tokens than tokens (U = "
                         f"{out.U[label]:.4g} > D = {out.D[label]:.4g})")  # fmt: skip
    if missing:
        named = ", ".join(f"{c} (column {columns.get(c, c)!r})" for c in missing)
        raise TableError(
            f"{path}: the law {law!r} needs {named}; the file has "
            f"{', '.join(map(str, raw.columns))}. Name the file's columns with --n, --d, --c, "
            "--loss or --accuracy"
        )
    if group is not None:
        if group not in raw.columns:
            raise TableError(f"{path}: --group {group!r} is not a column of the file")
        out["group"] = raw[group]
    if law == "task":
        column = columns.get("task", "task")
        if column not in raw.columns:
            raise TableError(f"{path}: the law 'task' needs a column naming each row's task "
                             f"({column!r}; name it with --task)")  # fmt: skip
        if group is None:
            raise TableError(f"{path}: the law 'task' needs --group, the column naming each "
                             "row's run (a run's rows are its checkpoints)")  # fmt: skip
        out["task"] = raw[column].astype(str)
    if drop_highest_loss:
        out = out.sort_values("loss", kind="stable").iloc[:-drop_highest_loss]
    out = out.reset_index(drop=True)
    out.attrs["c_given"] = c_given
    return out


def vertex_rates(frame: pd.DataFrame, points: pd.DataFrame) -> np.ndarray:
    """Each cell's best rate between the rates tried: the vertex of a parabola in log lr through
    its best rate and the two beside it (seeds averaged), kept between those two. A sweep's
    grid (a factor of 2) is coarser than the law it feeds; the vertex is how the sweeps of
    DeepSeek (2024) and Porian et al. (2024) read an optimum off it. `points` are the
    envelope's cells not at an edge (N, D, lr the best rate)."""
    runs = frame.groupby(["N", "D", "lr"], as_index=False).loss.mean()
    out = []
    for n, d, best in zip(points.N, points.D, points.lr, strict=True):
        cell = runs[(runs.N == n) & (runs.D == d)].sort_values("lr")
        i = int(np.flatnonzero(cell.lr.to_numpy() == best)[0])
        x = np.log(cell.lr.to_numpy()[i - 1 : i + 2])
        curve, slope, _ = np.polyfit(x, cell.loss.to_numpy()[i - 1 : i + 2], 2)
        vertex = -slope / (2 * curve) if curve > 0 else np.log(best)
        out.append(float(np.exp(np.clip(vertex, x[0], x[-1]))))
    return np.array(out)


def fit_lr_power(n_params, best_lr, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Estimate]:
    """lr*(N) = a·N^b by least squares in log-log space on the best rates of a sweep's cells,
    with 95% intervals from a bootstrap over the cells (percentiles of the refits; none with
    fewer than 3 distinct N, where a resample cannot tell the slope). Raises ValueError with
    fewer than 2 distinct N."""
    x, y = np.log(np.asarray(n_params, float)), np.log(np.asarray(best_lr, float))
    if len(set(x)) < 2:
        raise ValueError("the best rates of at least 2 sizes are needed to fit lr*(N)")
    b, log_a = np.polyfit(x, y, 1)
    ci_a = ci_b = None
    if len(set(x)) >= 3 and n_boot > 0:
        rng = np.random.default_rng(seed)
        refits = []
        for _ in range(n_boot):
            pick = rng.integers(0, len(x), len(x))
            if len(set(x[pick])) >= 2:
                refits.append(np.polyfit(x[pick], y[pick], 1))
        slopes, logs = np.array(refits).T
        ci_b = tuple(float(q) for q in np.quantile(slopes, [0.025, 0.975]))
        ci_a = tuple(float(np.exp(q)) for q in np.quantile(logs, [0.025, 0.975]))
    return {"a": Estimate(float(np.exp(log_a)), ci_a), "b": Estimate(float(b), ci_b)}
