"""SNAIL: Nikhil Mishra, Mostafa Rohaninejad, Xi Chen and Pieter Abbeel, "A Simple Neural Attentive
Meta-Learner", ICLR 2018.

SNAIL treats a few-shot episode as a sequence: each support sample becomes one step holding its
embedding concatenated with its one-hot label, and the query comes last with an all-zero label. A
stack of causal *temporal convolution* (TC) blocks, which aggregate information from the past with
dilated causal convolutions and gated activations (each dense block concatenates its output to its
input), interleaved with causal *attention* blocks, which read any past step by soft attention, is
trained end to end (with the embedding) to output the query's label at the last step. The Omniglot
architecture of the paper's appendix is the default: AttentionBlock(64, 32), TCBlock(T, 128),
AttentionBlock(256, 128), TCBlock(T, 128), AttentionBlock(512, 256), then a 1x1 convolution to N
logits, with ``T = N*K + 1``.

Each query is predicted independently, as if appended alone after the support set. Because the
network is causal, the support steps' activations do not depend on the query: ``adapt`` computes
them once and ``predict`` runs only the last step for all queries in parallel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.metrics import accuracy
from metazoo.models import feature_dim

__all__ = ["SNAIL", "DenseBlock", "AttentionBlock", "SnailCore"]


class DenseBlock(nn.Module):
    """Gated causal convolution (kernel 2, dilation ``d``) whose output is concatenated to its input.

    ``out_t = [x_t, tanh(f_t) * sigmoid(g_t)]`` with ``(f_t, g_t) = W [x_{t-d}, x_t] + b``.
    """

    def __init__(self, channels: int, dilation: int, filters: int):
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Linear(2 * channels, 2 * filters)  # both taps, both gates
        self.out_channels = channels + filters

    def _gate(self, previous: Tensor, current: Tensor) -> Tensor:
        f, g = self.conv(torch.cat([previous, current], dim=-1)).chunk(2, dim=-1)
        return torch.cat([current, torch.tanh(f) * torch.sigmoid(g)], dim=-1)

    def sequence(self, x: Tensor) -> Tensor:
        """Causal pass over ``x (B, L, C)`` -> ``(B, L, C + filters)``."""
        previous = F.pad(x, (0, 0, self.dilation, 0))[:, : x.shape[1]]
        return self._gate(previous, x)

    def last_step(self, context: Tensor, x: Tensor) -> Tensor:
        """Step ``L`` for each of ``x (B, M, C)`` after the context ``(B, L, C)`` -> ``(B, M, C + filters)``."""
        index = context.shape[1] - self.dilation
        previous = context[:, index] if index >= 0 else torch.zeros_like(context[:, 0])
        return self._gate(previous[:, None].expand_as(x), x)


class AttentionBlock(nn.Module):
    """Causal single-head soft attention whose read is concatenated to its input."""

    def __init__(self, channels: int, key_size: int, value_size: int):
        super().__init__()
        self.query = nn.Linear(channels, key_size)
        self.key = nn.Linear(channels, key_size)
        self.value = nn.Linear(channels, value_size)
        self.scale = 1.0 / math.sqrt(key_size)
        self.out_channels = channels + value_size

    def sequence(self, x: Tensor) -> Tensor:
        """Causal pass over ``x (B, L, C)`` -> ``(B, L, C + value_size)``."""
        length = x.shape[1]
        logits = self.query(x) @ self.key(x).transpose(1, 2) * self.scale  # (B, L, L)
        future = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
        probs = torch.softmax(logits.masked_fill(future, float("-inf")), dim=-1)
        return torch.cat([x, probs @ self.value(x)], dim=-1)

    def last_step(self, context: Tensor, x: Tensor) -> Tensor:
        """Step ``L`` for each of ``x (B, M, C)``: attends to the context ``(B, L, C)`` and itself."""
        query = self.query(x)  # (B, M, K)
        to_context = query @ self.key(context).transpose(1, 2)  # (B, M, L)
        to_self = (query * self.key(x)).sum(-1, keepdim=True)  # (B, M, 1)
        probs = torch.softmax(torch.cat([to_context, to_self], dim=-1) * self.scale, dim=-1)
        read = probs[..., :-1] @ self.value(context) + probs[..., -1:] * self.value(x)
        return torch.cat([x, read], dim=-1)


class SnailCore(nn.Module):
    """Interleaved attention and TC blocks, then a linear (1x1 conv) output layer.

    Args:
        in_channels: per-step input width (embedding + N).
        outputs: N.
        sequence_length: T, which sets the TC blocks' depth ``ceil(log2 T)`` (dilations 2, 4, ...).
        attention_sizes: ``(key, value)`` of each attention block; a TC block sits between each pair.
        tc_filters: filters of every dense block.
    """

    def __init__(
        self,
        in_channels: int,
        outputs: int,
        sequence_length: int,
        attention_sizes: list[tuple[int, int]],
        tc_filters: int,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        depth = max(1, math.ceil(math.log2(sequence_length)))
        for i, (key, value) in enumerate(attention_sizes):
            if i > 0:
                for level in range(1, depth + 1):
                    layers.append(DenseBlock(channels, 2**level, tc_filters))
                    channels = layers[-1].out_channels
            layers.append(AttentionBlock(channels, key, value))
            channels = layers[-1].out_channels
        self.layers = nn.ModuleList(layers)
        self.output = nn.Linear(channels, outputs)

    def encode_context(self, context: Tensor) -> list[Tensor]:
        """Every layer's input over the context ``(B, L, C)``: a list of ``(B, L, C_i)``."""
        inputs = [context]
        for layer in self.layers[:-1]:
            inputs.append(layer.sequence(inputs[-1]))
        return inputs

    def last_step(self, context_inputs: list[Tensor], x: Tensor) -> Tensor:
        """Outputs ``(B, M, outputs)`` at step ``L`` for each of ``x (B, M, C)``."""
        for layer, context in zip(self.layers, context_inputs):
            x = layer.last_step(context, x)
        return self.output(x)

    def sequence(self, x: Tensor) -> Tensor:
        """Outputs ``(B, L, outputs)`` at every step of a whole sequence ``x (B, L, C)``."""
        for layer in self.layers:
            x = layer.sequence(x)
        return self.output(x)


@register_learner("snail", family="model")
class SNAIL(nn.Module):
    """SNAIL on an embedding backbone.

    Args:
        model: embedding network ``(B, *x) -> (B, D)``.
        config: a :class:`SNAIL.Config`.
    """

    adapts_by_gradient = False  # the support sequence is encoded by a forward pass

    @dataclass
    class Config:
        """SNAIL options (defaults: the paper's Omniglot architecture)."""

        #: N, the number of classes per episode (filled by ``build_learner``).
        ways: int = 5
        #: one input's shape, to size the first layer (filled by ``build_learner``).
        input_shape: tuple[int, ...] | None = None
        #: the TC blocks are sized for ``T = ways * max_shots + 1`` steps.
        max_shots: int = 5
        #: ``[key, value]`` sizes of the attention blocks, with a TC block between consecutive ones.
        attention_sizes: tuple[tuple[int, int], ...] = ((64, 32), (256, 128), (512, 256))
        #: filters of each dense block of the TC blocks.
        tc_filters: int = 128

    def __init__(self, model: nn.Module, config: Config):
        super().__init__()
        if model is None:
            raise ValueError("snail needs an embedding network as `model` (model kind: embedding)")
        if config.input_shape is None:
            raise ValueError(
                "snail needs `input_shape` to size its first layer; pass input_shape=(C, H, W) "
                "or build it with metazoo.build_learner"
            )
        self.model = model
        self.config = config
        self.core = SnailCore(
            feature_dim(model, config.input_shape) + config.ways,
            config.ways,
            config.ways * config.max_shots + 1,
            [tuple(sizes) for sizes in config.attention_sizes],
            config.tc_filters,
        )

    def steps(self, x: Tensor, labels: Tensor | None) -> Tensor:
        """Sequence steps ``(n, D + N)``: embeddings of ``x (n, *x)`` with one-hot ``labels (n,)`` (zeros if None)."""
        features = self.model(x).flatten(1)
        if labels is None:
            one_hot = features.new_zeros(len(features), self.config.ways)
        else:
            one_hot = F.one_hot(labels, self.config.ways).to(features.dtype)
        return torch.cat([features, one_hot], dim=-1)

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> list[Tensor]:
        """Each layer's activations over the support sequence (a list of ``(1, N*K, C_i)``)."""
        if int(support_y.max()) >= self.config.ways:
            raise ValueError(
                f"snail was built for {self.config.ways} ways but got label {int(support_y.max())}; "
                "build it with ways=N for N-way episodes"
            )
        return self.core.encode_context(self.steps(support_x, support_y)[None])

    def predict(self, state: list[Tensor], query_x: Tensor) -> Tensor:
        """Logits ``(M, N)``: each query of ``query_x (M, *x)`` appended alone after the support."""
        return self.core.last_step(state, self.steps(query_x, None)[None])[0]

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Mean query cross-entropy over tasks (the core runs on all tasks at once); accuracy (%)."""
        support = torch.stack([self.steps(t.support_x, t.support_y) for t in batch])
        queries = torch.stack([self.steps(t.query_x, None) for t in batch])
        logits = self.core.last_step(self.core.encode_context(support), queries)  # (T, M, N)
        losses = torch.stack(
            [F.cross_entropy(task_logits, y) for task_logits, y in zip(logits, batch.query_y)]
        )
        return losses.mean(), {"accuracy": float(accuracy(logits, batch.query_y))}
