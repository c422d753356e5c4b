"""The episodic loop the metric and model-based learners share, as free functions.

Each task of a meta-batch is adapted on its support set, its queries are predicted from that
state, and the query loss and metric are averaged over the tasks. ProtoNet, Matching, Relation
networks and the classification CNP call :func:`episodic_loss` with their own loss; there is no
base class.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metazoo.episode import EpisodeBatch, EpisodeList
from metazoo.metrics import episode_score

__all__ = ["episodic_loss", "class_means"]


def class_means(features: Tensor, labels: Tensor, ways: int) -> Tensor:
    """Mean feature of each class.

    Args:
        features: ``(n, *f)`` support features.
        labels: ``(n,)`` labels in ``0..ways-1``; every class must occur.
        ways: N.

    Returns:
        ``(N, *f)`` per-class means.
    """
    one_hot = F.one_hot(labels, ways).to(features.dtype)  # (n, N)
    counts = one_hot.sum(0)
    if bool((counts == 0).any()):
        missing = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"classes {missing} have no support sample; every way needs a shot")
    sums = torch.einsum("nc,nf->cf", one_hot, features.flatten(1))
    return (sums / counts[:, None]).reshape(ways, *features.shape[1:])


def episodic_loss(
    learner: nn.Module,
    batch: EpisodeBatch | EpisodeList,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
) -> tuple[Tensor, dict[str, float]]:
    """``meta_loss`` of a learner whose tasks run one at a time through ``adapt`` and ``predict``.

    Args:
        learner: has ``adapt(support_x, support_y, ways)`` and ``predict(state, query_x)``.
        batch: T tasks, ``support_x (T, N*K, *x)``, ``query_x (T, N*Q, *x)``, or an
            :class:`EpisodeList` of tasks of different ways and shots.
        loss_fn: ``(predictions (N*Q, N), query_y (N*Q,)) -> scalar`` query loss of one task.

    Returns:
        The mean over tasks of the query loss (attached to the learner's graph), and
        ``{"accuracy": %}`` (or ``{"mse": ...}`` for float targets): the mean over tasks of each
        task's metric, the number ``predict(adapt(...))`` gives episode by episode.
    """
    losses, scores = [], []
    for task in batch:
        state = learner.adapt(task.support_x, task.support_y, task.ways)
        prediction = learner.predict(state, task.query_x)
        losses.append(loss_fn(prediction, task.query_y))
        scores.append(episode_score(prediction, task.query_y))
    name = "mse" if batch.is_regression else "accuracy"
    return torch.stack(losses).mean(), {name: float(torch.stack(scores).mean())}
