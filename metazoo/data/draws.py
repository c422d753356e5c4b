"""Vectorised random choices for a meta-batch, from per-episode random streams.

Each episode's generator gives one row of uniforms (a single ``torch.rand`` call, float64); all the
choices (classes, images) are then computed for every task at once from those rows. An episode's
row depends only on its own seed, so an episode is the same in any batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from metazoo.data.seeding import generator_for

__all__ = ["episode_uniforms", "first_distinct", "choose_by_keys", "choose_images"]


def episode_uniforms(
    key: tuple, indices: Sequence[int], length: int, augment=None, augment_count: int = 0
) -> tuple[Tensor, list]:
    """``(T, length)`` float64 uniforms, row ``t`` from episode ``indices[t]``'s generator.

    Args:
        key: ``(benchmark, split, seed)``.
        indices: episode indices.
        length: uniforms per episode.
        augment: an augmentation whose ``draw(augment_count, generator)`` is called after the
            uniforms, with the same generator.
        augment_count: images it augments per episode.

    Returns:
        The uniforms and the per-episode augmentation parameters (empty without ``augment``).
    """
    rows, params = [], []
    for index in indices:
        generator = generator_for(*key, index)
        rows.append(torch.rand(length, generator=generator, dtype=torch.float64))
        if augment is not None:
            params.append(augment.draw(augment_count, generator))
    return torch.stack(rows), params


def first_distinct(candidates: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """The first ``count`` distinct values of each row, in order of appearance.

    Args:
        candidates: ``(T, M)`` int64 draws.
        count: how many distinct values are wanted.

    Returns:
        ``(T, count)`` values and a ``(T,)`` bool mask of the rows that had fewer than ``count``
        distinct values (their output row is garbage; redraw them).
    """
    width = candidates.shape[1]
    earlier = torch.ones(width, width, dtype=torch.bool).tril(-1)
    repeat = ((candidates[:, :, None] == candidates[:, None, :]) & earlier).any(-1)
    position = torch.arange(width).expand_as(candidates)
    order = torch.where(repeat, width + position, position).argsort(dim=1)[:, :count]
    short = (~repeat).sum(1) < count
    return candidates.gather(1, order), short


def choose_by_keys(keys: Tensor, sizes: Tensor, count: int) -> Tensor:
    """``count`` distinct positions in ``0..sizes[t]-1`` per row, in random order.

    Args:
        keys: ``(T, P)`` uniforms, ``P >= sizes.max()``.
        sizes: ``(T,)`` number of valid positions per row.
        count: positions to choose (at most ``sizes.min()``).
    """
    keys = keys.masked_fill(torch.arange(keys.shape[1]) >= sizes[:, None], 2.0)
    return keys.argsort(dim=1)[:, :count]


def choose_images(keys: Tensor, counts: Tensor, need: int, all_full: bool) -> Tensor:
    """Positions of ``need`` images inside each chosen class.

    A class with fewer than ``need`` images (only allowed with ``replacement=True``) cycles through a
    random permutation of its images.

    Args:
        keys: ``(T, N, M)`` uniforms, ``M`` = the largest class size.
        counts: ``(T, N)`` images of each chosen class.
        need: ``shots + queries`` (or ``shots`` in train-train mode).
        all_full: every class has ``M`` images (skips the masking).
    """
    if not all_full:
        keys = keys.masked_fill(torch.arange(keys.shape[-1]) >= counts[..., None], 2.0)
    permutation = keys.argsort(dim=-1)
    if need <= int(counts.min()):
        return permutation[..., :need]
    columns = torch.arange(need) % counts[..., None]
    return permutation.gather(-1, columns)
