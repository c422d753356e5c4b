"""What the wheel holds, checked fast from the checkout: the package list, the package data, extras."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from metazoo._optional import MissingExtraError, require

ROOT = Path(__file__).resolve().parents[2]


def _setuptools_config() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_of_the_checkout_is_listed_for_the_wheel():
    """pyproject lists packages (registry/ is mapped in): a new subpackage must be added there."""
    config = _setuptools_config()
    on_disk = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "metazoo").rglob("__init__.py")
    }
    assert config["package-dir"] == {"metazoo.registry": "registry"}
    assert (ROOT / "registry" / "__init__.py").is_file()
    assert set(config["packages"]) == on_disk | {"metazoo.registry"}, (
        "pyproject.toml [tool.setuptools] packages must list every folder of metazoo/ with an "
        "__init__.py, plus metazoo.registry"
    )


def test_registry_package_data_covers_every_card_and_suite():
    patterns = _setuptools_config()["package-data"]["metazoo.registry"]
    registry = ROOT / "registry"
    shipped = {p for pattern in patterns for p in registry.glob(pattern)}
    files = {p for p in registry.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert files - shipped == {registry / "__init__.py"}
    assert {p.parent.name for p in shipped} == {"learners", "benchmarks", "suites"}


def test_registry_is_read_as_package_data():
    import metazoo.registry

    from metazoo.bench.suite import suite_dir
    from metazoo.cards import registry_dir

    assert Path(metazoo.registry.__file__).resolve().parent == ROOT / "registry"
    assert Path(str(registry_dir())).resolve() == ROOT / "registry"
    assert Path(str(suite_dir())).resolve() == ROOT / "registry" / "suites"


def test_require_names_the_extra_to_install(monkeypatch):
    assert require("json", "plotting", "x").__name__ == "json"
    for name in ("matplotlib", "matplotlib.pyplot"):  # as if matplotlib were not installed
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(
        MissingExtraError,
        match=r"^metazoo plot needs matplotlib, which is not installed: "
        r"pip install 'metazoo\[plotting\]'$",
    ):
        require("matplotlib.pyplot", "plotting", "metazoo plot")


def test_plot_without_matplotlib_says_which_extra(monkeypatch, tmp_path):
    from metazoo.bench.plot import plot_results

    for name in ("matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingExtraError, match=r"pip install 'metazoo\[plotting\]'"):
        plot_results(tmp_path, tmp_path / "figures")


def test_table_finds_the_built_in_suite_results_name_when_their_path_is_gone(tmp_path):
    """Result files record the suite's path; the committed quickstart ones name the old
    benchmarks/suites/, gone since the suites ship in the package: the name still finds it."""
    import json

    from metazoo.bench import load_suite
    from metazoo.cli.table import expected_cells

    for path in (ROOT / "benchmarks" / "results" / "quickstart").glob("*.json"):
        record = json.loads(path.read_text())
        record["suite_path"] = str(tmp_path / "gone" / "quickstart.yaml")
        (tmp_path / path.name).write_text(json.dumps(record))
    keys = [cell.key for cell in load_suite("quickstart").cells()]
    assert len(keys) == 8 and expected_cells(tmp_path) == keys
    # a record the built-in suite does not hold: that suite is not what wrote the folder
    record = json.loads(next(tmp_path.glob("maml__sinusoid__*.json")).read_text())
    (tmp_path / "other.json").write_text(json.dumps({**record, "cell": "maml__cub-5w1s__seed0"}))
    assert expected_cells(tmp_path) is None
