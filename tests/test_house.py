"""The house rules a reader can check without running anything: modules stay small, functions
take few positional parameters, and the project neither points at nor reads files outside its
own tree (the folder the project was written beside is not the users')."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ("orchestrator", "trainers", "analysis", "bench")
MAX_LINES = 600
MAX_POSITIONAL = 6
# A path into the folder beside the checkout, or a file that only exists there; spelled as a
# pattern so that this file does not match itself.
OUTSIDE = re.compile(r"\.\./shared\b|\bshared/(anchors|DESIGN\.md|STYLE\.md)")
SKIP_DIRS = {".git", ".venv", "venv", "build", "runs", "reports", "artifacts", "test-artifacts",
             "node_modules", "__pycache__"}  # fmt: skip


def _files(*suffixes: str, under: tuple[str, ...] = ()) -> list[Path]:
    """The project's files with these suffixes (under the given folders, else anywhere),
    leaving out virtual environments, outputs and hidden folders."""
    found = []
    for top in [ROOT / u for u in under] or [ROOT]:
        for folder, dirs, names in os.walk(top):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
            found += [Path(folder) / n for n in names if n.endswith(suffixes)]
    return sorted(found)


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _too_long() -> list[str]:
    lines = {_where(p): len(p.read_text().splitlines()) for p in _files(".py", under=CODE)}
    return [f"{path} ({n} lines)" for path, n in sorted(lines.items()) if n > MAX_LINES]


def _is_typer_command(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A function decorated with `@app.command(...)` or `@app.callback(...)`."""
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr in ("command", "callback"):
            return True
    return False


def _positional(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    names = [a.arg for a in node.args.posonlyargs + node.args.args]
    return len(names) - (1 if names[:1] in (["self"], ["cls"]) else 0)


def _many_positional() -> list[str]:
    found = []
    for path in _files(".py", under=("orchestrator", "trainers", "analysis")):
        is_cli = _where(path) == "orchestrator/cli.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if is_cli and _is_typer_command(node):
                continue  # typer maps each parameter to an argument or option
            if (n := _positional(node)) > MAX_POSITIONAL:
                found.append(f"{_where(path)}:{node.lineno} {node.name} ({n})")
    return found


def test_no_module_outside_the_tests_is_over_600_lines():
    assert _too_long() == []


def test_no_function_takes_more_than_six_positional_parameters():
    assert _many_positional() == []


def test_the_positional_count_leaves_out_self_and_counts_positional_only():
    tree = ast.parse(
        "class A:\n    def f(self, a, b, /, c, *, d): ...\n"
        "def g(a, b, c, d, e, f, g, *args, h=1): ...\n"
    )
    counts = {n.name: _positional(n) for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert counts == {"f": 3, "g": 7}


def test_the_docs_never_point_outside_the_project():
    """The README, BENCHMARKS.md, docs/ and every other Markdown file name only files a user of
    the project has."""
    pointing = [
        f"{_where(path)}:{number}: {line.strip()}"
        for path in _files(".md")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert pointing == []


def _names_the_folder(text: str) -> bool:
    """A string that is, or starts a path into, the folder beside the checkout."""
    parts = text.split("/")
    return parts[0] == "shared" or ("shared" in parts and ".." in parts)


def test_no_code_reads_outside_the_project():
    """No module, test, benchmark, study or CI script names the folder beside the checkout,
    neither as a relative path nor as a path component ("shared" joined onto a parent)."""
    found = []
    for path in _files(".py", ".yaml", ".yml", ".toml", ".sh", ".cfg", ".ini"):
        text = path.read_text()
        found += [f"{_where(path)}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
        if path.suffix == ".py" and path != Path(__file__).resolve():  # this file names it
            found += [
                f"{_where(path)}:{node.lineno}: {node.value!r}"
                for node in ast.walk(ast.parse(text, str(path)))
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
                and _names_the_folder(node.value)
            ]  # fmt: skip
    for script in _files("", under=(".ci",)):  # CI scripts may have no suffix
        found += [f"{_where(script)}: {m.group(0)}" for m in OUTSIDE.finditer(script.read_text())]
    assert found == []
