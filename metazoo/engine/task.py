"""One task's inner loop and query loss: the single definition every executor runs.

:func:`task_objective` adapts the meta-parameters to one task's support set and evaluates its
query set. The sequential executor calls it task by task with ``torch.autograd.grad``; the
vectorized executor calls it under ``torch.func.vmap`` with ``torch.func.grad``; the compiled
meta-gradient differentiates the vectorized executor with ``torch.func.grad``; the CUDA-graph
step captures whichever of those the step runs. No other function computes a task's objective.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from metazoo.engine.functional import forward, task_loss, task_metric, visible_logits
from metazoo.engine.inner import GradFn, InnerLoop, LearningRate, override_at, run_inner_loop

__all__ = ["MetaParams", "TaskOutput", "task_objective", "detached"]

Weights = dict[str, Tensor]


class MetaParams(NamedTuple):
    """What the outer loop learns, in the form the inner loop uses it.

    Attributes:
        weights: name -> tensor for every parameter of the model (the initialisation).
        lr: inner learning rates (:data:`metazoo.engine.inner.LearningRate`); tensors in it may
            require grad (Meta-SGD's per-parameter rates, MAML++'s per-step rates).
        overrides: per-step weights replacing entries of ``weights`` in forward passes (MAML++'s
            per-step BatchNorm weights), or None.
    """

    weights: Weights
    lr: LearningRate
    overrides: Sequence[Mapping[str, Tensor]] | None = None


class TaskOutput(NamedTuple):
    """One task's results (a leading task dimension when returned by an executor).

    Attributes:
        query_losses: ``(S,)`` query loss after each kept step: every step with ``every_step``
            (``S = steps``), else after the last (``S = 1``). Attached to the outer graph.
        metric: ``()`` detached accuracy in % or MSE on the query set after the last step.
        support_losses: ``(steps,)`` detached support loss before each step.
        fast_weights: name -> tensor, every parameter after the last step.
    """

    query_losses: Tensor
    metric: Tensor
    support_losses: Tensor
    fast_weights: Weights


def task_objective(
    model: nn.Module,
    loop: InnerLoop,
    meta: MetaParams,
    buffers: Mapping[str, Tensor],
    grad_fn: GradFn,
    task: tuple[Tensor, Tensor, Tensor, Tensor],
    *,
    ways: int | None,
    every_step: bool = False,
) -> TaskOutput:
    """Adapt ``meta`` to one task's support set, then evaluate the query set.

    Args:
        model: the network, run through ``functional_call`` (never modified).
        loop: static inner-loop settings (``adapt_names`` resolved, see ``InnerLoop.bound_to``).
        meta: the outer weights, learning rates and per-step overrides.
        buffers: buffers for ``functional_call`` (empty: the model's own).
        grad_fn: how inner gradients are taken (``autograd_grads`` or ``functorch_grads``).
        task: ``(support_x (N*K, *x), support_y (N*K,) or (N*K, *y), query_x (N*Q, *x),
            query_y (N*Q,) or (N*Q, *y))``.
        ways: N of a classification task (checked against the model's output), else None.
        every_step: the query loss after every inner step (MAML++'s multi-step loss).

    Returns:
        the task's :class:`TaskOutput`.
    """
    sx, sy, qx, qy = task
    trajectory, support = run_inner_loop(
        model, meta.weights, buffers, sx, sy, loop, meta.lr, grad_fn, meta.overrides,
        ways=ways, every_step=every_step,
    )  # fmt: skip
    first = loop.steps - len(trajectory)  # the step whose weights are trajectory[0], minus 1
    losses, out = [], None
    for i, weights in enumerate(trajectory):
        out = forward(model, weights, buffers, qx, override_at(meta.overrides, first + i))
        losses.append(task_loss(out, qy, loop.task, ways, loop.padded_head))
    support_losses = torch.stack(support) if support else qx.new_zeros(0)
    metric = task_metric(visible_logits(out, ways, loop.padded_head), qy, loop.task)
    return TaskOutput(torch.stack(losses), metric, support_losses, trajectory[-1])


def detached(tree):
    """``tree`` (tensors in dicts, lists, tuples) with every tensor detached."""
    if isinstance(tree, Tensor):
        return tree.detach()
    if isinstance(tree, Mapping):
        return {k: detached(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [detached(v) for v in tree]
    return tree
