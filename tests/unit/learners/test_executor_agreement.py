"""The MAML variants' meta-gradients agree between the sequential and vectorized executors, and
between ``meta_loss(...).backward()`` and the trainer's task-by-task ``meta_backward``."""

from __future__ import annotations

import pytest
import torch

from metazoo import create_learner
from metazoo.engine.gradcheck import meta_gradient, tiny_conv_net, tiny_learner
from metazoo.learner import has_meta_backward

pytestmark = pytest.mark.usefixtures("float64_one_thread")


@pytest.mark.parametrize("name", ["anil", "metasgd", "mamlpp"])
@pytest.mark.parametrize("kind", ["conv", "mlp"])
def test_vectorized_equals_sequential(name, kind):
    seq, batch = tiny_learner(name, kind, 3, executor="sequential")
    vec, _ = tiny_learner(name, kind, 3, executor="vectorized", chunk_size=2)
    a, b = meta_gradient(seq, batch), meta_gradient(vec, batch)
    assert float((a - b).norm() / a.norm()) < 1e-8


def _grad_after(learner, run) -> tuple[torch.Tensor, dict[str, float]]:
    learner.zero_grad(set_to_none=True)
    metrics = run()
    params = [p for p in learner.parameters() if p.requires_grad]
    grads = torch.cat([(p.grad if p.grad is not None else 0 * p).flatten() for p in params])
    return grads, metrics


@pytest.mark.parametrize("name", ["maml", "fomaml", "anil", "metasgd", "mamlpp"])
@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
def test_meta_backward_equals_meta_loss_backward(name, executor):
    """The trainer's task-by-task backward gives meta_loss's gradient and metrics (MAML++ with its
    multi-step loss weights active: 3 steps, annealing not finished)."""
    whole, batch = tiny_learner(name, "conv", 3, executor=executor, chunk_size=2)
    by_task, _ = tiny_learner(name, "conv", 3, executor=executor, chunk_size=2)
    expected, metrics = _grad_after(whole, lambda: _backward(whole.meta_loss(batch)))
    got, got_metrics = _grad_after(by_task, lambda: by_task.meta_backward(batch, scale=0.5))
    assert float((got - 0.5 * expected).norm() / expected.norm()) < 1e-10
    assert got_metrics == pytest.approx(metrics, rel=1e-10)
    assert has_meta_backward(by_task) and not has_meta_backward(tiny_protonet())


def _backward(result):
    loss, metrics = result
    loss.backward()
    return metrics


def tiny_protonet():
    return create_learner("protonet", tiny_conv_net())
