"""The package's import graph, read from the source: no cycles, and the layers stay layers.

Every import statement counts, also those inside functions (the lazy imports that keep
pyroute2 off the VERSION path) and under TYPE_CHECKING: a cycle through a lazy import is still
a cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "cni_bridge_py"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imported(module: str) -> Iterator[str]:
    """Every module name an import statement of `module` refers to (outside ones too)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                # `from pkg import mod` names a module; `from mod import name` the module.
                candidate = f"{base}.{alias.name}"
                yield candidate if candidate in MODULES else base


def graph() -> dict[str, set[str]]:
    return {m: {t for t in imported(m) if t in MODULES and t != m} for m in MODULES}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read() -> None:
    edges = graph()
    assert "cni_bridge_py.verbs.dispatch" in MODULES
    assert "cni_bridge_py.verbs.add" in edges["cni_bridge_py.verbs.dispatch"]
    assert "cni_bridge_py.version" in edges["cni_bridge_py.front"]  # `from pkg import mod as x`


def test_a_cycle_is_detected() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_the_package() -> None:
    assert cycles(graph()) == []


# The stdlib-only edge: what every plugin run loads before it knows the request is valid.
EDGE = ("answer", "request", "front", "errors", "version", "validate", "faults", "record", "cjson")


@pytest.mark.parametrize("name", EDGE)
def test_the_edge_imports_only_the_edge(name: str) -> None:
    module = f"{PACKAGE}.{name}"
    ours = {t for t in imported(module) if t.startswith(PACKAGE)}
    allowed = {PACKAGE} | {f"{PACKAGE}.{n}" for n in EDGE}
    assert ours <= allowed, ours - allowed


def test_only_the_kernel_package_imports_pyroute2() -> None:
    importers = {m for m in MODULES if any(t.startswith("pyroute2") for t in imported(m))}
    assert importers and all(m.startswith(f"{PACKAGE}.kernel.") for m in importers), importers


def test_nothing_but_the_process_edges_imports_the_verbs_or_the_agent() -> None:
    """Verbs are reached through the dispatch the edge passes to the front; the agent through
    its own subcommand."""
    edges = graph()
    for layer, users in (
        # doctor --fix runs the plugin's GC in process, through the front and the verb table.
        ("verbs", {"cli", "agent.server", "doctor.fix"}),
        # doctor reads where the agent's socket is.
        ("agent", {"cli", "doctor.read"}),
        # inspect finds networks as the runner does, and reads its cache format; doctor --fix
        # builds GC's request as the runner does.
        ("runner", {"cli", "inspect.read", "doctor.fix"}),
        # doctor reuses inspect's reads and join.
        ("inspect", {"cli", "doctor.facts", "doctor.checks", "doctor.read", "doctor.main"}),
        ("doctor", {"cli"}),
    ):
        outside = {
            m
            for m, targets in edges.items()
            if not m.startswith(f"{PACKAGE}.{layer}")
            and any(t.startswith(f"{PACKAGE}.{layer}") for t in targets)
        }
        assert outside <= {f"{PACKAGE}.{u}" for u in users}, (layer, outside)


def readme_layout() -> set[str]:
    """The package entries the README's layout block names ("  cli.py", "  verbs/")."""
    text = (ROOT.parent / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    inside = block.split(f"{PACKAGE}/", 1)[1].split("\ntools/", 1)[0]
    return {
        line.split()[0]
        for line in inside.splitlines()
        if line.startswith("  ") and not line.startswith("   ") and line.split()
    }


def test_the_readme_layout_names_every_part_of_the_package() -> None:
    on_disk = {
        p.name + ("/" if p.is_dir() else "")
        for p in ROOT.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists()) and not p.name.startswith("__")
    }
    assert readme_layout() == on_disk
