"""The engine's training step for every MAML-family variant: eager and compiled agree."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metazoo import create_learner
from metazoo.engine.fast import FastMetaStep, FastOptions
from metazoo.testing import synthetic_batch

VARIANTS = {
    "maml": {},
    "anil": {},
    "metasgd": {"random_init": True},
    # per-step BatchNorm weights, per-step rates, multi-step loss, first-order warm-up
    "mamlpp": {"inner_steps": 3, "msl_anneal_steps": 10, "first_order_steps": 2},
}


def _learner(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    config = {"inner_lr": 0.05, "inner_steps": 2, "task": "regression", **VARIANTS[name]}
    return create_learner(name, model.double(), **config).double()


def _reference(learner, batch, step) -> list[torch.Tensor]:
    """``meta_loss(batch, step).backward()``: the gradient the learner defines."""
    learner.zero_grad(set_to_none=True)
    learner.meta_loss(batch, step=step)[0].backward()
    return [p.grad.clone() for p in learner.parameters() if p.requires_grad]


def _check_against_meta_loss(name: str, compile: bool, steps: tuple) -> None:
    learner = _learner(name)
    batch = synthetic_batch("regression", tasks=4).float_as(torch.float64)
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.0)
    options = FastOptions(executor="vectorized", cuda_graph=False, compile=compile)
    fast = FastMetaStep(learner, optimizer, batch, options)
    for step in steps:
        expected = _reference(learner, batch, step)
        got = fast.meta_gradient(batch, step)
        for g, e in zip(got, expected, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_eager_fast_step_meta_gradient_is_the_learners(name):
    # MAML++: warm-up and multi-step loss, multi-step only, neither
    _check_against_meta_loss(name, compile=False, steps=(0, 5, None))


@pytest.mark.compile
def test_compiled_fast_step_meta_gradient_is_the_learners():
    """One compiled program (minutes of CPU compile): MAML++ at step 5 exercises learned per-step
    rates, per-step BatchNorm weights and the multi-step loss, in second order."""
    _check_against_meta_loss("mamlpp", compile=True, steps=(5,))


def test_fast_step_builds_one_program_per_schedule_phase():
    learner = _learner("mamlpp")
    batch = synthetic_batch("regression", tasks=2).float_as(torch.float64)
    fast = FastMetaStep(learner, torch.optim.SGD(learner.parameters(), lr=0.0), batch)
    for step in (0, 1, 2, 3, 11, 12):
        fast.meta_gradient(batch, step)
    # first order + multi-step (0, 1), second order + multi-step (2, 3), final loss only (11, 12)
    assert len(fast.phases) == 3
