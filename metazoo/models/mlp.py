"""A ReLU multilayer perceptron (the 1-40-40-1 network of MAML's sinusoid experiment)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    """Linear-ReLU stack.

    Args:
        in_features: input width.
        out_features: output width, or None to end at the last hidden layer (an embedding).
        hidden_sizes: widths of the hidden layers.
    """

    def __init__(
        self, in_features: int, out_features: int | None = 1, hidden_sizes: Sequence[int] = (40, 40)
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_features) if out_features is not None else None
        self.out_features = out_features if out_features is not None else width

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, in_features)`` -> ``(B, out_features)``."""
        h = self.features(x)
        return self.head(h) if self.head is not None else h
