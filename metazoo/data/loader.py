"""The DataLoader path: meta-batches built in worker processes, identical for any worker count.

Item ``b`` of :class:`EpisodeDataset` is ``sampler.batch(first + b, meta_batch)``; since every
episode draws from its own seeded generator, which worker builds it changes nothing.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader, Dataset

from metazoo.episode import EpisodeBatch

__all__ = ["EpisodeDataset", "episode_loader"]


class EpisodeDataset(Dataset):
    """Meta-batches ``first .. first + length - 1`` of a sampler, as a map-style dataset.

    Args:
        sampler: an ``EpisodeSampler`` or ``SinusoidSampler`` (its images on the CPU).
        meta_batch: tasks per meta-batch.
        length: number of meta-batches.
        first: index of the first meta-batch.
    """

    def __init__(self, sampler: Any, meta_batch: int, length: int, first: int = 0) -> None:
        self.sampler, self.meta_batch, self.length, self.first = sampler, meta_batch, length, first

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> EpisodeBatch:
        if not 0 <= index < self.length:
            raise IndexError(f"meta-batch {index} out of range 0..{self.length - 1}")
        return self.sampler.batch(self.first + index, self.meta_batch)


def episode_loader(
    sampler: Any,
    meta_batch: int,
    batches: int,
    first: int = 0,
    num_workers: int = 0,
    **loader_options: Any,
) -> DataLoader:
    """A ``DataLoader`` yielding ``sampler.batch(first + b, meta_batch)`` for ``b < batches`` in order.

    Args:
        sampler: the sampler (its dataset is copied to each worker).
        meta_batch: tasks per meta-batch.
        batches: how many meta-batches.
        first: the first meta-batch index (resume training from there).
        num_workers: worker processes (0: in this process); the batches do not depend on it.
        **loader_options: more ``DataLoader`` arguments (``pin_memory``, ``prefetch_factor``, ...).
    """
    dataset = EpisodeDataset(sampler, meta_batch, batches, first)
    return DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_identity,
        **loader_options,
    )


def _identity(item: EpisodeBatch) -> EpisodeBatch:
    return item
