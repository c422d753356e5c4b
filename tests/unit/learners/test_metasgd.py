"""Meta-SGD: meta-gradient (initialisation and learned rates) vs finite differences."""

from __future__ import annotations

import pytest
import torch

import metazoo
from metazoo.engine.gradcheck import check_meta_gradient, tiny_conv_net, tiny_learner

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
    rates = learner.learning_rates()
    for name, p in learner.model.named_parameters():
        assert rates[name].shape == p.shape
        assert torch.all(rates[name] == 0.3)
    learner.meta_loss(batch)[0].backward()
    assert all(lr.grad is not None and lr.grad.abs().sum() > 0 for lr in learner.inner_lrs)


def test_with_constant_rates_it_equals_maml_before_training():
    learner, batch = tiny_learner("metasgd", "conv", 2)
    maml, _ = tiny_learner("maml", "conv", 2)
    assert torch.allclose(learner.meta_loss(batch)[0], maml.meta_loss(batch)[0], rtol=1e-12)


def test_eval_adaptation_detaches_the_rates():
    learner = metazoo.create_learner("metasgd", tiny_conv_net(), inner_lr=0.3).eval()
    x, y = torch.randn(6, 1, 6, 6), torch.arange(3).repeat(2)
    fast = learner.adapt(x, y)
    assert all(w.grad_fn is None for w in fast.values())
