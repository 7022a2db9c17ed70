"""Writing the report: its model cards beside it, then the page, atomically (a failed write
leaves no temporary file, and no cards folder it made)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from analysis.report.cards import file_name, write_cards
from analysis.report.page import page_html
from analysis.report.view import StudyView, view_of
from trainers.folders import new_folders, write_whole


def relative_link(target: Path, start: Path) -> str:
    """A link from a file in `start` to `target`, with forward slashes."""
    return os.path.relpath(target, start).replace(os.sep, "/")


def write_report(path: str | Path, views: list[StudyView]) -> Path:
    """Write the report of one study, or the comparison of several, to `path`, and the model
    card of every finished trial into `<report name>-cards/` beside it (linked from the trial
    tables). The views are left as they were given."""
    path = Path(path)
    links = []
    cards_folder = path.parent / f"{path.stem}-cards"
    with new_folders(cards_folder, contents=True):  # one made here goes again if a write fails
        for view in views:
            sub = file_name(view.name) if len(views) > 1 else ""
            folder = cards_folder / sub
            cards = write_cards(folder, view.name, view.trials, view.data, view.evals,
                                configs=view.configs, only_new=view.new_cards_only)  # fmt: skip
            links.append({t: relative_link(p, path.parent) for t, p in cards.items()})
        written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        write_whole(path, page_html(view_of(views), links, written))
    return path
