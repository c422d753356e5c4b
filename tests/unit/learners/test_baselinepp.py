"""Baseline++: cosine heads in pre-training and at test time, sharing finetune's pre-training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metazoo
from metazoo.learners.finetune import pretraining_labels
from metazoo.testing import check_meta_gradient, tiny_batch

pytestmark = pytest.mark.usefixtures("float64_one_thread")


def _learner(**config):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    config = {"input_shape": (1, 6, 6), "num_classes": 10, "inner_lr": 0.5, **config}
    return metazoo.create_learner("baselinepp", model, **config)


def test_pretraining_is_scaled_cosine_cross_entropy_over_dataset_classes():
    learner, batch = _learner(cosine_scale=4.0), tiny_batch("classification")
    loss, _ = learner.meta_loss(batch)
    x, labels = pretraining_labels(batch)
    feats, weight = learner.model(x), learner.pretrain_head.weight
    logits = 4.0 * F.normalize(feats, dim=-1) @ F.normalize(weight, dim=-1).T
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels))
    assert check_meta_gradient(learner, batch).max_error < 1e-6


def test_test_head_starts_from_imprinted_class_means_and_fits_the_support_set():
    learner, task = _learner(test_inner_steps=0), tiny_batch("classification").task(0)
    learner.eval()
    state = learner.adapt(task.support_x, task.support_y, task.ways)
    feats = learner.model(task.support_x).detach()
    means = torch.stack([feats[task.support_y == k].mean(0) for k in range(3)])
    torch.testing.assert_close(state["weight"], F.normalize(means, dim=-1))
    trained = _learner(test_inner_steps=100)
    trained.eval()
    logits = trained.predict(
        trained.adapt(task.support_x, task.support_y, task.ways), task.support_x
    )
    assert bool((logits.argmax(-1) == task.support_y).all())


def test_cosine_head_refuses_regression():
    with pytest.raises(ValueError, match="cosine for classification only"):
        metazoo.create_learner("baselinepp", nn.Linear(1, 4), input_shape=(1,), task="regression")
