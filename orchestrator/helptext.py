"""How `study --help` reads: the typer app's classes, which show a flag without a type, a
required argument as STUDY and each command's help as whole sentences."""

from __future__ import annotations

import inspect
import re

import typer

FLAG = ""  # flags take no value: no type is shown after them in --help


def one_paragraph(text: str | None) -> str | None:
    """A docstring with its single line breaks made spaces: typer's list of commands keeps them,
    so a command's help broke mid-sentence wherever its docstring did."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def usage_piece(piece: str) -> str:
    """An argument in the usage line as click writes it, STUDY or [SOURCES]...: typer writes a
    required one as {study}, which reads as a format string's placeholder left unfilled."""
    found = re.fullmatch(r"([{\[])([\w-]+)[}\]](\.\.\.)?", piece)
    if not found:
        return piece
    opening, name, more = found.groups()
    name = name.upper().replace("-", "_")
    return (name if opening == "{" else f"[{name}]") + (more or "")


class _FlagHelp:
    """typer's own --help, shown as a flag like ours."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = FLAG
        return option


class Group(_FlagHelp, typer.core.TyperGroup):
    """The `study` group."""


class Command(_FlagHelp, typer.core.TyperCommand):
    """A `study` command, its usage line in click's words."""

    def collect_usage_pieces(self, ctx):
        return [usage_piece(piece) for piece in super().collect_usage_pieces(ctx)]


class App(typer.Typer):
    """A Typer whose commands all show --help as a flag and their help as whole sentences."""

    def command(self, *args, **kwargs):
        def register(function):
            options = {**kwargs, "help": one_paragraph(kwargs.get("help") or function.__doc__)}
            return super(App, self).command(*args, cls=Command, **options)(function)

        return register
