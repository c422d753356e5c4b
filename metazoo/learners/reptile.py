"""Reptile.

Nichol, Achiam and Schulman. "On First-Order Meta-Learning Algorithms." arXiv:1803.02999, 2018.

Reptile adapts a copy of the weights to each task with a few steps of SGD (or Adam) on its support
set, then moves the initialisation towards the adapted weights: ``theta <- theta + epsilon *
(mean_t W_t - theta)``. No second derivatives and no query set are needed for the update, which is
not the gradient of any loss; the learner therefore defines ``outer_step(batch, optimizer)``, which
the trainer calls instead of ``meta_loss(...).backward()``. ``meta_loss`` still returns the query
loss after adaptation, for validation. The outer step size anneals linearly from ``epsilon`` to
``epsilon_final`` over ``anneal_steps`` outer steps, as in the paper; the schedule reads the
training step the trainer passes in. Adaptation runs the engine's one per-task function
(:func:`metazoo.engine.run_tasks`), first order, and its fast weights make the update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from metazoo import engine
from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch
from metazoo.learner import EvalSettings

__all__ = ["Reptile"]

OUTER_UPDATES = ("interpolate", "optimizer")


@register_learner("reptile", family="optimization")
class Reptile(nn.Module):
    """Reptile around ``model``: first-order adaptation, interpolation as the outer update."""

    tasks = ("classification", "regression")
    #: adaptation takes gradients: the harness runs ``adapt`` with autograd on.
    adapts_by_gradient = True

    @dataclass
    class Config:
        """Reptile settings: the inner loop (always first order) and the outer step."""

        #: Inner steps per task during meta-training (the paper: 5 on Omniglot).
        inner_steps: int = 5
        #: Inner learning rate (the paper uses Adam with 0.001 on Omniglot).
        inner_lr: float = 0.001
        #: Inner steps at meta-test time (``eval()`` mode); None: as ``inner_steps``.
        test_inner_steps: int | None = None
        #: ``sgd`` or ``adam`` (the paper's Omniglot runs) in the inner loop.
        inner_optimizer: str = "sgd"
        #: Outer step size epsilon (interpolation factor toward the mean adapted weights).
        epsilon: float = 1.0
        #: Final epsilon of the linear annealing (None: constant ``epsilon``).
        epsilon_final: float | None = None
        #: Outer steps over which epsilon anneals to ``epsilon_final``.
        anneal_steps: int = 0
        #: ``interpolate`` (``theta += eps * (W - theta)``) or ``optimizer`` (``theta - W`` is
        #: written to ``.grad`` and the trainer's optimizer steps, the paper's Adam variant).
        outer_update: str = "interpolate"
        #: ``transductive`` (batch statistics) or ``running`` BatchNorm.
        bn_policy: str = "transductive"
        #: ``auto``, ``sequential`` (reference) or ``vectorized`` (vmap over tasks).
        executor: str = "auto"
        #: Tasks per vmap call in the vectorized executor (None: the whole meta-batch).
        chunk_size: int | None = None
        #: ``classification`` (cross-entropy) or ``regression`` (MSE); filled by build_learner.
        task: str = "classification"

    def __init__(self, model: nn.Module | None, config: Config):
        super().__init__()
        if model is None:
            raise ValueError(
                "Reptile adapts a network: pass a model (e.g. from "
                "metazoo.models.make_backbone) or use metazoo.build_learner"
            )
        if config.outer_update not in OUTER_UPDATES:
            raise ValueError(
                f"outer_update must be one of {OUTER_UPDATES}, got {config.outer_update!r}"
            )
        if config.executor not in engine.EXECUTORS:
            raise ValueError(f"executor must be one of {engine.EXECUTORS}, got {config.executor!r}")
        engine.parameters_of(model)
        self.model, self.config = model, config
        self.inner_loop(training=True)  # validates steps, optimizer, task and policy
        self.inner_loop(training=False)

    def inner_loop(self, training: bool) -> engine.InnerLoop:
        """The (first-order) inner loop for meta-training or meta-test adaptation."""
        cfg = self.config
        test = cfg.inner_steps if cfg.test_inner_steps is None else cfg.test_inner_steps
        return engine.InnerLoop(
            steps=cfg.inner_steps if training else test,
            first_order=True,
            optimizer=cfg.inner_optimizer,
            task=cfg.task,
            bn_policy=cfg.bn_policy,
        )

    def eval_settings(self) -> EvalSettings:
        """The inner steps and BatchNorm policy of ``eval()``-mode adaptation."""
        return EvalSettings(self.inner_loop(False).steps, self.config.bn_policy)

    def meta_params(self) -> engine.MetaParams:
        """The initial weights and the inner learning rate, as the engine takes them."""
        return engine.MetaParams(engine.parameters_of(self.model), self.config.inner_lr)

    def epsilon_at(self, step: int | None) -> float:
        """The outer step size at 0-based training ``step`` (linear annealing; None: the start)."""
        cfg = self.config
        if cfg.epsilon_final is None or cfg.anneal_steps <= 0 or step is None:
            return cfg.epsilon
        frac = min(step / cfg.anneal_steps, 1.0)
        return cfg.epsilon + frac * (cfg.epsilon_final - cfg.epsilon)

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Query loss after (first-order) adaptation, for validation; see ``MetaLearner``."""
        return self._on_batch(engine.meta_objective, batch)

    def outer_step(
        self,
        batch: EpisodeBatch,
        optimizer: torch.optim.Optimizer | None = None,
        step: int | None = None,
    ) -> dict[str, float]:
        """One Reptile meta-update on ``batch`` (T tasks); returns metrics after adaptation.

        Args:
            batch: ``support_x (T, N*K, *x)``; the query set only feeds the returned metrics.
            optimizer: used with ``outer_update='optimizer'`` (``theta - mean W`` as gradient).
            step: the 0-based training step (epsilon's annealing reads it).
        """
        loop = self.inner_loop(True)
        engine.check_task_of(loop.task, batch.is_regression)
        with torch.enable_grad():
            results = engine.run_tasks(
                self.model,
                batch,
                loop,
                self.meta_params(),
                outer=False,
                executor=self.config.executor,
                chunk_size=self.config.chunk_size,
            )
        engine.raise_if_diverged(results, loop.steps)
        _, metrics = engine.summarize(results, loop.task)
        metrics["epsilon"] = self.epsilon_at(step)
        self._move_towards(results.fast_weights, metrics["epsilon"], optimizer)
        return metrics

    def score_episodes(self, batch: EpisodeBatch) -> Tensor:
        """``(T,)`` per-episode scores after test-time adaptation (the harness uses it)."""
        return self._on_batch(engine.task_scores, batch)

    def _on_batch(self, function, batch: EpisodeBatch):
        """``function`` of the engine on ``batch`` with this learner's settings for its mode."""
        return function(
            self.model,
            batch,
            self.inner_loop(self.training),
            self.meta_params(),
            executor=self.config.executor,
            chunk_size=self.config.chunk_size,
        )

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> dict[str, Tensor]:
        """Fast weights for one task: ``support_x (N*K, *x)``, ``support_y (N*K,)`` or
        ``(N*K, *y)``; ``ways`` N, None for regression."""
        loop = self.inner_loop(self.training)
        return engine.adapt_task(
            self.model, support_x, support_y, loop, self.meta_params(), training=self.training,
            ways=ways,
        )  # fmt: skip

    def predict(self, state: dict[str, Tensor], query_x: Tensor) -> Tensor:
        """Logits ``(N*Q, N)`` or outputs ``(N*Q, *y)`` for ``query_x (N*Q, *x)``."""
        return engine.predict(self.model, state, query_x, self.config.bn_policy)

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
