"""MAML++: meta-gradient vs finite differences with every option on; annealing schedules."""

from __future__ import annotations

import pytest
import torch

from metazoo import engine
from metazoo.engine.gradcheck import check_meta_gradient, meta_gradient, tiny_learner
from metazoo.learners.mamlpp import multi_step_loss_weights

pytestmark = pytest.mark.usefixtures("float64_one_thread")


def _at_step(step: int):
    """The meta-objective at a fixed training step (meta_loss advances the counter)."""

    def objective(learner, batch):
        learner.training_step.fill_(step)
        return learner.meta_loss(batch)[0]

    return objective


@pytest.mark.parametrize("kind", ["conv", "mlp"])
@pytest.mark.parametrize("steps", [1, 3])
def test_meta_gradient_matches_finite_differences(kind, steps):
    learner, batch = tiny_learner("mamlpp", kind, steps, msl_anneal_steps=10)
    with torch.no_grad():  # distinct per-step rates and BN weights, so a mix-up would show
        for lr in learner.step_lrs:
            lr.mul_(torch.linspace(0.8, 1.2, lr.numel()))
        for bn in learner.step_bn:
            bn.add_(0.1 * torch.randn(bn.shape))
    report = check_meta_gradient(learner, batch, objective=_at_step(3))
    assert report.max_error < 1e-6, report
    if kind == "conv" and steps == 3:
        assert {"step_lrs.0", "step_bn.0", "step_bn.1"} <= set(report.names)


def test_multi_step_loss_weights_follow_the_reference_schedule():
    torch.testing.assert_close(
        multi_step_loss_weights(5, 0.0), torch.full((5,), 0.2, dtype=torch.float64)
    )
    half = multi_step_loss_weights(5, 0.5)
    torch.testing.assert_close(half, torch.tensor([0.1, 0.1, 0.1, 0.1, 0.6], dtype=torch.float64))
    end = multi_step_loss_weights(5, 1.0)
    torch.testing.assert_close(
        end, torch.tensor([0.006] * 4 + [1 - 4 * 0.006], dtype=torch.float64)
    )


def test_the_loss_is_the_weighted_sum_of_per_step_query_losses():
    learner, batch = tiny_learner("mamlpp", "conv", 3, msl_anneal_steps=4)
    learner.training_step.fill_(2)
    loss, _ = learner.meta_loss(batch)
    loop = engine.InnerLoop(steps=3, ways=3, bn_policy="per_step", adapt_names=learner.adapt_names)
    loop = loop.__class__(**{**loop.__dict__, "query_every_step": True})
    results = engine.adapt_and_query(
        learner.model, batch, loop, learner.learning_rates(), overrides=learner.overrides()
    )
    expected = (results.step_query_losses.mean(0) * multi_step_loss_weights(3, 0.5)).sum()
    torch.testing.assert_close(loss, expected)
    assert int(learner.training_step) == 3
    learner.training_step.fill_(4)  # annealed: the final-step loss only
    torch.testing.assert_close(learner.meta_loss(batch)[0], results.query_loss.mean())


def test_derivative_order_annealing_switches_to_second_order():
    learner, batch = tiny_learner("mamlpp", "conv", 3, first_order_steps=2, multi_step_loss=False)
    first, _ = tiny_learner("mamlpp", "conv", 3, first_order=True, multi_step_loss=False)
    torch.testing.assert_close(meta_gradient(learner, batch), meta_gradient(first, batch))
    learner.training_step.fill_(2)
    second = meta_gradient(learner, batch)
    assert float((second - meta_gradient(first, batch)).norm() / second.norm()) > 1e-3


def test_batch_norm_weights_are_per_step_and_not_adapted():
    learner, batch = tiny_learner("mamlpp", "conv", 3)
    assert learner.bn_names == ["1.weight", "1.bias"]
    assert "1.weight" not in learner.adapt_names
    assert learner.step_bn[0].shape == (2, 3)
    task = batch.task(0)
    learner.eval()
    fast = learner.adapt(task.support_x, task.support_y)
    torch.testing.assert_close(fast["1.weight"], learner.step_bn[0][1].detach())
    assert int(learner.training_step) == 0
