"""Tasks of different ways and shots in one meta-batch: grouping, the padded head, errors."""

from __future__ import annotations

import copy

import pytest
import torch

import metazoo
from metazoo import engine
from metazoo.episode import Episode, EpisodeList, collate
from metazoo.testing import tiny_conv_net


def _episode(ways: int, shots: list[int], queries: int, seed: int) -> Episode:
    g = torch.Generator().manual_seed(seed)
    support_y = torch.arange(ways).repeat_interleave(torch.tensor(shots))
    query_y = torch.arange(ways).repeat_interleave(queries)
    sx = torch.rand(len(support_y), 1, 6, 6, generator=g, dtype=torch.float64)
    qx = torch.rand(len(query_y), 1, 6, 6, generator=g, dtype=torch.float64)
    return Episode(sx, support_y, qx, query_y, ways)


def _ragged() -> EpisodeList:
    return EpisodeList(
        (
            _episode(3, [1, 2, 1], 2, 0),
            _episode(5, [2, 2, 2, 2, 2], 1, 1),
            _episode(3, [1, 2, 1], 2, 2),  # same shapes as task 0: one group
            _episode(4, [3, 1, 1, 2], 3, 3),
        )
    )


def _meta(model) -> engine.MetaParams:
    return engine.MetaParams(dict(model.named_parameters()), 0.1)


def test_groups_stack_same_shaped_tasks_in_order():
    groups = _ragged().groups()
    assert [indices for indices, _ in groups] == [[0, 2], [1], [3]]
    assert groups[0][1].support_x.shape == (2, 4, 1, 6, 6)
    assert isinstance(collate(list(_ragged())), EpisodeList)


def test_grouped_results_equal_each_task_alone():
    torch.manual_seed(0)
    model = tiny_conv_net(ways=5).double()
    loop = engine.InnerLoop(steps=2, padded_head=True)
    together = engine.run_tasks(model, _ragged(), loop, _meta(model))
    for t, task in enumerate(_ragged()):
        alone = engine.run_tasks(model, task.batch(), loop, _meta(model))
        assert torch.allclose(together.query_losses[t], alone.query_losses[0], atol=1e-12)
        assert together.metric[t] == alone.metric[0]


def test_padded_head_equals_a_head_of_the_tasks_ways():
    """Masked logits: the meta-gradient on the first N head rows equals that of an N-way head,
    and the rows beyond N get none."""
    torch.manual_seed(1)
    wide = tiny_conv_net(ways=5).double()
    narrow = copy.deepcopy(wide)
    narrow[-1] = torch.nn.Linear(27, 3).double()
    narrow[-1].weight.data.copy_(wide[-1].weight.data[:3])
    narrow[-1].bias.data.copy_(wide[-1].bias.data[:3])
    task = _episode(3, [2, 1, 2], 2, 7).batch()
    padded = engine.InnerLoop(steps=2, padded_head=True)
    engine.run_tasks(wide, task, padded, _meta(wide)).query_loss.sum().backward()
    engine.run_tasks(
        narrow, task, engine.InnerLoop(steps=2), _meta(narrow)
    ).query_loss.sum().backward()
    assert torch.allclose(wide[-1].weight.grad[:3], narrow[-1].weight.grad, atol=1e-12)
    assert torch.allclose(wide[0].weight.grad, narrow[0].weight.grad, atol=1e-12)
    assert float(wide[-1].weight.grad[3:].abs().max()) == 0.0


def test_maml_predict_uses_the_tasks_ways_and_matches_its_scores():
    torch.manual_seed(2)
    learner = metazoo.create_learner("maml", tiny_conv_net(ways=5).double(), padded_head=True)
    learner.eval()
    scores = learner.score_episodes(_ragged())
    for t, task in enumerate(_ragged()):
        logits = learner.predict(
            learner.adapt(task.support_x, task.support_y, task.ways), task.query_x
        )
        assert logits.shape == (len(task.query_y), task.ways)
        accuracy = 100.0 * float((logits.argmax(1) == task.query_y).double().mean())
        assert accuracy == pytest.approx(float(scores[t]), abs=1e-9)


def test_errors_say_what_to_do():
    model = tiny_conv_net(ways=5).double()
    with pytest.raises(ValueError, match=r"different ways \[3, 4, 5\] but the head is not padded"):
        engine.run_tasks(model, _ragged(), engine.InnerLoop(steps=1), _meta(model))
    narrow = tiny_conv_net(ways=4).double()
    with pytest.raises(ValueError, match="the padded head has 4 outputs but an episode is 5-way"):
        engine.run_tasks(
            narrow, _ragged(), engine.InnerLoop(steps=1, padded_head=True), _meta(narrow)
        )
    with pytest.raises(ValueError, match="EpisodeList needs at least one episode"):
        EpisodeList(())
