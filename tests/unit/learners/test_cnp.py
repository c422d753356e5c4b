"""CNP: Gaussian likelihood by hand, mean aggregation, order invariance, query labels unused."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from learner_checks import assert_no_graph_in_eval, shuffle_support, task_predictions

from metazoo import EpisodeBatch, create_learner
from metazoo.learners.cnp import gaussian_nll
from metazoo.testing import IMAGE_SHAPE, synthetic_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _regressor(**config):
    torch.manual_seed(0)
    return create_learner("cnp", None, task="regression", input_shape=(1,), **config)


def test_gaussian_nll_matches_the_formula():
    mean, std, y = (
        torch.tensor([[0.5], [1.0]]),
        torch.tensor([[2.0], [0.5]]),
        torch.tensor([[1.5], [0.0]]),
    )
    by_hand = 0.5 * math.log(2 * math.pi) + std.log() + (y - mean) ** 2 / (2 * std**2)
    torch.testing.assert_close(gaussian_nll(mean, std, y), by_hand.mean())


def test_representation_is_the_mean_of_pair_encodings():
    learner = _regressor(encoder_sizes=(16, 8), decoder_sizes=(16,))
    x, y = torch.randn(6, 1), torch.randn(6, 1)
    state = learner.adapt(x, y, None)
    assert state.shape == (8,)
    torch.testing.assert_close(state, learner.encoder(torch.cat([x, y], 1)).mean(0))


def test_regression_loss_is_nll_of_label_free_predictions_and_std_is_bounded():
    learner = _regressor(min_std=0.25)
    batch = synthetic_batch("regression", tasks=3)
    expected = []
    for task in batch:
        mean, std = learner.predict_distribution(
            learner.adapt(task.support_x, task.support_y, task.ways), task.query_x
        )
        assert bool((std >= 0.25).all())
        expected.append((mean, std))
    for targets in (batch.query_y, torch.randn(batch.query_y.shape)):
        loss, metrics = learner.meta_loss(
            EpisodeBatch(batch.support_x, batch.support_y, batch.query_x, targets)
        )
        by_hand = torch.stack(
            [gaussian_nll(m, s, y) for (m, s), y in zip(expected, targets)]
        ).mean()
        torch.testing.assert_close(loss, by_hand)
        means = torch.stack([m for m, _ in expected])
        assert metrics["mse"] == pytest.approx(F.mse_loss(means, targets).item(), rel=1e-6)


def test_regression_queries_are_predicted_independently_and_support_order_is_irrelevant():
    learner = _regressor()
    batch = synthetic_batch("regression", tasks=1)
    task = batch.task(0)
    state = learner.adapt(task.support_x, task.support_y, task.ways)
    full = learner.predict(state, task.query_x)
    changed = task.query_x.clone()
    changed[1:] = torch.randn(len(changed) - 1, 1)
    assert torch.equal(learner.predict(state, changed)[0], full[0])
    shuffled = task_predictions(learner, shuffle_support(batch, 2))[0]
    torch.testing.assert_close(shuffled, full, atol=1e-6, rtol=0)


def test_classification_logits_order_invariance_and_query_labels(assert_query_labels_unused):
    torch.manual_seed(0)
    learner = create_learner(
        "cnp", None, task="classification", input_shape=IMAGE_SHAPE, conv_hidden=8
    )
    batch = synthetic_batch(tasks=2)
    logits = task_predictions(learner, batch)
    assert logits[0].shape == (9, 3)
    for a, b in zip(logits, task_predictions(learner, shuffle_support(batch, 1))):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)
    assert_query_labels_unused(learner, batch, F.cross_entropy)


def test_cnp_rejects_a_model_and_unknown_tasks():
    with pytest.raises(ValueError, match="pass model=None"):
        create_learner("cnp", torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match=r"task must be one of \('regression', 'classification'\)"):
        create_learner("cnp", None, task="ranking")


def test_adapt_builds_no_graph_in_eval_mode():
    assert_no_graph_in_eval(
        create_learner("cnp", None, task="classification", input_shape=IMAGE_SHAPE, conv_hidden=8),
        synthetic_batch(),
    )
