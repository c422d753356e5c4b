"""Support-set augmentation against a plain per-image reference."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from metazoo.data.augment import FlipShift, make_augment


def reference(image: torch.Tensor, flip: bool, dy: int, dx: int, s: int) -> torch.Tensor:
    """Flip left-right, then move the content ``dy`` down and ``dx`` right, zero fill."""
    image = image.flip(-1) if flip else image
    padded = F.pad(image, (s, s, s, s))
    height, width = image.shape[-2:]
    return padded[:, s - dy : s - dy + height, s - dx : s - dx + width]


def test_flip_shift_matches_reference():
    augment = FlipShift(flip=True, max_shift=2)
    generator = torch.Generator().manual_seed(0)
    params = [augment.draw(6, generator) for _ in range(3)]
    support = torch.rand(3, 6, 2, 7, 9)
    out = augment.apply(support, params)
    for t in range(3):
        for m in range(6):
            flip = bool(params[t]["flip"][m])
            dy, dx = params[t]["shift"][m].tolist()
            assert torch.equal(out[t, m], reference(support[t, m], flip, dy, dx, 2)), (t, m)
    flips = torch.cat([p["flip"] for p in params])
    shifts = torch.cat([p["shift"] for p in params])
    assert 0 < int(flips.sum()) < 18 and shifts.abs().max() == 2 and (shifts != 0).any()


def test_named_augmentations():
    assert make_augment(None) is None and make_augment("none") is None
    flip_only = make_augment("flip")
    assert flip_only.max_shift == 0 and flip_only.flip
    params = [flip_only.draw(4, torch.Generator().manual_seed(1))]
    assert (params[0]["shift"] == 0).all()
    shift_only = make_augment("shift")
    assert not shift_only.draw(50, torch.Generator().manual_seed(1))["flip"].any()
