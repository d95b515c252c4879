"""The house's shape: data flows one way, so no module imports one above it and there are no cycles.

Every ``import`` of ``daemon`` or ``parsers`` in the code (inside functions too) is an edge of the
graph. Each module has a layer; an import goes to a lower layer, or stays inside its own family
(``daemon.sources``, ``daemon.sinks``, ``daemon.delivery`` ...) on the same layer. So the sources
never reach into delivery, delivery knows nothing of the CI, and the parsers know nothing of the
daemon.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Most specific prefix wins. Lower numbers are lower in the flow's foundations.
LAYERS: dict[str, float] = {
    "parsers": 0,
    "daemon": 1,  # the package itself: the version
    "daemon.clock": 0,  # stdlib only: every layer of the daemon reads the one clock (parsers have none)
    "daemon.config": 1,
    "daemon.migrations": 1,
    "daemon.outbox_counts": 0.5,  # the queue's counts, mixed into the queue
    "daemon.outbox": 1,  # the store's queue half, mixed into it
    "daemon.state_check": 1,
    "daemon.store": 2,
    "daemon.ops.logs": 2,
    "daemon.ops.notify": 2,
    "daemon.ops.metrics": 2,
    "daemon.delivery.lock": 2,
    "daemon.delivery.budget": 2,
    "daemon.sinks": 4,
    "daemon.events": 3,
    "daemon.recovery": 3,
    "daemon.scope": 3.5,  # which runs count: above the events it judges, below history and sinks
    "daemon.history": 4,
    "daemon.recorder": 5,
    "daemon.sources": 6,
    "daemon.delivery": 6,
    "daemon.ops.status": 6,
    "daemon.ops.state_cmd": 6,
    "daemon.ops.unmapped": 6,
    "daemon.ops.health": 7,
    "daemon.ops.explain": 7,  # reads a run through the sources' own code
    "daemon.ops.explain_render": 7,
    "daemon.ops.explain_jira": 7,
    "daemon.loop": 7,
    "daemon.service": 8,
    "daemon.backfill": 8,
    "daemon.cli": 9,
    "daemon.__main__": 10,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for top in ("daemon", "parsers") for p in sorted((REPO / top).rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports (``from x import y`` counts ``x.y`` when that is a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known)
    return {m for m in out if m in known}


def _layer(module: str) -> float:
    parts = module.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise AssertionError(f"{module} has no layer: add it to LAYERS")


def _family(module: str) -> str:
    """``parsers``, or the daemon's subpackage or module: ``daemon.sources``, ``daemon.store`` ..."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "daemon" else parts[0]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, known) - {name} for name, path in modules.items()}


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        _layer(module)


def _violations(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, imports in graph.items():
        for target in imports:
            if module.startswith(target + "."):
                continue  # a module may use its own package's re-exports
            lower = _layer(target) < _layer(module)
            same_family = _layer(target) == _layer(module) and _family(target) == _family(module)
            if not (lower or same_family):
                wrong.append(f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})")
    return sorted(wrong)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_no_module_imports_upward_or_sideways() -> None:
    wrong = _violations(_graph())
    assert not wrong, "\n".join(wrong)


def test_parsers_know_nothing_of_the_daemon() -> None:
    for module, imports in _graph().items():
        if module.startswith("parsers"):
            assert not {m for m in imports if m.startswith("daemon")}, module


def test_no_import_cycles() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_can_fail() -> None:
    """The graph is read from the real files, and a planted upward import or cycle is caught."""
    graph = _graph()
    assert "daemon.sources.jenkins.source" in graph["daemon.sources.jenkins.runner"]
    assert "daemon.recorder" in graph["daemon.sources.runner"]
    graph["daemon.store"] = graph["daemon.store"] | {"daemon.service"}
    assert _violations(graph) == ["daemon.store (layer 2) imports daemon.service (layer 8)"]
    assert _violations({"daemon.sources.watch": {"daemon.delivery.sender"}})
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
