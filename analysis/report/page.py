"""The report's page: the view, its figures and tables through one Jinja2 template
(templates/page.html), with autoescaping on."""

from __future__ import annotations

import jinja2
from markupsafe import Markup

from analysis.report import figures, tables
from analysis.report.view import ReportView

ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("analysis.report"),
    autoescape=True,  # a study's name, trial ids and errors are text, never markup
    undefined=jinja2.StrictUndefined,  # a misspelt name fails the report, not blanks it
    keep_trailing_newline=True,
)

# The page's figures, top to bottom: the first carries plotly.js (it is always drawn).
FIGURES = {
    "size": figures.loss_vs_n,
    "compute": figures.loss_vs_compute,
    "isoflop": figures.isoflop,
    "sweep": figures.lr_sweep,
    "predictions": figures.predictions,
    "zero_shot": figures.zero_shot,
    "zero_shot_loss": figures.zero_shot_loss,
    "tasks": figures.task_accuracy,
    "curves": figures.curves,
}


def _trial_section(view: ReportView, i: int, cards: dict[str, str]) -> dict:
    """What the page says of one study's trials: counts, data, the table, the errors."""
    study = view.studies[i]
    trials = study.trials
    counts = trials.status.value_counts().to_dict()
    errors = trials[trials.error.notna() & (trials.error != "")]
    data = study.data or {}
    shown = {key: data.get(key) for key in ("corpus", "tokenizer", "vocab_size")}
    return {
        "name": study.name,
        "count": len(trials),
        "statuses": ", ".join(f"{n} {status}" for status, n in sorted(counts.items())),
        "data": shown if data else None,
        "tokens": ", ".join(f"{k} {v:,}" for k, v in data.get("tokens", {}).items()),
        "table": Markup(tables.trial_table(study, cards)),
        "errors": [(r.trial_id, r.error) for r in errors.itertuples()],
    }


def page_html(view: ReportView, cards: list[dict[str, str]], written: str) -> str:
    """The page of the report: `cards` links each study's trials to their model cards;
    `written` says when."""
    drawn = {name: draw(view) for name, draw in FIGURES.items()}
    html = {name: Markup(figures.figure_html(fig, with_plotly=name == "size"))
            if fig is not None else None for name, fig in drawn.items()}  # fmt: skip
    return ENVIRONMENT.get_template("page.html").render(
        view=view,
        caveat=view.caveat,
        written=written,
        live=any(v.partial and not v.stopped for v in view.studies),
        figures=html,
        predictions_table=Markup(tables.predictions_table(view)),
        fits_table=Markup(tables.fits_table(view)),
        headline_table=Markup(tables.headline_table(view)),
        trials=[_trial_section(view, i, links) for i, links in enumerate(cards)],
    )
