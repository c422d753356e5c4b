"""Plugins through the ``metazoo.learners`` entry-point group, using the example plugin's metadata."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metazoo import _registry

REPO = Path(__file__).resolve().parents[3]
PLUGIN_SRC = REPO / "examples" / "plugin" / "src"


def write_distribution(root: Path, dist: str, entry_points: dict[str, str]) -> None:
    """Write the metadata pip would install for ``dist`` (no code copied)."""
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[metazoo.learners]\n{lines}")


@pytest.fixture
def plugin_env(tmp_path, monkeypatch):
    """Fresh plugin discovery over a site folder holding the example plugin's metadata."""
    site = tmp_path / "site"
    write_distribution(site, "metazoo-r2d2", {"r2d2": "metazoo_r2d2.learner:R2D2"})
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    monkeypatch.syspath_prepend(str(site))
    _registry._load_builtins()
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    monkeypatch.setattr(_registry, "_PLUGIN_ERRORS", [])
    monkeypatch.setattr(_registry, "_LOADED", {"builtins": True, "plugins": False})
    monkeypatch.delenv("METAZOO_DISABLE_PLUGINS", raising=False)
    return site


def test_example_plugin_is_discovered_with_its_distribution(plugin_env):
    assert "r2d2" in _registry.list_learners()
    entry = _registry.get_learner("r2d2")
    assert entry.provider == "metazoo-r2d2" and entry.family == "optimization"
    assert not entry.is_builtin
    from metazoo.cards import learner_card

    assert learner_card("r2d2")["title"].startswith("Meta-learning with differentiable")


def test_broken_plugin_is_reported_and_never_fatal(plugin_env):
    write_distribution(plugin_env, "broken-pkg", {"broken": "no_such_module_xyz:Thing"})
    with pytest.warns(
        RuntimeWarning, match=r"plugin 'broken' from distribution 'broken-pkg' failed"
    ):
        names = _registry.list_learners()
    assert "r2d2" in names and "broken" not in names
    (error,) = _registry.plugin_errors()
    assert error.distribution == "broken-pkg" and "ModuleNotFoundError" in error.error


def test_plugin_cannot_shadow_a_builtin(plugin_env, monkeypatch):
    from dataclasses import dataclass

    from torch import nn

    class Builtin(nn.Module):
        @dataclass
        class Config:
            pass

    _registry._add(_registry.LearnerEntry("taken", Builtin, "metric"))
    write_distribution(plugin_env, "shadow-pkg", {"taken": "metazoo_r2d2.learner:R2D2"})
    with pytest.warns(RuntimeWarning, match="would shadow the built-in learner"):
        _registry.list_learners()
    assert _registry.get_learner("taken").cls is Builtin


def test_disable_plugins_by_name(plugin_env, monkeypatch):
    monkeypatch.setenv("METAZOO_DISABLE_PLUGINS", "r2d2, other")
    assert "r2d2" not in _registry.list_learners()


def test_metazoo_ls_shows_the_plugin(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "metazoo-r2d2", {"r2d2": "metazoo_r2d2.learner:R2D2"})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(PLUGIN_SRC)]), COLUMNS="200")
    out = subprocess.run(
        [sys.executable, "-m", "metazoo", "ls", "learners"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    row = next(line for line in out.splitlines() if " r2d2 " in line)
    assert "metazoo-r2d2" in row and "optimization" in row and "ok" in row


def test_plugin_passes_the_contract_suite(plugin_env):
    from metazoo.testing import check_learner

    check_learner("r2d2")


def test_plugin_meta_gradient_reaches_its_embedding(plugin_env):
    import torch

    from metazoo import create_learner
    from metazoo.models import make_backbone
    from metazoo.testing import synthetic_batch

    torch.manual_seed(0)
    embedding = make_backbone("conv4", (1, 28, 28), hidden=4)
    learner = create_learner("r2d2", embedding)
    loss, metrics = learner.meta_loss(synthetic_batch())
    loss.backward()
    assert embedding.features[0][0].weight.grad.abs().sum() > 0
    assert learner.log_lambda.grad is not None and 0.0 <= metrics["accuracy"] <= 100.0


@pytest.mark.learning
@pytest.mark.usefixtures("omniglot_data")
def test_plugin_trains_and_evaluates_like_a_builtin(plugin_env):
    """Same API as the built-ins: build for a benchmark, meta-train, evaluate on held-out classes."""
    import torch

    import metazoo

    torch.set_num_threads(1)
    learner = metazoo.build_learner("r2d2", "omniglot-5w1s", backbone_options={"hidden": 16})
    assert learner.model.head is None, "the card asks for an embedding backbone"
    config = metazoo.TrainConfig(steps=60, meta_batch=4, seed=0)
    metazoo.train(learner, "omniglot-5w1s", config, queries=5)
    result = metazoo.evaluate(learner, "omniglot-5w1s", episodes=50, seed=0, queries=5)
    # Measured 68.0% after 60 steps (chance is 20%).
    assert result.mean > 45.0, result
    assert result.provenance["learner"] == "r2d2"
