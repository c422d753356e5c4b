"""Optional support-set augmentation, with its random numbers drawn from the episode's generator.

Parameters are drawn per task (in :meth:`draw`, from the episode generator, so they do not depend on
the batch) and applied to the whole meta-batch at once (in :meth:`apply`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["make_augment", "FlipShift", "CallableAugment"]

AugmentSpec = str | Callable[[Tensor, torch.Generator], Tensor] | None


class FlipShift:
    """Random horizontal flips (p=0.5) and/or random shifts by up to ``max_shift`` pixels (zero fill).

    Args:
        flip: flip images left-right with probability 1/2.
        max_shift: largest shift in pixels along each axis (0: no shift).
    """

    def __init__(self, flip: bool = True, max_shift: int = 2) -> None:
        self.flip, self.max_shift = flip, max_shift

    def draw(self, count: int, generator: torch.Generator) -> dict[str, Tensor]:
        """Parameters for ``count`` support images: ``flip (count,)`` bool, ``shift (count, 2)`` int64."""
        flip = torch.rand(count, generator=generator) < 0.5
        s = self.max_shift
        shift = torch.randint(-s, s + 1, (count, 2), generator=generator)
        return {"flip": flip & self.flip, "shift": shift}

    def apply(self, support: Tensor, params: list[dict[str, Tensor]]) -> Tensor:
        """Augment ``support (T, M, C, H, W)`` with the per-task ``params`` (one dict per task).

        Flip, then shift by ``(dy, dx)`` (content moves down/right), as one gather from the
        zero-padded images: output pixel ``(i, j)`` reads original pixel ``(i - dy, j - dx)``, or
        ``(i - dy, W-1-j + dx)`` when flipped.
        """
        tasks, count, channels, height, width = support.shape
        device, s = support.device, self.max_shift
        flip = torch.stack([p["flip"] for p in params]).to(device).flatten()  # (T*M,)
        shift = torch.stack([p["shift"] for p in params]).to(device).reshape(-1, 2)  # (T*M, 2)
        j = torch.arange(width, device=device)[None, :]
        dx = shift[:, 1:]
        cols = torch.where(flip[:, None], width - 1 - j + dx, j - dx) + s  # (T*M, W)
        rows = torch.arange(height, device=device)[None, :] + s - shift[:, :1]  # (T*M, H)
        source = rows[:, :, None] * (width + 2 * s) + cols[:, None, :]  # (T*M, H, W)
        padded = F.pad(support.reshape(-1, channels, height, width), (s, s, s, s))
        flat_source = source.view(len(flip), 1, -1).expand(-1, channels, -1)
        out = padded.flatten(2).gather(2, flat_source)
        return out.view_as(support)


class CallableAugment:
    """Wraps ``fn(support_x (N*K, C, H, W), generator) -> same`` applied task by task."""

    def __init__(self, fn: Callable[[Tensor, torch.Generator], Tensor]) -> None:
        self.fn = fn

    def draw(self, count: int, generator: torch.Generator) -> int:
        """A seed for this task's augmentation generator."""
        return int(torch.randint(2**62, (1,), generator=generator))

    def apply(self, support: Tensor, params: list[int]) -> Tensor:
        out = []
        for task, seed in zip(support, params):
            generator = torch.Generator()
            generator.manual_seed(seed)
            out.append(self.fn(task, generator))
        return torch.stack(out)


def make_augment(spec: AugmentSpec) -> FlipShift | CallableAugment | None:
    """An augmentation from ``None``, ``"flip"``, ``"shift"``, ``"flip-shift"`` or a callable."""
    if spec is None or spec == "none":
        return None
    if callable(spec):
        return CallableAugment(spec)
    known = {
        "flip": FlipShift(True, 0),
        "shift": FlipShift(False, 2),
        "flip-shift": FlipShift(True, 2),
    }
    if spec not in known:
        raise ValueError(
            f"augment must be None, a callable or one of {sorted(known)}, got {spec!r}"
        )
    return known[spec]
