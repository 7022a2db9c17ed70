"""The documentation site: it builds with --strict and offline, its generated references cover
every field of the study file and every command (checked against the JSON schema and the
commands' --help, not against the generator's own walk), and every study file it shows plans."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.spec import StudySpec, parse_study

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_references", ROOT / "docs" / "references.py")
references = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(references)


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package
        return False


def _section(markdown: str, heading: str) -> str:
    """The text under `## heading` up to the next `## `."""
    start = markdown.index(f"## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def test_the_site_builds_strict_offline_with_its_generated_pages(tmp_path):
    missing = [m for m in ("mkdocs", "material", "mkdocstrings_handlers.python") if not _has(m)]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f'{missing} missing: .ci/run installs the docs extra (".[test,docs]")')
        pytest.skip(f'{missing} not installed: pip install -e ".[docs]"')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    fields = (site / "reference" / "study-fields.html").read_text()
    assert 'id="studyspec"' in fields and "seq_len" in fields
    assert "study run" in (site / "reference" / "cli.html").read_text()
    assert 'id="orchestrator.api.run_study"' in (site / "reference" / "api.html").read_text()
    assert "Benchmarks" in (site / "benchmarks.html").read_text()
    pages = list(site.rglob("*.html"))
    assert not [p for p in pages if "fonts.googleapis.com" in p.read_text()]  # offline
    # nothing loaded from another host: the offline plugin's search shim is kept with the site
    remote = re.compile(r'<(?:script|link)[^>]+(?:src|href)="(?:https?:)?//')
    assert not [p for p in pages if remote.search(p.read_text())]
    assert (site / "assets" / "javascripts" / "iframe-worker" / "shim.js").is_file()


def test_the_field_reference_has_every_field_of_the_json_schema():
    """A field the schema adds (or a model a study file can now hold) with no row, description
    or example in the generated reference fails here."""
    markdown = references.study_fields_markdown(references.example_studies())
    schema = StudySpec.model_json_schema()
    models = {"StudySpec": schema, **schema["$defs"]}
    for model, definition in models.items():
        section = _section(markdown, f"{model} {{#{model.lower()}}}")
        for field in definition["properties"]:
            rows = [r for r in section.splitlines() if r.startswith(f"| `{field}` |")]
            assert len(rows) == 1, f"{model}.{field} has no row in the field reference"
            cells = [c.strip() for c in rows[0].strip("|").split(" | ")]
            assert cells[3], f"{model}.{field} has no description: give it Field(description=...)"
            assert cells[4] != "—", f"{model}.{field} has no example: give it Field(examples=...)"


def test_the_command_reference_has_every_command_and_every_option_of_its_help():
    markdown = references.cli_markdown()
    runner = CliRunner()
    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    assert sorted(names) == sorted(references.commands())
    for name in [None, *names]:
        help_text = runner.invoke(app, [name, "--help"] if name else ["--help"]).output
        section = _section(markdown, f"study {name}" if name else "study")
        listed = re.findall(r"^[\s│|*]*(--[a-z][a-z0-9-]*)", help_text, re.M)  # its options panel
        assert "--help" in listed, help_text  # the panel was found
        for option in set(listed) - {"--help"}:
            assert f"`{option}`" in section, f"study {name or ''} {option} is not in the reference"


STUDIES = references.study_files_shown()


def _fetches_or_trains_a_tokenizer(text: str) -> bool:
    """Whether planning the study downloads its corpus or trains a BPE (comments aside)."""
    code = re.sub(r"#.*", "", text)
    return re.search(r"builtin:prose|bpe|hf:", code) is not None


def test_the_docs_show_whole_study_files():
    """The README's, the study file reference's and the tutorial's: a change in how blocks are
    found must not leave the test below with nothing to plan."""
    shown = [where for where, _ in STUDIES]
    assert any(w.startswith("README.md") for w in shown)
    assert any(w.startswith("docs/study-file.md") for w in shown)
    assert "studies/quickstart.yaml" in shown


@pytest.mark.parametrize(
    "where, text",
    [
        pytest.param(
            *case,
            id=case[0],
            marks=[pytest.mark.slow] if _fetches_or_trains_a_tokenizer(case[1]) else [],
        )
        for case in STUDIES
    ],
)
def test_every_study_file_the_docs_show_plans(where, text, tmp_path, monkeypatch):
    """`study plan` on it, as a reader would run it: a grid of trials, each with its numbers
    (its corpus's token files under tmp_path; builtin:prose is fetched once, hence slow)."""
    from orchestrator import api

    monkeypatch.chdir(tmp_path)
    grid = api.plan(parse_study(text, where))
    assert len(grid) > 0 and (grid["n_params"] > 0).all() and (grid["tokens"] > 0).all()


def test_the_readmes_links_into_the_repository_resolve():
    """The README links to docs/*.md as files (GitHub shows them); moving a page breaks them."""
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert any(t.startswith("docs/") for t in local)
    assert [t for t in local if not (ROOT / t).exists()] == []
