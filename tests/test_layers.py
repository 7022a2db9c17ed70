"""The layers: trainers import neither orchestrator nor analysis, analysis does not import
orchestrator, and no module imports another in a circle (imports inside functions count)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("trainers", "analysis", "orchestrator")
BELOW = {"trainers": set(), "analysis": {"trainers"}, "orchestrator": {"trainers", "analysis"}}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> list[str]:
    """Every name a file imports, at its top or inside a function (`from a import b`: both
    `a.b` and `a`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [f"{node.module}.{a.name}" for a in node.names] + [node.module]
    return found


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The project's modules that a file imports (a `from package import module` names the
    module where there is one)."""
    found = set()
    for name in imported_names(path):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
             if "migrations" not in p.parts]  # fmt: skip
    modules = {_module(p) for p in files}
    graph = {_module(p): _imports(p, modules) for p in files}
    for name in graph:  # a package's __init__ importing its own modules is not a circle
        graph[name] = {m for m in graph[name] if m != name and not m.startswith(name + ".")}
    return graph


def test_no_import_runs_up_the_layers():
    upward = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if target.split(".")[0] not in BELOW[module.split(".")[0]] | {module.split(".")[0]}
    ]
    assert upward == []


def test_no_module_imports_another_in_a_circle():
    graph = _graph()
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_graph_sees_imports_inside_functions():
    graph = _graph()
    assert "trainers.architectures" in graph["trainers.hf"]
    assert "orchestrator.sharing" in graph["orchestrator.api"]  # imported where it is used


def test_only_the_schedulers_import_ray():
    """Ray stays behind the two modules that schedule (a trial on one worker, a trial on
    several), so the rest can be read, tested and run without it."""
    allowed = {"orchestrator.schedule", "orchestrator.raytrain"}
    importers = {
        _module(p)
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if any(n == "ray" or n.startswith("ray.") for n in imported_names(p))
    }
    assert importers == allowed
