"""The report's tables, as HTML: the headline, the fitted laws, the predictions and the
trials. Every name that comes from a study is escaped."""

from __future__ import annotations

import html

import pandas as pd

from analysis.report.view import ReportView, StudyView
from analysis.results import StoredForecast, forecast_of


def _esc(text) -> str:
    return html.escape(str(text))


def table(frame: pd.DataFrame, escape: bool = True) -> str:
    """A frame as an HTML table: no index, blanks for missing values, 4 significant digits."""
    return frame.to_html(index=False, escape=escape, na_rep="", float_format=lambda v: f"{v:.4g}")


def headline_table(view: ReportView) -> str:
    """The report's first screen: a row per architecture (and study), the same cells as the
    terminal's headline (`ArchitectureHeadline.cells`); a column empty in every row left out."""
    rows = [({"study": name} if view.comparison else {})
            | {"architecture": row.architecture} | row.cells()
            for name, headline in view.headlines for row in headline.rows]  # fmt: skip
    if not rows:
        return ""
    frame = pd.DataFrame(rows)
    return table(frame[[c for c in frame.columns if (frame[c] != "").any()]])


def fits_table(view: ReportView) -> str:
    """The fitted laws: parameters with intervals, points, held-out error and warnings."""
    return table(view.fits)


def predictions_table(view: ReportView) -> str:
    """Each prediction beside its measurement (empty where the studies predicted nothing), its
    method and forecast, and the backtest of each prediction made with one."""
    rows, backtests = [], []
    for study in view.studies:
        for p in study.predictions.itertuples():
            row = {"study": study.name} if view.comparison else {}
            interval = (f"[{p.ci_low:.4g}, {p.ci_high:.4g}]"
                        if pd.notna(p.ci_low) and pd.notna(p.ci_high) else "none")  # fmt: skip
            measured = pd.notna(p.measured_loss)
            inside = pd.notna(p.ci_low) and measured and p.ci_low <= p.measured_loss <= p.ci_high
            forecast = forecast_of(p)
            rows.append(row | {
                "architecture": p.architecture,
                "FLOPs": f"{p.flops:.3g}",
                "forecast (method)": forecast.chosen() if forecast else "",
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
            if forecast is not None:
                backtests.append(_backtest_table(
                    f"{study.name + ', ' if view.comparison else ''}{p.architecture} at "
                    f"{p.flops:.3g} FLOPs", forecast))  # fmt: skip
    if not rows:
        return ""
    return table(pd.DataFrame(rows)) + "".join(backtests)


def _backtest_table(name: str, forecast: StoredForecast) -> str:
    """The backtest of a prediction: each left-out budget (the largest first), each method's
    error forecasting its optimum loss, or why it has none."""
    cells: dict[float, dict] = {}
    for r in forecast.backtest:
        cells.setdefault(r.budget, {"left out: C": f"{r.budget:.3g}"})[r.method] = r.text()
    head = (f"<p>Backtest of {_esc(name)}: each budget left out in turn, the others refitted, "
            f"its optimum loss forecast; chosen: {_esc(forecast.method)} "
            f"({_esc(forecast.reason)}).</p>")  # fmt: skip
    if not cells:
        return head + "<p>No backtest: too few budgets to leave one out.</p>"
    return head + table(pd.DataFrame(list(cells.values())))


def trial_table(study: StudyView, cards: dict[str, str]) -> str:
    """The columns a researcher reads first, and every column one click away; `cards` links
    each trial id to its model card."""
    t = study.trials
    links = [f'<a href="{_esc(cards[i])}">card</a>' if i in cards else "" for i in t.trial_id]
    first = pd.DataFrame({
        "trial": t.trial_id.map(_esc),
        "architecture": t.architecture.map(_esc),
        "N": t.n_params.map(lambda v: f"{v:,.0f}" if pd.notna(v) else ""),
        "tokens": t.tokens.map(lambda v: f"{v:,.0f}" if pd.notna(v) else ""),
        "FLOPs": t.flops.map(lambda v: f"{v:.3g}" if pd.notna(v) else ""),
        "status": t.status.map(_esc),
        "validation loss": t.val_loss.map(lambda v: f"{v:.4f}" if pd.notna(v) else ""),
        "MFU": t.mfu.map(lambda v: f"{100 * v:.1f}%" if pd.notna(v) else ""),
        "model card": links,
    })  # fmt: skip
    every = t.drop(columns=["hash", "error", "heartbeat_at"])
    every = every.map(lambda v: _esc(v) if isinstance(v, str) else v)
    return (
        f'<div class="wide">{table(first, escape=False)}</div>'
        f"<details><summary>All {every.shape[1]} columns</summary>"
        f'<div class="wide">{table(every, escape=False)}</div></details>'
    )
