"""Sinusoid regression exactly as in MAML (Finn et al. 2017, section 5.1).

Task: ``y = A sin(x - phi)`` with amplitude ``A ~ U[0.1, 5]`` and phase ``phi ~ U[0, pi]``; inputs
``x ~ U[-5, 5]``. Episodes have K support and Q query points, ``x (n, 1)`` and ``y (n, 1)`` float32.
Each episode draws from its own generator seeded by (benchmark, split, seed, index), so test tasks are
a fixed list; ``fixed_tasks=M`` additionally restricts a split to M tasks (episode ``i`` uses the
amplitude and phase of task ``i mod M``, with fresh points).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from metazoo.data.seeding import generator_for
from metazoo.episode import Episode, EpisodeBatch

__all__ = ["SinusoidConfig", "SinusoidSampler"]


@dataclass
class SinusoidConfig:
    """The sinusoid task distribution (defaults: MAML's)."""

    #: K, support points per task.
    shots: int = 10
    #: Q, query points per task.
    queries: int = 10
    #: Amplitude range ``[low, high]``.
    amplitude: tuple[float, float] = (0.1, 5.0)
    #: Phase range ``[low, high]``.
    phase: tuple[float, float] = (0.0, math.pi)
    #: Input range ``[low, high]``.
    x_range: tuple[float, float] = (-5.0, 5.0)
    #: Restrict the split to this many tasks (None: a new task for every episode).
    fixed_tasks: int | None = None
    #: ``"train-val"`` (independent query points) or ``"train-train"`` (query = support).
    mode: str = "train-val"
    #: Where episodes are returned.
    device: str | torch.device = "cpu"


class SinusoidSampler:
    """Episodes of sinusoid regression with the sampler API (``episode``, ``batch``, ``episodes``).

    Args:
        config: the task distribution.
        benchmark: part of every episode's seed.
        split: ``"train"``, ``"val"`` or ``"test"``.
        seed: another seed gives other tasks.
    """

    num_classes = 0
    superclasses = None
    ways = None

    def __init__(
        self,
        config: SinusoidConfig,
        benchmark: str = "sinusoid",
        split: str = "train",
        seed: int = 0,
    ) -> None:
        if config.mode not in ("train-val", "train-train"):
            raise ValueError(f"mode must be 'train-val' or 'train-train', got {config.mode!r}")
        if config.shots < 1 or config.queries < 0:
            raise ValueError(
                f"need shots >= 1 and queries >= 0, got {config.shots}, {config.queries}"
            )
        if config.fixed_tasks is not None and config.fixed_tasks < 1:
            raise ValueError(f"fixed_tasks must be >= 1 or None, got {config.fixed_tasks}")
        self.config, self.benchmark, self.split, self.seed = config, benchmark, split, seed

    @property
    def shots(self) -> int:
        return self.config.shots

    @property
    def queries(self) -> int:
        return self.config.shots if self.config.mode == "train-train" else self.config.queries

    def task_params(self, index: int) -> tuple[float, float]:
        """``(amplitude, phase)`` of episode ``index``."""
        task = index if self.config.fixed_tasks is None else index % self.config.fixed_tasks
        generator = generator_for(self.benchmark, self.split, self.seed, "task", task)
        low, high = self.config.amplitude
        amplitude = low + (high - low) * float(
            torch.rand(1, generator=generator, dtype=torch.float64)
        )
        low, high = self.config.phase
        phase = low + (high - low) * float(torch.rand(1, generator=generator, dtype=torch.float64))
        return amplitude, phase

    def _points(self, index: int) -> tuple[Tensor, Tensor]:
        """``x (K+Q, 1)`` and ``y (K+Q, 1)`` of episode ``index`` (float64, before the cast)."""
        amplitude, phase = self.task_params(index)
        generator = generator_for(self.benchmark, self.split, self.seed, index)
        count = self.config.shots + (
            0 if self.config.mode == "train-train" else self.config.queries
        )
        low, high = self.config.x_range
        x = low + (high - low) * torch.rand(count, 1, generator=generator, dtype=torch.float64)
        return x, amplitude * torch.sin(x - phase)

    def episode(self, index: int) -> Episode:
        """Episode ``index``: support ``(K, 1)`` and query ``(Q, 1)`` inputs and targets."""
        x, y = (t.to(self.config.device, torch.float32) for t in self._points(index))
        k = self.config.shots
        if self.config.mode == "train-train":
            return Episode(x, y, x, y)
        return Episode(x[:k], y[:k], x[k:], y[k:])

    def episodes(self, indices: Sequence[int]) -> EpisodeBatch:
        """The episodes ``indices`` stacked into a meta-batch."""
        return EpisodeBatch.stack([self.episode(i) for i in indices])

    def batch(self, index: int, meta_batch: int) -> EpisodeBatch:
        """Episodes ``index*meta_batch .. index*meta_batch + meta_batch - 1``."""
        return self.episodes(range(index * meta_batch, (index + 1) * meta_batch))

    def __repr__(self) -> str:
        return (
            f"SinusoidSampler(split={self.split!r}, seed={self.seed}, {self.config.shots}-shot, "
            f"{self.queries} queries, fixed_tasks={self.config.fixed_tasks})"
        )
