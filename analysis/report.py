"""The comparison report: one self-contained HTML file (plotly inlined) that opens offline.

One study gives its full report; several (`study report A.db B.db`) share every axis, one colour
per study. Every name that comes from a study (its name, trial ids, errors) is escaped."""

from __future__ import annotations

import colorsys
import html
import os
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.cards import file_name, write_cards
from analysis.fits import estimate_text, fit_warnings
from analysis.laws import compute_budgets
from analysis.tasklaw import sigmoid, task_lines
from trainers.architectures import ARCHITECTURES

COLORS = {name: a.color for name, a in ARCHITECTURES.items()}  # one colour per architecture
STUDY_DASHES = ["solid", "dash", "dot", "dashdot", "longdash"]  # in a comparison, per study
STUDY_SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross"]
OBJECTIVES = {name: a.objective for name, a in ARCHITECTURES.items()}
# where a line's label sits: chance at the bottom left, each study's trigram elsewhere
FLOOR_LABELS = ["top right", "bottom right", "top left", "top right"]
REFERENCE_COLORS = ["#7f4f24", "#6a3d9a", "#b15928", "#555555"]  # no architecture's colour
MAX_CURVE_POINTS = 300  # per trial and curve: a long run's every step would bloat the file


@dataclass
class StudyView:
    """What the report draws of one study."""

    name: str
    trials: pd.DataFrame
    metrics: pd.DataFrame
    fits: dict[str, dict[str, dict]]  # architecture -> law -> result (fits.fit_study)
    evals: pd.DataFrame = field(default_factory=pd.DataFrame)
    trends: dict = field(default_factory=dict)
    data: dict | None = None  # the splits and tokenizer (Study.data)
    cards: dict[str, str] = field(default_factory=dict)  # trial id -> relative link
    outdated: list[str] = field(default_factory=list)  # measured under other eval settings
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)  # store.predictions_frame
    task_points: pd.DataFrame = field(default_factory=pd.DataFrame)  # store.task_points
    tasks: dict = field(default_factory=dict)  # tasklaw.study_task_fits
    configs: dict[str, dict] = field(default_factory=dict)  # trial id -> its TrialSpec dict
    loss_unit: str = "nats/token"  # what its figures draw a loss in (in_bits_per_byte)
    partial: str = ""  # while the study trains: how far it is (the report says it is partial)
    stopped: str = ""  # a partial report's run stopped before the end: why
    new_cards_only: bool = False  # a partial report writes the cards of newly finished trials


def _esc(text) -> str:
    return html.escape(str(text))


def _architectures(views: list[StudyView]) -> list[str]:
    present = set().union(*(set(v.trials.architecture) for v in views))
    return [a for a in ARCHITECTURES if a in present] + sorted(present - set(ARCHITECTURES))


def _loss_axis(arch: str, unit: str = "nats/token") -> str:
    return f"{OBJECTIVES.get(arch, '?')} loss ({unit})"


def tokens_per_byte(view: StudyView) -> float | None:
    """Validation tokens per UTF-8 byte of validation text (<eos> included), where the store
    recorded the bytes."""
    data = view.data or {}
    tokens = data.get("tokens", {}).get("validation")
    size = data.get("bytes", {}).get("validation")
    return tokens / size if tokens and size else None


def _tokenizers(views: list[StudyView]) -> str:
    return "; ".join(f"{v.name}: {(v.data or {}).get('tokenizer', '?')}, "
                     f"{(v.data or {}).get('vocab_size', '?')} tokens" for v in views)  # fmt: skip


def _same_names(views: list[StudyView]) -> bool:
    return len({(v.data or {}).get("tokenizer") for v in views}) == 1


def _tokenized_alike(views: list[StudyView]) -> bool:
    """One tokenizer for all: the same name and, where the stores know it, the same tokens
    per byte (two `bpe:2048` studies on different corpora have different tokens)."""
    if len({(v.data or {}).get("tokenizer") for v in views}) > 1:
        return False
    ratios = [r for r in map(tokens_per_byte, views) if r is not None]
    return not ratios or max(ratios) / min(ratios) < 1.005


class _Scaled:
    """A fitted law drawn in other units: its predictions and band times `factor` (E and A
    scale with the loss; the exponents do not)."""

    def __init__(self, fit, factor: float):
        self.fit, self.factor = fit, factor
        self.params = {k: v * factor if k in ("E", "A", "B") else v for k, v in fit.params.items()}

    def predict(self, **variables):
        return self.fit.predict(**variables) * self.factor

    def band(self, **variables):
        low, high = self.fit.band(**variables)
        return low * self.factor, high * self.factor


def in_bits_per_byte(view: StudyView) -> StudyView:
    """The view with every loss per token turned into bits per byte of text: times tokens per
    byte, over ln 2 (the figures draw it; the stored fits and the tables keep nats/token)."""
    factor = tokens_per_byte(view) / np.log(2)
    trials = view.trials.assign(val_loss=view.trials.val_loss * factor)
    metrics = view.metrics.copy()
    if len(metrics):
        losses = metrics.name.isin(["train_loss", "val_loss"])
        metrics.loc[losses, "value"] = metrics.value[losses] * factor
    predictions = view.predictions.copy()
    for column in ("predicted_loss", "ci_low", "ci_high", "measured_loss"):
        if column in predictions:
            predictions[column] = predictions[column] * factor
    fits = {}
    for arch, laws in view.fits.items():
        fits[arch] = dict(laws)
        if "fit" in laws.get("n", {}):
            fits[arch]["n"] = laws["n"] | {"fit": _Scaled(laws["n"]["fit"], factor)}
        if "budgets" in laws.get("isoflop", {}):
            budgets = [m | {"parabola": np.asarray(m["parabola"]) * factor,
                            "loss_min": m["loss_min"] * factor} if "parabola" in m else m
                       for m in laws["isoflop"]["budgets"]]  # fmt: skip
            fits[arch]["isoflop"] = laws["isoflop"] | {"budgets": budgets}
    return replace(view, trials=trials, metrics=metrics, predictions=predictions, fits=fits,
                   loss_unit="bits/byte")  # fmt: skip


def _units_caveat(views: list[StudyView]) -> str:
    """Above the loss panels of a comparison whose studies were tokenized differently."""
    if _tokenized_alike(views):
        return ""
    unknown = [v.name for v in views if tokens_per_byte(v) is None]
    said = (f"These studies were tokenized differently ({_esc(_tokenizers(views))}"
            f"{'; the tokenizers were trained on different text' if _same_names(views) else ''}"
            "), so a loss per token does not compare across them")  # fmt: skip
    if unknown:
        return (f'<p class="caveat">{said}; the panels stay in nats per token, as the stores of '
                f"{_esc(', '.join(unknown))} predate the record of bytes per split (run "
                "<code>study run</code> on them once more to record it).</p>")  # fmt: skip
    ratios = ", ".join(f"{_esc(v.name)} {tokens_per_byte(v):.3f}" for v in views)
    return (f'<p class="caveat">{said}: the loss panels are drawn in bits per byte of '
            f"validation text (nats per token × tokens per byte ÷ ln 2; tokens per byte: "
            f"{ratios}). For the encoder and the encoder-decoder these are bits per byte of the "
            "text they predict (the masked tokens; the spans with their sentinels), at the "
            "split's average tokens per byte. The fitted laws' E, A and B in the tables, and "
            "the trial tables, stay in nats per token.</p>")  # fmt: skip


def shade(arch: str, k: int, n: int) -> str:
    """The `k`-th of `n` shades of an architecture's colour, dark to light: sizes (or budgets,
    or studies) within one architecture."""
    base = COLORS.get(arch, "#555555").lstrip("#")
    h, lightness, sat = colorsys.rgb_to_hls(*(int(base[i : i + 2], 16) / 255 for i in (0, 2, 4)))
    if n > 1:
        lightness = 0.22 + 0.5 * k / (n - 1)
    r, g, b = colorsys.hls_to_rgb(h, lightness, sat)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _style(views: list[StudyView], i: int, arch: str) -> tuple[str, str, str]:
    """Colour, dash and marker of an architecture in a study: the colour is always the
    architecture's; in a comparison each study has its own dash and marker."""
    if len(views) == 1:
        return COLORS.get(arch, "#555"), "solid", "circle"
    return (COLORS.get(arch, "#555"), STUDY_DASHES[i % len(STUDY_DASHES)],
            STUDY_SYMBOLS[i % len(STUDY_SYMBOLS)])  # fmt: skip


def _label(views: list[StudyView], view: StudyView, arch: str) -> str:
    return arch if len(views) == 1 else f"{view.name}: {arch}"


def _finished(trials: pd.DataFrame) -> pd.DataFrame:
    """The finished trials of the grid: the laws' points (a trial that verifies a prediction
    is drawn with its prediction)."""
    grid = ~trials.verifies.astype(bool) if "verifies" in trials else True
    return trials[(trials.status == "finished") & trials.val_loss.notna() & grid]


def _panels(titles: list[str], height: int = 480) -> go.Figure:
    fig = make_subplots(
        rows=1, cols=max(1, len(titles)), subplot_titles=titles, horizontal_spacing=0.08
    )
    fig.update_layout(height=height, legend={"orientation": "h", "y": -0.25})
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


def _finished_points(views: list[StudyView], archs: list[str], x: str):
    """Per study and architecture with finished trials: (view, panel column, architecture,
    its points sorted by `x`, (colour, dash, marker), label)."""
    for i, view in enumerate(views):
        finished = _finished(view.trials)
        for col, arch in enumerate(archs, start=1):
            points = finished[finished.architecture == arch].sort_values(x)
            if not points.empty:
                yield view, col, arch, points, _style(views, i, arch), _label(views, view, arch)


def _loss_vs_n(views: list[StudyView]) -> go.Figure:
    """One panel per architecture (each objective's loss has its own axis): the trials, the
    fitted L(N) and its 95% bootstrap band."""
    archs = _architectures(views)
    fig = _loss_panels(archs, "non-embedding parameters N", views[0].loss_unit)
    for view, col, arch, points, style, label in _finished_points(views, archs, "n_params"):
        color, dash, symbol = style
        fig.add_trace(_trials_trace(points, "n_params", label, color, "N=%{x:.3s}", symbol),
                      row=1, col=col)  # fmt: skip
        fit = view.fits.get(arch, {}).get("n", {}).get("fit")
        if fit is None:
            continue
        n = np.logspace(
            np.log10(points.n_params.min() / 1.5), np.log10(points.n_params.max() * 3), 60
        )
        low, high = fit.band(N=n)
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([n, n[::-1]]),
                y=np.concatenate([high, low[::-1]]),
                fill="toself",
                fillcolor=color,
                opacity=0.15,
                line={"width": 0},
                name=f"{label}: 95% band",
                legendgroup=label,
                hoverinfo="skip",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        p = fit.params
        fig.add_trace(
            go.Scatter(
                x=n,
                y=fit.predict(N=n),
                mode="lines",
                name=f"{label}: {p['E']:.3g} + {p['A']:.3g}·N^-{p['alpha']:.3f}",
                legendgroup=label,
                line={"color": color, "dash": "dash" if len(views) == 1 else dash},
            ),
            row=1,
            col=col,
        )
    fig.update_layout(
        title="Final validation loss against model size, with fitted L(N) and 95% band"
    )
    return fig


def _loss_vs_compute(views: list[StudyView]) -> go.Figure:
    """Loss against training FLOPs per architecture, with the compute frontier: the lowest
    loss reached at or below each budget."""
    archs = _architectures(views)
    fig = _loss_panels(archs, "training compute C (FLOPs)", views[0].loss_unit)
    for _, col, _, points, (color, dash, symbol), label in _finished_points(views, archs, "flops"):
        fig.add_trace(
            _trials_trace(points, "flops", label, color, "C=%{x:.3s} FLOPs", symbol), row=1, col=col
        )
        frontier = points[points.val_loss <= points.val_loss.cummin()]
        fig.add_trace(
            go.Scatter(
                x=frontier.flops,
                y=frontier.val_loss,
                mode="lines",
                line={"color": color, "shape": "hv", "dash": dash},
                name=f"{label} frontier",
                legendgroup=label,
            ),
            row=1,
            col=col,
        )
    fig.update_layout(title="Final validation loss against training compute, with the frontier")
    return fig


def _isoflop(views: list[StudyView]) -> go.Figure | None:
    """Hoffmann et al.'s Figure 3 for each architecture with an IsoFLOP fit: above, loss against
    N at each compute budget with its parabola in log N and the minimum; below, the minima's
    N_opt against C with the fitted N_opt ∝ C^a."""
    fitted = [(i, view, arch, result)
              for i, view in enumerate(views)
              for arch, laws in sorted(view.fits.items())
              if "params" in (result := laws.get("isoflop", {}))]  # fmt: skip
    if not fitted:
        return None
    fig = make_subplots(
        rows=2, cols=len(fitted), vertical_spacing=0.14, horizontal_spacing=0.08,
        subplot_titles=[f"{_label(views, v, a)}: loss at each FLOP budget" for _, v, a, _ in fitted]
        + [f"{_label(views, v, a)}: N_opt against C" for _, v, a, _ in fitted],
    )  # fmt: skip
    for col, (_i, view, arch, result) in enumerate(fitted, start=1):
        points = _finished(view.trials)
        points = points[points.architecture == arch]
        budget = compute_budgets(points.flops)
        labels = np.unique(budget)
        for k, label in enumerate(labels):
            at = points[budget == label].sort_values("n_params")
            c_mid = float(np.exp(np.mean(np.log(at.flops))))
            color = shade(arch, k, len(labels))
            name = f"{_label(views, view, arch)} C={c_mid:.2g}"
            fig.add_trace(
                go.Scatter(x=at.n_params, y=at.val_loss, mode="markers", name=name,
                           legendgroup=name, marker={"color": color, "size": 8},
                           text=at.trial_id,
                           hovertemplate="%{text}<br>N=%{x:.3s}<br>loss=%{y:.4f}<extra></extra>"),
                row=1, col=col,
            )  # fmt: skip
            minimum = next(
                (m for m in result["budgets"] if abs(np.log(m["C"] / c_mid)) < 0.2), None
            )
            if minimum is None or "parabola" not in minimum:
                continue
            n = np.exp(np.linspace(np.log(at.n_params.min()), np.log(at.n_params.max()), 50))
            fig.add_trace(
                go.Scatter(x=n, y=np.polyval(minimum["parabola"], np.log(n)), mode="lines",
                           line={"color": color}, legendgroup=name, showlegend=False,
                           hoverinfo="skip"),
                row=1, col=col,
            )  # fmt: skip
            fig.add_trace(
                go.Scatter(x=[minimum["N_opt"]], y=[minimum["loss_min"]], mode="markers",
                           marker={"color": color, "size": 14, "symbol": "star"},
                           legendgroup=name, showlegend=False,
                           hovertemplate="N_opt=%{x:.3s}<br>loss=%{y:.4f}<extra></extra>"),
                row=1, col=col,
            )  # fmt: skip
        minima = result["budgets"]
        c = np.array([m["C"] for m in minima])
        n_opt = np.array([m["N_opt"] for m in minima])
        a = result["params"]["a"]["estimate"]
        intercept = float(np.mean(np.log(n_opt) - a * np.log(c)))
        line_c = np.logspace(np.log10(c.min() / 2), np.log10(c.max() * 4), 20)
        fig.add_trace(
            go.Scatter(x=c, y=n_opt, mode="markers", marker={"color": "#222", "size": 10},
                       name=f"{_label(views, view, arch)} N_opt", showlegend=False,
                       hovertemplate="C=%{x:.3g}<br>N_opt=%{y:.3s}<extra></extra>"),
            row=2, col=col,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=line_c, y=np.exp(intercept + a * np.log(line_c)), mode="lines",
                       line={"color": "#222", "dash": "dash"}, showlegend=False,
                       name=f"N_opt ∝ C^{a:.2f}", hoverinfo="skip"),
            row=2, col=col,
        )  # fmt: skip
        fig.update_xaxes(type="log", title="non-embedding parameters N", row=1, col=col)
        fig.update_yaxes(type="log", title=_loss_axis(arch, view.loss_unit), row=1, col=col)
        fig.update_xaxes(type="log", title="training compute C (FLOPs)", row=2, col=col)
        fig.update_yaxes(type="log", title="loss-optimal N", row=2, col=col)
    fig.update_layout(height=860, legend={"orientation": "h", "y": -0.12},
                      title="IsoFLOP: the loss-optimal size at each compute budget")  # fmt: skip
    return fig


def _predictions(views: list[StudyView]) -> go.Figure | None:
    """Each prediction beside its measurement, per architecture: the grid's losses against
    compute, the best of each budget joined, then at each predicted budget the loss predicted
    with its 95% interval and the loss its trial measured."""
    archs = [a for a in _architectures(views)
             if any(not v.predictions.empty and a in set(v.predictions.architecture)
                    for v in views)]  # fmt: skip
    if not archs:
        return None
    fig = _loss_panels(archs, "training compute C (FLOPs)", views[0].loss_unit)
    for i, view in enumerate(views):
        for col, arch in enumerate(archs, start=1):
            color, dash, symbol = _style(views, i, arch)
            label = _label(views, view, arch)
            points = _finished(view.trials)
            points = points[points.architecture == arch]
            best = (
                points.loc[points.groupby(compute_budgets(points.flops)).val_loss.idxmin()]
                if len(points)
                else points
            )
            fig.add_trace(
                go.Scatter(x=points.flops, y=points.val_loss, mode="markers", name=f"{label} grid",
                           marker={"color": color, "size": 6, "opacity": 0.35,
                                   "symbol": symbol},
                           text=points.trial_id, legendgroup=label,
                           hovertemplate="%{text}<br>C=%{x:.3g}<br>loss=%{y:.4f}<extra></extra>"),
                row=1, col=col,
            )  # fmt: skip
            rows = (
                view.predictions[view.predictions.architecture == arch]
                if not view.predictions.empty
                else view.predictions
            )
            if rows.empty:
                continue
            best = best.sort_values("flops")
            x = list(best.flops) + list(rows.flops)
            y = list(best.val_loss) + list(rows.predicted_loss)
            fig.add_trace(
                go.Scatter(x=x, y=y, mode="lines",
                           line={"color": color, "dash": "dot" if len(views) == 1 else dash},
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


def _predictions_table(views: list[StudyView]) -> str:
    rows = []
    for view in views:
        for p in view.predictions.itertuples():
            row = {"study": view.name} if len(views) > 1 else {}
            interval = (f"[{p.ci_low:.4g}, {p.ci_high:.4g}]"
                        if pd.notna(p.ci_low) and pd.notna(p.ci_high) else "none")  # fmt: skip
            measured = pd.notna(p.measured_loss)
            inside = pd.notna(p.ci_low) and measured and p.ci_low <= p.measured_loss <= p.ci_high
            rows.append(row | {
                "architecture": p.architecture,
                "FLOPs": f"{p.flops:.3g}",
                "N_opt (from)": f"{p.n_opt:.3g} ({p.n_opt_from})",
                "D_opt": f"{d_opt:.3g}" if pd.notna(d_opt := getattr(p, "d_opt", None)) else "",
                "trial": p.trial_id,
                "N": f"{int(p.n_params):,}",
                "tokens": f"{int(p.tokens):,}",
                "predicted": f"{p.predicted_loss:.4g}",
                "95% interval": interval,
                "measured": f"{p.measured_loss:.4g}" if measured else "not trained yet",
                "error": f"{p.error:+.2%}" if measured else "",
                "in the interval": ("yes" if inside else "no") if measured else "",
            })  # fmt: skip
    return _table(pd.DataFrame(rows)) if rows else ""


def prediction_summary(predictions: pd.DataFrame) -> list[str]:
    """One sentence per prediction, for the report's summary and the terminal."""
    out = []
    for p in predictions.itertuples():
        text = (f"{p.architecture} at {p.flops:.3g} FLOPs: predicted {p.predicted_loss:.4g}"
                + (f" [{p.ci_low:.4g}, {p.ci_high:.4g}]" if pd.notna(p.ci_low) else
                   " (no interval)")
                + f" for {p.trial_id} (stored before it trained)")  # fmt: skip
        if pd.notna(p.measured_loss):
            text += f"; measured {p.measured_loss:.4g}, error {p.error:+.2%}"
        else:
            text += "; not trained yet"
        out.append(text + ".")
    return out


def _fitted_tasks(views: list[StudyView]):
    return [(view, arch, task, r)
            for view in views
            for arch, result in sorted(view.tasks.items())
            for task, r in result["tasks"].items() if "error" not in r]  # fmt: skip


def _task_accuracy(views: list[StudyView]) -> go.Figure | None:
    """Per architecture and task with a two-step fit: accuracy against task loss at every
    checkpoint scored, the sigmoid fitted without the largest model, and that model's accuracy
    as predicted (from its N and D) and as measured (with its interval over the items)."""
    fitted = _fitted_tasks(views)
    if not fitted:
        return None
    cols = min(3, len(fitted))
    rows = -(-len(fitted) // cols)
    titles = [f"{_label(views, v, a)}: {t}" for v, a, t, _ in fitted]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, vertical_spacing=0.3 / rows,
                        horizontal_spacing=0.07)  # fmt: skip
    for i, (view, arch, task, r) in enumerate(fitted):
        row, col = i // cols + 1, i % cols + 1
        color = COLORS.get(arch, "#444")
        points = view.task_points
        points = points[(points.architecture == arch) & (points.task == task)]
        held = points.run == r["held_out"]
        first = i == 0
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
        p = {k: v["estimate"] for k, v in r["step2"]["params"].items()}
        span = np.linspace(points.task_loss.min() * 0.9, points.task_loss.max() * 1.05, 80)
        fig.add_trace(
            go.Scatter(x=span, y=sigmoid(span, p["a"], p["b"], p["k"], p["L0"]), mode="lines",
                       line={"color": "#222"}, name="sigmoid, fitted without the largest model",
                       legendgroup="sigmoid", showlegend=first, hoverinfo="skip"),
            row=row, col=col,
        )  # fmt: skip
        predicted, measured = r["accuracy"], r["measured"]

        def bars(entry):
            ci = entry.get("ci")
            est = entry["estimate"]
            return (
                {"type": "data", "array": [ci[1] - est], "arrayminus": [est - ci[0]]}
                if ci
                else None
            )

        shown = (
            (r["task_loss"]["estimate"], predicted, "predicted (95% interval)", "diamond-open"),
            (r["measured_task_loss"], measured, "measured (item interval)", "star"),
        )
        for x, entry, what, symbol in shown:
            fig.add_trace(
                go.Scatter(x=[x], y=[entry["estimate"]], mode="markers",
                           marker={"color": color, "size": 14, "symbol": symbol},
                           error_y=bars(entry), name=f"largest model, {what}", legendgroup=what,
                           showlegend=first,
                           hovertemplate=what.split()[0] + " %{y:.3f}<extra></extra>"),
                row=row, col=col,
            )  # fmt: skip
        fig.update_xaxes(title="task loss (bits per byte of the answer)", row=row, col=col)
        fig.update_yaxes(title="accuracy", row=row, col=col)
    fig.update_layout(height=360 * rows + 160, legend={"orientation": "h", "y": -0.3 / rows},
                      title="Accuracy from task loss, the largest model held out")  # fmt: skip
    return fig


def _lr_sweep(views: list[StudyView]) -> go.Figure | None:
    """Loss against the peak learning rate, one line per size and budget (seeds averaged), the
    best rate of each marked: where a study sweeps learning rates."""
    archs = _architectures(views)
    swept = [v for v in views if _finished(v.trials).groupby(["architecture", "n_params", "tokens"])
             .lr.nunique().max() > 1]  # fmt: skip
    if not swept:
        return None
    fig = _panels([f"{a}: loss against learning rate" for a in archs])
    for view in swept:
        _, dash, symbol = _style(views, views.index(view), archs[0])  # the study's dash, marker
        finished = _finished(view.trials)
        for col, arch in enumerate(archs, start=1):
            rows = finished[finished.architecture == arch]
            mean = rows.groupby(
                ["n_params", "size", "tokens", "lr"], as_index=False
            ).val_loss.mean()
            cells = mean.groupby(["n_params", "size", "tokens"])
            for k, ((_, size, tokens), cell) in enumerate(cells):
                name = f"{_label(views, view, arch)} {size} {tokens:,.0f} tokens"
                color = shade(arch, k, cells.ngroups)
                best = cell.loc[cell.val_loss.idxmin()]
                fig.add_trace(
                    go.Scatter(
                        x=cell.lr,
                        y=cell.val_loss,
                        mode="lines+markers",
                        name=name,
                        line={"color": color, "dash": dash},
                        marker={"symbol": symbol},
                    ),
                    row=1,
                    col=col,
                )
                fig.add_trace(
                    go.Scatter(
                        x=[best.lr],
                        y=[best.val_loss],
                        mode="markers",
                        marker={"color": color, "size": 14, "symbol": "star"},
                        showlegend=False,
                        hoverinfo="skip",
                    ),
                    row=1,
                    col=col,
                )
            fig.update_xaxes(type="log", title="peak learning rate", row=1, col=col)
            fig.update_yaxes(title=_loss_axis(arch, view.loss_unit), row=1, col=col)
    fig.update_layout(
        title="The learning-rate sweep: each cell's best rate (a star) feeds the laws"
    )
    return fig


def _thin(points: pd.DataFrame) -> pd.DataFrame:
    if len(points) <= MAX_CURVE_POINTS:
        return points
    keep = np.unique(np.linspace(0, len(points) - 1, MAX_CURVE_POINTS).astype(int))
    return points.iloc[keep]


def _curves(view: StudyView) -> go.Figure:
    """Training and validation curves, one row per architecture."""
    archs = _architectures([view])
    titles = [f"{a}: {kind} loss" for a in archs for kind in ("training", "validation")]
    fig = make_subplots(rows=len(archs), cols=2, subplot_titles=titles,
                        vertical_spacing=0.3 / len(archs))  # fmt: skip
    groups = dict(tuple(view.metrics.groupby(["trial_id", "name"]))) if len(view.metrics) else {}
    for row, arch in enumerate(archs, start=1):
        mine = view.trials[view.trials.architecture == arch]
        ids = list(mine.sort_values(["n_params", "trial_id"]).trial_id)
        for i, trial_id in enumerate(ids):
            color = shade(arch, i, len(ids))  # the architecture's colour, darker when smaller
            for col, name in ((1, "train_loss"), (2, "val_loss")):
                points = groups.get((trial_id, name))
                if points is None:
                    continue
                points = _thin(points)
                fig.add_trace(
                    go.Scatter(
                        x=points.tokens,
                        y=points.value,
                        mode="lines+markers" if col == 2 else "lines",
                        name=trial_id,
                        legendgroup=trial_id,
                        showlegend=col == 1,
                        line={"color": color},
                    ),
                    row=row,
                    col=col,
                )
        for col in (1, 2):
            fig.update_yaxes(type="log", title=_loss_axis(arch, view.loss_unit), row=row, col=col)
    fig.update_xaxes(type="log")
    for col in (1, 2):
        fig.update_xaxes(title="training tokens seen", row=len(archs), col=col)
    fig.update_layout(title=f"Training curves of {view.name}", height=max(480, 380 * len(archs)))
    return fig


def _zero_shot(views: list[StudyView]) -> go.Figure | None:
    """Accuracy against N per task: one line per architecture (and study) with 95% intervals,
    the chance level and the n-gram floor."""
    frames = [v.evals[v.evals.metric == "acc"] for v in views if len(v.evals)]
    if not frames or all(f.empty for f in frames):
        return None
    tasks = sorted(set().union(*(set(f.task) for f in frames)))
    likelihood = any((v.evals.metric == "bits_per_byte").any() for v in views if len(v.evals))
    titles = tasks + (["held-out likelihood (lower is better)"] if likelihood else [])
    fig = _panels(titles, height=460)
    for i, view in enumerate(views):
        if view.evals.empty:
            continue
        acc = view.evals[view.evals.metric == "acc"]
        if likelihood:
            bpb = view.evals[view.evals.metric == "bits_per_byte"]
            for arch, points in bpb.groupby("architecture"):
                color, dash, _ = _style(views, i, arch)
                label = _label(views, view, arch)
                points = points.sort_values("n_params")
                fig.add_trace(
                    go.Scatter(x=points.n_params, y=points.value, mode="lines+markers",
                               name=label, legendgroup=label, showlegend=False,
                               line={"color": color, "dash": dash}, text=points.trial_id),
                    row=1, col=len(titles),
                )  # fmt: skip
        for col, task in enumerate(tasks, start=1):
            rows = acc[(acc.task == task) & acc.trial_id.notna()]  # the trials, not baselines
            for arch, points in rows.groupby("architecture"):
                color, dash, _ = _style(views, i, arch)
                label = _label(views, view, arch)
                points = points.sort_values("n_params")
                fig.add_trace(
                    go.Scatter(
                        x=points.n_params,
                        y=points.value,
                        error_y={
                            "type": "data",
                            "symmetric": False,
                            "array": points.ci_high - points.value,
                            "arrayminus": points.value - points.ci_low,
                        },
                        mode="lines+markers",
                        name=label,
                        legendgroup=label,
                        showlegend=col == 1,
                        line={"color": color, "dash": dash},
                        text=points.trial_id,
                    ),
                    row=1,
                    col=col,
                )
            task_rows = acc[acc.task == task]
            chance = task_rows.chance.dropna()
            if i == 0 and not chance.empty:
                fig.add_hline(y=float(chance.iloc[0]), line={"dash": "dot", "color": "#999"},
                              annotation_text="chance", annotation_position="bottom left",
                              row=1, col=col)  # fmt: skip
            span = acc.n_params.dropna()
            ends = [span.min() / 1.5, span.max() * 1.5] if len(span) else [1e3, 1e9]
            references = task_rows[task_rows.architecture.str.startswith("ref:")]
            for k, ref in enumerate(references.itertuples()):  # a line each, named in the legend
                name = f"reference {ref.architecture.removeprefix('ref:')}"
                name += "" if len(views) == 1 else f" ({view.name})"
                fig.add_trace(
                    go.Scatter(x=ends, y=[ref.value] * 2, mode="lines", name=name,
                               legendgroup=name, showlegend=col == 1,
                               line={"dash": "dashdot", "width": 2,
                                     "color": REFERENCE_COLORS[k % len(REFERENCE_COLORS)]},
                               hovertemplate=f"{_esc(name)}: %{{y:.3f}}<extra></extra>"),
                    row=1, col=col,
                )  # fmt: skip
            floor = task_rows[task_rows.architecture == "ngram"]
            if not floor.empty:
                text = "trigram" if len(views) == 1 else f"trigram ({view.name})"
                fig.add_hline(y=float(floor.value.iloc[0]), line={"dash": "dash", "color": "#444"},
                              annotation_text=text,
                              annotation_position=FLOOR_LABELS[i % len(FLOOR_LABELS)],
                              row=1, col=col)  # fmt: skip
    for col in range(1, len(titles) + 1):
        fig.update_xaxes(type="log", title="non-embedding parameters N", row=1, col=col)
    fig.update_yaxes(title="zero-shot accuracy (fraction correct)", row=1, col=1)
    if likelihood:
        fig.update_yaxes(title="held-out bits per byte", row=1, col=len(titles))
    fig.update_layout(
        title="Zero-shot accuracy against model size (95% intervals; the same items for all)"
    )
    return fig


def _table(frame: pd.DataFrame, escape: bool = True) -> str:
    return frame.to_html(index=False, escape=escape, na_rep="", float_format=lambda v: f"{v:.4g}")


def _interval(entry: dict | None) -> str:
    if not entry:
        return ""
    return estimate_text(entry)


def _fits_table(views: list[StudyView]) -> pd.DataFrame:
    rows = []
    for view in views:
        for arch, laws in sorted(view.fits.items()):
            for law, fit in laws.items():
                row = {"study": view.name} if len(views) > 1 else {}
                row |= {"architecture": arch, "law": fit.get("formula", law)}
                if "error" in fit:
                    rows.append(row | {"note": fit["error"]})
                    continue
                values = fit["params"] | fit.get("derived", {})
                row["parameters (95% CI)"] = "; ".join(
                    f"{name} = {_interval(v)}" for name, v in values.items()
                )
                row["CI from"] = fit.get("interval") or "no interval"
                row["points"] = fit["n_points"]
                held = fit.get("holdout", {})
                row["held-out prediction"] = (
                    f"{held['error_pct']:+.2f}% ({held['held_out']})" if "error_pct" in held else ""
                )
                if "rmse_log" in fit["quality"]:
                    row["RMSE of log-loss"] = f"{fit['quality']['rmse_log']:.3g}"
                row["note"] = "; ".join(fit["quality"].get("warnings", []))
                rows.append(row)
    return pd.DataFrame(rows)


def outdated_note(trial_ids: list[str]) -> str:
    """What the report and the terminal say of finished trials scored under other zero-shot
    settings than the study's current ones."""
    shown = ", ".join(trial_ids[:3]) + (
        f" and {len(trial_ids) - 3} more" if len(trial_ids) > 3 else ""
    )
    return (
        f"{len(trial_ids)} finished trial(s) ({shown}) were measured under earlier evaluation "
        "settings (validation tokens or zero-shot) and have no measurements under the current "
        "ones; they are left out of the fits, the figures and the zero-shot results (their "
        "earlier results stay in the store: study export)"
    )


def reference_lines(evals: pd.DataFrame) -> list[str]:
    """One sentence per reference model: its zero-shot accuracy on each task, with the
    interval over the items, and the best trial's beside it."""
    if evals.empty:
        return []
    acc = evals[evals.metric == "acc"]
    out = []
    for name, rows in acc[acc.architecture.str.startswith("ref:")].groupby("architecture"):
        parts = []
        for r in rows.sort_values("task").itertuples():
            trials = acc[(acc.task == r.task) & acc.trial_id.notna()]
            best = f"; the best trial {trials.value.max():.1%}" if len(trials) else ""
            parts.append(f"{r.task} {r.value:.1%} [{r.ci_low:.1%}, {r.ci_high:.1%}]{best}")
        out.append(f"reference {name.removeprefix('ref:')} on the study's items: "
                   + "; ".join(parts) + ".")  # fmt: skip
    return out


def _summary(views: list[StudyView]) -> str:
    """The box at the top of the report: verdicts, exponents with intervals, held-out
    prediction errors, and every warning of the fits."""
    items, warnings = [], []
    for view in views:
        prefix = f"{view.name}: " if len(views) > 1 else ""
        for arch, laws in sorted(view.fits.items()):
            fit = laws.get("n", {})
            if "params" in fit:
                alpha = fit["params"]["alpha"]
                text = f"{prefix}{arch}: loss falls as N^−α with α = {_interval(alpha)}"
                held = fit.get("holdout", {})
                if "error_pct" in held:
                    text += (
                        f"; refitted without the largest model, the law predicts its loss "
                        f"{held['error_pct']:+.2f}% off"
                    )
                items.append(text + ".")
            nd = laws.get("nd", {})
            if "derived" in nd:
                d = nd["derived"]
                items.append(
                    f"{prefix}{arch}: compute-optimal N ∝ C^a with a = {_interval(d['a'])}, "
                    f"D ∝ C^b with b = {_interval(d['b'])}"
                    + (
                        f"; {_interval(d['tokens_per_param'])} tokens per parameter at "
                        f"C = {nd['compute']:.3g} FLOPs."
                        if "tokens_per_param" in d
                        else "."
                    )
                )
        for result in view.trends.values():
            items.append(prefix + result["verdict"])
        items += [prefix + line for line in reference_lines(view.evals)]
        items += [prefix + line for line in prediction_summary(view.predictions)]
        for arch, result in sorted(view.tasks.items()):
            done = {t: r for t, r in result["tasks"].items() if "error" not in r}
            items += [prefix + line + "." for line in task_lines(arch, {"tasks": done})]
        if view.outdated:
            items.append(f"{prefix}{outdated_note(view.outdated)}.")
        warnings += [prefix + w for w in fit_warnings(view.fits, view.tasks)]
    if not items and not warnings:
        return ""
    out = '<section class="summary"><h2>Summary</h2>'
    if items:
        out += "<ul>" + "".join(f"<li>{_esc(t)}</li>" for t in items) + "</ul>"
    if warnings:
        out += (f'<h3 class="warn">Warnings of the fits ({len(warnings)})</h3><ul class="warn">'
                + "".join(f"<li>{_esc(w)}</li>" for w in warnings) + "</ul>")  # fmt: skip
    return out + "</section>"


def _trial_table(view: StudyView) -> str:
    """The columns a researcher reads first, and every column one click away."""
    t = view.trials
    cards = [f'<a href="{_esc(view.cards[i])}">card</a>' if i in view.cards else ""
             for i in t.trial_id]  # fmt: skip
    first = pd.DataFrame({
        "trial": t.trial_id.map(_esc),
        "architecture": t.architecture.map(_esc),
        "N": t.n_params.map(lambda v: f"{v:,.0f}" if pd.notna(v) else ""),
        "tokens": t.tokens.map(lambda v: f"{v:,.0f}" if pd.notna(v) else ""),
        "FLOPs": t.flops.map(lambda v: f"{v:.3g}" if pd.notna(v) else ""),
        "status": t.status.map(_esc),
        "validation loss": t.val_loss.map(lambda v: f"{v:.4f}" if pd.notna(v) else ""),
        "MFU": t.mfu.map(lambda v: f"{100 * v:.1f}%" if pd.notna(v) else ""),
        "model card": cards,
    })  # fmt: skip
    every = t.drop(columns=["hash", "error", "heartbeat_at"])
    every = every.map(lambda v: _esc(v) if isinstance(v, str) else v)
    return (
        f'<div class="wide">{_table(first, escape=False)}</div>'
        f"<details><summary>All {every.shape[1]} columns</summary>"
        f'<div class="wide">{_table(every, escape=False)}</div></details>'
    )


def _data_line(view: StudyView) -> str:
    if not view.data:
        return ""
    d = view.data
    tokens = ", ".join(f"{k} {v:,}" for k, v in d.get("tokens", {}).items())
    return (
        f"<p>Data of <code>{_esc(view.name)}</code>: {_esc(d.get('corpus'))}, tokenizer "
        f"{_esc(d.get('tokenizer'))} ({d.get('vocab_size')} tokens); tokens per split: "
        f"{_esc(tokens)}.</p>"
    )


def write_report(path: str | Path, views: list[StudyView]) -> Path:
    """Write the report of one study, or the comparison of several, to `path`, and the model
    card of every finished trial into `<report name>-cards/` beside it (linked from the trial
    tables)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for view in views:
        sub = file_name(view.name) if len(views) > 1 else ""
        folder = path.parent / f"{path.stem}-cards" / sub
        cards = write_cards(folder, view.name, view.trials, view.data, view.evals, view.configs,
                            only_new=view.new_cards_only)  # fmt: skip
        view.cards = {t: relative_link(p, path.parent) for t, p in cards.items()}
    drawn = views
    if not _tokenized_alike(views) and all(tokens_per_byte(v) for v in views):
        drawn = [in_bits_per_byte(v) for v in views]  # in bits per byte of text
    figures = [_loss_vs_n(drawn), _loss_vs_compute(drawn)]
    zero_shot = _zero_shot(views)
    if zero_shot is not None:
        figures.append(zero_shot)
    isoflop = _isoflop(drawn)
    sweep = _lr_sweep(drawn)
    predicted = _predictions(drawn)
    task_accuracy = _task_accuracy(views)
    if len(views) == 1:
        figures.append(_curves(views[0]))
    parts = [
        _tidy_log_axes(fig).to_html(full_html=False, include_plotlyjs=(i == 0))
        for i, fig in enumerate(figures)
    ]
    names = ", ".join(v.name for v in views)
    title = f"Scaling study {names}" if len(views) == 1 else f"Scaling studies compared: {names}"
    trial_sections = []
    for view in views:
        counts = view.trials.status.value_counts().to_dict()
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        errors = view.trials[view.trials.error.notna() & (view.trials.error != "")]
        error_html = "".join(
            f"<h4>{_esc(r.trial_id)}</h4><pre>{_esc(r.error)}</pre>" for r in errors.itertuples()
        )
        trial_sections.append(
            f"<h3>{_esc(view.name)}: {len(view.trials)} trials ({_esc(summary)})</h3>"
            + _data_line(view)
            + _trial_table(view)
            + (f"<h4>Errors</h4>{error_html}" if error_html else "")
        )
    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    partial = "".join(
        f'<p class="partial">Partial report, written {written} '
        + (f"when <code>study run</code> stopped ({_esc(v.stopped)}): {_esc(v.partial)}; run "
           "it again to finish the study.</p>" if v.stopped else
           f"while <code>study run</code> trains: {_esc(v.partial)}. This page reloads itself "
           "every minute.</p>")
        for v in views if v.partial
    )  # fmt: skip
    live = any(v.partial and not v.stopped for v in views)
    refresh = '<meta http-equiv="refresh" content="60">' if live else ""
    caveat = _units_caveat(views)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{refresh}
<title>{_esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222;
        padding: 0 1em; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f2f2f2; }}
pre {{ background: #f8f8f8; padding: 1em; overflow-x: auto; font-size: 0.8em; }}
.wide {{ overflow-x: auto; }}
.summary {{ border: 1px solid #bbb; background: #fafafa; padding: 0.2em 1.2em; }}
.warn {{ color: #8a4b00; }}
.partial, .caveat {{ border-left: 4px solid #e0a000; background: #fff8e1; padding: 0.6em 1em; }}
</style></head><body>
<h1>{_esc(title)}</h1>
{partial}
<p>Written {written}. N counts non-embedding
parameters; C is training compute in FLOPs (forward and backward). Each architecture is trained on
its own objective (decoder: causal LM, every next token; encoder: masked LM, the 15% selected
tokens; encdec: span corruption, the sentinels and the spans they hide), so their losses are in
nats per scored token of different tasks and are not comparable with each other: each has its own
panel and axis. Each architecture has one colour in every figure (shades of it tell sizes or
budgets apart){"; each study has its own dash and marker" if len(views) > 1 else ""}.</p>
{_summary(views)}
<h2>Loss against size</h2>
{caveat}
{parts[0]}
<h2>Loss against compute</h2>
{caveat}
{parts[1]}
{_section("IsoFLOP", isoflop, ISOFLOP_NOTE, before=caveat)}
{_section("Learning rate", sweep, SWEEP_NOTE, before=caveat)}
{_section("Predictions", predicted, PREDICTION_NOTE, _predictions_table(views), caveat)}
{"<h2>Zero-shot accuracy</h2>" + parts[2] if zero_shot is not None else ""}
<p>Zero-shot slopes are accuracy points per tenfold N (least squares on log N); intervals
resample the items. Architectures are compared only on these shared tasks.</p>
{_section("Accuracy from task loss", task_accuracy, TASK_NOTE)}
<h2>Fitted laws</h2>
{_table(_fits_table(views))}
<p>Intervals are 95% bootstrap percentiles over resampled trials (every point of a trial is
drawn together). The held-out prediction refits without the largest model (L(N)) or the largest
compute budget (L(N, D)) and predicts its loss.</p>
{"<h2>Training curves</h2>" + parts[-1] if len(views) == 1 else ""}
<h2>Trials</h2>
{"".join(trial_sections)}
</body></html>
"""
    # a file of its own, then renamed: a browser never sees half a page, and two writers
    # (the live report and `study report`) never share one
    handle, written_to = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as f:
        f.write(page)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(written_to, 0o666 & ~umask)  # as a file written plainly (mkstemp makes it 0600)
    os.replace(written_to, path)
    return path


SWEEP_NOTE = (
    "Each law is fitted on each cell's best run (seeds averaged, then the lowest loss over "
    "learning rates); a cell whose best rate is at an end of the sweep is left out, as its "
    "optimum was not tried."
)
TASK_NOTE = (
    "The two-step prediction of Bhagia et al. 2024 (the OLMo model ladder), with the largest "
    "model held out: its task loss (bits per byte of the right answer) from L(N, D) fitted on "
    "the other runs' final checkpoints (L(N) where every run saw the same tokens), then its "
    "accuracy from the sigmoid fitted on every scored checkpoint of the other runs (and the "
    "ideal point, loss 0 and accuracy 1). The predicted interval resamples whole runs; the "
    "measured one is over the items."
)
PREDICTION_NOTE = (
    "At each budget of <code>predict:</code>, once the grid was trained, L(N, D) fitted on the "
    "grid (and the IsoFLOP minima, for the compute-optimal N) predicted the loss of the model "
    "chosen for that budget; the prediction was stored before that model trained, and is "
    "never refitted with it. The interval is the 95% bootstrap interval over resampled trials "
    "(over the fit's residuals where resampling trials cannot work: the fit table says which). "
    "The trials that verify predictions are left out of the laws above."
)
ISOFLOP_NOTE = (
    "At each compute budget the loss is fitted with a parabola in log N; its minimum (a star) is "
    "that budget's loss-optimal size. The line fits N_opt ∝ C^a through the minima (Hoffmann et "
    "al. 2022, approach 2)."
)


def _tidy_log_axes(fig: go.Figure) -> go.Figure:
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


def _section(title: str, fig: go.Figure | None, note: str, after: str = "",
             before: str = "") -> str:  # fmt: skip
    """A heading, what to know first (a caveat), a figure, what it shows and what follows it
    (a table); nothing where there is no figure."""
    if fig is None:
        return ""
    figure = _tidy_log_axes(fig).to_html(full_html=False, include_plotlyjs=False)
    return f"<h2>{title}</h2>{before}{figure}<p>{note}</p>{after}"


def relative_link(target: Path, start: Path) -> str:
    """A link from a file in `start` to `target`, with forward slashes."""
    return os.path.relpath(target, start).replace(os.sep, "/")
