"""Automatic executor choice: sequential or vectorized, and how many tasks per vectorized chunk.

Measured facts behind the rules (issue 7):

* on a CPU, ``torch.func.vmap`` over tasks was 4.5x slower than the task loop (2 cores, Omniglot
  5-way 1-shot, meta-batch 32): the loop already runs near the CPU's matrix-multiply rate, so
  vectorization only adds copies. On a CPU the choice is always ``sequential``;
* on a GPU the task loop is launch-bound, and vectorizing pays from a few tasks on (vectorizing
  a meta-batch of 2 was slower than the loop), so ``vectorized`` from :data:`MIN_VECTORIZED_TASKS`;
* memory grows linearly with the tasks vectorized together, so the meta-batch is cut into equal
  chunks that fit a fraction of the free device memory (a 24 GB card at the paper settings).

The memory per task is measured portably, on any device: the bytes of the tensors autograd saves
for the second-order backward of one task (:func:`saved_tensor_bytes`).
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "ExecutorPlan",
    "MIN_VECTORIZED_TASKS",
    "MEMORY_FRACTION",
    "OVERHEAD_FACTOR",
    "plan_executor",
    "chunk_size",
    "saved_tensor_bytes",
    "free_memory_bytes",
]

#: Smallest meta-batch that is vectorized on a GPU.
MIN_VECTORIZED_TASKS = 4
#: Share of the free device memory a vectorized chunk may use.
MEMORY_FRACTION = 0.5
#: Peak memory over saved-tensor bytes (gradients, workspaces, temporaries of the backward).
OVERHEAD_FACTOR = 2.0


@dataclass(frozen=True)
class ExecutorPlan:
    """What the automatic executor runs, and why (recorded with results)."""

    #: ``sequential`` or ``vectorized``.
    executor: str
    #: tasks per vectorized chunk (None for sequential); chunks are as equal as possible.
    chunk: int | None
    #: one sentence naming the rule that decided.
    reason: str


def chunk_size(tasks: int, task_bytes: int, budget_bytes: int) -> int:
    """Tasks per chunk so that each chunk fits ``budget_bytes`` and chunks are equal-sized.

    Args:
        tasks: the meta-batch size T.
        task_bytes: peak memory of one task's meta-gradient (bytes, > 0).
        budget_bytes: memory a chunk may use.

    Returns:
        a chunk size in ``1..tasks``; ``ceil(T / chunk)`` chunks of nearly equal size (32 tasks
        that fit 12 at a time run as 11 + 11 + 10, not 12 + 12 + 8).
    """
    if tasks < 1 or task_bytes <= 0:
        raise ValueError(f"need tasks >= 1 and task_bytes > 0, got {tasks} and {task_bytes}")
    fit = max(1, min(tasks, budget_bytes // task_bytes))
    chunks = math.ceil(tasks / fit)
    return math.ceil(tasks / chunks)


def plan_executor(
    tasks: int,
    device: torch.device | str,
    *,
    task_bytes: int | None = None,
    free_bytes: int | None = None,
    memory_fraction: float = MEMORY_FRACTION,
    min_vectorized: int = MIN_VECTORIZED_TASKS,
) -> ExecutorPlan:
    """Choose the executor for a meta-batch of ``tasks`` on ``device``.

    Args:
        tasks: meta-batch size T.
        device: where the step runs.
        task_bytes: peak bytes of one task's meta-gradient (see :func:`saved_tensor_bytes`);
            None skips the memory bound (one chunk).
        free_bytes: free device memory; None asks the device (:func:`free_memory_bytes`).
        memory_fraction: share of ``free_bytes`` one chunk may use.
        min_vectorized: smallest meta-batch worth vectorizing on a GPU.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return ExecutorPlan(
            "sequential", None, f"{device.type}: vmap measured 4.5x slower than the task loop"
        )
    if tasks < min_vectorized:
        return ExecutorPlan(
            "sequential", None, f"meta-batch {tasks} < {min_vectorized}: the loop is faster"
        )
    if task_bytes is None:
        return ExecutorPlan("vectorized", tasks, "cuda: all tasks in one vectorized chunk")
    free = free_memory_bytes(device) if free_bytes is None else free_bytes
    budget = int(free * memory_fraction)
    if budget < task_bytes:
        return ExecutorPlan(
            "sequential",
            None,
            f"one task needs ~{task_bytes / 2**20:.0f} MiB, more than the "
            f"{budget / 2**20:.0f} MiB budget: the loop uses the least memory",
        )
    chunk = chunk_size(tasks, task_bytes, budget)
    return ExecutorPlan(
        "vectorized",
        chunk,
        f"cuda: {math.ceil(tasks / chunk)} chunk(s) of <= {chunk} tasks fit "
        f"{memory_fraction:.0%} of {free / 2**30:.1f} GiB free (~{task_bytes / 2**20:.0f} MiB/task)",
    )


def free_memory_bytes(device: torch.device | str) -> int:
    """Free memory on a CUDA device plus what PyTorch's caching allocator holds but does not use."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"free memory is only measured on CUDA devices, got {device}")
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + cached)


def saved_tensor_bytes(meta_loss: Callable[[], Tensor], overhead: float = OVERHEAD_FACTOR) -> int:
    """Estimate the peak memory of one meta-gradient from the tensors autograd saves.

    Runs ``meta_loss()`` once (build the loss of ONE task in it) while a saved-tensors hook adds
    up the bytes of every distinct storage the graph keeps for backward, then frees the graph.
    Device-independent, so a CPU run predicts a GPU's need.

    Args:
        meta_loss: builds and returns the scalar loss of one task's meta-objective.
        overhead: multiplier for what the backward allocates on top (gradients, workspaces).

    Returns:
        estimated bytes.
    """
    seen: dict[tuple, int] = {}

    def pack(t: Tensor) -> Tensor:
        try:
            key = (t.untyped_storage().data_ptr(), t.device.type)
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except (
            RuntimeError,
            NotImplementedError,
        ):  # tensors without storage (e.g. functorch wrappers)
            seen[(id(t), "other")] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = meta_loss()
    del loss
    # A saved output held by the hook refers to its own grad_fn: free that cycle now, not at the
    # next garbage collection (a graph alive during a CUDA graph capture breaks the capture).
    gc.collect()
    return int(sum(seen.values()) * overhead)
