"""Scale-out: data-parallel meta-training and evaluation under ``torchrun`` (see docs/scaling-out.md).

The trainer and the harness call these functions unconditionally; without a process group each is
the single-process identity (rank 0 of 1, every task, every episode, gradients untouched).

Training step on ``W`` ranks with global meta-batch ``m``::

    batch = dist.local_batch(sampler, step, m)          # tasks r*m/W .. (r+1)*m/W - 1
    loss, metrics = learner.meta_loss(batch)
    loss.backward()                                     # or the engine's chunked backward
    dist.average_gradients(learner.parameters(), len(batch), m)   # mean over all m tasks
    optimizer.step()

Reptile-like learners: ``dist.outer_step(learner, batch, optimizer, m, step)``.

Internal: not part of metazoo's public API ("Public names" in docs/design.md).
"""

from metazoo.distributed.env import (
    BACKEND_VAR,
    INIT_METHOD_VAR,
    DistEnv,
    barrier,
    collective_device,
    env_from,
    init,
    is_distributed,
    is_main,
    launched,
    on_main,
    rank,
    rank_device,
    shutdown,
    world_size,
)
from metazoo.distributed.evaluation import gather_scores
from metazoo.distributed.partition import episode_range, local_batch, local_tasks, task_range
from metazoo.distributed.sync import (
    AveragingOptimizer,
    average_buffers,
    average_gradients,
    average_metrics,
    broadcast_module,
    max_divergence,
    outer_step,
)

__all__ = [
    "DistEnv",
    "INIT_METHOD_VAR",
    "BACKEND_VAR",
    "env_from",
    "launched",
    "init",
    "shutdown",
    "is_distributed",
    "rank",
    "world_size",
    "is_main",
    "barrier",
    "collective_device",
    "on_main",
    "rank_device",
    "task_range",
    "local_tasks",
    "local_batch",
    "episode_range",
    "gather_scores",
    "broadcast_module",
    "average_gradients",
    "average_buffers",
    "average_metrics",
    "outer_step",
    "AveragingOptimizer",
    "max_divergence",
]
