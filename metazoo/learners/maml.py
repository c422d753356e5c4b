"""MAML and first-order MAML.

Finn, Abbeel and Levine. "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks."
ICML 2017.

MAML learns an initialisation: for each task of a meta-batch, a few gradient steps on the support
set turn the shared weights into task-specific fast weights; the meta-objective is the query loss at
those fast weights, averaged over tasks, and its gradient flows back through the inner steps
(second order). First-order MAML (``fomaml``) drops the second-order terms, treating the inner
gradients as constants, so the meta-gradient is the query-loss gradient at the adapted weights.
Any ``nn.Module`` works, BatchNorm included (transductive batch statistics by default, as in the
reference implementation; the policy is a recorded option). The computation lives in
:mod:`metazoo.engine`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from metazoo import engine
from metazoo._registry import register_learner
from metazoo.episode import EpisodeBatch

__all__ = ["MAML"]


@register_learner("maml", family="optimization")
@register_learner("fomaml", family="optimization", first_order=True)
class MAML(nn.Module):
    """Model-agnostic meta-learning around ``model`` (used as given; never copied)."""

    tasks = ("classification", "regression")

    @dataclass
    class Config:
        """MAML settings (defaults: the paper's regression / mini-ImageNet step size)."""

        #: Inner-loop learning rate alpha (0.4 for Omniglot 5-way, 0.01 for sinusoid).
        inner_lr: float = 0.01
        #: Inner gradient steps during meta-training.
        inner_steps: int = 1
        #: Inner steps at meta-test time (``eval()`` mode); None: as ``inner_steps``.
        test_inner_steps: int | None = None
        #: Drop second-order terms (first-order MAML).
        first_order: bool = False
        #: ``sgd`` (the paper) or ``adam`` (differentiable Adam in the inner loop).
        inner_optimizer: str = "sgd"
        #: ``auto``, ``sequential`` (reference) or ``vectorized`` (vmap over tasks).
        executor: str = "auto"
        #: Tasks per vmap call in the vectorized executor (None: the whole meta-batch).
        chunk_size: int | None = None
        #: BatchNorm policy: ``transductive`` (batch statistics; reference), ``running``.
        bn_policy: str = "transductive"
        #: ``classification`` (cross-entropy) or ``regression`` (MSE); filled by build_learner.
        task: str = "classification"

    def __init__(self, model: nn.Module | None, config: Config):
        super().__init__()
        if model is None:
            raise ValueError(
                f"{type(self).__name__} adapts a network: pass a model (e.g. from "
                "metazoo.models.make_backbone) or use metazoo.build_learner"
            )
        engine.parameters_of(model)  # a model without parameters is an error now, not later
        self.model = model
        self.config = config
        self.inner_loop(training=True)  # validates steps, optimizer, task and policy
        self.inner_loop(training=False)
        if config.executor not in engine.EXECUTORS:
            raise ValueError(f"executor must be one of {engine.EXECUTORS}, got {config.executor!r}")

    @property
    def test_steps(self) -> int:
        """Inner steps used in ``eval()`` mode."""
        steps = self.config.test_inner_steps
        return self.config.inner_steps if steps is None else steps

    def inner_loop(self, training: bool) -> engine.InnerLoop:
        """The inner-loop settings for meta-training (``training``) or meta-test adaptation."""
        cfg = self.config
        return engine.InnerLoop(
            steps=cfg.inner_steps if training else self.test_steps,
            first_order=cfg.first_order,
            optimizer=cfg.inner_optimizer,
            task=cfg.task,
            bn_policy=cfg.bn_policy,
        )

    def learning_rates(self) -> engine.LearningRate:
        """Inner learning rates handed to the engine (a float here; tensors in Meta-SGD, MAML++)."""
        return self.config.inner_lr

    def overrides(self) -> list[dict[str, Tensor]] | None:
        """Per-step weight overrides for forward passes (MAML++'s per-step BatchNorm weights)."""
        return None

    def meta_loss(self, batch: EpisodeBatch) -> tuple[Tensor, dict[str, float]]:
        """Mean query loss after adaptation over the T tasks of ``batch``; see ``MetaLearner``."""
        return self.objective(batch)

    def meta_backward(self, batch: EpisodeBatch, scale: float = 1.0) -> dict[str, float]:
        """``(scale * meta_loss(batch)[0]).backward()`` holding one task's graph at a time.

        Returns ``meta_loss``'s metrics. The trainer calls this instead of ``meta_loss``: the
        same gradient, with one task's (or one vectorized chunk's) graph alive instead of T.
        """
        return self.objective(batch, backward_scale=scale)[1]

    def objective(
        self, batch: EpisodeBatch, backward_scale: float | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """The meta-objective; ``backward_scale`` as in :func:`metazoo.engine.meta_objective`."""
        return self.on_batch(engine.meta_objective, batch, backward_scale=backward_scale)

    def score_episodes(self, batch: EpisodeBatch) -> Tensor:
        """``(T,)`` per-episode scores (accuracy % or MSE) of a meta-batch: the numbers ``adapt``
        then ``predict`` give episode by episode, by the learner's executor (``vmap`` over the
        episodes on a GPU). The evaluation harness uses it."""
        return self.on_batch(engine.task_scores, batch)

    def on_batch(self, function, batch: EpisodeBatch, **extra):
        """``function`` of the engine (``meta_objective``, ``task_scores``) on a meta-batch, with
        this learner's network, inner loop for its mode, learning rates, overrides and executor."""
        return function(
            self.model,
            batch,
            self.inner_loop(self.training),
            self.learning_rates(),
            overrides=self.overrides(),
            executor=self.config.executor,
            chunk_size=self.config.chunk_size,
            **extra,
        )

    def adapt(self, support_x: Tensor, support_y: Tensor) -> dict[str, Tensor]:
        """Fast weights for one task: ``support_x (N*K, *x)``, ``support_y (N*K,)`` or ``(N*K, *y)``."""
        return engine.adapt_task(
            self.model,
            support_x,
            support_y,
            self.inner_loop(self.training),
            self.learning_rates(),
            training=self.training,
            overrides=self.overrides(),
        )

    def predict(self, state: dict[str, Tensor], query_x: Tensor) -> Tensor:
        """Logits ``(N*Q, N)`` or outputs ``(N*Q, *y)`` for ``query_x (N*Q, *x)`` at the fast weights."""
        return engine.predict(self.model, state, query_x, self.config.bn_policy)
