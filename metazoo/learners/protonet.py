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

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch

__all__ = ["ProtoNet", "class_means", "classification_metrics", "graph_only_in_training"]

DISTANCES = ("euclidean", "cosine")


Method = TypeVar("Method", bound=Callable)


def graph_only_in_training(method: Method) -> Method:
    """Run ``method`` (an ``adapt``) without autograd while the learner is in eval mode.

    The harness calls ``adapt`` under ``torch.enable_grad()``; a learner whose adaptation is a
    forward pass must then build no graph back to its parameters. In training mode the graph is
    kept, so ``meta_loss`` can backpropagate through ``adapt``.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.training):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


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


def classification_metrics(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """``{"accuracy": %}`` of ``logits (m, N)`` against ``labels (m,)``."""
    return {"accuracy": 100.0 * (logits.argmax(-1) == labels).float().mean().item()}


@register_learner("protonet", family="metric")
class ProtoNet(nn.Module):
    """Prototypical network on an embedding backbone.

    Args:
        model: embedding network ``(B, *x) -> (B, D)`` (or any shape, flattened).
        config: a :class:`ProtoNet.Config`.
    """

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

    @graph_only_in_training
    def adapt(self, support_x: Tensor, support_y: Tensor) -> Tensor:
        """Prototypes ``(N, D)`` from ``support_x (N*K, *x)`` and ``support_y (N*K,)``."""
        ways = int(support_y.max().item()) + 1
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

    def meta_loss(self, batch: EpisodeBatch) -> tuple[Tensor, dict[str, float]]:
        """Mean query cross-entropy over the tasks of ``batch``, and the query accuracy (%)."""
        losses, logits_all = [], []
        for task in batch:
            logits = self.predict(self.adapt(task.support_x, task.support_y), task.query_x)
            losses.append(F.cross_entropy(logits, task.query_y))
            logits_all.append(logits.detach())
        metrics = classification_metrics(torch.stack(logits_all), batch.query_y)
        return torch.stack(losses).mean(), metrics
