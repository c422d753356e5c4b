"""Meta-SGD: meta-gradient (initialisation and learned rates) vs finite differences."""

from __future__ import annotations

import pytest
import torch

import metazoo
from metazoo.testing import check_meta_gradient, tiny_conv_net, tiny_learner

pytestmark = pytest.mark.usefixtures("float64_one_thread")


@pytest.mark.parametrize("kind", ["conv", "mlp"])
@pytest.mark.parametrize("steps", [1, 3])
def test_meta_gradient_matches_finite_differences(kind, steps):
    learner, batch = tiny_learner("metasgd", kind, steps, random_init=True)
    report = check_meta_gradient(learner, batch)
    assert report.max_error < 1e-6, report
    assert any(name.startswith("inner_lrs.") for name in report.names)


def test_learning_rates_are_parameters_shaped_like_the_weights_and_get_gradients():
    learner, batch = tiny_learner("metasgd", "conv", 1)
    rates = learner.meta_params().lr
    assert list(rates) == list(learner.lr_names) == [n for n, _ in learner.model.named_parameters()]
    for (name, p), lr in zip(learner.model.named_parameters(), learner.inner_lrs, strict=True):
        assert rates[name] is lr and lr.shape == p.shape
        assert torch.all(lr == 0.3)
    learner.meta_loss(batch)[0].backward()
    assert all(lr.grad is not None and lr.grad.abs().sum() > 0 for lr in learner.inner_lrs)


def test_with_constant_rates_it_equals_maml_before_training():
    learner, batch = tiny_learner("metasgd", "conv", 2)
    maml, _ = tiny_learner("maml", "conv", 2)
    assert torch.allclose(learner.meta_loss(batch)[0], maml.meta_loss(batch)[0], rtol=1e-12)


def test_eval_adaptation_detaches_the_rates():
    learner = metazoo.create_learner("metasgd", tiny_conv_net(), inner_lr=0.3).eval()
    x, y = torch.randn(6, 1, 6, 6), torch.arange(3).repeat(2)
    fast = learner.adapt(x, y, 3)
    assert all(w.grad_fn is None for w in fast.values())


def test_random_initial_rates_are_drawn_from_the_configured_range():
    learner, _ = tiny_learner("metasgd", "conv", 1, random_init=True)
    rates = torch.cat([lr.detach().flatten() for lr in learner.inner_lrs])
    assert float(rates.min()) >= 0.005 and float(rates.max()) <= 0.1
    assert float(rates.std()) > 0.01  # drawn, not the constant inner_lr
    narrow, _ = tiny_learner(
        "metasgd", "mlp", 1, random_init=True, lr_init_low=0.2, lr_init_high=0.25
    )
    rates = torch.cat([lr.detach().flatten() for lr in narrow.inner_lrs])
    assert float(rates.min()) >= 0.2 and float(rates.max()) <= 0.25


def test_one_inner_step_scales_each_gradient_element_by_its_own_rate():
    learner, batch = tiny_learner("metasgd", "mlp", 1, random_init=True)
    task = batch.task(0)
    fast = learner.adapt(task.support_x, task.support_y, task.ways)
    params = dict(learner.model.named_parameters())
    loss = torch.nn.functional.mse_loss(learner.model(task.support_x), task.support_y)
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    for name, lr in zip(learner.lr_names, learner.inner_lrs, strict=True):
        expected = params[name] - lr * grads[name]
        torch.testing.assert_close(fast[name], expected, rtol=1e-12, atol=1e-14)
