"""The library and the lab import one way only: ``lab/`` uses metazoo, metazoo never uses the lab.

Every file is parsed, not imported: each ``import`` statement counts, at module level or inside a
function, and so does a module named to ``importlib.import_module`` or ``__import__``. The fast
tier never imports the lab either: only ``tests/lab`` and ``tests/tools`` may, and every test
there is in the ``lab`` tier.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB_TESTS = ("lab", "tools")  # folders of tests/ that test the lab


def imported_roots(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports (absolute imports only: a relative
    import stays inside its own package)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else node.func
            name = called if isinstance(called, str) else getattr(called, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                roots.add(node.args[0].value.split(".")[0])
    return roots


def test_imported_roots_sees_imports_in_functions_and_by_name(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "import os.path\nfrom . import sibling\n"
        "def f():\n    from lab.speed import cli\n    importlib.import_module('tests.x')\n"
    )
    assert imported_roots(module) == {"os", "lab", "tests"}


def test_the_library_never_imports_the_lab_or_the_tests():
    modules = sorted((REPO / "metazoo").rglob("*.py"))
    assert len(modules) > 100
    offenders = {
        str(p.relative_to(REPO)): sorted(
            imported_roots(p) & {"lab", "tests", "benchmarks", "tools"}
        )
        for p in modules
    }
    assert not {p: roots for p, roots in offenders.items() if roots}


def test_only_the_lab_tests_import_the_lab():
    tests = REPO / "tests"
    outside = [p for p in tests.rglob("*.py") if p.relative_to(tests).parts[0] not in LAB_TESTS]
    assert len(outside) > 100
    importers = sorted(str(p.relative_to(REPO)) for p in outside if "lab" in imported_roots(p))
    assert importers == []
    inside = [p for folder in LAB_TESTS for p in (tests / folder).rglob("test_*.py")]
    assert sum("lab" in imported_roots(p) for p in inside) >= 10  # the check sees them


def test_the_lab_tests_are_outside_the_fast_tier():
    """tests/conftest.py marks every test of the lab folders ``lab``; the fast tier leaves it out."""
    conftest = ast.parse((REPO / "tests" / "conftest.py").read_text())
    (tiers,) = [
        ast.literal_eval(node.value)
        for node in conftest.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "FOLDER_TIERS"
    ]
    assert {folder: tiers[folder] for folder in LAB_TESTS} == {"lab": "lab", "tools": "lab"}
    addopts = re.search(r"^addopts = (.*)$", (REPO / "pyproject.toml").read_text(), re.M)
    assert "and not lab" in addopts.group(1)


def test_code_lives_in_the_lab_and_results_in_benchmarks():
    assert not (REPO / "tools").exists()
    assert sorted((REPO / "benchmarks").rglob("*.py")) == []  # data only: results/, tables/
    assert sorted(p.name for p in (REPO / "benchmarks").iterdir()) == ["results", "tables"]
    assert {p.name for p in (REPO / "lab").iterdir() if p.is_dir() and p.name != "__pycache__"} == {
        "docs", "gpu", "records", "reproductions", "speed",
    }  # fmt: skip
