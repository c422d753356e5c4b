"""Helpers for the learner unit tests: small embeddings and the support-order / query-label checks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from metazoo.episode import EpisodeBatch
from metazoo.learner import adaptation_grad_mode, adapts_by_gradient
from metazoo.models import make_backbone
from metazoo.testing import IMAGE_SHAPE, WAYS


def small_embedding_factory() -> Callable[..., nn.Module]:
    """``(**options) -> Conv4`` embedding of width 8 for ``(1, 28, 28)`` images.

    With ``track_running_stats=True`` and ``.eval()`` a sample's embedding does not depend on the
    other samples of its batch (no batch statistics), which the sequence-model tests rely on.
    """

    def make(**options) -> nn.Module:
        return make_backbone("conv4", IMAGE_SHAPE, out_features=None, hidden=8, **options)

    return make


def shuffle_support(batch: EpisodeBatch, seed: int) -> EpisodeBatch:
    """``batch`` with the support samples of every task in one random order."""
    order = torch.randperm(batch.support_x.shape[1], generator=torch.Generator().manual_seed(seed))
    return EpisodeBatch(
        batch.support_x[:, order], batch.support_y[:, order], batch.query_x, batch.query_y
    )


def task_predictions(learner: nn.Module, batch: EpisodeBatch) -> list[Tensor]:
    """``predict(adapt(support), query_x)`` for every task of ``batch``."""
    return [
        learner.predict(learner.adapt(t.support_x, t.support_y, t.ways), t.query_x) for t in batch
    ]


def query_labels_unused_check() -> Callable[..., None]:
    """``(learner, batch, loss_fn)``: meta_loss is ``loss_fn`` of label-free predictions.

    For two different query labellings, ``meta_loss`` must equal the mean over tasks of
    ``loss_fn(predict(adapt(support), query_x), query_y)``: ``predict`` never receives query labels,
    so the loss the learner trains on is computed from logits that cannot depend on them.
    """

    def check(learner: nn.Module, batch: EpisodeBatch, loss_fn: Callable) -> None:
        predictions = task_predictions(learner, batch)
        generator = torch.Generator().manual_seed(123)
        for labels in (
            batch.query_y,
            torch.randint(0, WAYS, batch.query_y.shape, generator=generator),
        ):
            relabelled = EpisodeBatch(batch.support_x, batch.support_y, batch.query_x, labels)
            loss, _ = learner.meta_loss(relabelled)
            expected = torch.stack([loss_fn(p, y) for p, y in zip(predictions, labels)]).mean()
            torch.testing.assert_close(loss, expected, atol=1e-6, rtol=1e-6)

    return check


def _tensors(state: object) -> list[Tensor]:
    if isinstance(state, Tensor):
        return [state]
    if isinstance(state, (list, tuple)):
        return [t for item in state for t in _tensors(item)]
    return []


def assert_no_graph_in_eval(learner: nn.Module, batch: EpisodeBatch) -> None:
    """A forward-pass learner: it declares ``adapts_by_gradient = False``, so the harness runs its
    eval-mode ``adapt`` under ``no_grad`` and no graph is built; in train mode (what ``meta_loss``
    backpropagates through) ``adapt`` builds one."""
    assert adapts_by_gradient(learner) is False
    task = batch.task(0)
    with torch.enable_grad():
        trained_state = _tensors(learner.adapt(task.support_x, task.support_y, task.ways))
    learner.eval()
    try:
        with adaptation_grad_mode(learner):
            eval_state = _tensors(learner.adapt(task.support_x, task.support_y, task.ways))
    finally:
        learner.train()
    assert eval_state and not any(t.requires_grad for t in eval_state)
    assert any(t.requires_grad for t in trained_state)
