"""Multi-source episodes (Meta-Dataset's training): each episode from one source, the source drawn
uniformly from the episode's own seed, so episode ``i`` is fixed by (benchmark, split, seed, i)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from metazoo.data.sampler import EpisodeSampler
from metazoo.data.seeding import generator_for
from metazoo.episode import Episode, EpisodeList, collate

__all__ = ["MultiSourceSampler"]


class MultiSourceSampler:
    """Episodes from several sources, one source per episode.

    Args:
        samplers: source name -> that source's sampler of this split (its own episode seeds).
        benchmark: the benchmark name, part of every source draw's seed.
        split: the split, part of every source draw's seed.
        seed: another seed gives other episodes.
    """

    def __init__(
        self, samplers: dict[str, EpisodeSampler], benchmark: str, split: str, seed: int = 0
    ) -> None:
        if not samplers:
            raise ValueError(f"{benchmark}: no source for split {split!r}; name at least one")
        self.samplers = dict(samplers)
        self.sources = list(self.samplers)
        self.benchmark, self.split, self.seed = benchmark, split, seed

    @property
    def num_classes(self) -> int:
        """Classes of the split over all sources."""
        return sum(s.num_classes for s in self.samplers.values())

    @property
    def ways(self) -> int:
        """The largest ways of any source's episodes."""
        return max(s.ways for s in self.samplers.values())

    def source_of(self, index: int) -> str:
        """The source of episode ``index``, uniform over the sources."""
        generator = generator_for(self.benchmark, self.split, self.seed, "source", index)
        return self.sources[int(torch.randint(len(self.sources), (), generator=generator))]

    def episode(self, index: int) -> Episode:
        """Episode ``index``: episode ``index`` of its source's sampler."""
        return self.samplers[self.source_of(index)].episode(index)

    def episodes(self, indices: Sequence[int]) -> EpisodeList:
        """The episodes ``indices`` as one meta-batch of (possibly) different sizes."""
        batch = collate([self.episode(i) for i in indices])
        return batch if isinstance(batch, EpisodeList) else EpisodeList(tuple(batch))

    def batch(self, index: int, meta_batch: int) -> EpisodeList:
        """Meta-batch ``index``: episodes ``index*meta_batch ..`` (each of its own source)."""
        return self.episodes(range(index * meta_batch, (index + 1) * meta_batch))

    def __repr__(self) -> str:
        return (
            f"MultiSourceSampler({self.benchmark!r}, split={self.split!r}, seed={self.seed}, "
            f"sources={self.sources})"
        )
