"""Relation Network: Flood Sung, Yongxin Yang, Li Zhang, Tao Xiang, Philip H. S. Torr and Timothy M.
Hospedales, "Learning to Compare: Relation Network for Few-Shot Learning", CVPR 2018.

Instead of a fixed distance, a *relation module* learns to compare: the embedding module produces
spatial feature maps, the maps of each class's support samples are summed, every (class, query)
pair of maps is concatenated along the channels, and the relation module (two conv blocks and two
fully connected layers ending in a sigmoid) outputs a relation score in [0, 1]. Training regresses
the scores onto the one-hot match indicators with mean squared error, as in the paper.

The paper's embedding is Conv-4 whose first two blocks convolve without padding and pool, and whose
last two neither pool nor shrink: 64x5x5 maps on 28x28 Omniglot, 64x19x19 on 84x84 mini-ImageNet
(floodsung/LearningToCompare_FSL). The learner card gives these Conv-4 options
(``downsampled_blocks: 2, unpadded_blocks: 2``), so ``build_learner`` builds them on every benchmark.
Any backbone works: one with a ``feature_map`` method gives spatial maps, a flat embedding is read as
``D x 1 x 1`` maps, which makes the relation module's convolutions an MLP (warned about).
The reference code's initialisation (conv weights N(0, sqrt(2 / (9 * out))), linear N(0, 0.01) with
bias 1) is ``init: reference`` (the default); ``init: torch`` keeps PyTorch's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.learners.episodic import episodic_loss

__all__ = ["RelationNet", "RelationModule", "relation_loss", "reference_init"]


INITS = ("reference", "torch")


def _relation_block(c_in: int, c_out: int, size: int, padding: int) -> tuple[nn.Sequential, int]:
    """Conv-BN-ReLU, then 2x2 max-pooling while the map is at least 2x2. Returns the block and new size."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, padding=padding),
        nn.BatchNorm2d(c_out, track_running_stats=False),
        nn.ReLU(),
    ]
    size = size + 2 * padding - 2
    if size >= 2:
        layers.append(nn.MaxPool2d(2))
        size //= 2
    return nn.Sequential(*layers), size


class RelationModule(nn.Module):
    """``g``: two conv blocks on a concatenated pair of maps, then FC-ReLU-FC-sigmoid.

    Args:
        channels: channels C of one feature map (the input has 2C).
        spatial: ``(H, W)`` of the feature maps.
        conv_channels: filters of the two conv blocks (64 in the paper).
        hidden: width of the first fully connected layer (8 in the paper).
        padding: padding of the two convolutions (1 on Omniglot, 0 on mini-ImageNet in the
            reference code).
    """

    def __init__(
        self,
        channels: int,
        spatial: Sequence[int],
        conv_channels: int,
        hidden: int,
        padding: int = 1,
    ):
        super().__init__()
        height, width = spatial
        first, height2 = _relation_block(2 * channels, conv_channels, min(height, width), padding)
        second, size = _relation_block(conv_channels, conv_channels, height2, padding)
        self.convs = nn.Sequential(first, second)
        with torch.no_grad():
            flat = self.convs(torch.zeros(2, 2 * channels, height, width)).flatten(1).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, pairs: Tensor) -> Tensor:
        """``pairs (P, 2C, H, W)`` -> relation scores ``(P,)`` in [0, 1]."""
        return torch.sigmoid(self.head(self.convs(pairs).flatten(1))).squeeze(-1)


@register_learner("relationnet", family="metric")
class RelationNet(nn.Module):
    """Relation network: an embedding module and a learned relation module.

    Args:
        model: embedding network; its ``feature_map(x) -> (B, C, H, W)`` is used when present,
            otherwise ``model(x) (B, D)`` is read as ``(B, D, 1, 1)``.
        config: a :class:`RelationNet.Config`.
    """

    adapts_by_gradient = False  # class feature maps are a forward pass

    @dataclass
    class Config:
        """Relation network options."""

        #: one input's shape, needed to size the relation module (filled by ``build_learner``).
        input_shape: tuple[int, ...] | None = None
        #: filters of the relation module's two conv blocks (64 in the paper).
        relation_channels: int = 64
        #: width of the relation module's hidden fully connected layer (8 in the paper).
        relation_hidden: int = 8
        #: padding of the relation module's convolutions (1 on Omniglot, 0 on mini-ImageNet).
        relation_padding: int = 1
        #: ``reference``: the official code's initialisation of both modules; ``torch``: PyTorch's.
        init: str = "reference"

    def __init__(self, model: nn.Module, config: Config):
        super().__init__()
        if model is None:
            raise ValueError(
                "relationnet needs an embedding network as `model` (model kind: embedding)"
            )
        if config.input_shape is None:
            raise ValueError(
                "relationnet needs `input_shape` to size its relation module; pass "
                "input_shape=(C, H, W) or build it with metazoo.build_learner"
            )
        if config.init not in INITS:
            raise ValueError(f"relationnet: init must be one of {INITS}, got {config.init!r}")
        self.model = model
        self.config = config
        param = next(model.parameters(), torch.zeros(()))
        with torch.no_grad():
            probe = torch.zeros(2, *config.input_shape, dtype=param.dtype, device=param.device)
            channels, *spatial = self.feature_maps(probe).shape[1:]
        if max(spatial) == 1:
            warnings.warn(
                f"relationnet: the embedding gives {channels}x1x1 maps, so the relation module's "
                "convolutions act as an MLP; the paper compares 64x5x5 maps on Omniglot. Build "
                "Conv-4 with backbone_options={'downsampled_blocks': 2, 'unpadded_blocks': 2} "
                "(build_learner does, from the learner card) or give a backbone with feature_map().",
                stacklevel=2,
            )
        self.relation = RelationModule(
            channels,
            spatial,
            config.relation_channels,
            config.relation_hidden,
            config.relation_padding,
        ).to(device=param.device, dtype=param.dtype)
        if config.init == "reference":
            for module in self.modules():
                reference_init(module)

    def feature_maps(self, x: Tensor) -> Tensor:
        """``x (B, *x)`` -> spatial feature maps ``(B, C, H, W)``."""
        if callable(getattr(self.model, "feature_map", None)):
            return self.model.feature_map(x)
        out = self.model(x)
        return out.flatten(1)[:, :, None, None] if out.dim() != 4 else out

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> Tensor:
        """Per-class sums of the support maps ``(N, C, H, W)`` (the paper's K-shot pooling), N
        ``ways``."""
        maps = self.feature_maps(support_x)
        one_hot = F.one_hot(support_y, ways).to(maps.dtype)  # (n, N)
        return torch.einsum("nc,nf->cf", one_hot, maps.flatten(1)).reshape(ways, *maps.shape[1:])

    def predict(self, state: Tensor, query_x: Tensor) -> Tensor:
        """Relation scores ``(M, N)`` in [0, 1] (argmax = prediction) for ``query_x (M, *x)``."""
        queries = self.feature_maps(query_x)  # (M, C, H, W)
        m, n = queries.shape[0], state.shape[0]
        pairs = torch.cat(
            [
                state[None].expand(m, *state.shape),
                queries[:, None].expand(m, n, *queries.shape[1:]),
            ],
            dim=2,
        )  # (M, N, 2C, H, W)
        return self.relation(pairs.flatten(0, 1)).reshape(m, n)

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Mean over tasks of the MSE between relation scores and one-hot targets; accuracy (%)."""
        return episodic_loss(self, batch, relation_loss)


@torch.no_grad()
def reference_init(module: nn.Module) -> None:
    """floodsung/LearningToCompare_FSL's ``weights_init`` for one module: conv weights
    N(0, sqrt(2 / (k_h * k_w * out))) and zero bias, BatchNorm weight 1 and bias 0, linear weights
    N(0, 0.01) and bias 1."""
    if isinstance(module, nn.Conv2d):
        fan = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        module.weight.normal_(0.0, math.sqrt(2.0 / fan))
        if module.bias is not None:
            module.bias.zero_()
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        module.weight.fill_(1.0)
        module.bias.zero_()
    elif isinstance(module, nn.Linear):
        module.weight.normal_(0.0, 0.01)
        module.bias.fill_(1.0)


def relation_loss(scores: Tensor, labels: Tensor) -> Tensor:
    """The paper's MSE between relation ``scores (M, N)`` and the one-hot ``labels (M,)``."""
    return F.mse_loss(scores, F.one_hot(labels, scores.shape[1]).to(scores.dtype))
