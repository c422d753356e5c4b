"""The MAML variants' meta-gradients agree between the sequential and vectorized executors, and
the engine's training step (``accumulate_meta_gradient``, ``FastMetaStep`` in eager mode) gives
the gradient and metrics of ``meta_loss(...).backward()``."""

from __future__ import annotations

import pytest
import torch

from metazoo import create_learner, engine
from metazoo.engine.fast import FastMetaStep, FastOptions
from metazoo.testing import tiny_conv_net, tiny_learner
from metazoo.training.step import steps_by_gradient

pytestmark = pytest.mark.usefixtures("float64_one_thread")

VARIANTS = ["maml", "fomaml", "anil", "metasgd", "mamlpp"]
#: A training step inside MAML++'s multi-step loss annealing (5000 steps by default), so its
#: multi-step weights, per-step rates and per-step BatchNorm weights are all in the objective.
STEP = 1


def _flat(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.flatten() for g in grads])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _reference(learner, batch) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """``meta_loss(batch, step=STEP)[0].backward()``: the gradient the learner defines."""
    learner.zero_grad(set_to_none=True)
    loss, metrics = learner.meta_loss(batch, step=STEP)
    loss.backward()
    params = [p for p in learner.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in params)
    grads = _flat([p.grad for p in params])
    learner.zero_grad(set_to_none=True)
    return grads, loss.detach(), metrics


@pytest.mark.parametrize("name", ["anil", "metasgd", "mamlpp"])
@pytest.mark.parametrize("kind", ["conv", "mlp"])
def test_vectorized_equals_sequential(name, kind):
    seq, batch = tiny_learner(name, kind, 3, executor="sequential")
    vec, _ = tiny_learner(name, kind, 3, executor="vectorized", chunk_size=2)
    (a, loss_a, metrics_a), (b, loss_b, metrics_b) = _reference(seq, batch), _reference(vec, batch)
    assert _rel(b, a) < 1e-8
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-10, atol=0)
    assert metrics_b == pytest.approx(metrics_a, rel=1e-10)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
def test_accumulate_meta_gradient_equals_meta_loss_backward(name, executor):
    """The engine's bounded-memory backward (per task or per chunk of 2 of the 3 tasks) adds
    ``scale`` times meta_loss's gradient, and its results give meta_loss's metrics."""
    learner, batch = tiny_learner(name, "conv", 3, executor=executor, chunk_size=2)
    expected, _, metrics = _reference(learner, batch)
    loop = learner.inner_loop(True, STEP)
    weights = learner.step_weights(STEP)
    assert (weights is not None) == (name == "mamlpp")
    results = engine.accumulate_meta_gradient(
        learner.model, batch, loop, learner.meta_params(), step_weights=weights,
        executor=executor, chunk_size=2, scale=0.5,
    )  # fmt: skip
    params = [p for p in learner.parameters() if p.requires_grad]
    got = _flat([p.grad for p in params])
    assert _rel(got, 0.5 * expected) < 1e-10
    assert results.query_losses.grad_fn is None
    _, got_metrics = engine.summarize(results, loop.task, weights)
    assert got_metrics == pytest.approx(metrics, rel=1e-10)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
def test_eager_fast_step_equals_meta_loss_backward(name, executor):
    """``FastMetaStep`` (eager, no CUDA graph) computes meta_loss's gradient and reports its loss
    and accuracy; its optimizer step then moves the weights by that gradient."""
    learner, batch = tiny_learner(name, "conv", 3)
    expected, loss, metrics = _reference(learner, batch)
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
    options = FastOptions(executor=executor, chunk=2, cuda_graph=False)
    fast = FastMetaStep(learner, optimizer, batch, options)
    before = [p.detach().clone() for p in learner.parameters() if p.requires_grad]
    got = _flat(fast.meta_gradient(batch, STEP))
    assert _rel(got, expected) < 1e-10
    assert fast.plan.executor == executor
    after_gradient = [p.detach() for p in learner.parameters() if p.requires_grad]
    assert all(torch.equal(a, b) for a, b in zip(after_gradient, before, strict=True))
    objective = fast(batch, STEP)
    torch.testing.assert_close(objective, loss, rtol=1e-10, atol=0)
    assert float(fast.last_metric) == pytest.approx(metrics["accuracy"], rel=1e-10)
    moved = _flat([p.detach() for p in learner.parameters() if p.requires_grad])
    torch.testing.assert_close(moved, _flat(before) - 0.1 * expected, rtol=1e-10, atol=1e-12)


def test_the_trainer_steps_the_maml_family_by_the_engine():
    for name in VARIANTS:
        assert steps_by_gradient(create_learner(name, tiny_conv_net())), name
    assert not steps_by_gradient(create_learner("reptile", tiny_conv_net()))  # its outer_step
    assert not steps_by_gradient(create_learner("protonet", tiny_conv_net()))  # meta_loss only
