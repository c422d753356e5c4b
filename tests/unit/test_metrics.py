"""The one accuracy function (percent) and the shared episodic loop of the metric learners."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metazoo.episode import EpisodeBatch
from metazoo.learners.episodic import episodic_loss
from metazoo.metrics import accuracy, episode_score


def test_accuracy_is_in_percent_over_every_row():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    value = accuracy(logits, torch.tensor([0, 1, 1, 1]))
    assert value.item() == 50.0 and value.dtype == torch.float64 and value.dim() == 0
    batched = torch.stack([logits, logits.flip(-1)])  # (T=2, M=4, N=2): 50% and 50%
    assert accuracy(batched, torch.tensor([[0, 1, 1, 1], [0, 1, 1, 1]])).item() == 50.0
    assert episode_score(torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [1.0]])).item() == 2.5


class Lookup:
    """A learner whose predictions per task are fixed: ``adapt`` returns the task's logits."""

    def __init__(self, logits: list[torch.Tensor]):
        self.logits = iter(logits)

    def adapt(self, support_x, support_y, ways):
        return next(self.logits)

    def predict(self, state, query_x):
        return state


def test_episodic_loss_averages_loss_and_accuracy_over_tasks():
    first = torch.tensor([[3.0, 0.0], [0.0, 3.0]])  # both right
    second = torch.tensor([[0.0, 3.0], [0.0, 3.0]])  # one right
    labels = torch.tensor([[0, 1], [0, 1]])
    x = torch.zeros(2, 2, 1)
    batch = EpisodeBatch(x, labels, x, labels, 2)
    loss, metrics = episodic_loss(Lookup([first, second]), batch, F.cross_entropy)
    expected = (F.cross_entropy(first, labels[0]) + F.cross_entropy(second, labels[1])) / 2
    assert loss.item() == pytest.approx(expected.item())
    assert metrics == {"accuracy": 75.0}
