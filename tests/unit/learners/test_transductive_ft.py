"""Transductive fine-tuning: support-based initialisation, the query-entropy step, purity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metazoo
from metazoo.testing import check_meta_gradient, tiny_batch

pytestmark = pytest.mark.usefixtures("float64_one_thread")


def _learner(**config):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    config = {"input_shape": (1, 6, 6), "num_classes": 10, **config}
    learner = metazoo.create_learner("transductive_ft", model, **config)
    return learner, tiny_batch("classification").task(0)


def _entropy(logits):
    return -(F.softmax(logits, -1) * F.log_softmax(logits, -1)).sum(-1).mean()


def test_support_based_initialisation_is_the_normalised_mean_of_relu_logits():
    learner, task = _learner(epochs=0)
    learner.eval()
    state = learner.adapt(task.support_x, task.support_y, task.ways)
    z = F.normalize(F.relu(learner.pretrain_head(learner.model(task.support_x))), dim=-1).detach()
    means = torch.stack([z[task.support_y == k].mean(0) for k in range(3)])
    torch.testing.assert_close(state["weight"], F.normalize(means, dim=-1))
    with torch.no_grad():  # no fine-tuning: logits are w @ normalize(relu(z(query)))
        q = F.normalize(F.relu(learner.pretrain_head(learner.model(task.query_x))), dim=-1)
        torch.testing.assert_close(learner.predict(state, task.query_x), q @ state["weight"].T)


def test_fine_tuning_lowers_query_entropy_and_never_touches_the_learner():
    learner, task = _learner(epochs=0)
    learner.eval()
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    state = learner.adapt(task.support_x, task.support_y, task.ways)
    start = _entropy(learner.predict(state, task.query_x))
    learner.config.epochs, learner.config.lr = 20, 1e-2
    with torch.no_grad():  # the harness's grad mode must not stop the fine-tuning
        tuned = learner.predict(state, task.query_x)
    assert not tuned.requires_grad
    assert float(_entropy(tuned)) < 0.9 * float(start)  # 1.10 -> 0.88 measured
    for key, value in learner.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_pretraining_gradient_matches_finite_differences():
    learner, _ = _learner()
    assert check_meta_gradient(learner, tiny_batch("classification")).max_error < 1e-6
