"""Keeping the ranks' learners identical: initial broadcast, meta-gradient and Reptile averaging.

Why an explicit all-reduce and not ``DistributedDataParallel``: DDP synchronises gradients from
autograd hooks it prepares in its own ``forward``, expecting each gradient once per backward. A
meta-learner is driven through ``meta_loss`` (not ``forward``), and MAML's inner loop differentiates
through the parameters several times per outer step (``torch.autograd.grad(create_graph=True)`` on
fast weights built from them), the pattern peers' users report breaking under DDP (learn2learn#128,
LibFewShot#10). After ``loss.backward()`` the parameters' ``.grad`` hold the finished
meta-gradient of this rank's tasks; one bucketed ``all_reduce`` of them, weighted by each rank's
share of the tasks, gives the mean over the global meta-batch, whatever the learner's graph was.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import Tensor, nn

from metazoo.distributed.env import collective_device, is_distributed, world_size
from metazoo.episode import EpisodeBatch

__all__ = [
    "broadcast_module",
    "average_gradients",
    "average_buffers",
    "average_metrics",
    "outer_step",
    "AveragingOptimizer",
    "max_divergence",
]


def _flat_all_reduce(tensors: list[Tensor], scale: float) -> None:
    """``t <- sum over ranks of scale * t`` for every tensor, one all-reduce per dtype and device."""
    groups: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
    for tensor in tensors:
        groups.setdefault((tensor.dtype, tensor.device), []).append(tensor)
    target = collective_device()
    for group in groups.values():
        flat = torch.cat([t.reshape(-1) for t in group]).to(target)
        flat.mul_(scale)
        torch_dist.all_reduce(flat)
        for tensor, chunk in zip(group, flat.split([t.numel() for t in group])):
            tensor.copy_(chunk.view_as(tensor))


def _check_same_count(count: int) -> None:
    """Raise on every rank when the ranks disagree on the number of trainable parameters."""
    counts = torch.tensor([count, -count], dtype=torch.float64, device=collective_device())
    torch_dist.all_reduce(counts, op=torch_dist.ReduceOp.MAX)
    low, high = int(-counts[1]), int(counts[0])
    if low != high:
        raise ValueError(
            f"the ranks' learners have {low} to {high} trainable parameters: build the learner "
            "the same way on every rank (same name, config and backbone) before training"
        )


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (call once, before training)."""
    if not is_distributed():
        return
    target = collective_device()
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            data = tensor.detach().to(target)
            torch_dist.broadcast(data, src)
            tensor.copy_(data)


def average_gradients(
    parameters: Iterable[nn.Parameter], local_tasks: int, global_tasks: int
) -> None:
    """Turn each rank's meta-gradient into the mean over the global meta-batch, in place.

    Call after ``loss.backward()`` (``loss`` the mean over this rank's ``local_tasks`` tasks) and
    before clipping or ``optimizer.step()``. Rank ``r``'s gradient is weighted by
    ``local_tasks / global_tasks``, so the result is ``sum_t grad_t / global_tasks`` over all tasks.
    A parameter that got a gradient on some ranks only gets zeros elsewhere; one that got none on any
    rank keeps ``grad = None`` (so optimizers skip it, as in one process).

    Args:
        parameters: the learner's parameters (the same list, in the same order, on every rank).
        local_tasks: tasks this rank's loss averaged over.
        global_tasks: tasks of the global meta-batch (the sum of ``local_tasks`` over ranks).
    """
    if not is_distributed():
        return
    params = [p for p in parameters if p.requires_grad]
    _check_same_count(len(params))
    flags = torch.tensor([float(p.grad is not None) for p in params], device=collective_device())
    torch_dist.all_reduce(flags)
    grads = []
    for param, flag in zip(params, flags.tolist()):
        if flag and param.grad is None:
            param.grad = torch.zeros_like(param)
        if flag:
            if param.grad.is_sparse:
                raise ValueError("distributed meta-training does not support sparse gradients")
            grads.append(param.grad)
    if grads:
        _flat_all_reduce(grads, local_tasks / global_tasks)


def average_buffers(module: nn.Module, local_tasks: int, global_tasks: int) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks, weighted by tasks.

    Keeps every rank's copy identical after a step; equals one process's running statistics when
    the learner updates them linearly per task. Integer buffers (``num_batches_tracked``) advance in
    step on every rank and are left alone.
    """
    if not is_distributed():
        return
    floats = [b for b in module.buffers() if b.is_floating_point()]
    if floats:
        with torch.no_grad():
            _flat_all_reduce(floats, local_tasks / global_tasks)


def average_metrics(
    metrics: dict[str, float], local_tasks: int, global_tasks: int
) -> dict[str, float]:
    """Metrics of the global meta-batch: each rank's per-task means, weighted by its share of tasks.

    Every rank must pass the same keys. A NaN on any rank makes the result NaN on all of them, so a
    non-finite-loss check after this call takes the same branch everywhere.
    """
    if not is_distributed():
        return {k: float(v) for k, v in metrics.items()}
    keys = sorted(metrics)
    values = torch.tensor(
        [float(metrics[k]) for k in keys], dtype=torch.float64, device=collective_device()
    )
    values.mul_(local_tasks / global_tasks)
    torch_dist.all_reduce(values)
    return dict(zip(keys, values.tolist()))


class AveragingOptimizer:
    """Wraps an optimizer so that ``step()`` first averages the gradients over ranks.

    Given to a learner's ``outer_step`` (Reptile), whose ``.grad = theta - mean_t phi_t`` is the mean
    parameter delta of its tasks: averaging it over ranks with task weights averages the deltas over
    the global meta-batch before the one optimizer step. Every other attribute is the optimizer's.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, local_tasks: int, global_tasks: int):
        self.optimizer = optimizer
        self.local_tasks = local_tasks
        self.global_tasks = global_tasks
        self.steps = 0

    def step(self, closure: Any = None) -> Any:
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        average_gradients(params, self.local_tasks, self.global_tasks)
        self.steps += 1
        return self.optimizer.step(closure)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)


def outer_step(
    learner: nn.Module,
    batch: EpisodeBatch,
    optimizer: torch.optim.Optimizer,
    global_tasks: int,
    step: int | None = None,
) -> dict[str, float]:
    """Distributed ``learner.outer_step(batch, optimizer, step=step)`` on this rank's tasks.

    A learner that updates through ``optimizer.step()`` gets its gradients averaged first (see
    :class:`AveragingOptimizer`). One that writes its parameters itself has its parameter deltas
    averaged afterwards, weighted by tasks. Returns the metrics averaged over ranks.
    """
    local = len(batch)
    if not is_distributed():
        return learner.outer_step(batch, optimizer, step=step)
    params = [p for p in learner.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    wrapped = AveragingOptimizer(optimizer, local, global_tasks)
    metrics = learner.outer_step(batch, wrapped, step=step)
    if wrapped.steps == 0:
        with torch.no_grad():
            deltas = [p.detach() - b for p, b in zip(params, before)]
            _flat_all_reduce(deltas, local / global_tasks)
            for param, start, delta in zip(params, before, deltas):
                param.copy_(start + delta)
    average_buffers(learner, local, global_tasks)
    return average_metrics(metrics, local, global_tasks)


def max_divergence(module: nn.Module) -> float:
    """Largest absolute difference of any parameter or buffer between this rank and rank 0.

    A check (tests, debugging): 0.0 when the ranks hold identical learners; the same on every rank.
    """
    if not is_distributed() or world_size() == 1:
        return 0.0
    target = collective_device()
    worst = torch.zeros((), dtype=torch.float64, device=target)
    for tensor in [*module.parameters(), *module.buffers()]:
        mine = tensor.detach().to(target)
        reference = mine.clone()
        torch_dist.broadcast(reference, 0)
        if mine.numel():
            gap = (mine.double() - reference.double()).abs().max()
            worst = torch.maximum(worst, gap)
    torch_dist.all_reduce(worst, op=torch_dist.ReduceOp.MAX)
    return float(worst)
