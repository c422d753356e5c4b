"""The plain training step of a MAML-family learner: no graph object, no static buffers.

A step is: the inner loop and multi-step loss weights of the training step (:func:`step_settings`),
the meta-gradient of the mean objective accumulated into ``.grad`` task by task (``sequential``)
or chunk by chunk (``vectorized``), so at most one chunk's graph is alive
(:func:`accumulate_step`, over :func:`metazoo.engine.accumulate_meta_gradient`), then the
caller's optimizer step. The executor is the one asked for, or ``auto``'s fastest measured on a
copy of the learner (:func:`plan_step`). The trainer steps the MAML family this way by default;
:class:`metazoo.engine.fast.FastMetaStep` (the opt-in fast step: compiled, CUDA graph) computes
the same meta-gradient and calls the same functions when eager.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

from metazoo.engine.autoselect import (
    MEMORY_FRACTION,
    ExecutorPlan,
    chunk_size,
    free_memory_bytes,
    plan_executor,
    saved_tensor_bytes,
)
from metazoo.engine.executors import run_tasks
from metazoo.engine.inner import InnerLoop
from metazoo.engine.measured import candidates, choice_key, choose_executor, computation_facts
from metazoo.engine.objective import accumulate_meta_gradient, objective_of
from metazoo.episode import EpisodeBatch
from metazoo.learner import GradientLearner

__all__ = ["accumulate_step", "plan_step", "step_settings"]


def step_settings(
    learner: GradientLearner, step: int | None, like: Tensor
) -> tuple[InnerLoop, Tensor | None]:
    """The inner loop (``adapt_names`` bound) and the ``(steps,)`` multi-step loss weights (None:
    the final loss only) of training ``step``, the weights on ``like``'s device and dtype."""
    loop = learner.inner_loop(True, step).bound_to(dict(learner.model.named_parameters()))
    weights = learner.step_weights(step)
    return loop, None if weights is None else weights.to(like.device, like.dtype)


def accumulate_step(
    learner: GradientLearner,
    batch: EpisodeBatch,
    loop: InnerLoop,
    step_weights: Tensor | None,
    plan: ExecutorPlan,
) -> Tensor:
    """Add the meta-gradient of ``batch`` (the mean objective over its T tasks) to ``.grad`` by
    ``plan``'s executor, one task's or chunk's graph at a time; no host read.

    Returns:
        ``(2,)`` detached: the mean objective and the mean query metric (accuracy in % or MSE).
    """
    results = accumulate_meta_gradient(
        learner.model, batch, loop, learner.meta_params(), step_weights=step_weights,
        executor=plan.executor, chunk_size=plan.chunk,
    )  # fmt: skip
    return torch.stack([objective_of(results, step_weights).mean(), results.metric.mean()])


def plan_step(
    learner: GradientLearner,
    loop: InnerLoop,
    example: EpisodeBatch,
    *,
    executor: str = "auto",
    chunk: int | None = None,
    compile: bool = False,
    channels_last: bool = False,
    autocast: torch.dtype | None = None,
    step_weights: Tensor | None = None,
    within: Callable[[Callable[[EpisodeBatch], None], EpisodeBatch], object] | None = None,
) -> ExecutorPlan:
    """The executor of a training step: the one asked for, or ``auto``'s fastest, timed on a
    copy of the learner (no optimizer step; random numbers restored), so the run's numbers are
    those of a run forced to it.

    Args:
        learner: the learner stepped (not changed).
        loop: the step's inner-loop settings; example: a batch of the step's shapes.
        executor: ``auto``, ``sequential`` or ``vectorized``; chunk: tasks per vectorized chunk
            (None: ``auto`` bounds it by memory on a GPU, else all tasks).
        compile: the step is the compiled program (``auto`` then follows the memory rule of
            :func:`metazoo.engine.autoselect.plan_executor`: the candidates are eager steps).
        channels_last, autocast: the step's layout and autocast dtype (they key the choice).
        step_weights: the multi-step loss weights, or None.
        within: ``within(gradient, batch)`` runs ``gradient(batch)`` in the step's contexts
            (autocast, cuDNN settings); None: as is.
    """
    if executor in ("sequential", "vectorized"):
        return ExecutorPlan(executor, chunk, "requested")
    if executor != "auto":
        raise ValueError(f"executor must be auto, sequential or vectorized, got {executor!r}")
    device = example.query_x.device
    if compile:  # the compiled program is not the eager step the candidates time
        task_bytes = None
        if device.type == "cuda":  # bound the chunk by memory: one task's saved tensors
            task_bytes = saved_tensor_bytes(partial(_one_task_loss, learner, example, loop))
        return plan_executor(len(example), device, task_bytes=task_bytes)
    largest = _largest_chunk(learner, loop, example, chunk)
    twin = copy.deepcopy(learner)

    def run(executor: str, chunk: int | None) -> None:
        def gradient(batch: EpisodeBatch) -> None:
            accumulate_meta_gradient(
                twin.model, batch, loop, twin.meta_params(), step_weights=step_weights,
                executor=executor, chunk_size=chunk,
            )  # fmt: skip

        (within or (lambda g, b: g(b)))(gradient, example)

    facts = computation_facts(learner.model, loop, example)
    key = choice_key(
        "train", device, example.query_x.dtype, **facts, multi_step=step_weights is not None,
        channels_last=channels_last, autocast=autocast,
    )  # fmt: skip
    options = candidates(len(example), largest, largest != 0)
    choice, _ = choose_executor(key, "train", options, run, device)
    return ExecutorPlan(choice.executor, choice.chunk, f"measured: {choice.timings_ms} ms")


def _largest_chunk(learner, loop: InnerLoop, example: EpisodeBatch, asked: int | None) -> int:
    """The most tasks one vectorized chunk may hold: ``asked`` (a user's ``chunk_size``), on a
    GPU what fits :data:`~.autoselect.MEMORY_FRACTION` of the free memory (0: not even one
    task, or ``bn_policy='running'``, which ``vmap`` cannot train), else the whole meta-batch."""
    if loop.bn_policy == "running":
        return 0
    device, tasks = example.query_x.device, len(example)
    if asked is not None or device.type != "cuda":
        return min(asked or tasks, tasks)
    task_bytes = saved_tensor_bytes(partial(_one_task_loss, learner, example, loop))
    budget = int(free_memory_bytes(device) * MEMORY_FRACTION)
    return chunk_size(tasks, task_bytes, budget) if budget >= task_bytes else 0


def _one_task_loss(learner, batch: EpisodeBatch, loop: InnerLoop) -> Tensor:
    """The objective of the first task of ``batch`` as one graph (for memory estimation).

    Built on a copy of the learner: a graph on the real parameters would create their gradient
    accumulators on the current stream, which a later CUDA graph capture must not inherit.
    """
    twin = copy.deepcopy(learner)
    one = batch.split(1)[0]
    return run_tasks(twin.model, one, loop, twin.meta_params()).query_loss.sum()
