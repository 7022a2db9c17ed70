"""The comparison report: one self-contained HTML file (plotly inlined) that opens offline."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trainers.accounting import ARCHITECTURES, OBJECTIVES

COLORS = {"decoder": "#1f77b4", "encoder": "#d62728", "encdec": "#2ca02c"}


def _architectures(trials: pd.DataFrame) -> list[str]:
    present = set(trials.architecture)
    return [a for a in ARCHITECTURES if a in present] + sorted(present - set(ARCHITECTURES))


def _loss_axis(arch: str) -> str:
    return f"{arch}: {OBJECTIVES.get(arch, '?')} loss"


def _loss_vs_n(trials: pd.DataFrame, fits: dict[str, dict]) -> go.Figure:
    """One panel per architecture: each objective's loss has its own axis (not comparable)."""
    archs = _architectures(trials)
    fig = make_subplots(
        rows=1,
        cols=len(archs),
        subplot_titles=[f"{a} ({OBJECTIVES.get(a, '?')})" for a in archs],
        horizontal_spacing=0.08,
    )
    finished = trials[(trials.status == "finished") & trials.val_loss.notna()]
    for col, arch in enumerate(archs, start=1):
        color = COLORS.get(arch, "#555")
        points = finished[finished.architecture == arch]
        fig.add_trace(
            go.Scatter(
                x=points.n_params,
                y=points.val_loss,
                mode="markers",
                name=f"{arch} trials",
                marker={"color": color, "size": 10},
                text=points.trial_id,
                hovertemplate="%{text}<br>N=%{x:.3s}<br>loss=%{y:.4f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fit = fits.get(arch, {})
        if "params" in fit and not points.empty:
            p = {k: v["estimate"] for k, v in fit["params"].items()}
            n = np.logspace(
                np.log10(points.n_params.min() / 1.5), np.log10(points.n_params.max() * 3)
            )
            fig.add_trace(
                go.Scatter(
                    x=n,
                    y=p["E"] + p["A"] * n ** (-p["alpha"]),
                    mode="lines",
                    name=f"{arch} fit: {p['E']:.3g} + {p['A']:.3g}·N^-{p['alpha']:.3f}",
                    line={"color": color, "dash": "dash"},
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(type="log", title="non-embedding parameters N", row=1, col=col)
        fig.update_yaxes(type="log", title=_loss_axis(arch), row=1, col=col)
    fig.update_layout(
        title="Final validation loss against model size: one panel per objective",
        height=480,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def _curves(trials: pd.DataFrame, metrics: pd.DataFrame) -> go.Figure:
    """Training and validation curves, one row per architecture."""
    archs = _architectures(trials)
    titles = [f"{a}: {kind} loss" for a in archs for kind in ("training", "validation")]
    fig = make_subplots(rows=len(archs), cols=2, subplot_titles=titles, vertical_spacing=0.12)
    for row, arch in enumerate(archs, start=1):
        ids = list(trials[trials.architecture == arch].trial_id)
        for i, trial_id in enumerate(ids):
            color = f"hsl({int(270 * i / max(1, len(ids) - 1))}, 70%, 45%)"
            for col, name in ((1, "train_loss"), (2, "val_loss")):
                points = metrics[(metrics.trial_id == trial_id) & (metrics.name == name)]
                if points.empty:
                    continue
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
            fig.update_yaxes(type="log", title=_loss_axis(arch), row=row, col=1)
            fig.update_yaxes(type="log", row=row, col=2)
    fig.update_xaxes(title="tokens", type="log")
    fig.update_layout(title="Training curves", height=max(480, 360 * len(archs)))
    return fig


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.4g}")


def _fits_table(fits: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for arch, fit in sorted(fits.items()):
        if "params" not in fit:
            rows.append({"architecture": arch, "law": fit["law"], "note": fit["error"]})
            continue
        row = {"architecture": arch, "law": "L(N) = E + A·N^(−α)"}
        for name, value in fit["params"].items():
            ci = value["ci"]
            interval = f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
            row[name] = f"{value['estimate']:.4g}{interval}"
        quality = fit["quality"]
        row["points"] = quality["n_points"]
        row["RMSE of log-loss"] = f"{quality['rmse_log']:.3g}"
        row["note"] = "; ".join(quality["warnings"])
        rows.append(row)
    return pd.DataFrame(rows)


def _zero_shot(evals: pd.DataFrame) -> go.Figure | None:
    """Accuracy against N per task: one line per architecture with 95% intervals, the chance
    level and the n-gram floor."""
    acc = evals[evals.metric == "acc"] if not evals.empty else evals
    if acc.empty:
        return None
    tasks = sorted(acc.task.unique())
    fig = make_subplots(rows=1, cols=len(tasks), subplot_titles=tasks, horizontal_spacing=0.06)
    models = acc[acc.architecture != "ngram"]
    for col, task in enumerate(tasks, start=1):
        rows = models[models.task == task]
        for arch, points in rows.groupby("architecture"):
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
                    name=arch,
                    legendgroup=arch,
                    showlegend=col == 1,
                    line={"color": COLORS.get(arch, "#555")},
                    text=points.trial_id,
                ),
                row=1,
                col=col,
            )
        task_rows = acc[acc.task == task]
        chance = task_rows.chance.dropna()
        if not chance.empty:
            fig.add_hline(y=float(chance.iloc[0]), line={"dash": "dot", "color": "#999"},
                          annotation_text="chance", row=1, col=col)  # fmt: skip
        floor = task_rows[task_rows.architecture == "ngram"]
        if not floor.empty:
            fig.add_hline(y=float(floor.value.iloc[0]), line={"dash": "dash", "color": "#444"},
                          annotation_text="trigram", row=1, col=col)  # fmt: skip
        fig.update_xaxes(type="log", title="non-embedding parameters N", row=1, col=col)
    fig.update_yaxes(title="zero-shot accuracy", row=1, col=1)
    fig.update_layout(
        title="Zero-shot accuracy against model size (95% intervals; the same items for all)",
        height=460,
    )
    return fig


def write_report(
    path: str | Path,
    study_name: str,
    trials: pd.DataFrame,
    metrics: pd.DataFrame,
    fits: dict[str, dict],
    evals: pd.DataFrame | None = None,
    trends: dict | None = None,
) -> Path:
    """Write the report of a study to `path` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    zero_shot = _zero_shot(evals if evals is not None else pd.DataFrame())
    figures = [_loss_vs_n(trials, fits), _curves(trials, metrics)]
    if zero_shot is not None:
        figures.append(zero_shot)
    parts = [
        fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)
    ]
    verdict_items = "".join(
        f"<li>{html.escape(result['verdict'])}</li>" for result in (trends or {}).values()
    )
    verdicts = (
        "<h2>Do larger models do better zero-shot?</h2><ul>" + verdict_items + "</ul>"
        "<p>Slopes are accuracy points per tenfold N (least squares on log N); intervals "
        "resample the items. Architectures are compared only on these shared tasks.</p>"
        if verdict_items
        else ""
    )
    shown = trials.drop(columns=["hash", "error"]).copy()
    counts = trials.status.value_counts().to_dict()
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    errors = trials[trials.error.notna() & (trials.error != "")]
    error_html = "".join(
        f"<h3>{html.escape(r.trial_id)}</h3><pre>{html.escape(r.error)}</pre>"
        for r in errors.itertuples()
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(study_name)}: scaling study report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f2f2f2; }}
pre {{ background: #f8f8f8; padding: 1em; overflow-x: auto; font-size: 0.8em; }}
</style></head><body>
<h1>Scaling study <code>{html.escape(study_name)}</code></h1>
<p>{len(trials)} trials: {html.escape(summary)}. Written
{datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}. N counts non-embedding parameters. Each
architecture is trained on its own objective (decoder: causal LM, every next token; encoder:
masked LM, the 15% selected tokens; encdec: span corruption, the sentinels and the spans they
hide), so their losses are in nats per scored token of different tasks and are not comparable
with each other: each has its own panel and axis.</p>
{verdicts}
<h2>Fitted laws</h2>
{_table(_fits_table(fits))}
<p>Intervals are 95% bootstrap percentiles over resampled trials.</p>
{parts[0]}
{parts[2] if len(parts) > 2 else ''}
{parts[1]}
<h2>Trials</h2>
<div style="overflow-x: auto">{_table(shown)}</div>
{"<h2>Errors</h2>" + error_html if error_html else ""}
</body></html>
"""
    path.write_text(page)
    return path
