"""Matching networks: hand-computed attention, order invariance without FCE, FCE shapes and order."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from learner_checks import assert_no_graph_in_eval, shuffle_support, task_predictions
from torch import nn

from metazoo import EpisodeBatch, create_learner
from metazoo.testing import IMAGE_SHAPE, synthetic_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_log_probabilities_are_cosine_attention_over_support_labels():
    learner = create_learner("matchingnet", nn.Identity(), scale=1.0)  # the paper's plain cosine
    support_x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    support_y = torch.tensor([0, 1, 1])
    query_x = torch.tensor([[2.0, 0.0]])
    cosines = torch.tensor([1.0, 0.0, 1 / math.sqrt(2)])
    attention = torch.softmax(cosines, 0)
    expected = torch.stack([attention[0], attention[1] + attention[2]]).log()[None]
    logits = learner.predict(learner.adapt(support_x, support_y, 2), query_x)
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(logits.exp().sum(1), torch.ones(1))


def test_without_fce_support_order_and_query_labels_do_not_matter(
    small_embedding, assert_query_labels_unused
):
    torch.manual_seed(0)
    learner = create_learner("matchingnet", small_embedding())
    batch = synthetic_batch(tasks=2)
    for a, b in zip(
        task_predictions(learner, batch), task_predictions(learner, shuffle_support(batch, 1))
    ):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)
    assert_query_labels_unused(learner, batch, F.nll_loss)


def test_fce_reads_the_support_in_order_and_trains(small_embedding, assert_query_labels_unused):
    torch.manual_seed(0)
    learner = create_learner(
        "matchingnet", small_embedding(), fce=True, fce_steps=3, input_shape=IMAGE_SHAPE
    )
    batch = synthetic_batch(tasks=2)
    plain = task_predictions(learner, batch)
    shuffled = task_predictions(learner, shuffle_support(batch, 1))
    assert plain[0].shape == (9, 3)
    # the bidirectional LSTM sees the support as a sequence, so order matters (as in the paper)
    assert not torch.allclose(plain[0], shuffled[0], atol=1e-6)
    assert_query_labels_unused(learner, batch, F.nll_loss)
    loss, _ = learner.meta_loss(batch)
    loss.backward()
    for module in (learner.support_context, learner.query_context):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_fce_without_input_shape_says_what_to_pass(small_embedding):
    with pytest.raises(ValueError, match="needs `input_shape`"):
        create_learner("matchingnet", small_embedding(), fce=True)


def test_adapt_builds_no_graph_in_eval_mode(small_embedding):
    assert_no_graph_in_eval(
        create_learner("matchingnet", small_embedding(), fce=True, input_shape=IMAGE_SHAPE),
        synthetic_batch(),
    )


def test_default_temperature_multiplies_the_cosines_by_ten():
    learner = create_learner("matchingnet", nn.Identity())
    assert learner.config.scale == 10.0
    support_x, support_y = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 1])
    logits = learner.predict(learner.adapt(support_x, support_y, 2), torch.tensor([[2.0, 0.0]]))
    # cosines (1, 0): softmax of (10, 0), where the plain cosine gives (e/(e+1), 1/(e+1))
    expected = torch.log_softmax(torch.tensor([[10.0, 0.0]]), dim=1)
    torch.testing.assert_close(logits, expected)


@pytest.mark.parametrize("scale", [1.0, 10.0, 100.0])
def test_one_shot_matching_equals_cosine_protonet_at_the_same_scale(small_embedding, scale):
    """At one shot the attention over the support is a softmax over classes: the scaled-cosine
    prototypical network's (Snell et al. 2017 note the equivalence for Euclidean distance)."""
    torch.manual_seed(0)
    embedding = small_embedding()
    matching = create_learner("matchingnet", embedding, scale=scale)
    proto = create_learner("protonet", embedding, distance="cosine", cosine_scale=scale)
    two_shot = synthetic_batch(tasks=2)  # labels 0 0 1 1 2 2: every other sample is one shot
    batch = EpisodeBatch(
        two_shot.support_x[:, ::2], two_shot.support_y[:, ::2],
        two_shot.query_x, two_shot.query_y, two_shot.ways,
    )  # fmt: skip
    matching.eval(), proto.eval()
    for a, b in zip(task_predictions(matching, batch), task_predictions(proto, batch)):
        torch.testing.assert_close(a, torch.log_softmax(b, dim=1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(matching.meta_loss(batch)[0], proto.meta_loss(batch)[0])
