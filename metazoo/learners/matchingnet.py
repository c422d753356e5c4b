"""Matching Networks: Oriol Vinyals, Charles Blundell, Timothy Lillicrap, Koray Kavukcuoglu and Daan
Wierstra, "Matching Networks for One Shot Learning", NeurIPS (NIPS) 2016.

A query is labelled by attention over the support set: ``P(y | x, S) = sum_i a(x, x_i) y_i`` with
``a`` the softmax over cosine similarities between the query's embedding ``f(x)`` and the support
embeddings ``g(x_i)``. With *full-context embeddings* (FCE) both embeddings see the whole support
set: ``g`` adds a bidirectional LSTM over the support sequence to the backbone features (with a skip
connection), and ``f`` runs an attention LSTM for a fixed number of steps, each step reading the
support embeddings with content attention. Training minimises the query negative log-likelihood.
Without FCE the model is invariant to the support order; with FCE it is not (the LSTM reads it in
order), as in the paper.

Deviation from the paper: the cosines are multiplied by a temperature ``scale`` (10 by default)
before the softmax. The paper's formula has none (``scale: 1`` restores it), but its embeddings come
out of ReLU and max-pooling, so cosines lie in [0, 1] and the softmax over them is nearly uniform:
at 5-way 1-shot the true class can never get more than e/(e+4) = 0.405, a loss floor of 0.905.
The reimplementations that reach the paper's numbers all add a temperature: CloserLookFewShot
multiplies the cosine by 100, FEAT divides by a temperature, Antoniou et al.'s and FEAT's
implementations normalise only the support so the query norm acts as one. At one shot, matchingnet
with ``scale: s`` computes the same predictions as ``protonet`` with ``distance: cosine,
cosine_scale: s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.learners.episodic import episodic_loss
from metazoo.models import feature_dim

__all__ = ["MatchingNet"]


class SupportContext(nn.Module):
    """``g``: backbone features plus a bidirectional LSTM over the support sequence (skip-connected).

    Args:
        dim: embedding width D.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)

    def forward(self, support: Tensor) -> Tensor:
        """``support (n, D)`` -> ``(n, D)``: ``g'(x_i) + h_fwd_i + h_bwd_i``."""
        out, _ = self.lstm(support[None])
        forward, backward = out[0].chunk(2, dim=-1)
        return support + forward + backward


class AttentionLSTM(nn.Module):
    """``f``: an LSTM unrolled for ``steps`` steps over the query feature, reading the support each step.

    ``h_k, c_k = LSTM(f'(x), [h_{k-1} + r_{k-1}], c_{k-1})``, ``h_k += f'(x)``,
    ``r_k = sum_i softmax_i(h_k . g_i) g_i``. The paper concatenates ``h`` and ``r`` as the hidden
    state; we add them, keeping the hidden width D (a common reimplementation choice).

    Args:
        dim: embedding width D.
        steps: number of unrolled processing steps K.
    """

    def __init__(self, dim: int, steps: int):
        super().__init__()
        self.cell = nn.LSTMCell(dim, dim)
        self.steps = steps

    def forward(self, queries: Tensor, support: Tensor) -> Tensor:
        """``queries (m, D)``, context-embedded ``support (n, D)`` -> ``(m, D)``."""
        h = torch.zeros_like(queries)
        c = torch.zeros_like(queries)
        read = torch.zeros_like(queries)
        for _ in range(self.steps):
            h, c = self.cell(queries, (h + read, c))
            h = h + queries
            attention = torch.softmax(h @ support.T, dim=-1)
            read = attention @ support
        return h


@register_learner("matchingnet", family="metric")
class MatchingNet(nn.Module):
    """Matching network on an embedding backbone, with optional full-context embeddings.

    Args:
        model: embedding network ``(B, *x) -> (B, D)``.
        config: a :class:`MatchingNet.Config`.
    """

    adapts_by_gradient = False  # support embeddings are a forward pass

    @dataclass
    class Config:
        """Matching network options."""

        #: full-context embeddings (bidirectional LSTM on the support, attention LSTM on queries).
        fce: bool = False
        #: unrolled steps of the attention LSTM (FCE only).
        fce_steps: int = 5
        #: one input's shape, needed to size the FCE LSTMs (filled by ``build_learner``).
        input_shape: tuple[int, ...] | None = None
        #: cosine similarities are multiplied by this temperature before the softmax (1: the paper's
        #: plain cosine, whose softmax over cosines in [0, 1] is nearly uniform; see the module).
        scale: float = 10.0

    def __init__(self, model: nn.Module, config: Config):
        super().__init__()
        if model is None:
            raise ValueError(
                "matchingnet needs an embedding network as `model` (model kind: embedding)"
            )
        self.model = model
        self.config = config
        self.support_context: SupportContext | None = None
        self.query_context: AttentionLSTM | None = None
        if config.fce:
            if config.input_shape is None:
                raise ValueError(
                    "matchingnet with fce=True needs `input_shape` to size its LSTMs; "
                    "pass input_shape=(C, H, W) or build it with metazoo.build_learner"
                )
            dim = feature_dim(model, config.input_shape)
            self.support_context = SupportContext(dim)
            self.query_context = AttentionLSTM(dim, config.fce_steps)

    def embed(self, x: Tensor) -> Tensor:
        """``x (B, *x)`` -> ``(B, D)``."""
        return self.model(x).flatten(1)

    def adapt(
        self, support_x: Tensor, support_y: Tensor, ways: int | None
    ) -> tuple[Tensor, Tensor]:
        """``(g(S) (n, D), one-hot labels (n, N))`` from ``support_x (n, *x)``, ``support_y (n,)``,
        N ``ways``."""
        support = self.embed(support_x)
        if self.support_context is not None:
            support = self.support_context(support)
        return support, F.one_hot(support_y, ways).to(support.dtype)

    def predict(self, state: tuple[Tensor, Tensor], query_x: Tensor) -> Tensor:
        """Log-probabilities ``(m, N)`` (used as logits) for ``query_x (m, *x)``."""
        support, one_hot = state
        queries = self.embed(query_x)
        if self.query_context is not None:
            queries = self.query_context(queries, support)
        cosine = F.normalize(queries, dim=-1) @ F.normalize(support, dim=-1).T  # (m, n)
        log_attention = torch.log_softmax(self.config.scale * cosine, dim=-1)
        # log(attention @ one_hot) summed in log space: exact where a probability underflows
        return torch.logsumexp(log_attention[:, :, None] + one_hot.log()[None], dim=1)  # (m, N)

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Mean query negative log-likelihood over tasks, and the query accuracy (%)."""
        return episodic_loss(self, batch, F.nll_loss)
