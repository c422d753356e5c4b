"""Which tasks and episodes each rank takes.

Training: rank ``r`` of ``W`` takes tasks ``r*m/W .. (r+1)*m/W - 1`` of the global meta-batch
``sampler.batch(step, m)``, so N ranks visit exactly the tasks of the single-process run, and the
meta-batch size ``m`` keeps its meaning (tasks per meta-update, over all ranks).

Evaluation: a fixed list of ``n`` episodes is cut into ``W`` contiguous blocks (sizes differ by at
most one), so concatenating the blocks in rank order gives back the episode order.
"""

from __future__ import annotations

from metazoo.distributed.env import rank, world_size
from metazoo.episode import EpisodeBatch

__all__ = ["task_range", "local_tasks", "local_batch", "episode_range"]


def task_range(global_tasks: int, rank_: int | None = None, world: int | None = None) -> range:
    """The indices (within the global meta-batch) of the tasks rank ``rank_`` adapts.

    Args:
        global_tasks: m, tasks per meta-update over all ranks.
        rank_: the rank; default this process's.
        world: the number of ranks; default this job's.

    Raises:
        ValueError: when ``m`` is not a multiple of the number of ranks.
    """
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    if global_tasks % world:
        raise ValueError(
            f"meta_batch {global_tasks} does not split evenly over {world} ranks: use a multiple of "
            f"{world} (e.g. {global_tasks + world - global_tasks % world}) or another --nproc-per-node"
        )
    share = global_tasks // world
    return range(rank_ * share, (rank_ + 1) * share)


def local_tasks(batch: EpisodeBatch) -> EpisodeBatch:
    """This rank's slice of a global meta-batch ``(m, ...)`` -> ``(m / W, ...)``; the batch itself alone."""
    if world_size() == 1:
        return batch
    tasks = task_range(len(batch))
    return batch.split(len(tasks))[rank()]


def local_batch(sampler, step: int, meta_batch: int) -> EpisodeBatch:
    """This rank's tasks of ``sampler.batch(step, meta_batch)``.

    The whole global batch is drawn and sliced (not ``sampler.episodes`` of the rank's indices),
    because a sampler may deal a batch jointly (``meta_batch_diversity``); drawing is cheap next to
    adaptation.
    """
    task_range(meta_batch)  # fail before drawing when m does not split
    return local_tasks(sampler.batch(step, meta_batch))


def episode_range(episodes: int, rank_: int | None = None, world: int | None = None) -> range:
    """The block of episode indices ``0 .. episodes-1`` that rank ``rank_`` evaluates.

    Rank ``r`` takes ``r*n//W .. (r+1)*n//W - 1``: every episode exactly once, in order.

    Raises:
        ValueError: for fewer episodes than ranks (a rank would have nothing to score).
    """
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    if episodes < world:
        raise ValueError(
            f"{episodes} episodes cannot be split over {world} ranks: evaluate at least {world} "
            "episodes, or run the evaluation in a single process"
        )
    return range(rank_ * episodes // world, (rank_ + 1) * episodes // world)
