"""ProtoNet: hand-computed logits, support-order invariance, query labels unused, cosine option."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from learner_checks import assert_no_graph_in_eval, shuffle_support, task_predictions
from torch import nn

from metazoo import create_learner
from metazoo.testing import synthetic_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_logits_are_negative_squared_distances_to_class_means():
    learner = create_learner("protonet", nn.Identity())
    support_x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 5.0]])
    support_y = torch.tensor([0, 0, 1, 1])
    # prototypes: class 0 = (1, 0), class 1 = (0, 4)
    query_x = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    logits = learner.predict(learner.adapt(support_x, support_y, 2), query_x)
    expected = -torch.tensor([[0.0 + 1.0, 1.0 + 9.0], [1.0 + 0.0, 0.0 + 16.0]])
    assert torch.equal(logits, expected)


def test_cosine_logits_are_scaled_cosines():
    learner = create_learner("protonet", nn.Identity(), distance="cosine", cosine_scale=2.0)
    support_x = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    support_y = torch.tensor([0, 1])
    logits = learner.predict(learner.adapt(support_x, support_y, 2), torch.tensor([[1.0, 1.0]]))
    half = 2.0 / 2**0.5
    torch.testing.assert_close(logits, torch.tensor([[half, half]]))


def test_unknown_distance_is_an_error_listing_choices():
    with pytest.raises(ValueError, match=r"distance must be one of \('euclidean', 'cosine'\)"):
        create_learner("protonet", nn.Identity(), distance="manhattan")


def test_missing_class_in_support_is_an_error():
    learner = create_learner("protonet", nn.Identity())
    with pytest.raises(ValueError, match=r"classes \[1\] have no support sample"):
        learner.adapt(torch.zeros(2, 3), torch.tensor([0, 2]), 3)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_support_order_and_query_labels_do_not_matter(
    small_embedding, assert_query_labels_unused, distance
):
    torch.manual_seed(0)
    learner = create_learner("protonet", small_embedding(), distance=distance)
    batch = synthetic_batch(tasks=2)
    logits = task_predictions(learner, batch)
    shuffled = task_predictions(learner, shuffle_support(batch, seed=1))
    for a, b in zip(logits, shuffled):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)
    assert_query_labels_unused(learner, batch, F.cross_entropy)


def test_adapt_builds_no_graph_in_eval_mode(small_embedding):
    assert_no_graph_in_eval(create_learner("protonet", small_embedding()), synthetic_batch())
