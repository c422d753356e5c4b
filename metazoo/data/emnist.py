"""EMNIST (Cohen et al., 2017) as a cross-domain test set for Omniglot-trained learners
(Omniglot -> EMNIST, Chen et al., "A Closer Look at Few-shot Classification", ICLR 2019).

Read with torchvision's ``EMNIST`` loader from ``<root>/EMNIST/raw/`` (the unpacked
``emnist-<subset>-<train|test>-{images-idx3,labels-idx1}-ubyte`` files; no download here). Every
split holds every class of the subset (the ``balanced`` subset's 47 characters by default): the
few-shot test classes are all new to an Omniglot-trained learner. Images come from EMNIST's
``test`` file for the test split and its ``train`` file otherwise, transposed upright (EMNIST
stores them transposed), white strokes on black as Omniglot is read here, resized to
``image_size``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from metazoo.data.dataset import ClassDataset
from metazoo.data.paths import data_root, require_dir

__all__ = ["emnist_split"]

_FIX = (
    "unpack the EMNIST archive (torchvision.datasets.EMNIST(root, split, download=True) on a "
    "machine with network) so that <root>/EMNIST/raw holds its idx files"
)


def emnist_split(
    split: str, subset: str = "balanced", root=None, image_size: int = 28
) -> ClassDataset:
    """The classes of one EMNIST subset as a :class:`ClassDataset` of ``(1, S, S)`` uint8 images.

    Args:
        split: ``test`` reads EMNIST's test file; ``train``/``val`` its train file.
        subset: an EMNIST split (``balanced``, ``byclass``, ``letters``, ``digits``, ...).
        root: the data folder holding ``EMNIST/`` (default ``$METAZOO_DATA``).
        image_size: side of the square images.
    """
    from torchvision.datasets import EMNIST

    folder = data_root(root)
    require_dir(folder / "EMNIST" / "raw", "EMNIST", _FIX)
    try:
        data = EMNIST(str(folder), split=subset, train=split != "test", download=False)
    except RuntimeError as exc:
        raise FileNotFoundError(f"EMNIST {subset} ({split}): {exc}; {_FIX}") from None
    images = data.data.transpose(1, 2)[:, None]  # (n, 1, 28, 28), upright
    if image_size != images.shape[-1]:
        resized = F.interpolate(images.float(), size=(image_size, image_size), mode="area")
        images = resized.round().clamp(0, 255).to(torch.uint8)
    labels = data.targets.long()
    present = torch.unique(labels)
    remap = torch.full((int(labels.max()) + 1,), -1, dtype=torch.int64)
    remap[present] = torch.arange(len(present))
    names = [f"{subset}/{data.classes[c]}" for c in present.tolist()]
    return ClassDataset(images, remap[labels], names, name=f"emnist-{subset}")
