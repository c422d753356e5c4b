"""The problem shapes the speed lab times, and the synthetic episodes and model for each.

Every contender sees the same episodes (seeded per batch index) and starts from the same weights
(one model built per shape from a fixed seed, copied into each contender).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from metazoo.bench.speed import synthetic_episodes
from metazoo.episode import EpisodeBatch
from metazoo.models import make_backbone

__all__ = ["SpeedShape", "SHAPES", "QUICK_SHAPE", "get_shapes", "synthetic_batches", "make_model"]


@dataclass(frozen=True)
class SpeedShape:
    """One benchmark setting: episode shape, backbone width and the MAML protocol around it."""

    #: identifier used in result files and on the command line, e.g. ``omniglot-5w1s``.
    name: str
    #: N classes per task.
    ways: int
    #: K support examples per class.
    shots: int
    #: query examples per class.
    queries: int
    #: one image's ``(C, H, W)``.
    image_shape: tuple[int, int, int]
    #: Conv-4 filters per block (64 for Omniglot, 32 for mini-ImageNet in MAML).
    hidden: int
    #: tasks per meta-training step.
    meta_batch: int
    #: inner SGD steps in meta-training (second order through all of them).
    inner_steps: int
    #: inner steps at evaluation time.
    test_inner_steps: int
    #: inner-loop learning rate.
    inner_lr: float
    #: Adam learning rate of the outer step.
    outer_lr: float = 1e-3

    def scaled(self, meta_batch: int) -> SpeedShape:
        """The same shape with another meta-batch size (``--quick`` and ``--tasks``)."""
        return dataclasses.replace(self, meta_batch=meta_batch)

    def describe(self) -> str:
        """A one-line human description, e.g. ``5-way 1-shot 15q, 1x28x28, Conv-4 64f, ...``."""
        c, h, w = self.image_shape
        return (
            f"{self.ways}-way {self.shots}-shot {self.queries}q, {c}x{h}x{w}, Conv-4 {self.hidden}f, "
            f"meta-batch {self.meta_batch}, {self.inner_steps} inner step(s) "
            f"(eval {self.test_inner_steps}), second order, Adam outer step"
        )


#: The three shapes of issue 7: MAML's protocols (Finn et al. 2017) for these benchmarks.
SHAPES: dict[str, SpeedShape] = {
    s.name: s
    for s in (
        SpeedShape("omniglot-5w1s", 5, 1, 15, (1, 28, 28), 64, 32, 1, 3, 0.4),
        SpeedShape("omniglot-20w1s", 20, 1, 15, (1, 28, 28), 64, 16, 5, 5, 0.1),
        SpeedShape("miniimagenet-5w1s", 5, 1, 15, (3, 84, 84), 32, 4, 5, 10, 0.01),
    )
}

#: ``--quick``: the first shape with a smaller meta-batch, so a CI run stays well under a minute.
QUICK_SHAPE = SHAPES["omniglot-5w1s"].scaled(4)


def get_shapes(names: list[str | SpeedShape] | None, quick: bool = False) -> list[SpeedShape]:
    """The shapes to run: by name (or given as :class:`SpeedShape`), or all of them.

    With ``quick`` the meta-batch is cut to ``QUICK_SHAPE.meta_batch`` and, without names, only
    the first shape runs.
    """
    if not names:
        return [QUICK_SHAPE] if quick else list(SHAPES.values())
    unknown = [n for n in names if not isinstance(n, SpeedShape) and n not in SHAPES]
    if unknown:
        raise KeyError(f"unknown speed shape(s) {unknown}; choose from {sorted(SHAPES)}")
    shapes = [n if isinstance(n, SpeedShape) else SHAPES[n] for n in names]
    if quick:
        return [s.scaled(min(s.meta_batch, QUICK_SHAPE.meta_batch)) for s in shapes]
    return shapes


def synthetic_batches(
    shape: SpeedShape,
    count: int,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> list[EpisodeBatch]:
    """``count`` meta-batches of Omniglot-shaped synthetic tasks, resident on ``device``: the
    episodes of ``metazoo speed`` (:func:`metazoo.bench.speed.synthetic_episodes`) at ``shape``.

    Returns:
        batches with ``support_x (T, N*K, C, H, W)``, ``support_y (T, N*K)``,
        ``query_x (T, N*Q, C, H, W)``, ``query_y (T, N*Q)``; ``T = shape.meta_batch``.
    """
    return synthetic_episodes(
        shape.ways,
        shape.shots,
        shape.queries,
        shape.image_shape,
        shape.meta_batch,
        count,
        seed=seed,
        device=device,
        dtype=dtype,
    )


def make_model(shape: SpeedShape, seed: int = 0) -> nn.Module:
    """The Conv-4 classifier for ``shape`` (transductive BatchNorm), initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG as it was
        torch.manual_seed(seed)
        return make_backbone(
            "conv4", shape.image_shape, out_features=shape.ways, hidden=shape.hidden
        )
