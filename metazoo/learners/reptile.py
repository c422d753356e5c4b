"""Reptile.

Nichol, Achiam and Schulman. "On First-Order Meta-Learning Algorithms." arXiv:1803.02999, 2018.

Reptile adapts a copy of the weights to each task with a few steps of SGD (or Adam) on its support
set, then moves the initialisation towards the adapted weights: ``theta <- theta + epsilon *
(mean_t W_t - theta)``. No second derivatives and no query set are needed for the update, which is
not the gradient of any loss; the learner therefore defines ``outer_step(batch, optimizer)``, which
the trainer calls instead of ``meta_loss(...).backward()``. ``meta_loss`` still returns the query
loss after adaptation, for validation. The outer step size anneals linearly from ``epsilon`` to
``epsilon_final`` over ``anneal_steps`` outer steps, as in the paper.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from metazoo import engine
from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.learners.maml import MAML

__all__ = ["Reptile"]

OUTER_UPDATES = ("interpolate", "optimizer")


@register_learner("reptile", family="optimization")
class Reptile(MAML):
    """Reptile around ``model``: first-order adaptation, interpolation as the outer update."""

    @dataclass
    class Config(MAML.Config):
        """Reptile settings: MAML's inner loop (always first order) plus the outer step."""

        #: Inner steps per task during meta-training (the paper: 5 on Omniglot).
        inner_steps: int = 5
        #: Inner learning rate (the paper uses Adam with 0.001 on Omniglot).
        inner_lr: float = 0.001
        #: Outer step size epsilon (interpolation factor toward the mean adapted weights).
        epsilon: float = 1.0
        #: Final epsilon of the linear annealing (None: constant ``epsilon``).
        epsilon_final: float | None = None
        #: Outer steps over which epsilon anneals to ``epsilon_final``.
        anneal_steps: int = 0
        #: ``interpolate`` (``theta += eps * (W - theta)``) or ``optimizer`` (``theta - W`` is
        #: written to ``.grad`` and the trainer's optimizer steps, the paper's Adam variant).
        outer_update: str = "interpolate"

    def __init__(self, model: nn.Module | None, config: Config):
        super().__init__(model, config)
        if config.outer_update not in OUTER_UPDATES:
            raise ValueError(
                f"outer_update must be one of {OUTER_UPDATES}, got {config.outer_update!r}"
            )
        #: Outer steps taken so far (a buffer, so checkpoints resume the annealing).
        self.register_buffer("outer_steps_done", torch.zeros((), dtype=torch.long))

    def inner_loop(self, training: bool) -> engine.InnerLoop:
        """MAML's inner loop, always first order."""
        return dataclasses.replace(super().inner_loop(training), first_order=True)

    def current_epsilon(self) -> float:
        """The outer step size at this outer step (linear annealing)."""
        cfg = self.config
        if cfg.epsilon_final is None or cfg.anneal_steps <= 0:
            return cfg.epsilon
        frac = min(int(self.outer_steps_done) / cfg.anneal_steps, 1.0)
        return cfg.epsilon + frac * (cfg.epsilon_final - cfg.epsilon)

    def outer_step(
        self, batch: EpisodeBatch, optimizer: torch.optim.Optimizer | None = None
    ) -> dict[str, float]:
        """One Reptile meta-update on ``batch`` (T tasks); returns metrics after adaptation.

        Args:
            batch: ``support_x (T, N*K, *x)``; the query set only feeds the returned metrics.
            optimizer: used with ``outer_update='optimizer'`` (``theta - mean W`` as gradient).
        """
        loop = dataclasses.replace(self.inner_loop(True), track_outer=False)
        engine.check_task_of(loop.task, batch.is_regression)
        loop = dataclasses.replace(loop, ways=batch.ways if loop.task == "classification" else None)
        with torch.enable_grad():
            results = engine.adapt_and_query(
                self.model,
                batch,
                loop,
                self.learning_rates(),
                executor=self.config.executor,
                chunk_size=self.config.chunk_size,
                return_weights=True,
            )
        _, metrics = engine.summarize(results, loop.task)
        metrics["epsilon"] = self.current_epsilon()
        self._move_towards(results.fast_weights, metrics["epsilon"], optimizer)
        self.outer_steps_done += 1
        return metrics

    @torch.no_grad()
    def _move_towards(self, fast: dict[str, Tensor], eps: float, optimizer) -> None:
        params = dict(self.model.named_parameters())
        if self.config.outer_update == "optimizer":
            if optimizer is None:
                raise ValueError("outer_update='optimizer' needs the optimizer argument")
            optimizer.zero_grad()
            for name, p in params.items():
                p.grad = (p - fast[name].mean(dim=0)) * eps
            optimizer.step()
            return
        for name, p in params.items():
            p.add_(fast[name].mean(dim=0) - p, alpha=eps)
