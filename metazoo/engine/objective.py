"""The meta-objective as MAML-family learners use it: grad mode, task checks, reductions.

A learner of the MAML family chooses an :class:`~metazoo.engine.inner.InnerLoop`, its
:class:`~metazoo.engine.task.MetaParams` and (MAML++) multi-step loss weights, and calls
:func:`meta_objective` (``meta_loss``), :func:`accumulate_meta_gradient` (the training step,
memory bounded by one chunk's graph), :func:`task_scores` (evaluation) or :func:`adapt_task`
(``adapt``). All of them run :func:`metazoo.engine.executors.run_tasks`, so one per-task function
computes every number. Autograd is switched on for the inner loop, which is part of the
computation; whether the outer graph is built follows the caller's grad mode.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from metazoo.engine.executors import (
    TaskResults,
    adapt,
    backward_in_chunks,
    raise_if_diverged,
    resolve_executor,
    run_tasks,
)
from metazoo.engine.functional import metric_name
from metazoo.engine.inner import InnerLoop
from metazoo.engine.measured import candidates, choice_key, choose_executor, computation_facts
from metazoo.engine.task import MetaParams
from metazoo.episode import EpisodeBatch

__all__ = [
    "check_task_of",
    "meta_objective",
    "accumulate_meta_gradient",
    "adapt_task",
    "summarize",
    "task_scores",
    "objective_of",
]


def check_task_of(task: str, is_regression: bool) -> None:
    """Raise when the learner's ``task`` setting does not match the episodes' targets."""
    given = "regression" if is_regression else "classification"
    if given != task:
        raise ValueError(
            f"the learner is configured for {task} but got {given} episodes: create it with "
            f"task={given!r} (metazoo.build_learner fills it from the benchmark)"
        )


def objective_of(results: TaskResults, step_weights: Tensor | None = None) -> Tensor:
    """``(T,)`` each task's objective: its final query loss, or the ``step_weights``-weighted
    sum of its query losses after each step (MAML++'s multi-step loss)."""
    if step_weights is None:
        return results.query_loss
    return results.query_losses @ step_weights.to(results.query_losses)


def summarize(
    results: TaskResults, task: str, step_weights: Tensor | None = None
) -> tuple[Tensor, dict[str, float]]:
    """The mean objective over tasks, and the metrics ``accuracy``/``mse``, ``loss`` and
    ``support_loss`` (before adaptation)."""
    loss = objective_of(results, step_weights).mean()
    support = results.support_losses
    metrics = {
        metric_name(task): float(results.metric.mean()),
        "loss": float(loss.detach()),
        "support_loss": float(support[:, 0].mean()) if support.shape[1] else float("nan"),
    }
    return loss, metrics


def meta_objective(
    model: nn.Module,
    batch: EpisodeBatch,
    loop: InnerLoop,
    meta: MetaParams,
    *,
    step_weights: Tensor | None = None,
    executor: str = "auto",
    chunk_size: int | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The learner-level ``meta_loss``: adapt every task, average the objectives.

    Under ``torch.no_grad()`` the inner loop still runs (autograd on) but the returned loss is
    detached and nothing links back to the learner.

    Args:
        batch: T tasks; ``support_x (T, N*K, *x)``, ``query_x (T, N*Q, *x)``.
        step_weights: ``(loop.steps,)`` multi-step loss weights, or None for the final loss only.

    Raises:
        InnerLoopDivergence: a non-finite loss, naming the task and the step.
    """
    check_task_of(loop.task, batch.is_regression)
    outer = torch.is_grad_enabled()
    with torch.enable_grad():
        results = run_tasks(
            model, batch, loop, meta, outer=outer, every_step=step_weights is not None,
            executor=executor, chunk_size=chunk_size,
        )  # fmt: skip
    raise_if_diverged(results, loop.steps)
    loss, metrics = summarize(results, loop.task, step_weights)
    return (loss if outer else loss.detach()), metrics


def accumulate_meta_gradient(
    model: nn.Module,
    batch: EpisodeBatch,
    loop: InnerLoop,
    meta: MetaParams,
    *,
    step_weights: Tensor | None = None,
    executor: str = "auto",
    chunk_size: int | None = None,
    scale: float = 1.0,
) -> TaskResults:
    """Add the gradient of ``scale *`` the meta-objective's mean to ``.grad``, holding one
    task's (sequential) or one chunk's (vectorized) graph at a time; no host read.

    Returns:
        the detached per-task results (check them with ``raise_if_diverged`` where a host read
        is allowed).
    """
    check_task_of(loop.task, batch.is_regression)
    name = resolve_executor(
        executor, batch.support_x.device, len(batch), loop.bn_policy, model.training
    )
    size = (chunk_size or len(batch)) if name == "vectorized" else 1
    every_step = step_weights is not None

    def run(chunk: EpisodeBatch) -> TaskResults:
        return run_tasks(model, chunk, loop, meta, every_step=every_step, executor=name)

    def loss_of(results: TaskResults) -> Tensor:
        return objective_of(results, step_weights).sum() * (scale / len(batch))

    with torch.enable_grad():
        return backward_in_chunks(run, batch, size, loss_of)


def task_scores(
    model: nn.Module,
    batch: EpisodeBatch,
    loop: InnerLoop,
    meta: MetaParams,
    *,
    executor: str = "auto",
    chunk_size: int | None = None,
) -> Tensor:
    """``(T,)`` each task's query score after adaptation (accuracy in % or MSE), with no graph
    back to the learner: what ``adapt`` then ``predict`` give task by task.

    ``executor='auto'`` runs the fastest executor measured on this batch's shapes
    (:mod:`metazoo.engine.measured`); the scores are those of a run forced to it."""
    check_task_of(loop.task, batch.is_regression)

    def scores(executor: str, chunk: int | None) -> Tensor:
        with torch.enable_grad():
            return run_tasks(
                model, batch, loop, meta, outer=False, executor=executor, chunk_size=chunk
            ).metric

    if executor != "auto" or not isinstance(batch, EpisodeBatch):
        return scores(executor, chunk_size)
    device = batch.query_x.device
    vectorizable = not (loop.bn_policy == "running" and model.training)
    key = choice_key("eval", device, batch.query_x.dtype, **computation_facts(model, loop, batch))
    choice, measured = choose_executor(
        key, "eval", candidates(len(batch), chunk_size, vectorizable), scores, device
    )
    return measured if measured is not None else scores(choice.executor, choice.chunk)


def adapt_task(
    model: nn.Module,
    support_x: Tensor,
    support_y: Tensor,
    loop: InnerLoop,
    meta: MetaParams,
    *,
    training: bool,
    ways: int | None,
) -> dict[str, Tensor]:
    """The learner-level ``adapt`` for one task.

    Args:
        support_x: ``(N*K, *x)`` support inputs.
        support_y: ``(N*K,)`` labels or ``(N*K, *y)`` targets.
        training: the learner's mode; in eval mode no graph back to the learner is built.
        ways: N of a classification task; None for regression.

    Returns:
        name -> adapted tensor for every parameter of ``model``.
    """
    check_task_of(loop.task, torch.is_floating_point(support_y))
    outer = training and torch.is_grad_enabled()
    with torch.enable_grad():
        return adapt(model, support_x, support_y, loop, meta, outer=outer, ways=ways)
