"""Prototypical Networks: Jake Snell, Kevin Swersky and Richard S. Zemel, "Prototypical Networks for
Few-shot Learning", NeurIPS (NIPS) 2017.

An embedding network maps every image to a vector; each class of the support set is represented by
its prototype, the mean embedding of its support samples, and a query is classified by a softmax
over the negative squared Euclidean distances to the prototypes. Adaptation is therefore a single
forward pass with no inner optimisation; meta-training backpropagates the query cross-entropy into
the embedding. The paper also discusses cosine distance (worse in its experiments); it is offered
here as ``distance: cosine`` with a fixed logit scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.learners.episodic import class_means, episodic_loss

__all__ = ["ProtoNet"]

DISTANCES = ("euclidean", "cosine")


@register_learner("protonet", family="metric")
class ProtoNet(nn.Module):
    """Prototypical network on an embedding backbone.

    Args:
        model: embedding network ``(B, *x) -> (B, D)`` (or any shape, flattened).
        config: a :class:`ProtoNet.Config`.
    """

    adapts_by_gradient = False  # prototypes are a forward pass

    @dataclass
    class Config:
        """ProtoNet options."""

        #: ``euclidean`` (squared, as in the paper) or ``cosine`` similarity.
        distance: str = "euclidean"
        #: logits are ``cosine_scale * cos`` for ``distance: cosine`` (cosines alone saturate softmax).
        cosine_scale: float = 10.0

    def __init__(self, model: nn.Module, config: Config):
        super().__init__()
        if model is None:
            raise ValueError(
                "protonet needs an embedding network as `model` (model kind: embedding)"
            )
        if config.distance not in DISTANCES:
            raise ValueError(
                f"protonet: distance must be one of {DISTANCES}, got {config.distance!r}"
            )
        self.model = model
        self.config = config

    def embed(self, x: Tensor) -> Tensor:
        """``x (B, *x)`` -> flat embeddings ``(B, D)``."""
        return self.model(x).flatten(1)

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> Tensor:
        """Prototypes ``(N, D)`` of the N ``ways`` from ``support_x (N*K, *x)`` and
        ``support_y (N*K,)``."""
        return class_means(self.embed(support_x), support_y, ways)

    def predict(self, state: Tensor, query_x: Tensor) -> Tensor:
        """Logits ``(M, N)`` for ``query_x (M, *x)`` given prototypes ``state (N, D)``."""
        return self.logits(self.embed(query_x), state)

    def logits(self, queries: Tensor, prototypes: Tensor) -> Tensor:
        """``-||q - c||^2`` (or scaled cosine) for ``queries (M, D)``, ``prototypes (N, D)`` -> ``(M, N)``."""
        if self.config.distance == "cosine":
            cos = F.normalize(queries, dim=-1) @ F.normalize(prototypes, dim=-1).T
            return self.config.cosine_scale * cos
        return -(queries[:, None, :] - prototypes[None, :, :]).pow(2).sum(-1)

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Mean query cross-entropy over the tasks of ``batch``, and the query accuracy (%)."""
        return episodic_loss(self, batch, F.cross_entropy)
