"""Synthetic episodes shaped like a benchmark card's, for :mod:`metazoo.bench.speed`: speed depends
on shapes, not pixel values, so no dataset has to be downloaded (each class is a random template
plus noise; a regression task is a random sinusoid)."""

from __future__ import annotations

import math

import torch

from metazoo.cards import benchmark_card
from metazoo.episode import EpisodeBatch

__all__ = ["SYNTHETIC_CLASSES", "synthetic_episodes", "regression_episodes", "benchmark_episodes"]

#: Dataset-wide classes that synthetic episodes draw their ``classes`` from (the pre-training head
#: of learners such as the fine-tuning baseline is this wide).
SYNTHETIC_CLASSES = 64


def synthetic_episodes(
    ways: int,
    shots: int,
    queries: int,
    image_shape: tuple[int, ...],
    meta_batch: int,
    count: int,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    num_classes: int | None = None,
) -> list[EpisodeBatch]:
    """``count`` meta-batches of learnable synthetic classification tasks, on ``device``.

    Each class is a random template in [0, 1] plus Gaussian noise, so a task is learnable and the
    meta-gradient is not degenerate. Batch ``i`` depends only on ``(seed, i)``.

    Args:
        num_classes: when given, ``classes (T, N)`` holds distinct dataset-wide class ids below it.

    Returns:
        batches with ``support_x (T, N*K, *image_shape)``, ``support_y (T, N*K)``,
        ``query_x (T, N*Q, *image_shape)``, ``query_y (T, N*Q)``; ``T = meta_batch``.
    """
    batches = []
    for index in range(count):
        g = torch.Generator().manual_seed(seed * 100_003 + index)
        t, n = meta_batch, ways
        templates = torch.rand(t, n, *image_shape, generator=g)

        def draw(per_class: int, g=g, templates=templates, t=t, n=n):
            labels = torch.arange(n).repeat_interleave(per_class).expand(t, -1).contiguous()
            images = templates[torch.arange(t)[:, None], labels]
            noise = 0.3 * torch.randn(images.shape, generator=g)
            return (images + noise).clamp(0, 1), labels

        sx, sy = draw(shots)
        qx, qy = draw(queries)
        classes = None
        if num_classes is not None:  # drawn last: the images do not depend on it
            classes = torch.stack([torch.randperm(num_classes, generator=g)[:n] for _ in range(t)])
        batch = EpisodeBatch(sx.to(dtype), sy, qx.to(dtype), qy, ways=n, classes=classes)
        batches.append(batch.to(device))
    return batches


def regression_episodes(
    shots: int,
    queries: int,
    input_shape: tuple[int, ...],
    meta_batch: int,
    count: int,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> list[EpisodeBatch]:
    """``count`` meta-batches of random sinusoids ``y = A sin(mean(x) - phi)``, x in [-5, 5].

    Returns:
        batches with ``support_x (T, K, *input_shape)``, ``support_y (T, K, 1)``,
        ``query_x (T, Q, *input_shape)``, ``query_y (T, Q, 1)``; ``T = meta_batch``.
    """
    batches = []
    for index in range(count):
        g = torch.Generator().manual_seed(seed * 100_003 + index)
        x = 10 * torch.rand(meta_batch, shots + queries, *input_shape, generator=g) - 5
        amplitude = 0.1 + 4.9 * torch.rand(meta_batch, 1, 1, generator=g)
        phase = math.pi * torch.rand(meta_batch, 1, 1, generator=g)
        y = amplitude * torch.sin(x.flatten(2).mean(-1, keepdim=True) - phase)
        x, y = x.to(dtype), y.to(dtype)
        batch = EpisodeBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])
        batches.append(batch.to(device))
    return batches


def benchmark_episodes(
    benchmark: str,
    count: int,
    *,
    meta_batch: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> list[EpisodeBatch]:
    """Synthetic meta-batches shaped like ``benchmark``'s card (its meta-batch unless given)."""
    card = benchmark_card(benchmark)
    tasks = meta_batch or int(card["meta_batch"])
    shape = tuple(card["input_shape"])
    if card["task"] == "regression":
        return regression_episodes(
            card["shots"], card["queries"], shape, tasks, count, seed=seed, device=device
        )
    return synthetic_episodes(
        card["ways"],
        card["shots"],
        card["queries"],
        shape,
        tasks,
        count,
        seed=seed,
        device=device,
        num_classes=SYNTHETIC_CLASSES,
    )
