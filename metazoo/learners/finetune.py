"""The fine-tuning baseline: pre-train on all meta-training classes, fine-tune on each support set.

Chen, Liu, Kira, Wang and Huang. "A Closer Look at Few-shot Classification." ICLR 2019
("Baseline"); the "pretrained" baseline of Finn, Abbeel and Levine, ICML 2017.

Meta-training is ordinary supervised learning: the backbone with a ``num_classes``-way head is
trained with cross-entropy on the support and query images of every task, labelled with their
dataset-wide class ids (``batch.classes[y]``). At test time the head is discarded: a fresh N-way
linear head (zero-initialised) is trained on the frozen features of the support set for
``test_inner_steps`` gradient steps. For regression (the sinusoid), pre-training regresses all
tasks' points with one network, and adaptation fine-tunes the whole network on the support set,
MAML's "pretrained" baseline. Every comparison needs this floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metazoo import engine
from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.learners.episodic import episodic_loss
from metazoo.metrics import accuracy
from metazoo.models import feature_dim

__all__ = ["FineTune"]


@register_learner("finetune", family="optimization")
class FineTune(nn.Module):
    """Supervised pre-training plus per-task fine-tuning, around an embedding ``model``."""

    tasks = ("classification", "regression")
    model_kind = "embedding"
    adapts_by_gradient = True  # per-task fine-tuning takes gradient steps

    @dataclass
    class Config:
        """Fine-tuning baseline settings."""

        #: Classes of the meta-training split (the pre-training head's width); None: ``ways``.
        num_classes: int | None = None
        #: N-way of the episodes (fallback head width); filled by build_learner.
        ways: int | None = None
        #: One input's shape, to size the heads; filled by build_learner.
        input_shape: tuple[int, ...] | None = None
        #: ``classification`` or ``regression``; filled by build_learner.
        task: str = "classification"
        #: Step size of the per-task fine-tuning (plain gradient descent).
        inner_lr: float = 0.01
        #: Fine-tuning steps on the support set.
        test_inner_steps: int = 10
        #: BatchNorm policy of the backbone (``transductive``: batch statistics).
        bn_policy: str = "transductive"

    def __init__(self, model: nn.Module | None, config: Config):
        super().__init__()
        if model is None or config.input_shape is None:
            raise ValueError(
                "finetune needs an embedding model and config.input_shape (to size its heads); "
                "use metazoo.build_learner('finetune', benchmark)"
            )
        engine.parameters_of(model)
        engine.check_bn_policy(config.bn_policy)
        engine.InnerLoop(steps=config.test_inner_steps, task=config.task)  # validates both
        self.model = model
        self.config = config
        dim = feature_dim(model, config.input_shape)
        if config.task == "classification":
            width = config.num_classes or config.ways
            if width is None:
                raise ValueError("finetune needs num_classes (or ways) for its pre-training head")
            self.pretrain_head = nn.Linear(dim, width)
            self.network = None
        else:
            self.pretrain_head = None
            self.network = nn.Sequential(model, nn.Linear(dim, 1))

    def _features(self, x: Tensor) -> Tensor:
        return engine.predict(
            self.model, dict(self.model.named_parameters()), x, self.config.bn_policy
        )

    def _pretrain_loss(self, batch: EpisodeBatch) -> tuple[Tensor, dict[str, float]]:
        x = torch.cat([batch.support_x, batch.query_x], dim=1).flatten(0, 1)
        y = torch.cat([batch.support_y, batch.query_y], dim=1)
        if self.config.task == "regression":
            out = engine.predict(
                self.network, dict(self.network.named_parameters()), x, self.config.bn_policy
            )
            loss = F.mse_loss(out, y.flatten(0, 1))
            return loss, {"mse": float(loss.detach()), "loss": float(loss.detach())}
        labels = y if batch.classes is None else torch.gather(batch.classes, 1, y)
        labels = labels.flatten()
        logits = self.pretrain_head(self._features(x))
        if int(labels.max()) >= logits.shape[-1]:
            raise ValueError(
                f"class id {int(labels.max())} does not fit the {logits.shape[-1]}-way pre-training "
                "head: set num_classes to the training split's class count (build_learner does)"
            )
        loss = F.cross_entropy(logits, labels)
        return loss, {"accuracy": float(accuracy(logits, labels)), "loss": float(loss.detach())}

    def meta_loss(self, batch: EpisodeBatch) -> tuple[Tensor, dict[str, float]]:
        """Training mode: the supervised pre-training loss on all tasks' images, labelled with
        dataset-wide classes. ``eval()`` mode: mean query loss after fine-tuning each task."""
        engine.check_task_of(self.config.task, batch.is_regression)
        if self.training:
            return self._pretrain_loss(batch)
        loss, metrics = episodic_loss(self, batch, self._query_loss)
        return loss, {**metrics, "loss": float(loss)}

    def _query_loss(self, out: Tensor, y: Tensor) -> Tensor:
        # test-time fine-tuning is not meta-trained: no graph back to the parameters
        return engine.task_loss(out, y, self.config.task).detach()

    def _loop(self) -> engine.InnerLoop:
        return engine.InnerLoop(
            steps=self.config.test_inner_steps,
            task=self.config.task,
            bn_policy=self.config.bn_policy,
        )

    def adapt(self, support_x: Tensor, support_y: Tensor) -> dict[str, Tensor]:
        """Fine-tuned weights for one task (never attached to the learner's graph).

        Classification: a zero-initialised ``(N, d)`` head on frozen features of ``support_x
        (N*K, *x)``. Regression: the whole pre-trained network on ``support_y (N*K, 1)``.
        """
        engine.check_task_of(self.config.task, torch.is_floating_point(support_y))
        with torch.enable_grad():
            if self.config.task == "regression":
                meta = engine.MetaParams(
                    dict(self.network.named_parameters()), self.config.inner_lr
                )
                return engine.adapt(
                    self.network, support_x, support_y, self._loop(), meta, outer=False
                )
            with torch.no_grad():
                feats = self._features(support_x)
            ways = int(support_y.max()) + 1
            head = nn.Linear(feats.shape[-1], ways).to(feats)
            zeros = {n: torch.zeros_like(p) for n, p in head.named_parameters()}
            meta = engine.MetaParams(zeros, self.config.inner_lr)
            return engine.adapt(head, feats, support_y, self._loop(), meta, outer=False)

    def predict(self, state: dict[str, Tensor], query_x: Tensor) -> Tensor:
        """Logits ``(N*Q, N)`` or outputs ``(N*Q, 1)`` for ``query_x (N*Q, *x)``."""
        if self.config.task == "regression":
            return engine.predict(self.network, state, query_x, self.config.bn_policy)
        return F.linear(self._features(query_x), state["weight"], state["bias"])
