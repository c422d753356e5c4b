"""The meta-objective and task adaptation as learners call them: grad mode, task checks, metrics.

Learners of the MAML family are thin: they choose an :class:`~metazoo.engine.inner.InnerLoop`,
learning rates and overrides, and call :func:`meta_objective` (``meta_loss``) and
:func:`adapt_task` (``adapt``). Both switch autograd on for the inner loop, so they work when the
caller is under ``torch.no_grad()`` (validation); then no graph back to the learner is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from metazoo.engine.executors import TaskResults, adapt, adapt_and_query
from metazoo.engine.functional import metric_name
from metazoo.engine.inner import InnerLoop, LearningRate
from metazoo.episode import EpisodeBatch

__all__ = ["check_task_of", "meta_objective", "adapt_task", "summarize", "task_scores"]


def check_task_of(task: str, is_regression: bool) -> None:
    """Raise when the learner's ``task`` setting does not match the episodes' targets."""
    given = "regression" if is_regression else "classification"
    if given != task:
        raise ValueError(
            f"the learner is configured for {task} but got {given} episodes: create it with "
            f"task={given!r} (metazoo.build_learner fills it from the benchmark)"
        )


def summarize(
    results: TaskResults, task: str, step_weights: Tensor | None = None
) -> tuple[Tensor, dict[str, float]]:
    """Mean query loss over tasks (or the ``step_weights``-weighted multi-step loss) and metrics.

    Args:
        results: what :func:`adapt_and_query` returned for T tasks.
        task: ``classification`` or ``regression``.
        step_weights: ``(steps,)`` weights of the query losses after each step (MAML++); needs
            ``results.step_query_losses``.
    """
    if step_weights is None:
        loss = results.query_loss.mean()
    else:
        loss = (results.step_query_losses.mean(dim=0) * step_weights).sum()
    metrics = {
        metric_name(task): float(results.metric.mean()),
        "loss": float(loss.detach()),
        "support_loss": float(results.support_losses[:, 0].mean())
        if results.support_losses.shape[1]
        else float("nan"),
    }
    return loss, metrics


def meta_objective(
    model: nn.Module,
    batch: EpisodeBatch,
    loop: InnerLoop,
    lr: LearningRate,
    *,
    overrides: Sequence[Mapping[str, Tensor]] | None = None,
    executor: str = "auto",
    chunk_size: int | None = None,
    step_weights: Tensor | None = None,
    params: dict[str, Tensor] | None = None,
    backward_scale: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The learner-level ``meta_loss``: adapt every task, average the query losses.

    Under ``torch.no_grad()`` the inner loop still runs (with autograd on) but the returned loss is
    detached and nothing links back to the learner.

    Args:
        batch: T tasks; ``support_x (T, N*K, *x)``, ``query_x (T, N*Q, *x)``.
        loop: inner-loop settings (``ways`` is filled from the batch).
        step_weights: ``(loop.steps,)`` multi-step loss weights, or None for the final loss only.
        backward_scale: when set, add the gradient of ``backward_scale * loss`` to ``.grad`` task
            by task (or chunk by chunk), so one task's graph is alive at a time, and return the
            loss detached (the learner-level ``meta_backward``).

    Returns:
        ``(loss, metrics)`` with ``accuracy`` or ``mse``, ``loss`` and ``support_loss`` (before
        adaptation).
    """
    outer = torch.is_grad_enabled() and loop.track_outer
    results = _adapt_batch(
        model,
        batch,
        loop,
        lr,
        outer=outer,
        step_weights=step_weights,
        params=params,
        overrides=overrides,
        executor=executor,
        chunk_size=chunk_size,
        backward_scale=None if backward_scale is None else backward_scale / len(batch),
    )
    loss, metrics = summarize(results, loop.task, step_weights)
    return (loss if outer and backward_scale is None else loss.detach()), metrics


def _adapt_batch(
    model: nn.Module,
    batch: EpisodeBatch,
    loop: InnerLoop,
    lr: LearningRate,
    *,
    outer: bool,
    step_weights: Tensor | None = None,
    **options,
) -> TaskResults:
    """``adapt_and_query`` with the task checked, ``ways`` filled from the batch, the outer graph
    kept or not, and autograd on for the inner loop."""
    check_task_of(loop.task, batch.is_regression)
    loop = dataclasses.replace(
        loop,
        ways=batch.ways if loop.task == "classification" else None,
        track_outer=outer,
        query_every_step=step_weights is not None,
    )
    with torch.enable_grad():
        return adapt_and_query(model, batch, loop, lr, step_weights=step_weights, **options)


def adapt_task(
    model: nn.Module,
    support_x: Tensor,
    support_y: Tensor,
    loop: InnerLoop,
    lr: LearningRate,
    *,
    training: bool,
    overrides: Sequence[Mapping[str, Tensor]] | None = None,
    params: dict[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """The learner-level ``adapt`` for one task.

    Args:
        support_x: ``(N*K, *x)`` support inputs.
        support_y: ``(N*K,)`` labels or ``(N*K, *y)`` targets.
        training: the learner's mode; in eval mode no graph back to the learner is built.

    Returns:
        name -> adapted tensor for every parameter of ``model``.
    """
    check_task_of(loop.task, torch.is_floating_point(support_y))
    ways = int(support_y.max()) + 1 if loop.task == "classification" else None
    outer = training and torch.is_grad_enabled() and loop.track_outer
    loop = dataclasses.replace(loop, ways=ways, track_outer=outer)
    with torch.enable_grad():
        return adapt(model, support_x, support_y, loop, lr, params=params, overrides=overrides)


def task_scores(
    model: nn.Module,
    batch: EpisodeBatch,
    loop: InnerLoop,
    lr: LearningRate,
    *,
    overrides: Sequence[Mapping[str, Tensor]] | None = None,
    executor: str = "auto",
    chunk_size: int | None = None,
) -> Tensor:
    """Each task's query score after adaptation, with no graph back to the learner (evaluation).

    Returns:
        ``(T,)`` accuracy in % or MSE: what ``adapt`` then ``predict`` give task by task.
    """
    options = {"overrides": overrides, "executor": executor, "chunk_size": chunk_size}
    return _adapt_batch(model, batch, loop, lr, outer=False, **options).metric
