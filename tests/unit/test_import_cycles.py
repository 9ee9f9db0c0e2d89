"""The packages import each other in one direction only: no module imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("carla_neural", "renderer", "scenarios", "domain_adapt")


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its file (top level or in a function)."""
    known = modules()

    def owner(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(parent + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                module = owner(target)
                # A module importing its own package's __init__ is how packages work, not a cycle.
                if module and module != name and not name.startswith(module + "."):
                    graph[name].add(module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph()
    assert "carla_neural.render_client" in graph and "carla_neural.worker_supervisor" in graph
    assert cycles(graph) == []


def test_the_render_session_never_imports_the_supervisor() -> None:
    graph = import_graph()
    assert "carla_neural.worker_supervisor" not in graph["carla_neural.render_session"]
    assert "carla_neural.worker_supervisor" not in graph["carla_neural.render_client"]


def test_renderer_needs_nothing_of_the_client_side() -> None:
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("renderer"):
            assert all(target.startswith("renderer") for target in targets), (name, targets)


def test_only_the_cli_of_carla_neural_imports_scenarios() -> None:
    # scenarios/ maps scenarios onto carla_neural's run specs; the library below the CLI never
    # reaches back up into it.
    for name, targets in import_graph().items():
        if name.startswith("carla_neural.") and not name.startswith("carla_neural.cli"):
            assert not any(target.startswith("scenarios") for target in targets), (name, targets)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_cli_of_carla_neural_imports_domain_adapt() -> None:
    # domain_adapt measures and calibrates on top of carla_neural (remap, the built-in world, the
    # label transform that runs apply); the run pipeline itself never needs domain_adapt.
    for name, targets in import_graph().items():
        if name.startswith("carla_neural.") and not name.startswith("carla_neural.cli"):
            assert not any(target.startswith("domain_adapt") for target in targets), (name, targets)
    assert "carla_neural.label_transform" in import_graph()["domain_adapt.transform"]
