"""Transductive fine-tuning: Guneet S. Dhillon, Pratik Chaudhari, Avinash Ravichandran and Stefano
Soatto, "A Baseline for Few-Shot Image Classification", ICLR 2020.

Meta-training is the fine-tuning baseline's supervised pre-training (one shared function,
:func:`metazoo.learners.finetune.pretraining_loss`): the backbone and a ``num_classes``-way head
learn to classify every meta-training image. On a task, a new N-way classifier is appended to the
backbone's *logits* (Section 3.1): ``w @ normalize(relu(z(x))) + b``, with ``w_k`` initialised to
the normalised mean of class k's support vectors and ``b = 0`` (support-based initialisation).
Then every parameter (backbone, pre-training head, new classifier) is fine-tuned with Adam, each
epoch taking one step on the support cross-entropy and one on the mean Shannon entropy of the
unlabelled query predictions (eq. 8; 25 epochs, learning rate 5e-5 in the paper).

The fine-tuning needs the queries, which ``adapt(support_x, support_y, ways)`` does not see: ``adapt``
returns the support set and the initial classifier, and ``predict`` runs the fine-tuning on the
queries it is given (on copies of the weights, under ``enable_grad``, returning detached logits).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metazoo import engine
from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.learner import EvalSettings
from metazoo.learners.episodic import class_means, episodic_loss
from metazoo.learners.finetune import pretraining_loss
from metazoo.models import feature_dim

__all__ = ["TransductiveFineTune"]

Weights = dict[str, Tensor]


@register_learner("transductive_ft", family="optimization")
class TransductiveFineTune(nn.Module):
    """Supervised pre-training plus transductive fine-tuning of the whole network per task."""

    tasks = ("classification",)
    model_kind = "embedding"
    adapts_by_gradient = True  # per-task fine-tuning takes gradient steps

    @dataclass
    class Config:
        """Transductive fine-tuning settings (defaults: Dhillon et al., Section 4)."""

        #: Classes of the meta-training split (the pre-training head's width); None: ``ways``.
        num_classes: int | None = None
        #: N-way of the episodes (fallback head width); filled by build_learner.
        ways: int | None = None
        #: One input's shape, to size the head; filled by build_learner.
        input_shape: tuple[int, ...] | None = None
        #: Fine-tuning epochs; each takes one support step and one query-entropy step.
        epochs: int = 25
        #: Adam's learning rate for the fine-tuning.
        lr: float = 5e-5
        #: Weight of the query-entropy term (the paper keeps 1).
        entropy_weight: float = 1.0
        #: BatchNorm policy of the backbone (``transductive``: batch statistics).
        bn_policy: str = "transductive"

    def __init__(self, model: nn.Module | None, config: Config):
        super().__init__()
        if model is None or config.input_shape is None:
            raise ValueError(
                "transductive_ft needs an embedding model and config.input_shape (to size its "
                "head); use metazoo.build_learner('transductive_ft', benchmark)"
            )
        width = config.num_classes or config.ways
        if width is None:
            raise ValueError(
                "transductive_ft needs num_classes (or ways) for its pre-training head"
            )
        if config.epochs < 0 or config.lr <= 0:
            raise ValueError("transductive_ft: epochs must be >= 0 and lr positive")
        engine.check_bn_policy(config.bn_policy)
        self.model = model
        self.config = config
        self.pretrain_head = nn.Linear(feature_dim(model, config.input_shape), width)

    def _backbone_logits(self, weights: Weights, x: Tensor) -> Tensor:
        """The pre-trained network's logits ``(B, C)`` for ``x (B, *x)`` at ``weights``."""
        features = engine.predict(self.model, weights["model"], x, self.config.bn_policy)
        return F.linear(features.flatten(1), weights["head.weight"], weights["head.bias"])

    def _weights(self) -> dict:
        return {
            "model": dict(self.model.named_parameters()),
            "head.weight": self.pretrain_head.weight,
            "head.bias": self.pretrain_head.bias,
        }

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Training mode: the supervised pre-training loss over dataset-wide classes. ``eval()``
        mode: mean query loss after transductive fine-tuning on each task."""
        if self.training:
            return pretraining_loss(lambda x: self._backbone_logits(self._weights(), x), batch)
        loss, metrics = episodic_loss(self, batch, lambda out, y: F.cross_entropy(out, y).detach())
        return loss, {**metrics, "loss": float(loss)}

    def eval_settings(self) -> EvalSettings:
        """The backbone's BatchNorm policy; the fine-tuning counts ``epochs`` (recorded with the
        config), not inner steps."""
        return EvalSettings(bn_policy=self.config.bn_policy)

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> dict[str, Tensor]:
        """The support set and the support-based classifier ``weight (N, C)``, ``bias (N,)``.

        Args:
            support_x: ``(N*K, *x)`` support images.
            support_y: ``(N*K,)`` labels in ``0..N-1``.
            ways: N.
        """
        with torch.no_grad():
            z = _normalised(self._backbone_logits(self._weights(), support_x))
            weight = F.normalize(class_means(z, support_y, ways), dim=-1)
        return {
            "support_x": support_x.detach(),
            "support_y": support_y.detach(),
            "weight": weight,
            "bias": weight.new_zeros(ways),
        }

    def predict(self, state: dict[str, Tensor], query_x: Tensor) -> Tensor:
        """Logits ``(N*Q, N)`` for ``query_x (N*Q, *x)`` after fine-tuning on support and queries.

        The learner's parameters are copied, never changed; the result is detached.
        """
        with torch.enable_grad():
            weights = _leaf_copy(
                {**self._weights(), "weight": state["weight"], "bias": state["bias"]}
            )
            optimizer = torch.optim.Adam(_flat(weights), lr=self.config.lr)
            for _ in range(self.config.epochs):
                support = self._logits(weights, state["support_x"])
                self._step(optimizer, F.cross_entropy(support, state["support_y"]))
                entropy = _mean_entropy(self._logits(weights, query_x))
                self._step(optimizer, self.config.entropy_weight * entropy)
            return self._logits(weights, query_x).detach()

    def _logits(self, weights: dict, x: Tensor) -> Tensor:
        z = _normalised(self._backbone_logits(weights, x))
        return F.linear(z, weights["weight"], weights["bias"])

    @staticmethod
    def _step(optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _normalised(logits: Tensor) -> Tensor:
    """``relu(z) / ||relu(z)||`` row by row, ``(B, C)`` (Dhillon et al., eq. 7)."""
    return F.normalize(F.relu(logits), dim=-1)


def _mean_entropy(logits: Tensor) -> Tensor:
    """Mean Shannon entropy of the softmax of ``logits (M, N)``."""
    log_p = F.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1).mean()


def _leaf_copy(weights: dict) -> dict:
    """Detached copies of every tensor (nested one level), as leaves that require grad."""
    return {
        k: _leaf_copy(v) if isinstance(v, dict) else v.detach().clone().requires_grad_(True)
        for k, v in weights.items()
    }


def _flat(weights: dict) -> list[Tensor]:
    return [t for v in weights.values() for t in (_flat(v) if isinstance(v, dict) else [v])]
