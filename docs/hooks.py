"""MkDocs hooks: put the generated references (docs/references.py) where a page asks for
them, and let pages include files from the repository's root (BENCHMARKS.md, the studies)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The checkout being built is the one documented, ahead of any installed copy.
sys.path[:0] = [str(ROOT), str(ROOT / "docs")]

import references  # noqa: E402

MARKERS = {
    "<!-- generated: study-fields -->": lambda: references.study_fields_markdown(
        references.example_studies()
    ),
    "<!-- generated: cli -->": references.cli_markdown,
}


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace each generation marker on the page with its generated markdown."""
    for marker, generate in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown
