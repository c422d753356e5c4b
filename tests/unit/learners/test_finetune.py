"""The fine-tuning baseline: pre-training gradient vs finite differences, per-task fine-tuning."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metazoo
from metazoo.testing import check_meta_gradient, tiny_batch, tiny_mlp

pytestmark = pytest.mark.usefixtures("float64_one_thread")


def _embedding() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3, track_running_stats=False), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
    )  # fmt: skip


def _learner(kind: str, **config):
    torch.manual_seed(0)
    if kind == "conv":
        model = _embedding()
        config = {"input_shape": (1, 6, 6), "num_classes": 10, "inner_lr": 0.5, **config}
        return metazoo.create_learner("finetune", model, **config), tiny_batch("classification")
    body = nn.Sequential(*list(tiny_mlp())[:-1])
    config = {"input_shape": (1,), "task": "regression", "inner_lr": 0.02, **config}
    return metazoo.create_learner("finetune", body, **config), tiny_batch("regression")


@pytest.mark.parametrize("kind", ["conv", "mlp"])
def test_pretraining_gradient_matches_finite_differences(kind):
    learner, batch = _learner(kind)
    report = check_meta_gradient(learner, batch)
    assert report.max_error < 1e-6, report


def test_pretraining_labels_are_the_dataset_wide_classes():
    learner, batch = _learner("conv")
    loss, metrics = learner.meta_loss(batch)
    x = torch.cat([batch.support_x, batch.query_x], 1).flatten(0, 1)
    y = torch.gather(batch.classes, 1, torch.cat([batch.support_y, batch.query_y], 1)).flatten()
    learner.model.train()
    expected = F.cross_entropy(learner.pretrain_head(learner.model(x)), y)
    torch.testing.assert_close(loss, expected)
    assert set(metrics) == {"accuracy", "loss"}


def test_pretraining_accuracy_is_in_percent_like_every_other_metric():
    learner, batch = _learner("conv")
    y = torch.gather(batch.classes, 1, torch.cat([batch.support_y, batch.query_y], 1)).flatten()
    common = int(torch.mode(y).values)
    with torch.no_grad():  # a head that always answers the most common class
        learner.pretrain_head.weight.zero_()
        learner.pretrain_head.bias.zero_()
        learner.pretrain_head.bias[common] = 1.0
    _, metrics = learner.meta_loss(batch)
    expected = 100.0 * (y == common).double().mean().item()
    assert expected >= 10.0  # so a fraction (0-1) cannot pass
    assert metrics["accuracy"] == pytest.approx(expected)


@pytest.mark.parametrize("steps", [1, 3])
def test_regression_adaptation_fine_tunes_the_whole_network(steps):
    learner, batch = _learner("mlp", test_inner_steps=steps)
    task = batch.task(0)
    reference = copy.deepcopy(learner.network)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.02)
    for _ in range(steps):
        optimizer.zero_grad()
        F.mse_loss(reference(task.support_x), task.support_y).backward()
        optimizer.step()
    learner.eval()
    state = learner.adapt(task.support_x, task.support_y, task.ways)
    with torch.no_grad():
        torch.testing.assert_close(learner.predict(state, task.query_x), reference(task.query_x))


def test_classification_adaptation_trains_a_fresh_head_on_frozen_features():
    learner, batch = _learner("conv", test_inner_steps=50)
    task = batch.task(1)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    learner.eval()
    state = learner.adapt(task.support_x, task.support_y, task.ways)
    assert state["weight"].shape == (3, 27) and not state["weight"].requires_grad
    with torch.no_grad():
        logits = learner.predict(state, task.support_x)
    assert logits.shape == (6, 3)
    assert float((logits.argmax(-1) == task.support_y).double().mean()) == 1.0
    for key, value in learner.state_dict().items():
        assert torch.equal(value, before[key]), key
    with torch.no_grad():
        loss, metrics = learner.meta_loss(batch)
    assert loss.grad_fn is None and 0.0 <= metrics["accuracy"] <= 100.0


def test_errors_name_what_to_set():
    with pytest.raises(ValueError, match="config.input_shape"):
        metazoo.create_learner("finetune", _embedding())
    learner, batch = _learner("conv", num_classes=4)
    with pytest.raises(ValueError, match="set num_classes to the training split's class count"):
        learner.meta_loss(batch)


def test_build_learner_fills_num_classes_from_the_training_split():
    learner = metazoo.build_learner("finetune", "sinusoid")
    assert learner.network[-1].out_features == 1
    assert learner.config.num_classes == metazoo.make_sampler("sinusoid", "train").num_classes
