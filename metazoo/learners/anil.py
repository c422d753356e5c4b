"""ANIL: Almost No Inner Loop.

Raghu, Raghu, Bengio and Vinyals. "Rapid Learning or Feature Reuse? Towards Understanding the
Effectiveness of MAML." ICLR 2020.

ANIL is MAML with the inner loop restricted to the network's head: the body's weights are shared
by all tasks and only meta-learned, the last linear layer is adapted on each support set. The paper
finds this matches MAML's accuracy, evidence that MAML's inner loop mostly reuses features. The
meta-gradient still flows through the head's inner steps into the body (second order unless
``first_order``). The head is the last ``nn.Linear`` of the model unless ``head`` names a prefix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from metazoo import engine
from metazoo._registry import register_learner
from metazoo.learners.maml import MAML

__all__ = ["ANIL", "head_parameter_names"]


def head_parameter_names(model: nn.Module, prefix: str | None = None) -> tuple[str, ...]:
    """Names of the head's parameters: those under ``prefix``, or of the last ``nn.Linear``.

    Raises:
        ValueError: when nothing matches, listing the model's parameter names.
    """
    names = [n for n, _ in model.named_parameters()]
    if prefix is None:
        linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(
                f"{type(model).__name__} has no nn.Linear layer to use as the head: set the "
                f"`head` config to a parameter-name prefix; parameters are {names}"
            )
        prefix = linears[-1]
    chosen = tuple(n for n in names if n == prefix or n.startswith(f"{prefix}." if prefix else ""))
    if not chosen:
        raise ValueError(f"head prefix {prefix!r} matches no parameter; parameters are {names}")
    return chosen


@register_learner("anil", family="optimization")
class ANIL(MAML):
    """MAML with the inner loop on the head only."""

    @dataclass
    class Config(MAML.Config):
        """ANIL settings: MAML's, plus which parameters form the head."""

        #: Parameter-name prefix of the head (e.g. ``head`` or ``6``); None: the last nn.Linear.
        head: str | None = None

    def __init__(self, model: nn.Module | None, config: Config):
        super().__init__(model, config)
        self.head_names = head_parameter_names(self.model, config.head)

    def inner_loop(self, training: bool) -> engine.InnerLoop:
        """MAML's inner loop restricted to the head's parameters."""
        loop = super().inner_loop(training)
        names = getattr(self, "head_names", None)
        return loop if names is None else dataclasses.replace(loop, adapt_names=names)
