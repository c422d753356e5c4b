"""R2-D2: Bertinetto, Henriques, Torr & Vedaldi, "Meta-learning with differentiable closed-form
solvers", ICLR 2019.

The base learner is ridge regression from support embeddings to one-hot labels, solved in closed
form with the Woodbury identity (an ``n x n`` system for ``n`` support samples), so the whole
adaptation is differentiable and exact. The meta-learner trains the embedding network together
with the regularisation ``lambda`` and a logit scale and bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metazoo import EpisodeBatch, accuracy


class R2D2(nn.Module):
    """Ridge-regression head on a learned embedding.

    Args:
        model: the embedding network, ``(B, *x) -> (B, D)``.
        config: an :class:`R2D2.Config`.
    """

    family = "optimization"
    model_kind = "embedding"
    tasks = ("classification",)
    adapts_by_gradient = False  # closed form: the harness runs adapt under torch.no_grad()
    card_path = Path(__file__).with_name("r2d2.yaml")

    @dataclass
    class Config:
        init_lambda: float = 1.0  #: initial ridge regularisation (learned in log space)
        init_scale: float = (
            1e-4  #: initial logit scale alpha (learned); Bertinetto et al. start small
        )

    def __init__(self, model: nn.Module, config: Config):
        super().__init__()
        if model is None:
            raise ValueError("r2d2 needs an embedding network as `model`")
        self.model = model
        self.config = config
        self.log_lambda = nn.Parameter(torch.tensor(float(config.init_lambda)).log())
        self.scale = nn.Parameter(torch.tensor(float(config.init_scale)))
        self.bias = nn.Parameter(torch.zeros(()))

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> Tensor:
        """Ridge weights ``(D, N)`` from ``support_x (n, *x)`` and labels ``support_y (n,)`` of
        N ``ways``."""
        features = self.model(support_x).flatten(1)
        targets = F.one_hot(support_y, ways).to(features.dtype)
        gram = features @ features.T
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        return features.T @ torch.linalg.solve(gram + self.log_lambda.exp() * eye, targets)

    def predict(self, state: Tensor, query_x: Tensor) -> Tensor:
        """Logits ``(m, N)`` for ``query_x (m, *x)``."""
        return self.scale * (self.model(query_x).flatten(1) @ state) + self.bias

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Mean query cross-entropy over tasks, and the query accuracy (%); no schedule reads
        the training ``step``."""
        losses, scores = [], []
        for task in batch:
            logits = self.predict(
                self.adapt(task.support_x, task.support_y, task.ways), task.query_x
            )
            losses.append(F.cross_entropy(logits, task.query_y))
            scores.append(accuracy(logits, task.query_y))
        return torch.stack(losses).mean(), {"accuracy": float(torch.stack(scores).mean())}
