"""Relation network: paper-shaped module, hand-checked pairing, order invariance, MSE objective."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from learner_checks import assert_no_graph_in_eval, shuffle_support, task_predictions
from torch import nn

from metazoo import build_learner, create_learner
from metazoo.learners.relationnet import reference_init
from metazoo.testing import IMAGE_SHAPE, check_learner, synthetic_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_contract_on_sung_embedding_with_spatial_maps(small_embedding):
    check_learner("relationnet", model_factory=lambda task: small_embedding(downsampled_blocks=2))


def test_padded_two_pool_embedding_gives_7x7_maps_and_relation_module_pools_to_1x1(
    small_embedding,
):
    learner = create_learner(
        "relationnet", small_embedding(downsampled_blocks=2), input_shape=IMAGE_SHAPE
    )
    maps = learner.feature_maps(torch.zeros(4, *IMAGE_SHAPE))
    assert maps.shape == (4, 8, 7, 7)
    assert learner.relation.convs(torch.zeros(2, 16, 7, 7)).shape == (2, 64, 1, 1)
    assert learner.relation.head[0].in_features == 64


def test_scores_pair_summed_class_maps_with_each_query():
    torch.manual_seed(0)
    learner = create_learner("relationnet", nn.Identity(), input_shape=(2, 1, 1))
    support_x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).reshape(3, 2, 1, 1)
    support_y = torch.tensor([0, 1, 0])
    state = learner.adapt(support_x, support_y, 2)
    assert torch.equal(state.flatten(1), torch.tensor([[6.0, 8.0], [3.0, 4.0]]))  # K-shot sums
    query_x = torch.tensor([[0.5, -1.0], [2.0, 0.0]]).reshape(2, 2, 1, 1)
    scores = learner.predict(state, query_x)
    pairs = torch.tensor([[6, 8, 0.5, -1], [3, 4, 0.5, -1], [6, 8, 2, 0], [3, 4, 2, 0]]).reshape(
        4, 4, 1, 1
    )
    torch.testing.assert_close(scores, learner.relation(pairs).reshape(2, 2))
    assert bool(((scores > 0) & (scores < 1)).all())


def test_support_order_and_query_labels_do_not_matter(small_embedding, assert_query_labels_unused):
    torch.manual_seed(0)
    learner = create_learner(
        "relationnet", small_embedding(downsampled_blocks=2), input_shape=IMAGE_SHAPE
    )
    batch = synthetic_batch(tasks=2)
    for a, b in zip(
        task_predictions(learner, batch), task_predictions(learner, shuffle_support(batch, 1))
    ):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)

    def mse_to_one_hot(scores, labels):
        return F.mse_loss(scores, F.one_hot(labels, scores.shape[1]).float())

    assert_query_labels_unused(learner, batch, mse_to_one_hot)


def test_missing_input_shape_says_what_to_pass(small_embedding):
    with pytest.raises(ValueError, match="needs `input_shape`"):
        create_learner("relationnet", small_embedding())


def test_adapt_builds_no_graph_in_eval_mode(small_embedding):
    assert_no_graph_in_eval(
        create_learner("relationnet", small_embedding(), input_shape=IMAGE_SHAPE), synthetic_batch()
    )


@pytest.mark.parametrize(
    ("bench", "maps", "head_inputs"),
    [("omniglot-5w1s", (64, 5, 5), 64), ("miniimagenet-5w1s", (32, 19, 19), 64 * 3 * 3)],
)
def test_build_learner_gives_the_reference_embedding(bench, maps, head_inputs):
    """floodsung/LearningToCompare_FSL: unpadded blocks 1-2 that pool, padded blocks 3-4 that do
    not (64x5x5 on Omniglot, 19x19 on mini-ImageNet); relation convolutions padded on Omniglot
    (5 -> 2 -> 1) and unpadded on mini-ImageNet (19 -> 8 -> 3), then FC to 8 and to 1."""
    learner = build_learner("relationnet", bench)
    shape = learner.config.input_shape
    assert tuple(learner.feature_maps(torch.zeros(2, *shape)).shape[1:]) == maps
    assert learner.relation.head[0].in_features == head_inputs
    assert learner.relation.head[0].out_features == 8 and learner.relation.head[2].out_features == 1
    convs = [m for m in learner.relation.convs.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(2 * maps[0], 64), (64, 64)]


def test_one_by_one_maps_are_warned_about_with_the_fix(small_embedding):
    with pytest.warns(UserWarning, match="unpadded_blocks"):
        create_learner("relationnet", small_embedding(), input_shape=IMAGE_SHAPE)


def test_reference_init_draws_the_official_distributions():
    torch.manual_seed(0)
    conv, linear, norm = nn.Conv2d(64, 256, 3), nn.Linear(4096, 64), nn.BatchNorm2d(8)
    norm.weight.data.fill_(3.0)
    for module in (conv, linear, norm):
        reference_init(module)
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 256)) ** 0.5, rel=0.02)
    assert float(conv.bias.abs().max()) == 0.0
    assert linear.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert bool((linear.bias == 1).all()) and bool((norm.weight == 1).all())


def test_unknown_init_is_refused(small_embedding):
    with pytest.raises(ValueError, match="init must be one of"):
        create_learner("relationnet", small_embedding(), input_shape=IMAGE_SHAPE, init="xavier")
