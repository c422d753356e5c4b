"""Distributed evaluation: each rank scores a block of the fixed episode list, all get every score.

The harness evaluates episodes :func:`~metazoo.distributed.partition.episode_range` on each rank
and calls :func:`gather_scores`; the scores come back in episode order, as float64 (the Python
floats the harness keeps), so mean ± CI are bit-for-bit those of one process.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as torch_dist

from metazoo.distributed.env import collective_device, is_distributed, world_size
from metazoo.distributed.partition import episode_range

__all__ = ["gather_scores"]


def gather_scores(local_scores: Sequence[float], episodes: int) -> list[float]:
    """All ranks' per-episode scores of episodes ``0 .. episodes-1``, in episode order, on every rank.

    Args:
        local_scores: this rank's scores of ``episode_range(episodes)``, in order.
        episodes: the total number of episodes.

    Raises:
        ValueError: when a rank's number of scores is not the size of its block.
    """
    if not is_distributed():
        return list(local_scores)
    world = world_size()
    sizes = [len(episode_range(episodes, r, world)) for r in range(world)]
    mine = list(local_scores)
    expected = len(episode_range(episodes))
    if len(mine) != expected:
        raise ValueError(
            f"this rank scored {len(mine)} episodes, but its block of {episodes} is {expected}: "
            "iterate over metazoo.distributed.episode_range(episodes)"
        )
    # all_gather needs equal sizes: pad every block to the largest, then trim.
    width = max(sizes)
    padded = torch.zeros(width, dtype=torch.float64, device=collective_device())
    padded[: len(mine)] = torch.tensor(mine, dtype=torch.float64)
    blocks = [torch.empty_like(padded) for _ in range(world)]
    torch_dist.all_gather(blocks, padded)
    return [value for block, size in zip(blocks, sizes) for value in block[:size].tolist()]
