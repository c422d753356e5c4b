"""The package's layers point one way and its modules import no cycle, not even lazily.

episode/learner <- engine <- learners <- evaluation/training <- bench <- cli (design.md). Every
``import`` statement counts, at module level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import metazoo

ROOT = Path(metazoo.__file__).parent

#: Rank of each part of the package: a module may import only modules of its rank or lower.
RANKS = {
    "metazoo.episode": 0,
    "metazoo.learner": 0,
    "metazoo.metrics": 0,
    "metazoo._atomic": 0,
    "metazoo.overrides": 0,
    "metazoo._optional": 0,
    "metazoo.models": 1,
    "metazoo._registry": 1,
    "metazoo.cards": 2,
    "metazoo.distributed": 2,
    "metazoo.data": 3,
    "metazoo.engine": 3,
    "metazoo.experimental": 4,
    "metazoo.learners": 4,
    "metazoo.build": 5,
    "metazoo.evaluation": 6,
    "metazoo.training": 6,
    "metazoo.runs": 6,
    "metazoo.testing": 7,
    "metazoo.bench": 7,
    "metazoo.predict": 7,
    "metazoo.cli": 8,
    "metazoo.__main__": 8,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of the package that ``path`` imports (``from pkg import sub`` counts as ``sub``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            subs = {f"{base}.{a.name}" for a in node.names} & known
            found |= subs or {base}
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, set(modules)) for name, path in modules.items()}


def _rank(module: str) -> int | None:
    for prefix in sorted(RANKS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return RANKS[prefix]
    return None


def test_every_module_has_a_layer():
    unranked = sorted(m for m in _modules() if m != "metazoo" and _rank(m) is None)
    assert not unranked, f"give these modules a rank in RANKS: {unranked}"


def test_no_lower_layer_imports_a_higher_one():
    upward = [
        f"{a} (rank {_rank(a)}) imports {b} (rank {_rank(b)})"
        for a, targets in _graph().items()
        for b in targets
        if a != "metazoo" and b != "metazoo" and _rank(b) > _rank(a)
    ]
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _graph()
    graph.pop("metazoo")  # the lazy public re-exports: importlib by name, no import statement
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("package", ["perf", "readme"])
def test_the_lab_and_repository_tools_are_outside_the_package(package):
    assert not (ROOT / package).exists() and not (ROOT / f"{package}.py").exists()
