"""Backbones: Conv-4, ResNet-12 and an MLP, built from plain ``torch.nn`` layers.

Every backbone takes its input shape, so every learner runs on every benchmark. With
``out_features`` set it ends in a linear classifier head (MAML family); without, it is an
embedding (metric and model-based learners).

Internal: not part of metazoo's public API ("Public names" in docs/design.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from metazoo.models.conv import Conv4, ResNet12
from metazoo.models.mlp import MLP

__all__ = ["Conv4", "ResNet12", "MLP", "make_backbone", "feature_dim", "BACKBONES"]

BACKBONES = ("conv4", "resnet12", "mlp")


def make_backbone(
    name: str, input_shape: Sequence[int], out_features: int | None = None, **options
) -> nn.Module:
    """Build a backbone by name.

    Args:
        name: ``conv4``, ``resnet12`` or ``mlp``.
        input_shape: one sample's shape, e.g. ``(1, 28, 28)`` or ``(1,)`` for the MLP.
        out_features: width of a final linear head (N ways, or 1 for regression); None for an embedding.
        **options: backbone options (``hidden``, ``max_pool``, ``channels``, ``hidden_sizes``, ...).
    """
    if name == "conv4":
        return Conv4(input_shape[0], tuple(input_shape[1:]), out_features=out_features, **options)
    if name == "resnet12":
        return ResNet12(
            input_shape[0], tuple(input_shape[1:]), out_features=out_features, **options
        )
    if name == "mlp":
        if len(input_shape) != 1:
            raise ValueError(
                f"the mlp backbone takes flat inputs; got input_shape {tuple(input_shape)}"
            )
        return MLP(input_shape[0], out_features=out_features, **options)
    raise KeyError(f"unknown backbone {name!r}; choose one of {BACKBONES}")


@torch.no_grad()
def feature_dim(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Width of ``model``'s flattened output for one input of ``input_shape`` (batch of two, eval-safe)."""
    param = next(model.parameters(), None)
    kwargs = {"dtype": param.dtype, "device": param.device} if param is not None else {}
    out = model(torch.zeros(2, *input_shape, **kwargs))
    return int(out.reshape(2, -1).shape[1])
