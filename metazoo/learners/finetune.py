"""The fine-tuning baselines: pre-train on all meta-training classes, fine-tune on each support set.

Chen, Liu, Kira, Wang and Huang. "A Closer Look at Few-shot Classification." ICLR 2019
("Baseline", registered as ``finetune``, and "Baseline++", registered as ``baselinepp``); the
"pretrained" baseline of Finn, Abbeel and Levine, ICML 2017.

Meta-training is ordinary supervised learning: the backbone with a ``num_classes``-way head is
trained with cross-entropy on the support and query images of every task, labelled with their
dataset-wide class ids (``batch.classes[y]``). At test time the head is discarded: a fresh N-way
linear head (zero-initialised) is trained on the frozen features of the support set for
``test_inner_steps`` gradient steps. For regression (the sinusoid), pre-training regresses all
tasks' points with one network, and adaptation fine-tunes the whole network on the support set,
MAML's "pretrained" baseline. Every comparison needs this floor.

Baseline++ (``head: cosine``) replaces both linear heads by a cosine-similarity classifier,
``scale * cos(w_c, f(x))``, in pre-training and at test time (Chen et al., Section 3.2). Its test
head starts from the normalised class means of the support features (weight imprinting) rather
than Chen et al.'s random initialisation: a cosine head cannot start from zero, and imprinting
keeps adaptation deterministic. :func:`pretraining_loss` is the one pre-training objective, shared
with ``transductive_ft``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metazoo import engine
from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.learner import EvalSettings
from metazoo.learners.episodic import class_means, episodic_loss
from metazoo.metrics import accuracy
from metazoo.models import feature_dim

__all__ = ["FineTune", "CosineClassifier", "pretraining_loss", "pretraining_labels"]

HEADS = ("linear", "cosine")


class CosineClassifier(nn.Module):
    """Baseline++'s head: logits ``scale * cos(w_c, x)``, one weight row per class.

    Args:
        in_features: D, the feature width.
        classes: C, the number of classes.
        scale: the logit scale (cosines alone, in [-1, 1], saturate no softmax).
    """

    def __init__(self, in_features: int, classes: int, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, in_features) / in_features**0.5)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, C)`` for features ``x (B, D)``."""
        return cosine_logits(x, self.weight, self.scale)


def cosine_logits(features: Tensor, weight: Tensor, scale: float) -> Tensor:
    """``scale * cos`` between ``features (B, D)`` and class weights ``weight (C, D)`` -> ``(B, C)``."""
    return scale * F.normalize(features, dim=-1) @ F.normalize(weight, dim=-1).T


def pretraining_labels(batch: EpisodeBatch) -> tuple[Tensor, Tensor]:
    """All images of a meta-batch and their dataset-wide classes.

    Returns:
        ``x (T*N*(K+Q), *x)`` and labels ``(T*N*(K+Q),)``: ``batch.classes[y]`` when the batch
        carries classes, else the episode labels.
    """
    x = torch.cat([batch.support_x, batch.query_x], dim=1).flatten(0, 1)
    y = torch.cat([batch.support_y, batch.query_y], dim=1)
    labels = y if batch.classes is None else torch.gather(batch.classes, 1, y)
    return x, labels.flatten()


def pretraining_loss(
    logits_of: Callable[[Tensor], Tensor], batch: EpisodeBatch
) -> tuple[Tensor, dict[str, float]]:
    """Supervised pre-training: cross-entropy over all meta-training classes.

    Args:
        logits_of: ``x (B, *x) -> (B, C)``, the network with its C-way pre-training head.
        batch: a meta-batch; every image is labelled with its dataset-wide class.

    Returns:
        The mean cross-entropy and ``{"accuracy": %, "loss": ...}``.
    """
    x, labels = pretraining_labels(batch)
    logits = logits_of(x)
    if int(labels.max()) >= logits.shape[-1]:
        raise ValueError(
            f"class id {int(labels.max())} does not fit the {logits.shape[-1]}-way pre-training "
            "head: set num_classes to the training split's class count (build_learner does)"
        )
    loss = F.cross_entropy(logits, labels)
    return loss, {"accuracy": float(accuracy(logits, labels)), "loss": float(loss.detach())}


@register_learner("finetune", family="optimization")
@register_learner("baselinepp", family="optimization", head="cosine")
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
        #: ``linear`` (Baseline) or ``cosine`` (Baseline++) classification heads.
        head: str = "linear"
        #: Logit scale of the cosine heads (Chen et al.'s code: 10 for more than 200 classes).
        cosine_scale: float = 10.0

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
        if config.head not in HEADS or (
            config.head == "cosine" and config.task != "classification"
        ):
            raise ValueError(
                f"finetune: head must be one of {HEADS} (cosine for classification only), got "
                f"{config.head!r} for {config.task}"
            )
        self.model = model
        self.config = config
        dim = feature_dim(model, config.input_shape)
        if config.task == "classification":
            width = config.num_classes or config.ways
            if width is None:
                raise ValueError("finetune needs num_classes (or ways) for its pre-training head")
            self.pretrain_head = self._head(dim, width)
            self.network = None
        else:
            self.pretrain_head = None
            self.network = nn.Sequential(model, nn.Linear(dim, 1))

    def _head(self, dim: int, classes: int) -> nn.Module:
        if self.config.head == "cosine":
            return CosineClassifier(dim, classes, self.config.cosine_scale)
        return nn.Linear(dim, classes)

    def _features(self, x: Tensor) -> Tensor:
        return engine.predict(
            self.model, dict(self.model.named_parameters()), x, self.config.bn_policy
        )

    def _pretrain_loss(self, batch: EpisodeBatch) -> tuple[Tensor, dict[str, float]]:
        if self.config.task == "classification":
            return pretraining_loss(lambda x: self.pretrain_head(self._features(x)), batch)
        x = torch.cat([batch.support_x, batch.query_x], dim=1).flatten(0, 1)
        y = torch.cat([batch.support_y, batch.query_y], dim=1).flatten(0, 1)
        out = engine.predict(
            self.network, dict(self.network.named_parameters()), x, self.config.bn_policy
        )
        loss = F.mse_loss(out, y)
        return loss, {"mse": float(loss.detach()), "loss": float(loss.detach())}

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
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

    def eval_settings(self) -> EvalSettings:
        """The fine-tuning steps and the backbone's BatchNorm policy at test time."""
        return EvalSettings(self.config.test_inner_steps, self.config.bn_policy)

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> dict[str, Tensor]:
        """Fine-tuned weights for one task (never attached to the learner's graph).

        Classification: an ``(N, d)`` head (zero-initialised linear, or imprinted cosine) on frozen
        features of ``support_x (N*K, *x)``. Regression: the whole pre-trained network on ``support_y (N*K, 1)``.
        """
        engine.check_task_of(self.config.task, torch.is_floating_point(support_y))
        with torch.enable_grad():
            if self.config.task == "regression":
                meta = engine.MetaParams(
                    dict(self.network.named_parameters()), self.config.inner_lr
                )
                return engine.adapt(
                    self.network, support_x, support_y, self._loop(), meta, outer=False, ways=None
                )
            with torch.no_grad():
                feats = self._features(support_x)
            head = self._head(feats.shape[-1], ways).to(feats)
            start = self._initial_head(feats, support_y, ways)
            meta = engine.MetaParams(start, self.config.inner_lr)
            return engine.adapt(head, feats, support_y, self._loop(), meta, outer=False, ways=ways)

    def _initial_head(self, feats: Tensor, labels: Tensor, ways: int) -> dict[str, Tensor]:
        """Zeros for a linear head; the normalised class means of ``feats (N*K, D)`` for a cosine
        head (whose normalisation is undefined at zero)."""
        if self.config.head == "cosine":
            return {"weight": F.normalize(class_means(feats, labels, ways), dim=-1)}
        dim = feats.shape[-1]
        return {"weight": feats.new_zeros(ways, dim), "bias": feats.new_zeros(ways)}

    def predict(self, state: dict[str, Tensor], query_x: Tensor) -> Tensor:
        """Logits ``(N*Q, N)`` or outputs ``(N*Q, 1)`` for ``query_x (N*Q, *x)``."""
        if self.config.task == "regression":
            return engine.predict(self.network, state, query_x, self.config.bn_policy)
        feats = self._features(query_x)
        if self.config.head == "cosine":
            return cosine_logits(feats, state["weight"], self.config.cosine_scale)
        return F.linear(feats, state["weight"], state["bias"])
