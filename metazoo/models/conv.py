"""Convolutional backbones: Conv-4 (Vinyals et al. 2016; Finn et al. 2017) and ResNet-12 (Oreshkin et al. 2018).

BatchNorm layers default to ``track_running_stats=False``: batch statistics at meta-training and
meta-test time, the transductive policy of the MAML reference implementation. Pass
``track_running_stats=True`` for running statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def _conv_block(
    c_in: int, c_out: int, max_pool: bool, track: bool, downsample: bool = True, pad: bool = True
) -> nn.Sequential:
    stride = 1 if max_pool or not downsample else 2
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1 if pad else 0),
        nn.BatchNorm2d(c_out, track_running_stats=track),
        nn.ReLU(),
    ]
    if max_pool and downsample:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Conv4(nn.Module):
    """Four 3×3 conv–BatchNorm–ReLU blocks, each halving the resolution, then an optional linear head.

    Args:
        in_channels: image channels (1 for Omniglot, 3 for mini-ImageNet).
        image_size: ``(H, W)`` of the input.
        out_features: classifier width (N ways), or None for a flat embedding.
        hidden: filters per block (64; 32 for MAML on mini-ImageNet).
        max_pool: 2×2 max-pooling after each block (True) or stride-2 convolutions (MAML's Omniglot net).
        track_running_stats: BatchNorm running statistics (False: batch statistics always).
        downsampled_blocks: how many of the four blocks (the first ones) halve the resolution; 2
            keeps the spatial feature map of the Relation Network's embedding (Sung et al. 2018).
        unpadded_blocks: how many of the four blocks (the first ones) convolve without padding
            (each loses 2 pixels); the Relation Network's embedding has 2, giving 64x5x5 maps on
            28x28 Omniglot and 64x19x19 on 84x84 mini-ImageNet with ``downsampled_blocks=2``.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: Sequence[int],
        out_features: int | None = None,
        hidden: int = 64,
        max_pool: bool = True,
        track_running_stats: bool = False,
        downsampled_blocks: int = 4,
        unpadded_blocks: int = 0,
    ):
        super().__init__()
        for name, count in (
            ("downsampled_blocks", downsampled_blocks),
            ("unpadded_blocks", unpadded_blocks),
        ):
            if not 0 <= count <= 4:
                raise ValueError(f"{name} must be in 0..4, got {count}")
        channels = [in_channels, hidden, hidden, hidden, hidden]
        self.features = nn.Sequential(
            *(
                _conv_block(
                    channels[i],
                    channels[i + 1],
                    max_pool,
                    track_running_stats,
                    downsample=i < downsampled_blocks,
                    pad=i >= unpadded_blocks,
                )
                for i in range(4)
            )
        )
        with torch.no_grad():
            width = self.features(torch.zeros(2, in_channels, *image_size)).reshape(2, -1).shape[1]
        self.embedding_dim = int(width)
        self.head = nn.Linear(width, out_features) if out_features is not None else None

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, C, H, W)`` -> logits ``(B, out_features)`` or embedding ``(B, embedding_dim)``."""
        h = self.features(x).flatten(1)
        return self.head(h) if self.head is not None else h

    def feature_map(self, x: Tensor) -> Tensor:
        """``x (B, C, H, W)`` -> the last block's spatial features ``(B, hidden, H', W')``."""
        return self.features(x)


class _ResidualBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, track: bool):
        super().__init__()
        convs: list[nn.Module] = []
        for i in range(3):
            convs += [
                nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out, track_running_stats=track),
            ]
            if i < 2:
                convs.append(nn.LeakyReLU(0.1))
        self.body = nn.Sequential(*convs)
        self.shortcut = nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, track_running_stats=track)
        )
        self.out = nn.Sequential(nn.LeakyReLU(0.1), nn.MaxPool2d(2, ceil_mode=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x) + self.shortcut(x))


class ResNet12(nn.Module):
    """Four residual blocks of three 3×3 convolutions, each followed by 2×2 max-pooling; global average pool.

    Args:
        in_channels: image channels.
        image_size: ``(H, W)`` of the input.
        out_features: classifier width, or None for the pooled embedding.
        channels: widths of the four blocks (64, 160, 320, 640 in the literature).
        track_running_stats: BatchNorm running statistics (False: batch statistics always).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: Sequence[int],
        out_features: int | None = None,
        channels: Sequence[int] = (64, 160, 320, 640),
        track_running_stats: bool = False,
    ):
        super().__init__()
        widths = [in_channels, *channels]
        self.features = nn.Sequential(
            *(
                _ResidualBlock(widths[i], widths[i + 1], track_running_stats)
                for i in range(len(channels))
            )
        )
        self.embedding_dim = int(channels[-1])
        self.head = (
            nn.Linear(self.embedding_dim, out_features) if out_features is not None else None
        )

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, C, H, W)`` -> logits ``(B, out_features)`` or embedding ``(B, channels[-1])``."""
        h = self.features(x).mean(dim=(2, 3))
        return self.head(h) if self.head is not None else h

    def feature_map(self, x: Tensor) -> Tensor:
        """``x (B, C, H, W)`` -> the last block's spatial features before pooling ``(B, channels[-1], H', W')``."""
        return self.features(x)
