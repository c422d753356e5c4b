"""Small generated datasets for the sampler tests (imported by the tests and by conftest)."""

from __future__ import annotations

import torch

from metazoo.data import ClassDataset, from_tensors


def grid_dataset(classes: int = 12, per_class: int = 10, superclasses: int = 3) -> ClassDataset:
    """uint8 images ``(classes*per_class, 1, 4, 4)`` whose pixels encode (class, image) uniquely.

    Pixel [0, 0] holds the class, pixel [0, 1] the image number inside its class, so a test can read
    back exactly which images an episode holds. Classes are shuffled over the samples on purpose.
    """
    y = torch.arange(classes).repeat_interleave(per_class)
    number = torch.arange(per_class).repeat(classes)
    x = torch.zeros(len(y), 1, 4, 4, dtype=torch.uint8)
    x[:, 0, 0, 0] = y.to(torch.uint8)
    x[:, 0, 0, 1] = number.to(torch.uint8)
    x[:, 0, 3, 3] = 200  # an asymmetric mark, so rotations are visible
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    superclass = torch.arange(classes) % superclasses
    return from_tensors(x[order], y[order], superclass, name="grid")


def identities(x: torch.Tensor) -> list[tuple[int, int]]:
    """``(class, image number)`` of each image of ``x (n, 1, 4, 4)`` float in [0, 1] (unrotated)."""
    codes = (x[:, 0, 0, :2] * 255).round().long()
    return [tuple(c) for c in codes.tolist()]
