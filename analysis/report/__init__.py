"""The comparison report: one self-contained HTML file (plotly inlined) that opens offline.

One study gives its full report; several (`study report A.db B.db`) share every axis, one colour
per study. Every name that comes from a study (its name, trial ids, errors) is escaped.

- view.py: what the page says, computed once from the frames and fits (and the units);
- figures.py: one function per figure over the view; tables.py: the HTML tables;
- page.py: the page from templates/page.html; write.py: the cards and the atomic write;
- cards.py: the model cards.

The names below are loaded on first use, so that importing `analysis.report.cards` (as the
driver does for `file_name`) does not import plotly and Jinja2 (about a second)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analysis.report.view import (
        MAX_CURVE_POINTS,
        StudyView,
        in_bits_per_byte,
        outdated_note,
        prediction_summary,
        reference_lines,
        tokens_per_byte,
    )
    from analysis.report.write import relative_link, write_report

_WHERE = {
    "MAX_CURVE_POINTS": "view",
    "StudyView": "view",
    "in_bits_per_byte": "view",
    "outdated_note": "view",
    "prediction_summary": "view",
    "reference_lines": "view",
    "tokens_per_byte": "view",
    "relative_link": "write",
    "write_report": "write",
}
__all__ = [
    "MAX_CURVE_POINTS",
    "StudyView",
    "in_bits_per_byte",
    "outdated_note",
    "prediction_summary",
    "reference_lines",
    "relative_link",
    "tokens_per_byte",
    "write_report",
]


def __getattr__(name: str):
    """A public name of the report, from the module that defines it."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
