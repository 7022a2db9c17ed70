"""The report's figures: one function per figure, each over the report's view (what it draws
was computed there, once) and none reading another's output. A figure with nothing to draw
is None."""

from __future__ import annotations

import colorsys
import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.laws import compute_budgets
from analysis.report.view import MAX_CURVE_POINTS, NATS, ReportView, StudyView, TaskPoint
from analysis.trends import TASK_LOSS
from trainers.architectures import ARCHITECTURES

COLORS = {name: a.color for name, a in ARCHITECTURES.items()}  # one colour per architecture
STUDY_DASHES = ["solid", "dash", "dot", "dashdot", "longdash"]  # in a comparison, per study
STUDY_SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross"]
OBJECTIVES = {name: a.objective for name, a in ARCHITECTURES.items()}
# the most neighbouring series' points at one N are moved apart in the zero-shot panels, in
# decades of N (a factor 1.26): side by side, their error bars do not cover each other
MAX_DODGE = 0.1
REFERENCE_COLORS = ["#7f4f24", "#6a3d9a", "#b15928", "#555555"]  # no architecture's colour


def architectures(studies: list[StudyView]) -> list[str]:
    """The architectures the studies trained, in the registry's order, unknown ones after."""
    present = set().union(*(set(v.trials.architecture) for v in studies))
    return [a for a in ARCHITECTURES if a in present] + sorted(present - set(ARCHITECTURES))


def _loss_axis(arch: str, unit: str) -> str:
    return f"{OBJECTIVES.get(arch, '?')} loss ({unit})"


def shade(arch: str, k: int, n: int) -> str:
    """The `k`-th of `n` shades of an architecture's colour, dark to light: sizes (or budgets,
    or studies) within one architecture."""
    base = COLORS.get(arch, "#555555").lstrip("#")
    h, lightness, sat = colorsys.rgb_to_hls(*(int(base[i : i + 2], 16) / 255 for i in (0, 2, 4)))
    if n > 1:
        lightness = 0.22 + 0.5 * k / (n - 1)
    r, g, b = colorsys.hls_to_rgb(h, lightness, sat)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def style(view: ReportView, i: int, arch: str) -> tuple[str, str, str]:
    """Colour, dash and marker of an architecture in the `i`-th study: the colour is always
    the architecture's; in a comparison each study has its own dash and marker."""
    if not view.comparison:
        return COLORS.get(arch, "#555"), "solid", "circle"
    return (COLORS.get(arch, "#555"), STUDY_DASHES[i % len(STUDY_DASHES)],
            STUDY_SYMBOLS[i % len(STUDY_SYMBOLS)])  # fmt: skip


def _panels(titles: list[str], height: int = 480, log_n: bool = False) -> go.Figure:
    """One row of panels; with `log_n`, each x axis is N on a log scale."""
    fig = make_subplots(
        rows=1, cols=max(1, len(titles)), subplot_titles=titles, horizontal_spacing=0.08
    )
    fig.update_layout(height=height, legend={"orientation": "h", "y": -0.25})
    if log_n:
        fig.update_xaxes(type="log", title="non-embedding parameters N")
    return fig


def _trials_trace(points: pd.DataFrame, x: str, label: str, color: str, hover: str,
                  symbol: str = "circle"):  # fmt: skip
    """The trials of one architecture (and study) as markers: x against final loss."""
    return go.Scatter(
        x=points[x],
        y=points.val_loss,
        mode="markers",
        name=f"{label} trials",
        legendgroup=label,
        marker={"color": color, "size": 9, "symbol": symbol},
        text=points.trial_id,
        hovertemplate="%{text}<br>" + hover + "<br>loss=%{y:.4f}<extra></extra>",
    )


def _loss_panels(archs: list[str], x_title: str, unit: str) -> go.Figure:
    """One panel per architecture, log axes: x as given, y its own objective's loss."""
    fig = _panels([f"{a} ({OBJECTIVES.get(a, '?')})" for a in archs])
    for col, arch in enumerate(archs, start=1):
        fig.update_xaxes(type="log", title=x_title, row=1, col=col)
        fig.update_yaxes(type="log", title=_loss_axis(arch, unit), row=1, col=col)
    return fig


def _finished_points(view: ReportView, archs: list[str], x: str):
    """Per study and architecture with finished trials: (study index, panel column,
    architecture, its points sorted by `x`)."""
    for i, drawing in enumerate(view.drawings):
        for col, arch in enumerate(archs, start=1):
            points = drawing.finished[drawing.finished.architecture == arch].sort_values(x)
            if not points.empty:
                yield i, col, arch, points


def loss_vs_n(view: ReportView) -> go.Figure:
    """One panel per architecture (each objective's loss has its own axis): the trials, the
    fitted L(N) and its 95% bootstrap band."""
    archs = architectures(view.studies)
    fig = _loss_panels(archs, "non-embedding parameters N", view.drawings[0].loss_unit)
    for i, col, arch, points in _finished_points(view, archs, "n_params"):
        (color, dash, symbol), label = style(view, i, arch), view.label(i, arch)
        fig.add_trace(_trials_trace(points, "n_params", label, color, "N=%{x:.3s}", symbol),
                      row=1, col=col)  # fmt: skip
        law = view.drawings[i].laws.get(arch)
        if law is None:
            continue
        fig.add_trace(
            go.Scatter(x=np.concatenate([law.n, law.n[::-1]]),
                       y=np.concatenate([law.high, law.low[::-1]]), fill="toself",
                       fillcolor=color, opacity=0.15, line={"width": 0},
                       name=f"{label}: 95% band", legendgroup=label, hoverinfo="skip",
                       showlegend=False),
            row=1, col=col,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=law.n, y=law.loss, mode="lines",
                       name=f"{label}: {law.E:.3g} + {law.A:.3g}·N^-{law.alpha:.3f}",
                       legendgroup=label,
                       line={"color": color, "dash": dash if view.comparison else "dash"}),
            row=1, col=col,
        )  # fmt: skip
    fig.update_layout(
        title="Final validation loss against model size, with fitted L(N) and 95% band"
    )
    return fig


def loss_vs_compute(view: ReportView) -> go.Figure:
    """Loss against training FLOPs per architecture, with the compute frontier: the lowest
    loss reached at or below each budget."""
    archs = architectures(view.studies)
    fig = _loss_panels(archs, "training compute C (FLOPs)", view.drawings[0].loss_unit)
    for i, col, arch, points in _finished_points(view, archs, "flops"):
        (color, dash, symbol), label = style(view, i, arch), view.label(i, arch)
        fig.add_trace(
            _trials_trace(points, "flops", label, color, "C=%{x:.3s} FLOPs", symbol), row=1, col=col
        )
        frontier = points[points.val_loss <= points.val_loss.cummin()]
        fig.add_trace(
            go.Scatter(x=frontier.flops, y=frontier.val_loss, mode="lines",
                       line={"color": color, "shape": "hv", "dash": dash},
                       name=f"{label} frontier", legendgroup=label),
            row=1, col=col,
        )  # fmt: skip
    fig.update_layout(title="Final validation loss against training compute, with the frontier")
    return fig


def isoflop(view: ReportView) -> go.Figure | None:
    """Hoffmann et al.'s Figure 3 for each architecture with an IsoFLOP fit: above, loss against
    N at each compute budget with its parabola in log N and the minimum; below, the minima's
    N_opt against C with the fitted N_opt ∝ C^a."""
    fitted = [(i, d, panel) for i, d in enumerate(view.drawings) for panel in d.isoflop]
    if not fitted:
        return None
    fig = make_subplots(
        rows=2, cols=len(fitted), vertical_spacing=0.14, horizontal_spacing=0.08,
        subplot_titles=[f"{view.label(i, p.arch)}: loss at each FLOP budget" for i, _, p in fitted]
        + [f"{view.label(i, p.arch)}: N_opt against C" for i, _, p in fitted],
    )  # fmt: skip
    for col, (i, drawing, panel) in enumerate(fitted, start=1):
        arch, label = panel.arch, view.label(i, panel.arch)
        for k, budget in enumerate(panel.budgets):
            at, color = budget.points, shade(arch, k, len(panel.budgets))
            name = f"{label} C={budget.c_mid:.2g}"
            fig.add_trace(
                go.Scatter(x=at.n_params, y=at.val_loss, mode="markers", name=name,
                           legendgroup=name, marker={"color": color, "size": 8},
                           text=at.trial_id,
                           hovertemplate="%{text}<br>N=%{x:.3s}<br>loss=%{y:.4f}<extra></extra>"),
                row=1, col=col,
            )  # fmt: skip
            if budget.parabola is None:
                continue
            fig.add_trace(
                go.Scatter(x=budget.n, y=budget.loss, mode="lines", line={"color": color},
                           legendgroup=name, showlegend=False, hoverinfo="skip"),
                row=1, col=col,
            )  # fmt: skip
            fig.add_trace(
                go.Scatter(x=[budget.n_opt], y=[budget.loss_min], mode="markers",
                           marker={"color": color, "size": 14, "symbol": "star"},
                           legendgroup=name, showlegend=False,
                           hovertemplate="N_opt=%{x:.3s}<br>loss=%{y:.4f}<extra></extra>"),
                row=1, col=col,
            )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=panel.c, y=panel.n_opt, mode="markers",
                       marker={"color": "#222", "size": 10}, name=f"{label} N_opt",
                       showlegend=False,
                       hovertemplate="C=%{x:.3g}<br>N_opt=%{y:.3s}<extra></extra>"),
            row=2, col=col,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=panel.line_c, y=panel.line_n, mode="lines",
                       line={"color": "#222", "dash": "dash"}, showlegend=False,
                       name=f"N_opt ∝ C^{panel.a:.2f}", hoverinfo="skip"),
            row=2, col=col,
        )  # fmt: skip
        fig.update_xaxes(type="log", title="non-embedding parameters N", row=1, col=col)
        fig.update_yaxes(type="log", title=_loss_axis(arch, drawing.loss_unit), row=1, col=col)
        fig.update_xaxes(type="log", title="training compute C (FLOPs)", row=2, col=col)
        fig.update_yaxes(type="log", title="loss-optimal N", row=2, col=col)
    fig.update_layout(height=860, legend={"orientation": "h", "y": -0.12},
                      title="IsoFLOP: the loss-optimal size at each compute budget")  # fmt: skip
    return fig


def predictions(view: ReportView) -> go.Figure | None:
    """Each prediction beside its measurement, per architecture: the grid's losses against
    compute, the best of each budget joined, then at each predicted budget the loss predicted
    with its 95% interval and the loss its trial measured."""
    archs = [a for a in architectures(view.studies)
             if any(not d.predictions.empty and a in set(d.predictions.architecture)
                    for d in view.drawings)]  # fmt: skip
    if not archs:
        return None
    fig = _loss_panels(archs, "training compute C (FLOPs)", view.drawings[0].loss_unit)
    for i, drawing in enumerate(view.drawings):
        for col, arch in enumerate(archs, start=1):
            (color, dash, symbol), label = style(view, i, arch), view.label(i, arch)
            points = drawing.finished[drawing.finished.architecture == arch]
            fig.add_trace(
                go.Scatter(x=points.flops, y=points.val_loss, mode="markers", name=f"{label} grid",
                           marker={"color": color, "size": 6, "opacity": 0.35,
                                   "symbol": symbol},
                           text=points.trial_id, legendgroup=label,
                           hovertemplate="%{text}<br>C=%{x:.3g}<br>loss=%{y:.4f}<extra></extra>"),
                row=1, col=col,
            )  # fmt: skip
            rows = drawing.predictions
            rows = rows[rows.architecture == arch] if not rows.empty else rows
            if rows.empty:
                continue
            best = (points.loc[points.groupby(compute_budgets(points.flops)).val_loss.idxmin()]
                    if len(points) else points).sort_values("flops")  # fmt: skip
            fig.add_trace(
                go.Scatter(x=list(best.flops) + list(rows.flops),
                           y=list(best.val_loss) + list(rows.predicted_loss), mode="lines",
                           line={"color": color, "dash": dash if view.comparison else "dot"},
                           name=f"{label} best of each budget, then predicted",
                           legendgroup=label, hoverinfo="skip"),
                row=1, col=col,
            )  # fmt: skip
            low = (rows.predicted_loss - rows.ci_low).fillna(0)
            high = (rows.ci_high - rows.predicted_loss).fillna(0)
            fig.add_trace(
                go.Scatter(x=rows.flops, y=rows.predicted_loss, mode="markers",
                           name=f"{label} predicted (95% interval)", legendgroup=label,
                           marker={"color": color, "size": 12, "symbol": "diamond-open"},
                           error_y={"type": "data", "array": high, "arrayminus": low},
                           text=rows.trial_id,
                           hovertemplate="%{text}<br>C=%{x:.3g}<br>predicted %{y:.4f}"
                           "<extra></extra>"),
                row=1, col=col,
            )  # fmt: skip
            measured = rows[rows.measured_loss.notna()]
            fig.add_trace(
                go.Scatter(x=measured.flops, y=measured.measured_loss, mode="markers",
                           name=f"{label} measured", legendgroup=label,
                           marker={"color": color, "size": 14, "symbol": "star"},
                           text=measured.trial_id,
                           hovertemplate="%{text}<br>C=%{x:.3g}<br>measured %{y:.4f}"
                           "<extra></extra>"),
                row=1, col=col,
            )  # fmt: skip
    fig.update_layout(title="Predicted, then trained: the loss at budgets beyond the grid")
    return fig


def _error_bars(entry: TaskPoint) -> dict | None:
    if entry.ci is None:
        return None
    return {"type": "data", "array": [entry.ci[1] - entry.accuracy],
            "arrayminus": [entry.accuracy - entry.ci[0]]}  # fmt: skip


def task_accuracy(view: ReportView) -> go.Figure | None:
    """Per architecture and task with a two-step fit: accuracy against task loss at every
    checkpoint scored, the sigmoid fitted without the largest model, and that model's accuracy
    as predicted (from its N and D) and as measured (with its interval over the items)."""
    if not view.tasks:
        return None
    cols = min(3, len(view.tasks))
    rows = -(-len(view.tasks) // cols)
    titles = [f"{view.label(p.study, p.arch)}: {p.task}" for p in view.tasks]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, vertical_spacing=0.3 / rows,
                        horizontal_spacing=0.07)  # fmt: skip
    for i, panel in enumerate(view.tasks):
        row, col = i // cols + 1, i % cols + 1
        color, points, first = COLORS.get(panel.arch, "#444"), panel.points, i == 0
        held = points.run == panel.held_out
        for mask, name, symbol in ((~held, "checkpoints of the other runs", "circle"),
                                   (held, "checkpoints of the largest model", "x")):  # fmt: skip
            fig.add_trace(
                go.Scatter(x=points.task_loss[mask], y=points.accuracy[mask], mode="markers",
                           marker={"color": color, "size": 6, "symbol": symbol, "opacity": 0.6},
                           text=points.run[mask], name=name, legendgroup=name, showlegend=first,
                           hovertemplate="%{text}<br>task loss %{x:.3f} bits/byte<br>"
                           "accuracy %{y:.3f}<extra></extra>"),
                row=row, col=col,
            )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=panel.curve[0], y=panel.curve[1], mode="lines",
                       line={"color": "#222"}, name="sigmoid, fitted without the largest model",
                       legendgroup="sigmoid", showlegend=first, hoverinfo="skip"),
            row=row, col=col,
        )  # fmt: skip
        shown = ((panel.predicted, "predicted (95% interval)", "diamond-open"),
                 (panel.measured, "measured (item interval)", "star"))  # fmt: skip
        for entry, what, symbol in shown:
            fig.add_trace(
                go.Scatter(x=[entry.task_loss], y=[entry.accuracy], mode="markers",
                           marker={"color": color, "size": 14, "symbol": symbol},
                           error_y=_error_bars(entry), name=f"largest model, {what}",
                           legendgroup=what, showlegend=first,
                           hovertemplate=what.split()[0] + " %{y:.3f}<extra></extra>"),
                row=row, col=col,
            )  # fmt: skip
        fig.update_xaxes(title="task loss (bits per byte of the answer)", row=row, col=col)
        fig.update_yaxes(title="accuracy", row=row, col=col)
    fig.update_layout(height=360 * rows + 160, legend={"orientation": "h", "y": -0.3 / rows},
                      title="Accuracy from task loss, the largest model held out")  # fmt: skip
    return fig


def lr_sweep(view: ReportView) -> go.Figure | None:
    """Loss against the peak learning rate, one line per size and budget (seeds averaged), the
    best rate of each marked: where a study sweeps learning rates."""
    archs = architectures(view.studies)
    cells = ["architecture", "n_params", "tokens"]
    swept = [i for i, d in enumerate(view.drawings)
             if d.finished.groupby(cells).lr.nunique().max() > 1]  # fmt: skip
    if not swept:
        return None
    fig = _panels([f"{a}: loss against learning rate" for a in archs])
    for i in swept:
        drawing = view.drawings[i]
        _, dash, symbol = style(view, i, archs[0])  # the study's dash and marker
        for col, arch in enumerate(archs, start=1):
            rows = drawing.finished[drawing.finished.architecture == arch]
            mean = rows.groupby(
                ["n_params", "size", "tokens", "lr"], as_index=False
            ).val_loss.mean()
            cells = mean.groupby(["n_params", "size", "tokens"])
            for k, ((_, size, tokens), cell) in enumerate(cells):
                name = f"{view.label(i, arch)} {size} {tokens:,.0f} tokens"
                color = shade(arch, k, cells.ngroups)
                best = cell.loc[cell.val_loss.idxmin()]
                fig.add_trace(
                    go.Scatter(x=cell.lr, y=cell.val_loss, mode="lines+markers", name=name,
                               line={"color": color, "dash": dash}, marker={"symbol": symbol}),
                    row=1, col=col,
                )  # fmt: skip
                fig.add_trace(
                    go.Scatter(x=[best.lr], y=[best.val_loss], mode="markers",
                               marker={"color": color, "size": 14, "symbol": "star"},
                               showlegend=False, hoverinfo="skip"),
                    row=1, col=col,
                )  # fmt: skip
            fig.update_xaxes(type="log", title="peak learning rate", row=1, col=col)
            fig.update_yaxes(title=_loss_axis(arch, drawing.loss_unit), row=1, col=col)
    fig.update_layout(
        title="The learning-rate sweep: each cell's best rate (a star) feeds the laws"
    )
    return fig


def _thin(points: pd.DataFrame) -> pd.DataFrame:
    if len(points) <= MAX_CURVE_POINTS:
        return points
    keep = np.unique(np.linspace(0, len(points) - 1, MAX_CURVE_POINTS).astype(int))
    return points.iloc[keep]


def curves(view: ReportView) -> go.Figure | None:
    """Training and validation curves of one study, one row per architecture (none in a
    comparison)."""
    if view.comparison:
        return None
    study = view.studies[0]
    archs = architectures([study])
    titles = [f"{a}: {kind} loss" for a in archs for kind in ("training", "validation")]
    fig = make_subplots(rows=len(archs), cols=2, subplot_titles=titles,
                        vertical_spacing=0.3 / len(archs))  # fmt: skip
    groups = dict(tuple(study.metrics.groupby(["trial_id", "name"]))) if len(study.metrics) else {}
    for row, arch in enumerate(archs, start=1):
        mine = study.trials[study.trials.architecture == arch]
        ids = list(mine.sort_values(["n_params", "trial_id"]).trial_id)
        for i, trial_id in enumerate(ids):
            color = shade(arch, i, len(ids))  # the architecture's colour, darker when smaller
            for col, name in ((1, "train_loss"), (2, "val_loss")):
                points = groups.get((trial_id, name))
                if points is None:
                    continue
                points = _thin(points)
                fig.add_trace(
                    go.Scatter(x=points.tokens, y=points.value,
                               mode="lines+markers" if col == 2 else "lines", name=trial_id,
                               legendgroup=trial_id, showlegend=col == 1, line={"color": color}),
                    row=row, col=col,
                )  # fmt: skip
        for col in (1, 2):
            fig.update_yaxes(type="log", title=_loss_axis(arch, NATS), row=row, col=col)
    fig.update_xaxes(type="log")
    for col in (1, 2):
        fig.update_xaxes(title="training tokens seen", row=len(archs), col=col)
    fig.update_layout(title=f"Training curves of {study.name}", height=max(480, 380 * len(archs)))
    return fig


def zero_shot(view: ReportView) -> go.Figure | None:
    """Accuracy against N per task: one line per architecture (and study) with 95% intervals,
    the chance level and the n-gram floor."""
    studies = view.studies
    frames = [v.evals[v.evals.metric == "acc"] for v in studies if len(v.evals)]
    if not frames or all(f.empty for f in frames):
        return None
    tasks = sorted(set().union(*(set(f.task) for f in frames)))
    likelihood = any((v.evals.metric == "bits_per_byte").any() for v in studies if len(v.evals))
    titles = tasks + (["held-out likelihood (lower is better)"] if likelihood else [])
    fig = _panels(titles, height=460, log_n=True)
    dodges = _dodges(studies)
    for i, study in enumerate(studies):
        if study.evals.empty:
            continue
        acc = study.evals[study.evals.metric == "acc"]
        if likelihood:
            bpb = study.evals[study.evals.metric == "bits_per_byte"]
            for arch, points in bpb.groupby("architecture"):
                (color, dash, _), label = style(view, i, arch), view.label(i, arch)
                points = points.sort_values("n_params")
                fig.add_trace(
                    go.Scatter(x=points.n_params, y=points.value, mode="lines+markers",
                               name=label, legendgroup=label, showlegend=False,
                               line={"color": color, "dash": dash}, text=points.trial_id),
                    row=1, col=len(titles),
                )  # fmt: skip
        for col, task in enumerate(tasks, start=1):
            _task_traces(fig, view, i, acc, task, col, dodges=dodges)
    fig.update_yaxes(title="zero-shot accuracy (fraction correct)", row=1, col=1)
    if likelihood:
        fig.update_yaxes(title="held-out bits per byte", row=1, col=len(titles))
    fig.update_layout(
        title="Zero-shot accuracy against model size (95% intervals; the same items for all)"
    )
    return fig


def zero_shot_loss(view: ReportView) -> go.Figure | None:
    """Task loss against N per task: bits per byte of the right answer given its context
    (lower is better; the task loss of Bhagia et al. 2024), one line per architecture with its
    95% interval over the items, and the n-gram floor. It moves with N where accuracy is still
    at chance."""
    studies = view.studies
    frames = [v.evals[v.evals.metric == TASK_LOSS] for v in studies if len(v.evals)]
    if not frames or all(f.empty for f in frames):
        return None
    tasks = sorted(set().union(*(set(f.task) for f in frames)))
    fig = _panels(tasks, height=460, log_n=True)
    dodges = _dodges(studies)
    for i, study in enumerate(studies):
        if not study.evals.empty:
            loss = study.evals[study.evals.metric == TASK_LOSS]
            for col, task in enumerate(tasks, start=1):
                _task_traces(fig, view, i, loss, task, col, dodges=dodges, what="task loss")
    fig.update_yaxes(title="task loss (bits per byte of the answer)", row=1, col=1)
    fig.update_layout(title="Zero-shot task loss against model size (lower is better; 95% "
                      "intervals; the same items for all)")  # fmt: skip
    return fig


def _dodges(studies: list[StudyView]) -> dict[tuple[int, str], float]:
    """Each (study, architecture)'s factor on N in the zero-shot panels (`dodge_factors`)."""
    series = [(i, arch) for i, v in enumerate(studies) if len(v.evals)
              for arch in architectures([v]) if arch in set(v.evals.architecture)]  # fmt: skip
    ladders = [studies[i].evals.n_params[studies[i].evals.architecture == arch].dropna()
               for i, arch in series]  # fmt: skip
    return dict(zip(series, dodge_factors(ladders), strict=True))


def dodge_factors(ladders: list[pd.Series]) -> list[float]:
    """The factors on N of series drawn at about the same sizes (their `ladders` of N):
    centred on the true N, spread over half the narrowest gap between one series' sizes (at
    most `MAX_DODGE` decades apart), so their error bars stand side by side."""
    m = len(ladders)
    gaps = [np.diff(np.unique(np.log10(n.to_numpy(float)))) for n in ladders]
    gaps = np.concatenate([[np.inf], *gaps])
    step = min(gaps.min() / (2 * m), MAX_DODGE) if np.isfinite(gaps.min()) else np.log10(1.06)
    return [float(10 ** (step * (k - (m - 1) / 2))) for k in range(m)]


def _task_traces(fig: go.Figure, view: ReportView, i: int, acc: pd.DataFrame, task: str,
                 col: int, *, dodges: dict[tuple[int, str], float],
                 what: str = "accuracy") -> None:  # fmt: skip
    """One task's panel of the zero-shot figure, for the `i`-th study: its trials by
    architecture, each moved by its factor in `dodges` (the hover says the true N), and the
    chance level, the reference models and the n-gram floor as lines the legend names (a
    label on the panel would sit on the data)."""
    study = view.studies[i]
    rows = acc[(acc.task == task) & acc.trial_id.notna()]  # the trials, not baselines
    for arch, points in rows.groupby("architecture"):
        (color, dash, _), label = style(view, i, arch), view.label(i, arch)
        points = points.sort_values("n_params")
        fig.add_trace(
            go.Scatter(x=points.n_params * dodges.get((i, arch), 1.0), y=points.value,
                       error_y={"type": "data", "symmetric": False, "width": 2,
                                "array": points.ci_high - points.value,
                                "arrayminus": points.value - points.ci_low},
                       mode="lines+markers", name=label, legendgroup=label,
                       showlegend=col == 1, line={"color": color, "dash": dash},
                       text=points.trial_id,
                       customdata=points[["n_params", "ci_low", "ci_high"]].to_numpy(float),
                       hovertemplate="%{text}<br>N=%{customdata[0]:,.0f}<br>" + what +
                                     " %{y:.3f}"
                                     " (95%: %{customdata[1]:.3f} to %{customdata[2]:.3f})"),
            row=1, col=col,
        )  # fmt: skip
    task_rows = acc[acc.task == task]
    span = acc.n_params.dropna()
    ends = [span.min() / 1.5, span.max() * 1.5] if len(span) else [1e3, 1e9]
    chance = task_rows.chance.dropna()
    if i == 0 and not chance.empty:
        _level(fig, "chance", float(chance.iloc[0]), ends, col,
               line={"dash": "dot", "color": "#999"})  # fmt: skip
    references = task_rows[task_rows.architecture.str.startswith("ref:")]
    for k, ref in enumerate(references.itertuples()):  # a line each, named in the legend
        name = f"reference {ref.architecture.removeprefix('ref:')}"
        name += f" ({study.name})" if view.comparison else ""
        _level(fig, name, ref.value, ends, col,
               line={"dash": "dashdot", "width": 2,
                     "color": REFERENCE_COLORS[k % len(REFERENCE_COLORS)]})  # fmt: skip
    floor = task_rows[task_rows.architecture == "ngram"]
    if not floor.empty:
        name = f"trigram ({study.name})" if view.comparison else "trigram"
        _level(fig, name, float(floor.value.iloc[0]), ends, col,
               line={"dash": "dash", "color": "#444"})  # fmt: skip


def _level(fig: go.Figure, name: str, y: float, ends: list[float], col: int, *,
           line: dict) -> None:  # fmt: skip
    """A horizontal line across a panel, named once in the legend and by its hover."""
    named = any(t.name == name and t.showlegend is not False for t in fig.data)
    fig.add_trace(
        go.Scatter(x=ends, y=[y] * 2, mode="lines", name=name, legendgroup=name,
                   showlegend=not named, line=line,
                   hovertemplate=f"{html.escape(name)}: %{{y:.3f}}<extra></extra>"),
        row=1, col=col,
    )  # fmt: skip


def tidy_log_axes(fig: go.Figure) -> go.Figure:
    """Tick labels on every log x axis that cannot collide: 1, 2 and 5 of each decade over a
    span of up to 2.5 decades, the decades alone over more (plotly's own choice labels every
    digit of a decade, and its labels run into each other)."""
    spans: dict[str, list[float]] = {}
    for trace in fig.data:
        x = getattr(trace, "x", None)
        x = np.asarray([] if x is None else x, dtype=float)
        x = x[np.isfinite(x) & (x > 0)]
        if len(x):
            spans.setdefault(trace.xaxis or "x", []).extend([x.min(), x.max()])
    for axis, values in spans.items():
        name = "xaxis" + axis[1:]
        if fig.layout[name].type == "log":
            decades = np.log10(max(values) / min(values))
            fig.layout[name].dtick = "D2" if decades <= 2.5 else 1
    return fig


def figure_html(fig: go.Figure, with_plotly: bool = False) -> str:
    """A figure as a fragment of the page; the first carries plotly.js, inlined (the report
    opens offline)."""
    return tidy_log_axes(fig).to_html(full_html=False, include_plotlyjs=with_plotly)
