"""The generated references: the study file's fields from the pydantic schema and the `study`
commands from the typer app, as markdown (docs/hooks.py puts them into the pages at build time,
so nothing here is written twice)."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

import typer
import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from orchestrator.spec import StudySpec, parse_study

ROOT = Path(__file__).resolve().parent.parent
YAML_BLOCK = re.compile(r"^```ya?ml\n(.*?)^```", re.S | re.M)
SNIPPET = re.compile(r'^--8<-- "([^"]+)"\s*$')  # pymdownx.snippets, from the repository's root
STUDY_KEYS = ("name", "architectures", "sizes")  # a block with these is a whole study file


def study_files_shown(root: Path = ROOT) -> list[tuple[str, str]]:
    """The whole study files the docs and the README show, as (`file:line`, YAML text), an
    included file (`--8<-- "studies/x.yaml"`) read; fragments of a study are left out."""
    shown = []
    for page in [*sorted((root / "docs").rglob("*.md")), root / "README.md"]:
        text = page.read_text()
        for block in YAML_BLOCK.finditer(text):
            body = block.group(1)
            where = f"{page.relative_to(root)}:{text[: block.start()].count(chr(10)) + 1}"
            included = SNIPPET.match(body.strip())
            if included:
                where, body = included.group(1), (root / included.group(1)).read_text()
            keys = set(re.findall(r"^(\w+):", body, re.M))
            if set(STUDY_KEYS) <= keys:
                shown.append((where, body))
    return shown


def example_studies(root: Path = ROOT) -> list[StudySpec]:
    """The study files the docs show and those in studies/, validated: the examples' source."""
    files = study_files_shown(root)
    studies = sorted(root.glob("studies/*.yaml"))
    files += [(str(path.relative_to(root)), path.read_text()) for path in studies]
    return [parse_study(text, where) for where, text in files]


def _hints(model: type[BaseModel]) -> dict:
    """The model's field annotations with forward references resolved."""
    return typing.get_type_hints(model, include_extras=True)


def models(root: type[BaseModel] = StudySpec) -> dict[type[BaseModel], str]:
    """Every pydantic model a study file can hold, `root` first, each once, in reading order,
    with the first place in a study file it is written (`data.corpus`; "" for the root)."""
    found: dict[type[BaseModel], str] = {}

    def visit(annotation, path: str) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found[annotation] = path
                for name, hint in _hints(annotation).items():
                    visit(hint, f"{path}.{name}".lstrip("."))
            return
        for arg in typing.get_args(annotation):
            visit(arg, path)

    visit(root, "")
    return found


def _anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def type_name(annotation) -> str:
    """A field's type in words, with links to the sections of nested models."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        parsers = [getattr(getattr(m, "func", None), "__name__", "") for m in args[1:]]
        return "count" if "parse_count" in parsers else type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict and typing.get_origin(args[0]) is typing.Literal:
        return "one per architecture"  # {decoder: 3e-3, encoder: 1e-3}
    if origin is dict:
        return f"mapping of {type_name(args[0])} to {type_name(args[1])}"
    if origin is tuple:
        return "pair of " + " and ".join(type_name(a) for a in args)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{_anchor(annotation)})"
    return getattr(annotation, "__name__", str(annotation))


def cell(text: str) -> str:
    """Text made safe for a markdown table cell: one line, `|` escaped, and `<name>` shown,
    not taken for an HTML tag."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _flow(value) -> str:
    """A value as it would be written in the study file, on one line."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True)
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
    return text.strip().removesuffix("...").strip().replace("|", "\\|")


def _default(field):
    return field.default_factory() if field.default is PydanticUndefined else field.default


def default_of(field) -> str:
    """A field's default as YAML, or "required" (a section's default: its fields' own)."""
    if field.is_required():
        return "required"
    value = _default(field)
    if isinstance(value, BaseModel):
        return f"[its fields' defaults](#{_anchor(type(value))})"
    return "—" if value is None else f"`{_flow(value)}`"


def examples_from(studies: list[BaseModel]) -> dict[tuple[type, str], object]:
    """For each (model, field) that one of the validated `studies` sets, the first value set."""
    seen: dict[tuple[type, str], object] = {}

    def visit(value) -> None:
        if isinstance(value, BaseModel):
            for name in value.model_fields_set:
                seen.setdefault((type(value), name), getattr(value, name))
                visit(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)

    for study in studies:
        visit(study)
    return seen


def example_of(name: str, field, shown=None) -> str:
    """A line of a study file that sets the field: its `examples=`, else what a study the
    docs show gives it (`shown`), else its default."""
    if field.examples:
        return f"`{name}: {_flow(field.examples[0])}`"
    value = shown if shown is not None else None if field.is_required() else _default(field)
    if isinstance(value, BaseModel):
        return f"[below](#{_anchor(type(value))})"
    return "—" if value is None else f"`{name}: {_flow(value)}`"


def study_fields_markdown(studies: list[BaseModel] = ()) -> str:
    """One table per model of the study file: every field's type, default, description and
    an example (taken from `studies`, validated study files, where the schema has none)."""
    shown = examples_from(list(studies))
    out = []
    for model, path in models().items():
        hints = _hints(model)
        doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
        where = f" Written at `{path}`." if path else ""
        out += [f"## {model.__name__} {{#{_anchor(model)}}}", "", doc + where, ""]
        out += ["| field | type | default | description | example |", "|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            description = cell(field.description or "")
            example = example_of(name, field, shown.get((model, name)))
            row = [f"`{name}`", type_name(hints[name]), default_of(field), description, example]
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)


def commands(app: typer.Typer | None = None) -> dict:
    """The `study` commands by name, as typer's click sees them."""
    group = typer.main.get_command(app or _app())
    return dict(sorted(group.commands.items()))


def _param_row(param, ctx) -> str:
    if param.param_type_name == "option":
        names = ", ".join(f"`{o}`" for o in param.opts + param.secondary_opts)
    else:
        names = f"`{(param.metavar or param.name).upper()}`"
    kind = "flag" if getattr(param, "is_flag", False) else param.display_type(ctx).strip("<>")
    shown = param.default not in (None, False, (), []) and not callable(param.default)
    default = f"`{param.default}`" if shown else ("required" if param.required else "—")
    help_text = cell(param.help or "")
    return f"| {names} | {kind} | {default} | {help_text} |"


def cli_markdown(app: typer.Typer | None = None) -> str:
    """Each command's usage line, help and parameters (arguments and options)."""
    group = typer.main.get_command(app or _app())
    root = group.context_class(group, info_name="study")
    out = ["## study", "", "```", "study " + " ".join(group.collect_usage_pieces(root)), "```", ""]
    out += [cell(group.help or ""), ""]
    out += ["| parameter | type | default | help |", "|---|---|---|---|"]
    out += [_param_row(p, root) for p in group.params if p.name != "help"] + [""]
    for name, cmd in commands(app).items():
        ctx = cmd.context_class(cmd, info_name=name, parent=root)
        usage = " ".join(cmd.collect_usage_pieces(ctx))
        out += [f"## study {name}", "", "```", f"study {name} {usage}", "```", ""]
        out += [cell(cmd.help or ""), ""]
        params = [p for p in cmd.params if p.name != "help"]
        if params:
            out += ["| parameter | type | default | help |", "|---|---|---|---|"]
            out += [_param_row(p, ctx) for p in params]
            out.append("")
    return "\n".join(out)


def _app() -> typer.Typer:
    from orchestrator.cli import app

    return app
