"""The ``MetaLearner`` protocol every algorithm implements.

Implementations are ``nn.Module`` subclasses registered with :func:`metazoo.register_learner`.
Shared behaviour lives in free functions (``metazoo.engine``), never in a base class with hooks.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from metazoo.episode import EpisodeBatch

__all__ = [
    "MetaLearner",
    "TaskState",
    "FAMILIES",
    "adapts_by_gradient",
    "adaptation_grad_mode",
    "has_outer_step",
    "has_score_episodes",
]

#: The three families of the literature; every learner belongs to exactly one.
FAMILIES = ("optimization", "metric", "model")

#: Task-specific state returned by ``adapt``: fast weights (``dict[str, Tensor]``) for the MAML
#: family, prototypes for ProtoNet, an encoded context for model-based learners. Opaque to callers.
TaskState = Any


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

    def meta_loss(self, batch: EpisodeBatch) -> tuple[Tensor, dict[str, float]]:
        """The outer objective on a meta-batch.

        Args:
            batch: T tasks; ``support_x (T, N*K, *x)``, ``query_x (T, N*Q, *x)``.

        Returns:
            ``(loss, metrics)``: the scalar mean over tasks of the query loss after adapting on the
            support set (``loss.backward()`` gives the meta-gradient on the learner's parameters), and
            float metrics such as ``accuracy`` (classification) or ``mse`` (regression).
        """
        ...

    def adapt(self, support_x: Tensor, support_y: Tensor) -> TaskState:
        """Task-specific state from one task's support set; never mutates the learner.

        Args:
            support_x: ``(N*K, *x)`` support inputs of one task.
            support_y: ``(N*K,)`` labels in ``0..N-1`` or ``(N*K, *y)`` regression targets.
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


def has_outer_step(learner: nn.Module) -> bool:
    """True for learners (Reptile) whose outer update is not the gradient of ``meta_loss``.

    Such a learner defines ``outer_step(batch, optimizer, step) -> dict[str, float]``, which
    performs a whole meta-update at 0-based training ``step`` (schedules read it); the trainer
    calls it instead of ``meta_loss(...).backward(); optimizer.step()``.
    """
    return callable(getattr(learner, "outer_step", None))


def has_score_episodes(learner: nn.Module) -> bool:
    """True for learners that score a whole meta-batch of test episodes at once.

    Such a learner defines ``score_episodes(batch) -> Tensor (T,)``: each episode's accuracy (%) or
    MSE, the numbers ``adapt`` then ``predict`` would give one episode at a time; the evaluation
    harness calls it on blocks of episodes.
    """
    return callable(getattr(learner, "score_episodes", None))


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
