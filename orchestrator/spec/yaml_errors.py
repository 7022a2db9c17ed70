"""Reading a study file's YAML and naming its errors as `file:line: field: message`.

Generic over the pydantic model the file is validated against: the line of an error comes from
the YAML nodes, its field from pydantic's location (union branch tags left out), and an unknown
key gets the known field nearest it. Nothing here knows what a study contains.
"""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path
from typing import get_args

import yaml
from pydantic import BaseModel, Tag, ValidationError

MAX_ERRORS = 20  # errors listed for one study file
MAX_STUDY_BYTES = 1_000_000  # a study file is a page of settings; a megabyte is not one
MAX_VALUES = 100_000  # values after expanding aliases (a "billion laughs" file is billions)
MERGE_TAG = "tag:yaml.org,2002:merge"  # `<<: *base`: keys merged in, which the mapping may override


class StudyError(ValueError):
    """A study file that cannot be used; the message names the file, the field and the line."""


def _pairs(node: yaml.MappingNode) -> dict:
    """A mapping node's (key node, value node) by key, built once per node: looking up the
    lines of N errors in a mapping of N keys takes linear time, not quadratic."""
    index = getattr(node, "_pairs", None)
    if index is None:
        index = {}
        for k, v in node.value:
            index.setdefault(k.value, (k, v))
        node._pairs = index
    return index


def line_of(root: yaml.Node | None, loc: tuple) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location, or of its nearest parent."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            pair = _pairs(node).get(key) if isinstance(key, str) else None
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            continue  # pydantic adds union branch names to locations; skip them
    return line


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic models an annotation names, through unions, lists and Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _tags_in(annotation) -> set[str]:
    """The union branch tags an annotation declares, through unions, lists and Annotated."""
    if isinstance(annotation, Tag):
        return {annotation.tag}
    return {t for arg in get_args(annotation) for t in _tags_in(arg)}


@cache
def union_tags(model: type[BaseModel]) -> frozenset[str]:
    """The names of the union branches of a model and the models inside it: pydantic puts them
    in error locations, where they are not fields."""
    tags: set[str] = set()
    for field in model.model_fields.values():
        for annotation in (field.annotation, *field.metadata):
            tags |= _tags_in(annotation)
        for inner in _models_in(field.annotation):
            if inner is not model:
                tags |= union_tags(inner)
    return frozenset(tags)


def _suggestion(loc: tuple, model: type[BaseModel]) -> str:
    """ "; did you mean `seq_len`?" for an unknown field close to a known one beside it."""
    models: list[type[BaseModel]] = [model]
    for key in loc[:-1]:
        if isinstance(key, int) or key in union_tags(model):
            continue
        models = [m for parent in models if key in parent.model_fields
                  for m in _models_in(parent.model_fields[key].annotation)]  # fmt: skip
    known = sorted({name for m in models for name in m.model_fields})
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def field_name(loc: tuple, model: type[BaseModel]) -> str:
    """The dotted field of a pydantic error location: `sizes[0].name`, `train.lr`."""
    parts: list[str] = []
    for key in loc:
        if isinstance(key, int):
            parts[-1:] = [f"{parts[-1]}[{key}]"] if parts else [f"[{key}]"]
        elif key in union_tags(model):
            continue
        else:
            parts.append(str(key))
    return ".".join(parts) or "(top level)"


def where(root: yaml.Node | None, source: str, loc: tuple, model: type[BaseModel]) -> str:
    """`file:line: field` of a location in a file."""
    line = line_of(root, loc)
    place = f"{source}:{line}" if line else source
    return f"{place}: {field_name(loc, model)}"


def validation_error(
    error: ValidationError, root: yaml.Node | None, source: str, model: type[BaseModel]
) -> StudyError:
    """One StudyError listing a validation's errors, each as `file:line: field: message`."""
    lines, seen = [], set()
    for err in error.errors():
        field = field_name(err["loc"], model)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field" + _suggestion(err["loc"], model)
        if (field, message) in seen:
            continue
        seen.add((field, message))
        line = line_of(root, err["loc"])
        place = f"{source}:{line}" if line else source
        lines.append(f"{place}: {field}: {message}")
    if len(lines) > MAX_ERRORS:  # a file of thousands of unknown keys: the first of them
        lines[MAX_ERRORS:] = [f"... and {len(lines) - MAX_ERRORS:,} more errors"]
    return StudyError("invalid study\n" + "\n".join(lines))


def _expanded(root: yaml.Node | None) -> int:
    """How many values the document holds once its aliases are expanded, counted over the
    node graph (an alias is the node it names: shared, so this stays linear), stopping past
    MAX_VALUES."""
    sizes: dict[int, int] = {}

    def size(node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a cycle counts once
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(v) for v in node.value)
        sizes[id(node)] = total = min(total, MAX_VALUES + 1)
        return total

    return size(root) if root is not None else 0


def _duplicates(root: yaml.Node | None):
    """(location, first line, second line) of each key given twice in one mapping, in file
    order: YAML loaders keep the last one silently, which would train what the reader of the
    file did not see first."""
    seen: set[int] = set()  # an alias names a node again: visit it once

    def walk(node, loc: tuple):
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != MERGE_TAG:
                    line = key.start_mark.line + 1
                    name = (key.tag, key.value)
                    if name in first:
                        yield (*loc, key.value), first[name], line
                    first.setdefault(name, line)
                    yield from walk(value, (*loc, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                yield from walk(item, (*loc, i))

    return walk(root, ()) if root is not None else iter(())


def duplicate_key_error(
    root: yaml.Node | None, source: str, model: type[BaseModel], keys: tuple = ()
) -> StudyError | None:
    """The error for the first key given twice in one mapping (only top-level `keys` when
    given), naming the key and both its lines; None when every key is given once."""
    for loc, first, second in _duplicates(root):
        if keys and (len(loc) != 1 or loc[0] not in keys):
            continue
        return StudyError(
            f"invalid study\n{source}:{second}: {field_name(loc, model)}: key given twice "
            f"(lines {first} and {second}): give it once"
        )
    return None


def compose(text: str, source: str) -> tuple[yaml.Node | None, dict]:
    """The YAML nodes (for error lines) and the mapping of a study file."""
    if len(text) > MAX_STUDY_BYTES:
        raise StudyError(f"{source}: {len(text):,} characters: a study file is at most "
                         f"{MAX_STUDY_BYTES:,}")  # fmt: skip
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes and their lines
        if _expanded(root) > MAX_VALUES:
            aliased = any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, yaml.SafeLoader))
            how = "its aliases (*name) expand to" if aliased else "it holds"
            raise StudyError(
                f"{source}: {how} more than {MAX_VALUES:,} values: a study file is a page of "
                "settings"
            )
        raw = yaml.safe_load(text)
    except RecursionError:
        raise StudyError(
            f"{source}: nested too deeply to read (hundreds of levels of [ or {{)"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        place = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(e, "problem", None) or str(e)
        context = f" ({e.context})" if getattr(e, "context", None) else ""
        raise StudyError(f"{place}: not valid YAML: {problem}{context}") from None
    if not isinstance(raw, dict):
        raise StudyError(
            f"{source}: a study file is a mapping of fields (name, sizes, budget, ...)"
        )
    return root, raw


def read_text(path: Path) -> str:
    """The text of a study file: at most MAX_STUDY_BYTES characters of UTF-8."""
    try:
        with path.open("rb") as f:
            data = f.read(4 * MAX_STUDY_BYTES + 1)  # a UTF-8 character is at most 4 bytes
    except OSError as e:
        raise StudyError(f"{path}: cannot read the study file: {e.strerror}") from None
    if len(data) > 4 * MAX_STUDY_BYTES:
        raise StudyError(f"{path}: over {4 * MAX_STUDY_BYTES:,} bytes: a study file is at most "
                         f"{MAX_STUDY_BYTES:,} characters")  # fmt: skip
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise StudyError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}): save "
                         "the study file as UTF-8") from None  # fmt: skip
