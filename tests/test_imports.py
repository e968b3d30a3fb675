"""The library's import graph has no cycle (lazy imports inside functions count too): a module
that needs another's name gets it from below, never by importing back."""

from __future__ import annotations

from pathlib import Path

from conftest import REPO

from rebalance.core.code import imported_modules


def import_graph(root: Path, package: str = "rebalance") -> dict[str, set[str]]:
    """{module: the project modules it imports} for every module file under root/package. A
    module's own packages are left out: Python has begun running them before it runs the module
    (`from rebalance.registry import git` inside rebalance/registry/ imports a sibling)."""
    graph = {}
    for file in sorted((root / package).rglob("*.py")):
        rel = file.relative_to(root)
        parts = rel.with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[module] = {m for m in imported_modules(rel, root) if not (module + ".").startswith(m + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One path per cycle found by a depth-first search (a back edge closes a cycle)."""
    found, state = [], {}  # state: 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_library_has_no_import_cycle():
    assert cycles(import_graph(REPO)) == []


def test_a_planted_cycle_is_found(tmp_path):
    lib = tmp_path / "rebalance" / "core"
    lib.mkdir(parents=True)
    (tmp_path / "rebalance" / "__init__.py").write_text("")
    (lib / "__init__.py").write_text("")
    (lib / "a.py").write_text("from rebalance.core import b\n")
    (lib / "b.py").write_text("def f():\n    from rebalance.core.c import g  # lazy: still a cycle\n")
    (lib / "c.py").write_text("import rebalance.core.a\n")
    (lib / "d.py").write_text("from rebalance.core import a\n")  # imports into the cycle: not part of it
    found = cycles(import_graph(tmp_path))
    assert found == [["rebalance.core.a", "rebalance.core.b", "rebalance.core.c", "rebalance.core.a"]]
