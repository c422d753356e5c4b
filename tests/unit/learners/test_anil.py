"""ANIL: meta-gradient vs finite differences, executors agree, the body's fast weights stay put."""

from __future__ import annotations

import pytest
import torch

import metazoo
from metazoo.testing import check_meta_gradient, tiny_conv_net, tiny_learner

pytestmark = pytest.mark.usefixtures("float64_one_thread")


@pytest.mark.parametrize("kind", ["conv", "mlp"])
@pytest.mark.parametrize("steps", [1, 3])
def test_meta_gradient_matches_finite_differences(kind, steps):
    learner, batch = tiny_learner("anil", kind, steps)
    report = check_meta_gradient(learner, batch)
    assert report.max_error < 1e-6, report


def test_only_the_head_adapts_and_the_body_still_gets_a_meta_gradient():
    learner, batch = tiny_learner("anil", "conv", 3)
    assert learner.adapt_names == ("5.weight", "5.bias")
    task = batch.task(0)
    fast = learner.adapt(task.support_x, task.support_y, task.ways)
    params = dict(learner.model.named_parameters())
    for name in ("0.weight", "0.bias", "1.weight", "1.bias"):
        assert fast[name] is params[name]  # untouched: the very same tensor
    assert not torch.equal(fast["5.weight"], params["5.weight"])
    learner.eval()
    fast = learner.adapt(task.support_x, task.support_y, task.ways)
    assert torch.equal(fast["0.weight"], params["0.weight"])
    learner.train()
    learner.meta_loss(batch)[0].backward()
    assert learner.model[0].weight.grad.abs().sum() > 0


def test_anil_is_maml_adapting_the_head():
    anil, batch = tiny_learner("anil", "conv", 2)
    maml, _ = tiny_learner("maml", "conv", 2, adapt="head")
    assert type(anil) is type(maml) and anil.config.adapt == "head"
    assert anil.inner_loop(training=True).adapt_names == ("5.weight", "5.bias")
    torch.testing.assert_close(anil.meta_loss(batch)[0], maml.meta_loss(batch)[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="adapt must be one of \\('all', 'head'\\), got 'body'"):
        metazoo.create_learner("maml", tiny_conv_net(), adapt="body")


def test_head_prefix_option_and_errors():
    learner = metazoo.create_learner("anil", tiny_conv_net(), head="1")
    assert learner.adapt_names == ("1.weight", "1.bias")
    with pytest.raises(ValueError, match="head prefix 'classifier' matches no parameter"):
        metazoo.create_learner("anil", tiny_conv_net(), head="classifier")
    conv_only = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Flatten())
    with pytest.raises(ValueError, match="has no nn.Linear layer to use as the head"):
        metazoo.create_learner("anil", conv_only)
