"""Class-indexed datasets: images (or any tensors) with a class label and an optional superclass.

A :class:`ClassDataset` is what the sampler draws episodes from. Its images are either one tensor held
in memory (``(num_images, C, H, W)`` uint8, or float for non-image data) or an :class:`ImageSource`
that decodes files on demand (the DataLoader path for datasets that do not fit in memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["ClassDataset", "ImageSource", "from_tensors"]


class ImageSource(Protocol):
    """Images decoded on demand: ``gather(indices)`` returns ``(len(indices), C, H, W)`` uint8."""

    def __len__(self) -> int: ...

    def gather(self, indices: Tensor) -> Tensor: ...


@dataclass
class ClassDataset:
    """Images grouped into classes, classes optionally grouped into superclasses.

    Attributes:
        images: ``(num_images, C, H, W)`` uint8 images (scaled to [0, 1] by the sampler), a float
            tensor ``(num_images, *features)`` used as is, or an :class:`ImageSource`.
        labels: ``(num_images,)`` int64 class index in ``0..num_classes-1`` of each image.
        class_names: name of each class (e.g. ``"Latin/character03"``).
        superclass: ``(num_classes,)`` int64 superclass index of each class, or None.
        superclass_names: name of each superclass (e.g. alphabet names), or None.
        name: a short name used in error messages.
        class_groups: overlapping sets of class indices an episode may draw from with
            ``hierarchy="dag"`` (Meta-Dataset's ImageNet DAG nodes), or None; ``subset`` drops them.
    """

    images: Tensor | ImageSource
    labels: Tensor
    class_names: list[str]
    superclass: Tensor | None = None
    superclass_names: list[str] | None = None
    name: str = "dataset"
    class_groups: list[list[int]] | None = None

    def __post_init__(self) -> None:
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)
        if self.labels.dim() != 1 or len(self.labels) != len(self.images):
            raise ValueError(
                f"{self.name}: labels must have shape ({len(self.images)},) (one per image), "
                f"got {tuple(self.labels.shape)}"
            )
        counts = self.class_counts
        empty = [self.class_names[c] for c in torch.nonzero(counts == 0).flatten().tolist()]
        if empty:
            raise ValueError(
                f"{self.name}: class(es) with no images: {', '.join(empty[:5])}"
                f"{' ...' if len(empty) > 5 else ''}; remove them or add images"
            )
        if self.superclass is not None:
            self.superclass = torch.as_tensor(self.superclass, dtype=torch.int64)
            if self.superclass.shape != (self.num_classes,):
                raise ValueError(
                    f"{self.name}: superclass must have shape ({self.num_classes},), "
                    f"got {tuple(self.superclass.shape)}"
                )
            if self.superclass_names is None:
                count = int(self.superclass.max()) + 1 if self.num_classes else 0
                self.superclass_names = [str(s) for s in range(count)]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def class_counts(self) -> Tensor:
        """``(num_classes,)`` int64 number of images of each class."""
        return torch.bincount(self.labels, minlength=self.num_classes)

    def subset(self, class_ids: Sequence[int]) -> ClassDataset:
        """The dataset restricted to ``class_ids`` (relabelled ``0..len(class_ids)-1`` in that order).

        Images stay where they are when they live in an :class:`ImageSource`; an in-memory tensor
        is sliced, so the subset holds only its own images.
        """
        class_ids = torch.as_tensor(list(class_ids), dtype=torch.int64)
        remap = torch.full((self.num_classes,), -1, dtype=torch.int64)
        remap[class_ids] = torch.arange(len(class_ids))
        keep = torch.nonzero(remap[self.labels] >= 0).flatten()
        images = (
            self.images[keep] if isinstance(self.images, Tensor) else _Subset(self.images, keep)
        )
        superclass, names = None, None
        if self.superclass is not None:
            used, superclass = torch.unique(self.superclass[class_ids], return_inverse=True)
            names = [self.superclass_names[s] for s in used.tolist()]
        return ClassDataset(
            images,
            remap[self.labels[keep]],
            [self.class_names[c] for c in class_ids.tolist()],
            superclass,
            names,
            self.name,
        )


class _Subset:
    """Some images of an :class:`ImageSource`."""

    def __init__(self, source: ImageSource, keep: Tensor) -> None:
        self.source, self.keep = source, keep

    def __len__(self) -> int:
        return len(self.keep)

    def gather(self, indices: Tensor) -> Tensor:
        return self.source.gather(self.keep[indices])


def from_tensors(
    x: Tensor,
    y: Tensor,
    superclass: Tensor | None = None,
    *,
    class_names: list[str] | None = None,
    superclass_names: list[str] | None = None,
    name: str = "tensors",
) -> ClassDataset:
    """A :class:`ClassDataset` from tensors with labels (bring your own domain).

    Args:
        x: ``(num_samples, C, H, W)`` uint8 images, or float ``(num_samples, *features)`` used as is.
        y: ``(num_samples,)`` integer class labels (any values; relabelled ``0..C-1`` in sorted order).
        superclass: ``(num_classes,)`` superclass of each class in sorted label order, or
            ``(num_samples,)`` superclass of each sample (must agree within a class), or None.
        class_names: names of the classes in sorted label order (default: the label values).
        superclass_names: names of the superclasses (default: their indices).
        name: a name for error messages.
    """
    values, labels = torch.unique(torch.as_tensor(y), sorted=True, return_inverse=True)
    if superclass is not None:
        superclass = torch.as_tensor(superclass, dtype=torch.int64)
        if len(superclass) == len(labels) and len(superclass) != len(values):
            per_class = torch.full((len(values),), -1, dtype=torch.int64)
            per_class[labels] = superclass
            if not torch.equal(per_class[labels], superclass):
                raise ValueError(f"{name}: samples of one class have different superclasses")
            superclass = per_class
    names = class_names or [str(v) for v in values.tolist()]
    return ClassDataset(x, labels, names, superclass, superclass_names, name)
