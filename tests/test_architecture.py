"""The package's layering: no import cycle, function-local imports included.

Reads every module of ``src/cnnlab`` with ``ast`` (nothing is imported), takes
each ``import`` / ``from ... import`` statement wherever it stands (module
level, inside a function, under ``TYPE_CHECKING``), and checks that the graph
of cnnlab modules has no cycle. A package stands for its ``__init__``;
importing a submodule does not count as importing its parent package's
``__init__`` (Python runs it first, but that is the package's own business).
"""

from __future__ import annotations

import ast
from pathlib import Path

import cnnlab

SRC = Path(cnnlab.__file__).parent


def module_names() -> dict[str, Path]:
    names = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod
                       for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 30
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_layering_reads_top_to_bottom():
    """The design's layers: ops never import layers, layers never the model, the model
    never the CLI or the server, and the codec never the model class."""
    graph = import_graph()

    def reaches(src: str, prefix: str) -> bool:
        seen, todo = set(), [src]
        while todo:
            node = todo.pop()
            for nxt in graph[node]:
                if nxt.startswith(prefix) and not src.startswith(prefix):
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    assert not reaches("cnnlab.ops.conv", "cnnlab.layers")
    assert not reaches("cnnlab.layers.conv", "cnnlab.model")
    assert not reaches("cnnlab.serialization", "cnnlab.model")
    assert not reaches("cnnlab.training.loop", "cnnlab.model")
    assert not reaches("cnnlab.model", "cnnlab.cli")
    assert not reaches("cnnlab.model", "cnnlab.serve")
    assert not reaches("cnnlab.model", "cnnlab.saving")
