"""Memory-Augmented Neural Network: Adam Santoro, Sergey Bartunov, Matthew Botvinick, Daan Wierstra and
Timothy Lillicrap, "Meta-Learning with Memory-Augmented Neural Networks", ICML 2016.

An LSTM controller reads the episode one sample at a time, receiving the current input together
with the *previous* step's label, ``(x_t, y_{t-1})``: it must hold a sample in memory until its
label arrives one step later and bind the two. The external memory is addressed by content for
reading (softmax over cosine similarities with keys emitted by the controller) and by *least
recently used access* (LRUA) for writing: each write goes either to the location read at the
previous step or to a least-used location, interpolated by a learned sigmoid gate, after the
least-used location is cleared; usage weights decay by ``gamma`` and accumulate read and write
weights. Each step reads the memory as the previous steps left it, then writes. The class is read
out from the controller state and the memory reads. Here the support set is fed first; each query
is then fed as one more step from the post-support state (carrying the last support label, as the
offset prescribes), independently of the other queries, so query labels never enter. As in the
paper (and in the "MANN, no conv" row that Finn et al. 2017 quote), inputs are raw flattened pixels
(model kind ``none``); pass an embedding network as ``model`` to read its features instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.metrics import accuracy
from metazoo.models import feature_dim

__all__ = ["MANN", "MemoryState"]


class MemoryState(NamedTuple):
    """Recurrent state of B sequences (H read heads, S memory slots of width W)."""

    hidden: Tensor  #: ``(B, controller)`` LSTM hidden state
    cell: Tensor  #: ``(B, controller)`` LSTM cell state
    memory: Tensor  #: ``(B, S, W)`` memory matrix
    read_weights: Tensor  #: ``(B, H, S)`` last read weights
    usage: Tensor  #: ``(B, S)`` usage weights
    reads: Tensor  #: ``(B, H * W)`` last read vectors
    label: Tensor  #: ``(B, N)`` one-hot label of the last step (zeros before the first)

    def repeat(self, times: int) -> MemoryState:
        """Each sequence's state repeated ``times`` times along the batch (``b0 b0 .. b1 b1 ..``)."""
        return MemoryState(*(t.repeat_interleave(times, dim=0) for t in self))


@register_learner("mann", family="model")
class MANN(nn.Module):
    """LSTM controller with an LRUA external memory.

    Args:
        model: None (raw flattened inputs, as in the paper) or an embedding network ``(B, *x) -> (B, D)``.
        config: a :class:`MANN.Config`.
    """

    adapts_by_gradient = False  # the memory is written by a forward pass

    @dataclass
    class Config:
        """MANN options (defaults: the paper's Omniglot setting)."""

        #: N, the number of classes per episode (filled by ``build_learner``).
        ways: int = 5
        #: one input's shape (filled by ``build_learner``).
        input_shape: tuple[int, ...] = (1, 28, 28)
        #: LSTM controller width.
        controller_size: int = 200
        #: number of memory slots.
        memory_slots: int = 128
        #: width of each memory slot.
        memory_width: int = 40
        #: read (and write) heads.
        read_heads: int = 4
        #: usage decay.
        gamma: float = 0.95

    def __init__(self, model: nn.Module | None, config: Config):
        super().__init__()
        self.model = model
        self.config = config
        c = config
        in_width = (
            feature_dim(model, c.input_shape) if model is not None else math.prod(c.input_shape)
        )
        read_width = c.read_heads * c.memory_width
        self.controller = nn.LSTMCell(in_width + c.ways + read_width, c.controller_size)
        self.keys = nn.Linear(c.controller_size, read_width)
        self.write_gate = nn.Linear(c.controller_size, c.read_heads)
        self.output = nn.Linear(c.controller_size + read_width, c.ways)

    def features(self, x: Tensor) -> Tensor:
        """``x (n, *x)`` -> ``(n, D)``: flattened pixels, or the embedding network's output."""
        return (self.model(x) if self.model is not None else x).flatten(1)

    def initial_state(self, batch: int, like: Tensor) -> MemoryState:
        """The empty state of ``batch`` sequences, on ``like``'s device and dtype."""
        c = self.config

        def zeros(*shape: int) -> Tensor:
            return like.new_zeros(batch, *shape)

        memory = torch.full_like(zeros(c.memory_slots, c.memory_width), 1e-6)
        return MemoryState(
            zeros(c.controller_size),
            zeros(c.controller_size),
            memory,
            zeros(c.read_heads, c.memory_slots),
            zeros(c.memory_slots),
            zeros(c.read_heads * c.memory_width),
            zeros(c.ways),
        )

    def step(self, state: MemoryState, x: Tensor, label: Tensor) -> tuple[MemoryState, Tensor]:
        """One time step.

        Args:
            state: the state of B sequences.
            x: ``(B, D)`` current inputs.
            label: ``(B, N)`` one-hot label of the current input, fed at the *next* step.

        Returns:
            The new state and the logits ``(B, N)`` for the current input.
        """
        c = self.config
        hidden, cell = self.controller(
            torch.cat([x, state.label, state.reads], -1), (state.hidden, state.cell)
        )
        keys = self.keys(hidden).view(-1, c.read_heads, c.memory_width)
        # Read by content from the memory as the previous steps left it (reading after this
        # step's own write would mostly find the key just written).
        similarity = F.normalize(keys, dim=-1, eps=1e-8) @ F.normalize(
            state.memory, dim=-1, eps=1e-8
        ).transpose(1, 2)
        read_weights = torch.softmax(similarity, dim=-1)  # (B, H, S)
        reads = (read_weights @ state.memory).flatten(1)
        # LRUA write: to the last-read or a least-used slot, after clearing the least-used slot.
        gate = torch.sigmoid(self.write_gate(hidden))[..., None]  # (B, H, 1)
        least_used = _least_used(state.usage, c.read_heads)  # (B, S)
        write_weights = gate * state.read_weights + (1 - gate) * least_used[:, None]
        cleared = 1 - F.one_hot(state.usage.argmin(-1), c.memory_slots).to(x.dtype)
        memory = state.memory * cleared[..., None] + write_weights.transpose(1, 2) @ keys
        usage = c.gamma * state.usage + (read_weights + write_weights).sum(1)
        logits = self.output(torch.cat([hidden, reads], -1))
        new_state = MemoryState(hidden, cell, memory, read_weights, usage, reads, label)
        return new_state, logits

    def read_support(self, support: Tensor, labels: Tensor) -> MemoryState:
        """Feed ``support (B, L, D)`` with one-hot ``labels (B, L, N)``; the state after the last step."""
        state = self.initial_state(support.shape[0], support)
        for t in range(support.shape[1]):
            state, _ = self.step(state, support[:, t], labels[:, t])
        return state

    def query_logits(self, state: MemoryState, queries: Tensor) -> Tensor:
        """Logits ``(B, M, N)``: each of ``queries (B, M, D)`` fed as one step after ``state``."""
        batch, m = queries.shape[:2]
        _, logits = self.step(
            state.repeat(m), queries.flatten(0, 1), queries.new_zeros(batch * m, self.config.ways)
        )
        return logits.view(batch, m, -1)

    def _one_hot(self, labels: Tensor, dtype: torch.dtype) -> Tensor:
        if int(labels.max()) >= self.config.ways:
            raise ValueError(
                f"mann was built for {self.config.ways} ways but got label {int(labels.max())}; "
                "build it with ways=N for N-way episodes"
            )
        return F.one_hot(labels, self.config.ways).to(dtype)

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> MemoryState:
        """The recurrent state after reading ``support_x (L, *x)`` with labels ``support_y (L,)``."""
        features = self.features(support_x)
        return self.read_support(features[None], self._one_hot(support_y, features.dtype)[None])

    def predict(self, state: MemoryState, query_x: Tensor) -> Tensor:
        """Logits ``(M, N)`` for ``query_x (M, *x)``, each query one step after the support."""
        return self.query_logits(state, self.features(query_x)[None])[0]

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Mean query cross-entropy over tasks (all tasks' sequences run together); accuracy (%)."""
        support = torch.stack([self.features(t.support_x) for t in batch])
        queries = torch.stack([self.features(t.query_x) for t in batch])
        state = self.read_support(support, self._one_hot(batch.support_y, support.dtype))
        logits = self.query_logits(state, queries)  # (T, M, N)
        losses = torch.stack([F.cross_entropy(lg, y) for lg, y in zip(logits, batch.query_y)])
        return losses.mean(), {"accuracy": float(accuracy(logits, batch.query_y))}


def _least_used(usage: Tensor, n: int) -> Tensor:
    """``(B, S)`` indicator of the ``n`` smallest usage weights (``w^lu`` of the paper)."""
    indices = usage.topk(n, dim=-1, largest=False).indices
    return torch.zeros_like(usage).scatter_(-1, indices, 1.0)
