"""Reptile: the outer step is the interpolation toward independently computed adapted weights."""

from __future__ import annotations

import copy

import pytest
import torch

from metazoo import engine
from metazoo.testing import tiny_learner

pytestmark = pytest.mark.usefixtures("float64_one_thread")


def _manual_adapted_mean(model, batch, steps, lr, task):
    """Plain-PyTorch reference: SGD on a copy per task, then the mean of the copies' weights."""
    total = None
    for episode in batch:
        clone = copy.deepcopy(model)
        optimizer = torch.optim.SGD(clone.parameters(), lr=lr)
        for _ in range(steps):
            optimizer.zero_grad()
            engine.task_loss(clone(episode.support_x), episode.support_y, task).backward()
            optimizer.step()
        flat = torch.cat([p.detach().flatten() for p in clone.parameters()])
        total = flat if total is None else total + flat
    return total / len(batch)


@pytest.mark.parametrize("kind", ["conv", "mlp"])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
def test_outer_step_interpolates_toward_the_mean_adapted_weights(kind, steps, executor):
    learner, batch = tiny_learner("reptile", kind, steps, epsilon=0.5, executor=executor)
    theta = torch.cat([p.detach().flatten() for p in learner.model.parameters()])
    target = _manual_adapted_mean(
        learner.model, batch, steps, learner.config.inner_lr, learner.config.task
    )
    buffers = {n: b.clone() for n, b in learner.named_buffers()}
    metrics = learner.outer_step(batch, None, step=7)
    after = torch.cat([p.detach().flatten() for p in learner.model.parameters()])
    torch.testing.assert_close(after, theta + 0.5 * (target - theta), rtol=1e-10, atol=1e-12)
    assert metrics["epsilon"] == 0.5  # no annealing configured: constant at every step
    for name, value in learner.named_buffers():  # no step counter or other state kept
        assert torch.equal(value, buffers[name]), name


@pytest.mark.parametrize("kind", ["conv", "mlp"])
def test_one_step_reptile_is_gradient_descent_on_the_support_loss(kind):
    """With one inner step, (theta - theta') / (epsilon * alpha) is the gradient of the mean support
    loss (Nichol et al. 2018, section 5); checked against central finite differences."""
    learner, batch = tiny_learner("reptile", kind, 1, epsilon=1.0)
    model, alpha, task = learner.model, learner.config.inner_lr, learner.config.task
    params = list(model.parameters())
    theta = [p.detach().clone() for p in params]

    def support_loss() -> float:
        with torch.no_grad():
            return float(
                sum(engine.task_loss(model(e.support_x), e.support_y, task) for e in batch)
            ) / len(batch)

    g = torch.Generator().manual_seed(1)
    direction = [torch.randn(p.shape, generator=g) for p in params]
    h = 1e-6
    with torch.no_grad():
        for p, v in zip(params, direction):
            p.add_(h * v)
        plus = support_loss()
        for p, v in zip(params, direction):
            p.sub_(2 * h * v)
        minus = support_loss()
        for p, t in zip(params, theta):
            p.copy_(t)
    learner.outer_step(batch, None)
    update = [(t - p.detach()) / alpha for p, t in zip(params, theta)]
    analytic = float(sum((u * v).sum() for u, v in zip(update, direction)))
    numeric = (plus - minus) / (2 * h)
    assert abs(analytic - numeric) < 1e-6 * max(1.0, abs(numeric))


def test_optimizer_variant_and_epsilon_annealing():
    a, batch = tiny_learner("reptile", "conv", 2, epsilon=0.5)
    b, _ = tiny_learner("reptile", "conv", 2, epsilon=0.5, outer_update="optimizer")
    a.outer_step(batch, None)
    b.outer_step(batch, torch.optim.SGD(b.parameters(), lr=1.0))
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
    annealed, _ = tiny_learner("reptile", "conv", 1, epsilon=1.0, epsilon_final=0.0, anneal_steps=4)
    seen = [annealed.outer_step(batch, None, step=step)["epsilon"] for step in range(6)]
    assert seen == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    # the schedule reads the step passed in, not how many updates ran before
    assert [annealed.epsilon_at(s) for s in (2, 0, None, 100)] == [0.5, 1.0, 1.0, 0.0]
    assert annealed.outer_step(batch, None, step=1)["epsilon"] == 0.75
    with pytest.raises(ValueError, match="outer_update must be one of"):
        tiny_learner("reptile", "conv", 1, outer_update="adam")


def test_meta_loss_is_the_first_order_query_loss_for_validation():
    reptile, batch = tiny_learner("reptile", "conv", 3)
    fomaml, _ = tiny_learner("fomaml", "conv", 3, inner_lr=reptile.config.inner_lr)
    torch.testing.assert_close(reptile.meta_loss(batch)[0], fomaml.meta_loss(batch)[0])
    assert reptile.inner_loop(True).first_order is True
