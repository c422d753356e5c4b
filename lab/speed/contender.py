"""What every contender of the speed lab is: :class:`Contender`, its :data:`Builder`, and
:class:`Unavailable` for one that cannot run here (learn2learn absent, CUDA-only on a CPU).

Kept apart from :mod:`~lab.speed.contenders` (the implementations) so that
:mod:`~lab.speed.learners` builds on it without an import cycle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor, nn

from lab.speed.shapes import SpeedShape
from metazoo.engine.precision import tf32
from metazoo.episode import EpisodeBatch

__all__ = ["Builder", "Contender", "Unavailable", "precision"]


#: ``(model copy, shape, example meta-batch) -> Contender``; raises :class:`Unavailable`.
Builder = Callable[[nn.Module, SpeedShape, EpisodeBatch], "Contender"]


class Unavailable(RuntimeError):
    """This contender cannot run in this environment; the message says why."""


@dataclass
class Contender:
    """One implementation under test, with its own model copy and optimizer."""

    #: short name used in tables, e.g. ``torch-loop``.
    name: str
    #: what it is, one line.
    description: str
    #: one meta-training step (meta-gradient and Adam update) on a meta-batch.
    train_step: Callable[[EpisodeBatch], object]
    #: the meta-gradient of a meta-batch at the current weights; weights unchanged.
    meta_gradient: Callable[[EpisodeBatch], list[Tensor]]
    #: ``(T,)`` query accuracy in % after test-time adaptation; None when not timed.
    evaluate: Callable[[EpisodeBatch], Tensor] | None
    #: numeric mode: ``fp32`` (TF32 off), ``tf32``, ``3xtf32`` or ``bf16`` (autocast).
    precision: str = "fp32"
    #: anything a reader of the table should know (e.g. the executor ``auto`` chose).
    note: str = ""
    #: extra facts recorded in the JSON (executor plan, options).
    details: dict = field(default_factory=dict)
    #: the private model copy this contender trains.
    model: nn.Module | None = None
    #: its own float64 reference meta-gradient of a batch (learners with another objective than
    #: MAML's); None: the shape's MAML reference.
    reference: Callable[[EpisodeBatch], list[Tensor]] | None = None


def precision(mode: str) -> contextlib.AbstractContextManager:
    """TF32 off for ``fp32``, ``3xtf32`` and ``bf16``, on for ``tf32``; restored on exit."""
    return tf32(mode == "tf32")
