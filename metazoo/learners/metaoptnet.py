"""MetaOptNet: Kwonjoon Lee, Subhransu Maji, Avinash Ravichandran and Stefano Soatto, "Meta-Learning
with Differentiable Convex Optimization", CVPR 2019.

An embedding network maps images to features; on each task a convex linear classifier is fitted
to the support features (``head: svm``, the Crammer-Singer multi-class SVM solved in its dual; or
``head: ridge``, ridge regression onto one-hot targets, closed form in the dual), and the queries
are classified by its scaled scores ``scale * <w_k, f(x)>``. Meta-training backpropagates the
query cross-entropy through the classifier's solution into the embedding; ``scale`` (the paper's
learnable temperature) is trained with it. The SVM's solution is differentiated implicitly through
its KKT conditions (:mod:`metazoo.learners.convex_heads`); Lee et al. use OptNet's interior-point
solver for the same derivative.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.learners.convex_heads import ridge_weights, svm_weights
from metazoo.learners.episodic import episodic_loss

__all__ = ["MetaOptNet"]

HEADS = ("svm", "ridge")


@register_learner("metaoptnet", family="metric")
class MetaOptNet(nn.Module):
    """A convex base learner (SVM or ridge regression) on an embedding ``model``.

    Args:
        model: embedding network ``(B, *x) -> (B, D)`` (or any shape, flattened).
        config: a :class:`MetaOptNet.Config`.
    """

    adapts_by_gradient = False  # the base learner is solved, not trained: a forward pass

    @dataclass
    class Config:
        """MetaOptNet options (defaults: Lee et al.'s code)."""

        #: ``svm`` (Crammer-Singer multi-class SVM) or ``ridge`` (ridge regression).
        head: str = "svm"
        #: The SVM's C (soft-margin trade-off).
        svm_c: float = 0.1
        #: Added to the SVM's Gram diagonal, relative to its mean, to keep the solve regular.
        svm_jitter: float = 1e-6
        #: The ridge penalty lambda.
        ridge_lambda: float = 50.0
        #: Initial value of the learnable logit scale (temperature).
        scale: float = 1.0

    def __init__(self, model: nn.Module, config: Config):
        super().__init__()
        if model is None:
            raise ValueError(
                "metaoptnet needs an embedding network as `model` (model kind: embedding)"
            )
        if config.head not in HEADS:
            raise ValueError(f"metaoptnet: head must be one of {HEADS}, got {config.head!r}")
        if config.svm_c <= 0 or config.ridge_lambda <= 0:
            raise ValueError("metaoptnet: svm_c and ridge_lambda must be positive")
        self.model = model
        self.config = config
        self.scale = nn.Parameter(torch.tensor(float(config.scale)))

    def embed(self, x: Tensor) -> Tensor:
        """``x (B, *x)`` -> flat features ``(B, D)``."""
        return self.model(x).flatten(1)

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> Tensor:
        """Class weights ``(N, D)`` of the base learner fitted to ``support_x (N*K, *x)``, N
        ``ways``."""
        features = self.embed(support_x)
        if self.config.head == "ridge":
            return ridge_weights(features, support_y, ways, self.config.ridge_lambda)
        return svm_weights(features, support_y, ways, self.config.svm_c, self.config.svm_jitter)

    def predict(self, state: Tensor, query_x: Tensor) -> Tensor:
        """Logits ``(M, N)`` for ``query_x (M, *x)`` given class weights ``state (N, D)``."""
        return self.scale * self.embed(query_x) @ state.T

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Mean query cross-entropy over the tasks of ``batch``, and the query accuracy (%)."""
        return episodic_loss(self, batch, F.cross_entropy)
