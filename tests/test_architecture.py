"""The house rules (docs/architecture.md), kept by the code itself: the import graph of the
installed package, built by grimp, checked against them."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import grimp
import pytest

PACKAGE = "reconciler"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE)


def _top(module: str) -> str:
    """``reconciler.agent.run`` -> ``agent``; a top-level module is its own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_edges(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    """Which top-level sub-package imports which (direct imports, any module in it)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = _top(module), _top(imported)
            if a != b:
                edges[a].add(b)
    return edges


def test_control_imports_only_the_standard_library_and_the_site_model(
    graph: grimp.ImportGraph,
) -> None:
    """control/ is pure: no I/O libraries, no other part of Flux but the site model."""
    allowed_flux = {"reconciler.config.model"}
    stdlib = set(sys.stdlib_module_names)
    control = graph.find_descendants("reconciler.control") | {"reconciler.control"}
    bad = [
        f"{module} imports {imported}"
        for module in control
        for imported in graph.find_modules_directly_imported_by(module)
        if not imported.startswith("reconciler.control") and imported not in allowed_flux
    ]
    # grimp lists only modules of the package; third-party imports need the external view
    external = grimp.build_graph(PACKAGE, include_external_packages=True)
    for module in sorted(external.find_descendants("reconciler.control") | {"reconciler.control"}):
        for imported in external.find_modules_directly_imported_by(module):
            root = imported.split(".")[0]
            if root != PACKAGE and root not in stdlib and root != "__future__":
                bad.append(f"{module} imports {imported}")
    assert not bad, "\n".join(sorted(set(bad)))


def test_no_cycle_between_packages(graph: grimp.ImportGraph) -> None:
    edges = package_edges(graph)
    cycles: list[str] = []
    for a, targets in edges.items():
        for b in targets:
            if a in edges.get(b, set()):
                cycles.append(f"{a} <-> {b}")
            # longer cycles: b reaches a through others
            elif a in _reachable(edges, b, avoid=a):
                cycles.append(f"{a} -> {b} -> ... -> {a}")
    assert not cycles, "\n".join(sorted(set(cycles)))


def _reachable(edges: dict[str, set[str]], start: str, avoid: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        for nxt in edges.get(node, set()):
            if nxt not in seen:
                seen.add(nxt)
                if nxt != avoid:
                    todo.append(nxt)
    return seen


def test_only_the_agent_wires_production_parts(graph: grimp.ImportGraph) -> None:
    """The Agent (reconciler.agent.run) is the one place the real source, devices,
    uploader and market clients are put together; only the agent's own commands use it."""
    importers = graph.find_modules_that_directly_import("reconciler.agent.run")
    outside = sorted(m for m in importers if not m.startswith("reconciler.agent."))
    assert outside == [], outside


def test_the_status_model_is_a_leaf(graph: grimp.ImportGraph) -> None:
    """The agent writes it, the source sets its conditions, the diff reads it: so it may
    import none of them."""
    bad = [
        f"{m} imports {i}"
        for m in graph.find_descendants("reconciler.status")
        for i in graph.find_modules_directly_imported_by(m)
        if _top(i) in {"agent", "source", "diff", "telemetry", "devices", "markets"}
    ]
    assert not bad, bad


#: What reconciler.report may import (docs/architecture.md, rule 5): it reads the record
#: and reuses the backtest's optimum, and never drives a device or the agent.
REPORT_MAY_IMPORT = {
    "report", "telemetry", "backtest", "planning", "config", "control", "diff", "clierrors",
    "cliparams", "plots",
}  # fmt: skip


def test_the_report_reads_and_reuses_but_drives_nothing(graph: grimp.ImportGraph) -> None:
    bad = [
        f"{m} imports {i}"
        for m in graph.find_descendants("reconciler.report") | {"reconciler.report"}
        for i in graph.find_modules_directly_imported_by(m)
        if _top(i) not in REPORT_MAY_IMPORT
    ]
    assert not bad, bad


def test_the_documented_package_graph_is_the_code_s(graph: grimp.ImportGraph) -> None:
    """docs/architecture.md's "package graph today" lists, for each package it names,
    exactly what the package imports (a reader trusts it to match the tree)."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    block = doc.split("The package graph today (a -> what a imports):\n\n```\n", 1)[1]
    edges = package_edges(graph)
    for line in block.split("```", 1)[0].splitlines():
        name, _, imports = line.partition("->")
        listed = {i.strip() for i in imports.split("(", 1)[0].split(",")}
        assert listed == edges[name.strip()], (name.strip(), sorted(edges[name.strip()]))
