"""Executors: adapt every task of a meta-batch and evaluate its query set.

Two executors with the same semantics (checked to 1e-8 relative in float64 by the tests):

``sequential``
    One task at a time with ``torch.autograd.grad``; lowest memory; the reference.
``vectorized``
    ``torch.func.vmap`` over the tasks of a chunk of ``chunk_size`` tasks, inner gradients with
    ``torch.func.grad``. BatchNorm goes through :class:`~metazoo.engine.batchnorm.BatchNormMode`
    (plain-ops statistics), which keeps second-order meta-gradients exact under ``vmap``.
``auto``
    Sequential on the CPU (vmap measured 4.5x slower there), for meta-batches under 4 tasks and
    for ``bn_policy='running'`` while training; vectorized otherwise.

Entry points: :func:`adapt_and_query` (a meta-batch), :func:`adapt` and :func:`predict` (one
task, for ``MetaLearner.adapt``/``predict``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from metazoo.engine.batchnorm import BatchNormMode, bn_mode
from metazoo.engine.functional import buffers_of, forward, parameters_of, task_loss, task_metric
from metazoo.engine.inner import (
    InnerLoop,
    LearningRate,
    autograd_grads,
    functorch_grads,
    override_at,
    run_inner_loop,
)
from metazoo.episode import EpisodeBatch

__all__ = [
    "EXECUTORS",
    "TaskResults",
    "InnerLoopDivergence",
    "resolve_executor",
    "adapt_and_query",
    "adapt",
    "predict",
]

#: Executor names accepted by learners' ``executor`` config field.
EXECUTORS = ("auto", "sequential", "vectorized")

#: ``auto`` uses the vectorized executor from this meta-batch size on (on an accelerator).
MIN_VECTORIZED_BATCH = 4

Weights = dict[str, Tensor]
Overrides = Sequence[Mapping[str, Tensor]] | None


class InnerLoopDivergence(FloatingPointError):
    """A non-finite loss inside the inner loop; the message names the task and the step."""


@dataclass
class TaskResults:
    """What :func:`adapt_and_query` returns for a meta-batch of T tasks.

    Attributes:
        query_loss: ``(T,)`` query loss after the last step (attached to the outer graph).
        step_query_losses: ``(T, steps)`` query loss after each step (``loop.query_every_step``).
        metric: ``(T,)`` detached accuracy or MSE on the query set after the last step.
        support_losses: ``(T, steps)`` detached support loss before each step.
        fast_weights: name -> ``(T, *shape)`` adapted weights (when ``return_weights``).
    """

    query_loss: Tensor
    step_query_losses: Tensor | None
    metric: Tensor
    support_losses: Tensor
    fast_weights: Weights | None = None


def resolve_executor(
    executor: str, device: torch.device, meta_batch: int, bn_policy: str, training: bool
) -> str:
    """The concrete executor ``auto`` stands for here; other names are checked and returned."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if executor != "auto":
        return executor
    if device.type == "cpu" or meta_batch < MIN_VECTORIZED_BATCH:
        return "sequential"
    if bn_policy == "running" and training:
        return "sequential"
    return "vectorized"


def _initial_weights(params: Weights, loop: InnerLoop) -> Weights:
    """Outer weights as given, or detached copies that still accept inner gradients."""
    if loop.track_outer:
        return dict(params)
    return {
        n: p.detach().requires_grad_(n in set(loop.adaptable(params))) for n, p in params.items()
    }


def _detached(tree):
    """``lr`` or ``overrides`` with every tensor detached (no graph back to meta-learned values)."""
    if isinstance(tree, Tensor):
        return tree.detach()
    if isinstance(tree, Mapping):
        return {k: _detached(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_detached(v) for v in tree]
    return tree


def _frozen_adapt_names(params: Weights, loop: InnerLoop) -> InnerLoop:
    """Leave frozen (``requires_grad=False``) parameters out of the inner loop."""
    if not loop.track_outer or all(params[n].requires_grad for n in loop.adaptable(params)):
        return loop
    names = tuple(n for n in loop.adaptable(params) if params[n].requires_grad)
    return dataclasses.replace(loop, adapt_names=names)


def _query_losses(
    model: nn.Module,
    trajectory: list[Weights],
    buffers: Mapping[str, Tensor],
    qx: Tensor,
    qy: Tensor,
    loop: InnerLoop,
    overrides: Overrides,
) -> tuple[Tensor, Tensor]:
    """Query losses along the trajectory ``(len(trajectory),)`` and the final metric."""
    first = loop.steps - len(trajectory)  # index of the step that produced trajectory[0], minus 1
    losses, out = [], None
    for i, weights in enumerate(trajectory):
        out = forward(model, weights, buffers, qx, override_at(overrides, first + i))
        losses.append(task_loss(out, qy, loop.task, loop.ways))
    return torch.stack(losses), task_metric(out, qy, loop.task)


def _one_task(model, params, buffers, loop, lr, overrides, grad_fn, sx, sy, qx, qy):
    trajectory, support = run_inner_loop(
        model, params, buffers, sx, sy, loop, lr, grad_fn, overrides
    )
    query, metric = _query_losses(model, trajectory, buffers, qx, qy, loop, overrides)
    support = torch.stack(support) if support else qx.new_zeros(0)
    return query, metric, support, trajectory[-1]


def _sequential(model, params, buffers, batch, loop, lr, overrides, return_weights):
    grad_fn = partial(autograd_grads, create_graph=loop.track_outer and not loop.first_order)
    rows = []
    with bn_mode(model, loop.bn_policy, vectorized=False):
        for t in range(len(batch)):
            sx, sy = batch.support_x[t], batch.support_y[t]
            qx, qy = batch.query_x[t], batch.query_y[t]
            rows.append(
                _one_task(model, params, buffers, loop, lr, overrides, grad_fn, sx, sy, qx, qy)
            )
    query, metric, support, fast = zip(*rows)
    weights = {n: torch.stack([f[n] for f in fast]) for n in fast[0]} if return_weights else None
    return torch.stack(query), torch.stack(metric), torch.stack(support), weights


def _vectorized(model, params, buffers, batch, loop, lr, overrides, return_weights):
    grad_fn = partial(functorch_grads, first_order=loop.first_order or not loop.track_outer)

    def task_fn(sx, sy, qx, qy):
        query, metric, support, fast = _one_task(
            model, params, buffers, loop, lr, overrides, grad_fn, sx, sy, qx, qy
        )
        return query, metric, support, (fast if return_weights else {})

    with BatchNormMode(loop.bn_policy, vectorized=True):
        query, metric, support, weights = torch.func.vmap(task_fn, randomness="different")(
            batch.support_x, batch.support_y, batch.query_x, batch.query_y
        )
    return query, metric, support, (weights if return_weights else None)


def _check_finite(query: Tensor, support: Tensor, offset: int, steps: int) -> None:
    """Raise :class:`InnerLoopDivergence` at the first non-finite support or query loss."""
    if bool(torch.isfinite(support).all()) and bool(torch.isfinite(query).all()):
        return
    for t in range(query.shape[0]):
        for s in range(support.shape[1]):
            if not torch.isfinite(support[t, s]):
                raise InnerLoopDivergence(
                    f"non-finite support loss ({support[t, s].item()}) at inner step {s} of "
                    f"{steps}, task {offset + t} of the meta-batch: lower inner_lr, or check the "
                    "inputs of that task"
                )
        if not torch.isfinite(query[t]).all():
            raise InnerLoopDivergence(
                f"non-finite query loss after {steps} inner steps, task {offset + t} of the "
                "meta-batch: lower inner_lr or inner_steps, or check the inputs of that task"
            )


def _chunks(batch: EpisodeBatch, executor: str, chunk_size: int | None, backward: bool):
    """The pieces of ``batch`` one executor call handles: a chunk of ``chunk_size`` tasks
    (vectorized), one task (sequential with the backward inside: one task's graph at a time),
    else the whole batch."""
    size = chunk_size if executor == "vectorized" else (1 if backward else None)
    return batch.split(size) if size and size < len(batch) else [batch]


def adapt_and_query(
    model: nn.Module,
    batch: EpisodeBatch,
    loop: InnerLoop,
    lr: LearningRate,
    *,
    params: Weights | None = None,
    overrides: Overrides = None,
    executor: str = "auto",
    chunk_size: int | None = None,
    return_weights: bool = False,
    backward_scale: float | None = None,
    step_weights: Tensor | None = None,
    check_finite: bool = True,
) -> TaskResults:
    """Adapt each task of ``batch`` on its support set and evaluate the query set.

    Args:
        model: any ``nn.Module`` (not modified; its buffers are copied unless ``bn_policy`` is
            ``running``).
        batch: T tasks; ``support_x (T, N*K, *x)``, ``query_x (T, N*Q, *x)``.
        loop: static inner-loop settings.
        lr: inner learning rates; tensors in it may require grad (meta-learned rates).
        params: the outer weights (name -> tensor); default ``model.named_parameters()``.
        overrides: per-step weights replacing entries of ``params`` in forward passes.
        executor: ``auto``, ``sequential`` or ``vectorized`` (see the module docstring).
        chunk_size: tasks per ``vmap`` call in the vectorized executor (None: all at once).
        return_weights: also return the adapted weights (Reptile).
        backward_scale: when set, backpropagate ``scale`` times the tasks' summed query loss
            (each task's ``step_weights``-weighted per-step losses when given) task by task
            (sequential) or chunk by chunk (vectorized) and return detached losses, so memory
            stays bounded by one task's or one chunk's graph.
        step_weights: ``(loop.steps,)`` weights of the per-step query losses in the backward
            (needs ``loop.query_every_step``); None: the last step's loss only.
        check_finite: raise :class:`InnerLoopDivergence` at a non-finite loss. The check reads
            values back to the host; a captured CUDA graph cannot contain it (check the returned
            loss instead).

    Returns:
        :class:`TaskResults` for the T tasks, in order.

    Raises:
        InnerLoopDivergence: a non-finite loss, naming the step and the task.
        ValueError: a model output that does not fit the task.
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of tasks or None, got {chunk_size}")
    params = dict(parameters_of(model) if params is None else params)
    loop = _frozen_adapt_names(params, loop)
    weights = _initial_weights(params, loop)
    buffers = buffers_of(model, loop.bn_policy)
    if not loop.track_outer:
        lr, overrides = _detached(lr), _detached(overrides)
    device = batch.support_x.device
    name = resolve_executor(executor, device, len(batch), loop.bn_policy, model.training)
    if name == "vectorized" and loop.bn_policy == "running" and model.training:
        raise RuntimeError(
            "bn_policy='running' updates BatchNorm running statistics in place, which vmap cannot "
            "do while training; use executor='sequential' or bn_policy='transductive'"
        )
    run = _sequential if name == "sequential" else _vectorized
    parts, offset = [], 0
    for chunk in _chunks(batch, name, chunk_size, backward_scale is not None):
        query, metric, support, fast = run(
            model, weights, buffers, chunk, loop, lr, overrides, return_weights
        )
        if check_finite:
            _check_finite(query.detach(), support, offset, loop.steps)
        if backward_scale is not None:
            last = query[:, -1] if step_weights is None else query @ step_weights
            (last.sum() * backward_scale).backward()
            query = query.detach()
        parts.append((query, metric, support, fast))
        offset += len(chunk)
    query = torch.cat([p[0] for p in parts])
    fast = {n: torch.cat([p[3][n] for p in parts]) for n in parts[0][3]} if return_weights else None
    return TaskResults(
        query_loss=query[:, -1],
        step_query_losses=query if loop.query_every_step else None,
        metric=torch.cat([p[1] for p in parts]),
        support_losses=torch.cat([p[2] for p in parts]),
        fast_weights=fast,
    )


def adapt(
    model: nn.Module,
    support_x: Tensor,
    support_y: Tensor,
    loop: InnerLoop,
    lr: LearningRate,
    *,
    params: Weights | None = None,
    overrides: Overrides = None,
) -> Weights:
    """Adapted weights for one task (sequential executor).

    Args:
        support_x: ``(N*K, *x)`` support inputs.
        support_y: ``(N*K,)`` labels or ``(N*K, *y)`` targets.

    Returns:
        name -> tensor for every parameter; detached when ``loop.track_outer`` is False.
    """
    params = dict(parameters_of(model) if params is None else params)
    loop = _frozen_adapt_names(params, loop)
    weights = _initial_weights(params, loop)
    buffers = buffers_of(model, loop.bn_policy)
    if not loop.track_outer:
        lr, overrides = _detached(lr), _detached(overrides)
    grad_fn = partial(autograd_grads, create_graph=loop.track_outer and not loop.first_order)
    with bn_mode(model, loop.bn_policy, vectorized=False):
        trajectory, losses = run_inner_loop(
            model, weights, buffers, support_x, support_y, loop, lr, grad_fn, overrides
        )
    if losses:
        _check_finite(support_x.new_zeros(1), torch.stack(losses)[None], 0, loop.steps)
    fast = trajectory[-1]
    return fast if loop.track_outer else {n: w.detach() for n, w in fast.items()}


def predict(
    model: nn.Module,
    weights: Weights,
    query_x: Tensor,
    bn_policy: str = "transductive",
    overrides: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """``model(query_x)`` with ``weights`` (from :func:`adapt`) under the BatchNorm policy.

    Args:
        query_x: ``(N*Q, *x)`` query inputs.

    Returns:
        ``(N*Q, N)`` logits or ``(N*Q, *y)`` regression outputs.
    """
    with bn_mode(model, bn_policy, vectorized=False):
        return forward(model, weights, buffers_of(model, bn_policy), query_x, overrides)
