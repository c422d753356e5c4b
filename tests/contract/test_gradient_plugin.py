"""The gradient-based plugin of the plugin guide (``examples/gradient_plugin.py``) passes the
contract suite and trains with the engine's training step to the weights of its own meta_loss."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from metazoo.engine.fast import FastOptions
from metazoo.learner import EvalSettings, GradientLearner
from metazoo.testing import ContractError, SyntheticBenchmark, check_learner, registered
from metazoo.training import TrainConfig, train
from metazoo.training.step import steps_by_gradient

EXAMPLE = Path(__file__).parents[2] / "examples" / "gradient_plugin.py"
BENCH = SyntheticBenchmark(features=8, ways=3)


def _example():
    spec = importlib.util.spec_from_file_location("gradient_plugin", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


BOIL = _example().BOIL


class PlainBOIL(BOIL):
    """The same learner without the engine's step: the trainer falls back to
    ``meta_loss(batch, step)[0].backward()`` and the optimizer step."""

    step_weights = None  # a capability member set to None is not declared


class Doubled(BOIL):
    """Its meta_loss is not the engine's objective of its inner loop and meta-parameters."""

    def meta_loss(self, batch, step=None):
        loss, metrics = super().meta_loss(batch, step)
        return 2 * loss, metrics


def _learner(cls: type, **config) -> nn.Module:
    torch.manual_seed(0)
    # no bias before the BatchNorm: its gradient is rounding noise, which Adam would amplify
    model = nn.Sequential(
        nn.Linear(8, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3)
    )
    return cls(model, cls.Config(inner_lr=0.3, inner_steps=2, executor="sequential", **config))


def _weights(learner: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in learner.parameters()])


def test_the_gradient_plugin_passes_the_contract_suite():
    with registered(BOIL) as name:
        check_learner(name)


def test_a_meta_loss_that_is_not_the_engines_objective_is_caught():
    with registered(Doubled) as name, pytest.raises(ContractError) as info:
        check_learner(name)
    assert "the engine's training step (FastMetaStep) computed loss" in str(info.value)
    assert "meta_loss must be the engine's objective of those members" in str(info.value)


def test_the_gradient_plugin_declares_its_capabilities():
    learner = _learner(BOIL, test_inner_steps=4)
    assert isinstance(learner, GradientLearner) and steps_by_gradient(learner)
    assert not steps_by_gradient(_learner(PlainBOIL))
    assert learner.eval_settings() == EvalSettings(inner_steps=4, bn_policy="transductive")
    assert learner.adapt_names == ("0.weight", "1.weight", "1.bias")  # the body, not 3.*


@pytest.mark.parametrize("fast", [None, FastOptions()])
def test_the_engines_step_trains_the_plugin_as_its_meta_loss_does(fast):
    """The trainer's default step for a GradientLearner is the engine's plain step
    (``metazoo.engine.plain``); ``fast=FastOptions()`` opts into its FastMetaStep (a CUDA graph
    on a GPU, here the same eager step)."""
    config = dict(steps=5, lr=1e-2, val_every=0, log_every=1)
    engine_step, plain = _learner(BOIL), _learner(PlainBOIL)
    start = _weights(engine_step)
    got = train(engine_step, BENCH, TrainConfig(**config, fast=fast))
    ran = train(plain, BENCH, TrainConfig(**config))
    assert not torch.equal(_weights(engine_step), start)
    torch.testing.assert_close(_weights(engine_step), _weights(plain), rtol=1e-5, atol=1e-6)
    losses = [h["loss"] for h in got.history if h["kind"] == "train"]
    expected = [h["loss"] for h in ran.history if h["kind"] == "train"]
    assert len(losses) == 5 and losses == pytest.approx(expected, rel=1e-5)
