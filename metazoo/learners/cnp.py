"""Conditional Neural Processes: Marta Garnelo, Dan Rosenbaum, Chris J. Maddison, Tiago Ramalho, David
Saxton, Murray Shanahan, Yee Whye Teh, Danilo J. Rezende and S. M. Ali Eslami, "Conditional Neural
Processes", ICML 2018.

A CNP is a feed-forward model of a predictive distribution conditioned on a context set: an encoder
``h`` maps every observed pair ``(x_i, y_i)`` to a representation ``r_i``, the ``r_i`` are averaged
into one order-invariant ``r``, and a decoder ``g`` maps ``(r, x*)`` to the prediction for a target
``x*``. For regression the decoder outputs a Gaussian mean and standard deviation
(``sigma = 0.1 + 0.9 softplus(.)``, as in the authors' code) and training maximises the Gaussian
log-likelihood of the targets. For classification the label ``y`` is one-hot and routes each
encoded pair to its class: the representations are averaged per class, so ``r`` holds one vector
per class (order-invariant, and indifferent to how the classes are numbered); the decoder scores
each ``(r_c, x*)`` pair and those scores are the logits. Images are encoded by a Conv-4 built inside the learner (model kind
``none``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.learners.episodic import class_means, episodic_loss
from metazoo.models import MLP, make_backbone

__all__ = ["CNP"]

TASKS = ("regression", "classification")


@register_learner("cnp", family="model")
class CNP(nn.Module):
    """Conditional neural process for regression (Gaussian outputs) or classification (logits).

    Args:
        model: must be None; the CNP builds its encoder and decoder from the config.
        config: a :class:`CNP.Config`.
    """

    adapts_by_gradient = False  # the context is encoded by a forward pass

    @dataclass
    class Config:
        """CNP options (sizes follow the authors' 1-D regression code)."""

        #: ``regression`` or ``classification`` (filled by ``build_learner``).
        task: str = "regression"
        #: one input's shape: ``(1,)`` for sinusoids, ``(C, H, W)`` for images (filled by ``build_learner``).
        input_shape: tuple[int, ...] = (1,)
        #: regression target width (``y`` is ``(n, target_dim)``).
        target_dim: int = 1
        #: encoder MLP widths; the last is the representation width.
        encoder_sizes: tuple[int, ...] = (128, 128, 128, 128)
        #: decoder MLP hidden widths (then 2*target_dim outputs, or 1 logit per class).
        decoder_sizes: tuple[int, ...] = (128, 128)
        #: lower bound of the predicted standard deviation (regression).
        min_std: float = 0.1
        #: filters of the Conv-4 image encoder (classification on images).
        conv_hidden: int = 64

    def __init__(self, model: nn.Module | None, config: Config):
        super().__init__()
        if model is not None:
            raise ValueError("cnp builds its own networks (model kind: none); pass model=None")
        if config.task not in TASKS:
            raise ValueError(f"cnp: task must be one of {TASKS}, got {config.task!r}")
        self.model = None
        self.config = config
        shape = tuple(config.input_shape)
        self.image_encoder: nn.Module | None = None
        x_dim = int(torch.Size(shape).numel())
        if len(shape) == 3 and config.task == "classification":
            self.image_encoder = make_backbone("conv4", shape, hidden=config.conv_hidden)
            x_dim = self.image_encoder.embedding_dim
        *enc_hidden, rep = config.encoder_sizes
        if config.task == "regression":
            self.encoder = MLP(x_dim + config.target_dim, rep, enc_hidden)
            self.decoder = MLP(rep + x_dim, 2 * config.target_dim, config.decoder_sizes)
        else:
            self.encoder = MLP(x_dim, rep, enc_hidden)
            self.decoder = MLP(rep + x_dim, 1, config.decoder_sizes)

    def features(self, x: Tensor) -> Tensor:
        """``x (n, *input_shape)`` -> ``(n, x_dim)`` (Conv-4 embedding for images)."""
        return self.image_encoder(x) if self.image_encoder is not None else x.flatten(1)

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> Tensor:
        """The aggregated representation.

        Args:
            support_x: ``(n, *x)`` context inputs.
            support_y: ``(n, target_dim)`` targets, or ``(n,)`` labels in ``0..N-1``.
            ways: N for classification; None for regression.

        Returns:
            ``(R,)`` mean representation (regression) or ``(N, R)`` per-class means (classification).
        """
        if self.config.task == "regression":
            return self.represent(support_x[None], support_y[None])[0]
        return class_means(self.encoder(self.features(support_x)), support_y, ways)

    def represent(self, support_x: Tensor, support_y: Tensor) -> Tensor:
        """Regression representations ``(T, R)`` of T context sets ``(T, n, *x)``, ``(T, n, d)``."""
        x = support_x.flatten(2)
        pairs = torch.cat([x, support_y.reshape(*x.shape[:2], -1).to(x.dtype)], dim=-1)
        return self.encoder(pairs).mean(1)

    def decode(self, state: Tensor, query_x: Tensor) -> tuple[Tensor, Tensor]:
        """Gaussian ``(mean, std)``, each ``(T, m, target_dim)``, from ``state (T, R)``, ``query_x (T, m, *x)``."""
        x = query_x.flatten(2)
        out = self.decoder(torch.cat([state[:, None].expand(-1, x.shape[1], -1), x], dim=-1))
        mean, raw_std = out.chunk(2, dim=-1)
        std = self.config.min_std + (1 - self.config.min_std) * F.softplus(raw_std)
        return mean, std

    def predict_distribution(self, state: Tensor, query_x: Tensor) -> tuple[Tensor, Tensor]:
        """Gaussian predictive ``(mean, std)``, each ``(m, target_dim)``, for ``query_x (m, *x)``."""
        if self.config.task != "regression":
            raise ValueError("predict_distribution is for regression CNPs; use predict for logits")
        mean, std = self.decode(state[None], query_x[None])
        return mean[0], std[0]

    def predict(self, state: Tensor, query_x: Tensor) -> Tensor:
        """Predictive means ``(m, target_dim)`` (regression) or logits ``(m, N)`` (classification)."""
        if self.config.task == "regression":
            return self.predict_distribution(state, query_x)[0]
        x = self.features(query_x)  # (m, D)
        ways = state.shape[0]
        pairs = torch.cat(
            [state[None].expand(len(x), ways, -1), x[:, None].expand(-1, ways, -1)], dim=-1
        )
        return self.decoder(pairs).squeeze(-1)

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Mean over tasks of the query Gaussian NLL (regression) or cross-entropy (classification)."""
        if self.config.task == "regression":  # no batch statistics: all tasks at once
            mean, std = self.decode(self.represent(batch.support_x, batch.support_y), batch.query_x)
            targets = batch.query_y.reshape(mean.shape)
            nll = torch.stack([gaussian_nll(m, s, y) for m, s, y in zip(mean, std, targets)])
            mse = F.mse_loss(mean.detach().reshape(batch.query_y.shape), batch.query_y)
            return nll.mean(), {"mse": mse.item()}
        return episodic_loss(self, batch, F.cross_entropy)


def gaussian_nll(mean: Tensor, std: Tensor, target: Tensor) -> Tensor:
    """Mean negative log-density of ``target`` under ``N(mean, std^2)``; all ``(m, d)``."""
    return -torch.distributions.Normal(mean, std).log_prob(target).mean()
