"""SNAIL: causal blocks, the cached last step equals a full sequence pass, queries independent."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from learner_checks import assert_no_graph_in_eval

from metazoo import create_learner
from metazoo.learners.snail import AttentionBlock, DenseBlock, SnailCore
from metazoo.testing import IMAGE_SHAPE, WAYS, synthetic_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_dense_block_is_a_gated_causal_convolution_with_the_given_dilation():
    torch.manual_seed(0)
    block = DenseBlock(channels=2, dilation=2, filters=3).double()
    x = torch.randn(1, 5, 2, dtype=torch.float64)
    out = block.sequence(x)
    assert out.shape == (1, 5, 5)
    weight, bias = block.conv.weight, block.conv.bias
    for t in range(5):
        previous = x[0, t - 2] if t >= 2 else torch.zeros(2, dtype=torch.float64)
        f, g = (weight @ torch.cat([previous, x[0, t]]) + bias).chunk(2)
        torch.testing.assert_close(out[0, t], torch.cat([x[0, t], f.tanh() * g.sigmoid()]))


def test_attention_block_never_reads_the_future():
    torch.manual_seed(0)
    block = AttentionBlock(channels=4, key_size=3, value_size=2)
    x = torch.randn(2, 6, 4)
    changed = x.clone()
    changed[:, 3:] = torch.randn(2, 3, 4)
    torch.testing.assert_close(block.sequence(changed)[:, :3], block.sequence(x)[:, :3])
    assert not torch.allclose(block.sequence(changed)[:, 3:], block.sequence(x)[:, 3:])


def test_cached_last_step_equals_running_each_query_after_the_context():
    torch.manual_seed(0)
    core = SnailCore(
        7, 4, sequence_length=9, attention_sizes=[(5, 3), (6, 4), (4, 2)], tc_filters=5
    )
    core = core.double()
    context = torch.randn(2, 8, 7, dtype=torch.float64)
    queries = torch.randn(2, 3, 7, dtype=torch.float64)
    cached = core.last_step(core.encode_context(context), queries)  # (2, 3, 4)
    for j in range(3):
        full = core.sequence(torch.cat([context, queries[:, j : j + 1]], dim=1))
        torch.testing.assert_close(cached[:, j], full[:, -1], rtol=1e-12, atol=1e-12)


def test_default_architecture_is_the_papers_omniglot_stack(small_embedding):
    learner = create_learner(
        "snail", small_embedding(), ways=5, max_shots=1, input_shape=IMAGE_SHAPE
    )
    kinds = [type(layer).__name__ for layer in learner.core.layers]
    # T = 5*1+1 = 6 -> ceil(log2 6) = 3 dense blocks (dilations 2, 4, 8) per TC block
    assert kinds == ["AttentionBlock"] + ["DenseBlock"] * 3 + ["AttentionBlock"] + [
        "DenseBlock"
    ] * 3 + ["AttentionBlock"]
    assert [layer.dilation for layer in learner.core.layers[1:4]] == [2, 4, 8]
    assert learner.core.layers[0].query.in_features == 8 + 5  # embedding + one-hot label
    assert learner.core.output.out_features == 5


def test_query_labels_never_enter_and_queries_are_predicted_independently(
    small_embedding, assert_query_labels_unused
):
    torch.manual_seed(0)
    embedding = small_embedding(track_running_stats=True)
    learner = create_learner(
        "snail",
        embedding,
        ways=WAYS,
        input_shape=IMAGE_SHAPE,
        attention_sizes=[(8, 4), (8, 4)],
        tc_filters=8,
    )
    batch = synthetic_batch(tasks=2)
    assert_query_labels_unused(learner, batch, F.cross_entropy)
    learner.eval()  # running BatchNorm statistics: a query's embedding ignores the other queries
    task = batch.task(0)
    state = learner.adapt(task.support_x, task.support_y, task.ways)
    logits = learner.predict(state, task.query_x)
    others_changed = task.query_x.clone()
    others_changed[1:] = torch.rand_like(others_changed[1:])
    torch.testing.assert_close(
        learner.predict(state, others_changed)[0], logits[0], atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        learner.predict(state, task.query_x[:1])[0], logits[0], atol=1e-6, rtol=0
    )


def test_labels_beyond_the_built_ways_are_an_error(small_embedding):
    learner = create_learner("snail", small_embedding(), ways=2, input_shape=IMAGE_SHAPE)
    with pytest.raises(ValueError, match="built for 2 ways but got label 2"):
        learner.adapt(torch.zeros(3, *IMAGE_SHAPE), torch.tensor([0, 1, 2]), 3)


def test_adapt_builds_no_graph_in_eval_mode(small_embedding):
    assert_no_graph_in_eval(
        create_learner("snail", small_embedding(), ways=WAYS, input_shape=IMAGE_SHAPE),
        synthetic_batch(),
    )
