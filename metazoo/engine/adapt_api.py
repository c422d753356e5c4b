"""Adaptation on any loss, for your own training loop (what learn2learn's ``clone``/``adapt`` and
higher's ``innerloop_ctx`` do).

:func:`adapt_weights` takes a model and a function of a :class:`FastModel` returning the
adaptation loss, and returns the :class:`FastModel` after ``steps`` inner steps. Its weights stay
attached to the model's parameters (and to learned rates), so any loss computed with it
backpropagates to them: second order by default, first order on request. The steps are the
engine's own (:func:`metazoo.engine.inner.run_inner_steps`, the loop every MAML-family learner
runs), and forward passes run under the same BatchNorm policy as the learners'::

    fast = adapt_weights(model, lambda f: F.cross_entropy(f(support_x), support_y), steps=3, lr=0.4)
    F.cross_entropy(fast(query_x), query_y).backward()  # meta-gradient in model's .grad
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import Tensor, nn

from metazoo.engine.batchnorm import bn_mode
from metazoo.engine.executors import InnerLoopDivergence
from metazoo.engine.functional import buffers_of, forward, parameters_of
from metazoo.engine.inner import InnerLoop, LearningRate, autograd_grads, run_inner_steps

__all__ = ["FastModel", "adapt_weights"]

Weights = dict[str, Tensor]


@dataclass(frozen=True)
class FastModel:
    """``model`` run with fast weights in place of its parameters (a functional view of it).

    Calling it runs ``model`` through ``torch.func.functional_call`` under the BatchNorm policy,
    on buffer copies (the model's own under ``running``); the model is never modified.

    Attributes:
        model: the network.
        weights: name -> tensor for every parameter of ``model``.
        buffers: name -> tensor passed with them (empty: the model's own buffers).
        bn_policy: ``transductive``, ``per_step`` or ``running`` (see
            :mod:`metazoo.engine.batchnorm`).
        losses: ``(steps,)`` detached adaptation loss before each step that led here.
    """

    model: nn.Module
    weights: Weights
    buffers: Mapping[str, Tensor]
    bn_policy: str = "transductive"
    losses: Tensor = field(default_factory=lambda: torch.zeros(0))

    def __call__(self, x: Tensor) -> Tensor:
        """``model(x)`` with these weights.

        Args:
            x: ``(n, *x)`` inputs (what the model takes).

        Returns:
            the model's output for ``x``, e.g. ``(n, N)`` logits.
        """
        with bn_mode(self.model, self.bn_policy, vectorized=False):
            return forward(self.model, self.weights, self.buffers, x)


def adapt_weights(
    model: nn.Module,
    loss_fn: Callable[[FastModel], Tensor],
    *,
    steps: int = 1,
    lr: LearningRate = 0.01,
    first_order: bool = False,
    optimizer: str = "sgd",
    bn_policy: str = "transductive",
    adapt_names: Sequence[str] | None = None,
    weights: Mapping[str, Tensor] | None = None,
) -> FastModel:
    """Differentiable fast weights after ``steps`` inner steps on ``loss_fn``.

    Args:
        model: any ``nn.Module`` (BatchNorm included); not modified.
        loss_fn: the adaptation loss, a 0-dim tensor computed from the current :class:`FastModel`
            (``f(x)`` runs the model with its weights; ``f.weights`` holds them).
        steps: inner steps (0 returns the starting weights).
        lr: a float; a dict name -> tensor (scalar or the parameter's shape, Meta-SGD's learned
            rates: they may require grad); or a list of such dicts, one per step (MAML++).
        first_order: drop second-order terms (first-order MAML): inner gradients are constants.
        optimizer: ``sgd`` or ``adam`` (the differentiable inner Adam of the MAML family).
        bn_policy: ``transductive`` (batch statistics, MAML's reference), ``per_step`` or
            ``running`` (the module's own mode and buffers).
        adapt_names: parameter names that adapt (e.g. the head only, as ANIL); None: every
            parameter that requires grad.
        weights: starting weights (name -> tensor for every parameter); None: the model's
            parameters, so the meta-gradient lands in their ``.grad``.

    Returns:
        the adapted :class:`FastModel`; its weights stay attached to ``weights`` and ``lr``.

    Raises:
        ValueError: no weight can adapt, or a setting is not one of the valid values.
        RuntimeError: called with autograd off.
        InnerLoopDivergence: the adaptation loss became NaN or inf (names the step).
    """
    if steps and not torch.is_grad_enabled():
        raise RuntimeError(
            "adapt_weights takes gradients, but autograd is off (torch.no_grad()): wrap the call "
            "in torch.enable_grad(), and detach what you keep at test time"
        )
    start = dict(weights) if weights is not None else parameters_of(model)
    names = None if adapt_names is None else tuple(adapt_names)
    loop = InnerLoop(steps, first_order, optimizer, bn_policy=bn_policy, adapt_names=names)
    loop = loop.bound_to(start)
    if steps and not loop.adapt_names:
        raise ValueError(
            "no weight can adapt: none of the chosen parameters requires grad; call "
            "requires_grad_(True) on them, or pass weights= with tensors that require grad"
        )
    buffers = buffers_of(model, bn_policy)

    def loss_at(current: Weights, buffers: Mapping[str, Tensor], step: int) -> Tensor:
        return loss_fn(FastModel(model, current, buffers, bn_policy))

    grad_fn = partial(autograd_grads, create_graph=not first_order)
    trajectory, losses = run_inner_steps(start, buffers, loss_at, loop, lr, grad_fn)
    for step, loss in enumerate(losses):
        if not bool(torch.isfinite(loss)):
            raise InnerLoopDivergence(
                f"non-finite adaptation loss ({loss.item()}) at inner step {step} of {steps}: "
                "lower lr, or check the inputs of the loss"
            )
    stacked = torch.stack(losses) if losses else torch.zeros(0)
    return FastModel(model, trajectory[-1], buffers, bn_policy, stacked)
