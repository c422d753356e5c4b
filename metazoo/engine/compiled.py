"""The vectorized meta-gradient as one compiled program (``FastOptions(compile=True)``).

The program is ``torch.func.grad`` (outer) of the vectorized executor
(:func:`metazoo.engine.executors.vectorized`, ``vmap`` over tasks of the one per-task function,
``torch.func.grad`` inside), taken with respect to every trainable tensor of the learner: the
initial weights and, for Meta-SGD and MAML++, the learned rates and per-step BatchNorm weights.
The compiler sees all three differentiation orders at once and fuses the plain-ops BatchNorm and
the elementwise work around the convolutions. A per-task convolution lowering is experimental
(:mod:`metazoo.experimental.taskconv`, imported only when ``lowering`` asks for one): its
``F.conv2d`` interception and ``make_fx`` tracing stay out of the default engine until a
committed GPU result shows them beating this plain compiled program.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch
from torch import Tensor

from metazoo.engine.executors import vectorized
from metazoo.engine.functional import buffers_of
from metazoo.engine.inner import InnerLoop
from metazoo.engine.objective import objective_of
from metazoo.episode import EpisodeBatch
from metazoo.learner import GradientLearner

__all__ = [
    "Lowerings",
    "compiled_meta_gradient",
    "check_policy",
    "experimental_lowerings",
    "register_lowerings",
]


class Lowerings(NamedTuple):
    """The per-task convolution lowerings: experimental, registered by
    :mod:`metazoo.experimental.taskconv` when it is imported (the engine never imports it)."""

    #: ``check(lowering, fp32_products)`` raises for an unknown or unregistered lowering.
    check: Callable[[str | None, str], None]
    #: ``context(lowering, fp32_products)``: the context under which a model's ``F.conv2d``
    #: calls run per task by that lowering.
    context: Callable[[str, str], contextlib.AbstractContextManager]
    #: ``compile(function)``: ``function`` traced to ATen operations, then compiled.
    compile: Callable[[Callable], Callable]


_LOWERINGS: list[Lowerings] = []  # empty until metazoo.experimental.taskconv is imported


def register_lowerings(lowerings: Lowerings) -> None:
    """Make the experimental per-task convolutions available (called on their import)."""
    _LOWERINGS[:] = [lowerings]


def experimental_lowerings() -> Lowerings:
    """The registered per-task convolution lowerings.

    Raises:
        ValueError: none is registered, saying what to import.
    """
    if not _LOWERINGS:
        raise ValueError(
            "the per-task convolution lowerings (batched_weight_gradients, matmul_convolutions, "
            "triton_convolutions) are experimental: `import metazoo.experimental.taskconv` first "
            "(`import metazoo.experimental.lowerings` for matmul and triton)"
        )
    return _LOWERINGS[0]


def check_policy(loop: InnerLoop) -> None:
    """Refuse running BatchNorm statistics, which the fast step does not support."""
    if loop.bn_policy == "running":
        raise ValueError(
            "the fast step supports bn_policy 'transductive' and 'per_step'; for running "
            "statistics use metazoo.engine.run_tasks(..., executor='sequential')"
        )


def _program(learner, loop, frozen, ways, scale, convolutions, tensors, buffers, sw, *task):
    """``scale`` times the chunk's summed objective, and ``(objectives, metrics)`` detached."""
    meta = learner.meta_params({**frozen, **tensors})
    batch = EpisodeBatch(*task, ways=ways)
    with convolutions():
        results = vectorized(
            learner.model, loop, meta, buffers, batch, ways=ways, every_step=sw is not None,
            outer=True,
        )  # fmt: skip
    objectives = objective_of(results, sw)
    return objectives.sum() * scale, (objectives.detach(), results.metric)


def compiled_meta_gradient(
    learner: GradientLearner,
    loop: InnerLoop,
    tasks: int,
    ways: int | None,
    *,
    chunk: int | None = None,
    multi_step: bool = False,
    lowering: str | None = None,
    fp32_products: str = "ieee",
) -> Callable[[EpisodeBatch, Tensor | None], Tensor]:
    """A compiled accumulator of the meta-gradient, ``(batch, step_weights) -> (2,)``.

    Each call adds the meta-gradient of a ``tasks``-task batch to the learner's ``.grad``, one
    chunk at a time, and returns ``(2,)``: the detached mean objective and mean query metric.

    Args:
        learner: the MAML-family learner (see :class:`metazoo.learner.GradientLearner`).
        loop: inner-loop settings, ``adapt_names`` resolved (``InnerLoop.bound_to``).
        tasks: the meta-batch size T every batch has (scales the loss by ``1/T``).
        ways: N of the classification episodes, None for regression.
        chunk: tasks per compiled call (None: all T).
        multi_step: the objective weights the query losses after every step by the
            ``(steps,)`` ``step_weights`` each call passes (MAML++), instead of the last one.
        lowering: how per-task convolutions run: None keeps ``vmap``'s grouped convolutions;
            a name of :data:`metazoo.experimental.taskconv.LOWERINGS` (experimental) batches the weight gradients
            (and more), and the program is then traced to ATen operations with ``make_fx`` on
            the first batch of each shape and that graph is compiled.
        fp32_products: the lowering's fp32 products (:func:`metazoo.experimental.taskconv.check_lowering`).
    """
    check_policy(loop)
    named = dict(learner.named_parameters())
    trainable = {n: p for n, p in named.items() if p.requires_grad}
    frozen = {n: p.detach() for n, p in named.items() if not p.requires_grad}
    buffers = buffers_of(learner.model, loop.bn_policy)
    convolutions, compile_ = contextlib.nullcontext, partial(torch.compile, dynamic=False)
    if lowering:  # opted into the experimental per-task convolutions
        convolutions = partial(experimental_lowerings().context, lowering, fp32_products)
        compile_ = experimental_lowerings().compile
    program = partial(_program, learner, loop, frozen, ways, 1.0 / tasks, convolutions)
    step = compile_(torch.func.grad(program, has_aux=True))

    def accumulate(batch: EpisodeBatch, step_weights: Tensor | None = None) -> Tensor:
        if multi_step != (step_weights is not None):
            raise ValueError("pass step_weights exactly when the program was built multi_step")
        total = batch.query_x.new_zeros(2)
        for part in batch.split(chunk or len(batch)):
            tensors = {n: p.detach() for n, p in trainable.items()}
            grads, (objectives, metrics) = step(
                tensors, buffers, step_weights,
                part.support_x, part.support_y, part.query_x, part.query_y,
            )  # fmt: skip
            for n, p in trainable.items():
                p.grad = grads[n] if p.grad is None else p.grad.add_(grads[n])
            total = total + torch.stack([objectives.sum(), metrics.sum()]) / tasks
        return total

    return accumulate
