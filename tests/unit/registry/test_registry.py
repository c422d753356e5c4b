"""The registry: names, variants, config validation, duplicates, suggestions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from metazoo import _registry
from metazoo._registry import create_learner, get_learner, list_learners, register_learner


@pytest.fixture
def scratch_registry(monkeypatch):
    """A registry holding only what the test registers (built-ins and plugins marked loaded)."""
    monkeypatch.setattr(_registry, "_REGISTRY", {})
    monkeypatch.setattr(_registry, "_PLUGIN_ERRORS", [])
    monkeypatch.setattr(_registry, "_LOADED", {"builtins": True, "plugins": True})
    return _registry._REGISTRY


def make_scaler_class():
    class Scaler(nn.Module):
        @dataclass
        class Config:
            scale: float = 1.0  #: multiplies the model's output
            steps: int = 1  #: unused here

        def __init__(self, model, config):
            super().__init__()
            self.model, self.config = model, config

    return Scaler


def test_variants_share_a_class_with_other_defaults(scratch_registry):
    cls = make_scaler_class()
    register_learner("scaler", family="metric")(cls)
    register_learner("scaler2", family="metric", scale=2.0)(cls)
    assert list_learners() == ["scaler", "scaler2"]
    model = nn.Linear(2, 2)
    learner = create_learner("scaler2", model, steps=3)
    assert learner.config.scale == 2.0 and learner.config.steps == 3
    assert learner.model is model, "the model must be used as given, never copied"
    assert learner.registered_name == "scaler2"
    assert list_learners(family="optimization") == []


def test_unknown_config_key_lists_valid_keys_and_suggests(scratch_registry):
    register_learner("scaler", family="metric")(make_scaler_class())
    with pytest.raises(
        TypeError,
        match=r"unknown config key 'scal' \(did you mean 'scale'\?\); valid keys: scale, steps",
    ):
        create_learner("scaler", nn.Linear(1, 1), scal=3)


def test_bad_variant_default_is_caught_at_registration(scratch_registry):
    with pytest.raises(TypeError, match="unknown config key 'lr'"):
        register_learner("scaler", family="metric", lr=0.1)(make_scaler_class())


def test_unknown_family_and_missing_config_are_errors(scratch_registry):
    with pytest.raises(ValueError, match="family must be one of"):
        register_learner("x", family="bayesian")
    with pytest.raises(TypeError, match="needs a `Config` dataclass"):
        register_learner("x", family="metric")(type("NoConfig", (nn.Module,), {}))


def test_duplicate_name_names_both_definitions(scratch_registry):
    register_learner("dup", family="metric")(make_scaler_class())
    other = type("Other", (make_scaler_class(),), {})
    with pytest.raises(
        ValueError,
        match=r"'dup' is registered twice: first by .*Scaler \(.*test_registry.py:\d+.*again by Other",
    ):
        register_learner("dup", family="metric")(other)


def test_unknown_learner_suggests_close_names(scratch_registry):
    register_learner("protonet", family="metric")(make_scaler_class())
    with pytest.raises(KeyError, match="unknown learner 'protonett'. Did you mean 'protonet'"):
        get_learner("protonett")


def test_builtins_are_discovered_from_the_learners_package():
    families = {name: get_learner(name).family for name in list_learners()}
    expected = {
        "maml": "optimization", "fomaml": "optimization", "reptile": "optimization",
        "anil": "optimization", "metasgd": "optimization", "mamlpp": "optimization",
        "finetune": "optimization", "protonet": "metric", "matchingnet": "metric",
        "relationnet": "metric", "snail": "model", "mann": "model", "cnp": "model",
    }  # fmt: skip
    assert {name: families.get(name) for name in expected} == expected
    assert all(get_learner(name).provider == "metazoo" for name in expected)


def test_create_learner_meta_gradient_lands_in_given_model(scratch_registry):
    class Linear(nn.Module):
        @dataclass
        class Config:
            pass

        def __init__(self, model, config):
            super().__init__()
            self.model, self.config = model, config

        def meta_loss(self, batch, step=None):
            return self.model(batch.query_x).pow(2).mean(), {}

    register_learner("lin", family="metric")(Linear)
    model = nn.Linear(3, 1)
    learner = create_learner("lin", model)
    from metazoo import EpisodeBatch

    x = torch.randn(2, 4, 3)
    loss, _ = learner.meta_loss(EpisodeBatch(x, x[..., :1], x, x[..., :1]))
    loss.backward()
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0
