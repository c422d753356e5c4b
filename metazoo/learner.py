"""The ``MetaLearner`` protocol every algorithm implements, and the optional capabilities.

Implementations are ``nn.Module`` subclasses registered with :func:`metazoo.register_learner`.
Shared behaviour lives in free functions (``metazoo.engine``), never in a base class with hooks.

What the trainer, the harness and ``metazoo.testing.check_learner`` ask of a learner is written
here and nowhere else: :class:`MetaLearner` (every learner), then each optional capability as a
``runtime_checkable`` protocol, found with ``isinstance`` (never by probing attribute names):

* :class:`GradientLearner`: adapts with the engine's inner loop; the trainer steps it with the
  engine's training step (:class:`metazoo.engine.fast.FastMetaStep`), which calls back into
  ``inner_loop``, ``meta_params`` and ``step_weights``, and reads :class:`GradientConfig`;
* :class:`OuterStepLearner`: its meta-update is not the gradient of ``meta_loss`` (Reptile); the
  trainer calls ``outer_step`` instead of ``meta_loss(...).backward()``;
* :class:`EpisodeScorer`: scores a block of test episodes at once (``score_episodes``);
* :class:`EvalSettingsLearner`: declares its test-time :class:`EvalSettings` (inner steps,
  BatchNorm policy), recorded with every result.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from metazoo.episode import EpisodeBatch

__all__ = [
    "MetaLearner",
    "TaskState",
    "FAMILIES",
    "GradientLearner",
    "GradientConfig",
    "OuterStepLearner",
    "EpisodeScorer",
    "EvalSettingsLearner",
    "EvalSettings",
    "eval_settings",
    "adapts_by_gradient",
    "adaptation_grad_mode",
]

#: The three families of the literature; every learner belongs to exactly one.
FAMILIES = ("optimization", "metric", "model")

#: Task-specific state returned by ``adapt``: fast weights (``dict[str, Tensor]``) for the MAML
#: family, prototypes for ProtoNet, an encoded context for model-based learners. Opaque to callers.
TaskState = Any

#: The engine's types named by :class:`GradientLearner` (``metazoo.engine`` is a higher layer than
#: this module, which may not import it): an :class:`metazoo.engine.InnerLoop` and a
#: :class:`metazoo.engine.MetaParams`.
InnerLoopSettings = Any
MetaTensors = Any


@runtime_checkable
class MetaLearner(Protocol):
    """What the trainer, the harness and the contract suite rely on.

    Attributes:
        config: the learner's config dataclass instance (recorded with every result).
        model: the ``nn.Module`` given to :func:`metazoo.create_learner`, used as given (never copied),
            or None for learners that build their whole network from the config.
        adapts_by_gradient: class attribute; True when ``adapt`` takes gradient steps (the MAML
            family, fine-tuning), False when it is a forward pass (metric and model-based
            learners). The harness runs ``adapt`` under ``torch.enable_grad()`` or
            ``torch.no_grad()`` accordingly (see :func:`adaptation_grad_mode`), so no learner has
            to manage grad mode itself. Optional; undeclared means True.
    """

    config: Any
    model: nn.Module | None
    adapts_by_gradient: ClassVar[bool]

    def meta_loss(
        self, batch: EpisodeBatch, step: int | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """The outer objective on a meta-batch.

        Args:
            batch: T tasks; ``support_x (T, N*K, *x)``, ``query_x (T, N*Q, *x)``.
            step: the 0-based training step the trainer is at (schedules, such as MAML++'s
                multi-step loss, read it; a learner without schedules ignores it); None: past
                every schedule (validation, evaluation, a call outside training).

        Returns:
            ``(loss, metrics)``: the scalar mean over tasks of the query loss after adapting on the
            support set (``loss.backward()`` gives the meta-gradient on the learner's parameters), and
            float metrics such as ``accuracy`` (classification) or ``mse`` (regression).
        """
        ...

    def adapt(self, support_x: Tensor, support_y: Tensor, ways: int | None) -> TaskState:
        """Task-specific state from one task's support set; never mutates the learner.

        Args:
            support_x: ``(N*K, *x)`` support inputs of one task.
            support_y: ``(N*K,)`` labels in ``0..N-1`` or ``(N*K, *y)`` regression targets.
            ways: N, the task's number of classes (every label ``0..N-1`` occurs in
                ``support_y``); None for regression, which has no classes.
        """
        ...

    def predict(self, state: TaskState, query_x: Tensor) -> Tensor:
        """Predictions for one task's queries.

        Args:
            state: what :meth:`adapt` returned for this task.
            query_x: ``(N*Q, *x)`` query inputs.

        Returns:
            ``(N*Q, N)`` logits for classification, ``(N*Q, *y)`` outputs for regression.
        """
        ...


@runtime_checkable
class GradientConfig(Protocol):
    """The config fields the trainer reads of a :class:`GradientLearner` (``learner.config``)."""

    #: How the engine runs a meta-batch's tasks: ``auto``, ``sequential`` or ``vectorized``.
    executor: str
    #: Tasks per vectorized chunk (None: chosen by ``auto`` from memory, else all tasks).
    chunk_size: int | None


@runtime_checkable
class GradientLearner(Protocol):
    """A learner that adapts with the engine's inner loop (the MAML family).

    The trainer steps it with the engine's training step (``metazoo.engine.fast.FastMetaStep``),
    which computes the meta-gradient of the engine's objective from these members, never from
    ``meta_loss``; ``check_learner`` checks that both give the same loss.

    Attributes:
        model: the network the inner loop adapts (functional calls with fast weights).
        config: a :class:`GradientConfig` (the executor and chunk size the trainer uses).
    """

    model: nn.Module
    config: GradientConfig

    def inner_loop(self, training: bool, step: int | None = None) -> InnerLoopSettings:
        """The ``metazoo.engine.InnerLoop`` for meta-training (``training``, at 0-based training
        ``step``; None: past every schedule) or meta-test adaptation. Its ``task`` names the
        metric the trainer reports (``accuracy`` or ``mse``)."""
        ...

    def meta_params(self, tensors: dict[str, Tensor] | None = None) -> MetaTensors:
        """The learner's tensors as a ``metazoo.engine.MetaParams`` (initial weights, inner
        rates, per-step overrides).

        Args:
            tensors: the learner's parameters by ``named_parameters()`` name (the compiled step
                passes functional copies); None: the learner's own.
        """
        ...

    def step_weights(self, step: int | None) -> Tensor | None:
        """``(inner_steps,)`` weights of a multi-step loss at training ``step``, or None for
        the final step's loss alone."""
        ...


@runtime_checkable
class OuterStepLearner(Protocol):
    """A learner (Reptile) whose meta-update is not the gradient of ``meta_loss``."""

    def outer_step(
        self, batch: EpisodeBatch, optimizer: torch.optim.Optimizer | None, step: int | None
    ) -> dict[str, float]:
        """One whole meta-update on ``batch`` at 0-based training ``step`` (schedules read it);
        the trainer calls it instead of ``meta_loss(...).backward(); optimizer.step()``.

        Returns:
            Float metrics after adaptation (``loss`` and ``accuracy`` or ``mse``).
        """
        ...


@runtime_checkable
class EpisodeScorer(Protocol):
    """A learner that scores a whole block of test episodes at once."""

    def score_episodes(self, batch: EpisodeBatch) -> Tensor:
        """``(T,)`` each episode's accuracy (%) or MSE: the numbers ``adapt`` then ``predict``
        give one episode at a time; the evaluation harness calls it on blocks of episodes."""
        ...


@dataclass(frozen=True)
class EvalSettings:
    """What a learner does at meta-test time, recorded in every result's ``protocol``."""

    #: Gradient steps of test-time adaptation; None: the learner counts none.
    inner_steps: int | None = None
    #: BatchNorm policy at test time (``transductive``, ``per_step``, ``running``); None: none.
    bn_policy: str | None = None


@runtime_checkable
class EvalSettingsLearner(Protocol):
    """A learner that declares its test-time settings (a learner without: ``EvalSettings()``)."""

    def eval_settings(self) -> EvalSettings:
        """The inner steps and BatchNorm policy of this learner's ``eval()``-mode adaptation."""
        ...


def eval_settings(learner: nn.Module) -> EvalSettings:
    """The learner's declared :class:`EvalSettings`; all None when it declares none."""
    if isinstance(learner, EvalSettingsLearner):
        return learner.eval_settings()
    return EvalSettings()


def adapts_by_gradient(learner: nn.Module) -> bool:
    """The learner's ``adapts_by_gradient`` class attribute; True where it does not declare one.

    Undeclared means True so that a plugin whose ``adapt`` takes gradient steps keeps working; a
    forward-pass plugin that forgets to declare False is caught by ``metazoo.testing.check_learner``
    (its eval-mode ``adapt`` builds a graph back to its parameters).
    """
    return bool(getattr(learner, "adapts_by_gradient", True))


def adaptation_grad_mode(learner: nn.Module) -> contextlib.AbstractContextManager:
    """The grad mode test-time ``adapt`` runs under: ``torch.enable_grad()`` for learners that
    adapt by gradient steps (in eval mode they build no graph back to their parameters),
    ``torch.no_grad()`` for forward-pass adaptation."""
    return torch.enable_grad() if adapts_by_gradient(learner) else torch.no_grad()
