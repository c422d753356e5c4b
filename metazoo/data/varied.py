"""Meta-Dataset's episode distribution: episodes of varying ways and per-class shots.

Triantafillou et al., "Meta-Dataset: A Dataset of Datasets for Learning to Learn from Few
Examples", ICLR 2020, Section 3.2. For one episode, from its own generator:

1. ways ``N ~ U{min_ways, min(max_ways, classes available)}``;
2. the N classes (uniform over the split, or inside one superclass);
3. queries per class ``Q = min(max_queries, floor(min_c count_c / 2))``, the same for every class;
4. support size ``S = min(max_support, sum_c ceil(beta * min(max_support_per_class,
   count_c - Q)))`` with ``beta ~ U(0, 1)``;
5. class weights ``alpha_c = count_c * exp(u_c)``, ``u_c ~ U(log 0.5, log 2)`` (the class's size
   times a log-uniform factor, as Meta-Dataset's ``sample_num_support_per_class``); shots
   ``K_c = min(floor(alpha_c / sum(alpha) * (S - N)) + 1, count_c - Q)``;
6. the images of each class: a random permutation, ``K_c`` support images then ``Q`` queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["VariedShape", "draw_ways", "draw_shots"]


@dataclass(frozen=True)
class VariedShape:
    """Bounds of Meta-Dataset's episode distribution (the paper's values by default)."""

    #: fewest classes per episode.
    min_ways: int = 5
    #: most classes per episode (bounded by the classes available).
    max_ways: int = 50
    #: most support images per episode.
    max_support: int = 500
    #: most support images one class contributes to the support-size draw.
    max_support_per_class: int = 100
    #: most query images per class.
    max_queries: int = 10
    #: class weights are drawn log-uniformly in [min_weight, max_weight].
    min_weight: float = 0.5
    max_weight: float = 2.0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad bound."""
        if not 1 <= self.min_ways <= self.max_ways:
            raise ValueError(
                f"varied episodes need 1 <= min_ways <= max_ways, got {self.min_ways} and "
                f"{self.max_ways}"
            )
        if self.max_queries < 1 or self.max_support < self.max_ways:
            raise ValueError(
                f"varied episodes need max_queries >= 1 and max_support >= max_ways, got "
                f"{self.max_queries} and {self.max_support} (max_ways {self.max_ways})"
            )


def draw_ways(shape: VariedShape, available: int, generator: torch.Generator) -> int:
    """N uniform in ``min_ways .. min(max_ways, available)``."""
    high = min(shape.max_ways, available)
    return int(torch.randint(shape.min_ways, high + 1, (1,), generator=generator))


def draw_shots(
    shape: VariedShape, counts: Tensor, generator: torch.Generator
) -> tuple[Tensor, int]:
    """Support images per class and queries per class of one episode.

    Args:
        shape: the distribution's bounds.
        counts: ``(N,)`` int64 images of each chosen class (each at least 2).
        generator: the episode's generator.

    Returns:
        ``(N,)`` int64 shots ``K_c >= 1`` and the queries per class ``Q >= 1``.
    """
    ways = len(counts)
    queries = min(shape.max_queries, int(counts.min()) // 2)
    remaining = counts - queries
    beta = float(torch.rand((), generator=generator, dtype=torch.float64))
    capped = remaining.clamp(max=shape.max_support_per_class).to(torch.float64)
    support = min(shape.max_support, int(torch.ceil(beta * capped).sum()))
    support = max(support, ways)  # every class keeps at least one shot
    low, high = math.log(shape.min_weight), math.log(shape.max_weight)
    logs = low + (high - low) * torch.rand(ways, generator=generator, dtype=torch.float64)
    weights = counts.to(torch.float64) * logs.exp()  # larger classes give more shots
    shots = torch.floor(weights / weights.sum() * (support - ways)).long() + 1
    return torch.minimum(shots, remaining), queries
