"""MANN: LRUA write by hand, labels offset by one step, query labels unused, queries independent."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from learner_checks import assert_no_graph_in_eval

from metazoo import create_learner
from metazoo.learners.mann import MemoryState, _least_used
from metazoo.testing import IMAGE_SHAPE, WAYS, synthetic_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"controller_size": 16, "memory_slots": 6, "memory_width": 4, "read_heads": 2}


def _mann(**config):
    torch.manual_seed(0)
    return create_learner(
        "mann", None, ways=WAYS, input_shape=IMAGE_SHAPE, **{**SMALL, **config}
    ).double()


def test_least_used_marks_the_n_smallest_usages():
    usage = torch.tensor([[0.5, 0.1, 0.9, 0.05, 0.3]])
    assert torch.equal(_least_used(usage, 2), torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0]]))


def test_step_writes_by_lrua_and_reads_by_cosine_content():
    learner = _mann(gamma=0.9)
    g = torch.Generator().manual_seed(1)
    state = MemoryState(
        torch.randn(1, 16, generator=g, dtype=torch.float64),
        torch.randn(1, 16, generator=g, dtype=torch.float64),
        torch.randn(1, 6, 4, generator=g, dtype=torch.float64),
        torch.softmax(torch.randn(1, 2, 6, generator=g, dtype=torch.float64), -1),
        torch.tensor([[0.7, 0.2, 0.9, 0.1, 0.5, 0.3]], dtype=torch.float64),
        torch.randn(1, 8, generator=g, dtype=torch.float64),
        F.one_hot(torch.tensor([1]), WAYS).double(),
    )
    x = torch.rand(1, 784, generator=g, dtype=torch.float64)
    new, logits = learner.step(state, x, F.one_hot(torch.tensor([2]), WAYS).double())

    hidden, _ = learner.controller(
        torch.cat([x, state.label, state.reads], -1), (state.hidden, state.cell)
    )
    keys = learner.keys(hidden).view(2, 4)
    cosine = F.normalize(keys, dim=-1) @ F.normalize(state.memory[0], dim=-1).T
    read_weights = torch.softmax(cosine, -1)  # read from the memory before this step's write
    torch.testing.assert_close(new.read_weights[0], read_weights)
    gate = torch.sigmoid(learner.write_gate(hidden)).view(2, 1)
    least_used = torch.tensor([0, 1, 0, 1, 0, 0], dtype=torch.float64)  # usages 0.2 and 0.1
    write = gate * state.read_weights[0] + (1 - gate) * least_used  # (heads, slots)
    memory = state.memory[0].clone()
    memory[3] = 0.0  # the least-used slot is cleared before writing
    memory = memory + write.T @ keys
    torch.testing.assert_close(new.memory[0], memory)
    torch.testing.assert_close(new.usage[0], 0.9 * state.usage[0] + (read_weights + write).sum(0))
    reads = (read_weights @ state.memory[0]).flatten()
    torch.testing.assert_close(logits[0], learner.output(torch.cat([hidden[0], reads])))
    assert torch.equal(new.label, F.one_hot(torch.tensor([2]), WAYS).double())


def test_labels_are_offset_by_one_step():
    learner = _mann()
    task = synthetic_batch(tasks=1).task(0)
    x = learner.features(task.support_x.double())
    state = learner.initial_state(1, x)
    one_hot = F.one_hot(task.support_y, WAYS).double()
    # the current label does not affect the current prediction ...
    after_a, logits_a = learner.step(state, x[:1], one_hot[:1])
    after_b, logits_b = learner.step(state, x[:1], one_hot[2:3])  # another class
    assert torch.equal(logits_a, logits_b)
    # ... it enters at the next step
    _, next_a = learner.step(after_a, x[1:2], one_hot[1:2])
    _, next_b = learner.step(after_b, x[1:2], one_hot[1:2])
    assert not torch.allclose(next_a, next_b)


def test_the_last_support_label_reaches_the_queries():
    learner = _mann()
    task = synthetic_batch(tasks=1).task(0)
    sx, qx = task.support_x.double(), task.query_x.double()
    relabelled = task.support_y.clone()
    relabelled[-1] = (relabelled[-1] + 1) % WAYS
    logits = learner.predict(learner.adapt(sx, task.support_y, task.ways), qx)
    assert not torch.allclose(logits, learner.predict(learner.adapt(sx, relabelled, task.ways), qx))


def test_query_labels_never_enter_and_queries_are_independent(assert_query_labels_unused):
    learner = _mann().float()
    batch = synthetic_batch(tasks=2)
    assert_query_labels_unused(learner, batch, F.cross_entropy)
    task = batch.task(0)
    state = learner.adapt(task.support_x, task.support_y, task.ways)
    logits = learner.predict(state, task.query_x)
    changed = task.query_x.clone()
    changed[1:] = torch.rand_like(changed[1:])
    assert torch.equal(learner.predict(state, changed)[0], logits[0])
    torch.testing.assert_close(learner.predict(state, task.query_x[2:3])[0], logits[2])


def test_labels_beyond_the_built_ways_are_an_error():
    learner = _mann()
    with pytest.raises(ValueError, match="built for 3 ways but got label 3"):
        learner.adapt(torch.zeros(2, *IMAGE_SHAPE, dtype=torch.float64), torch.tensor([0, 3]), 4)


def test_adapt_builds_no_graph_in_eval_mode():
    assert_no_graph_in_eval(_mann().float(), synthetic_batch())
