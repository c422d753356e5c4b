"""CIFAR-FS (Bertinetto et al. 2019) and FC100 (Oreshkin et al. 2018), built from CIFAR-100.

Both read torchvision's CIFAR-100 copy, ``$METAZOO_DATA/cifar-100-python/{train,test,meta}`` (the
python pickles; ``python -m metazoo.data download cifarfs`` fetches it with torchvision's URL and
md5), merge its train and test images (600 per class, 32x32 RGB) and keep the classes of the split:

* CIFAR-FS: 64/16/20 fine classes, listed in ``metazoo/data/splits/cifarfs`` (the published split,
  as shipped by Torchmeta); superclass = the CIFAR-100 coarse class.
* FC100: 12/4/4 coarse classes (60/20/20 fine classes), listed in ``metazoo/data/splits/fc100``;
  superclass = the coarse class.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from metazoo.data.cache import read_split_list, resize_images
from metazoo.data.dataset import ClassDataset
from metazoo.data.paths import data_root, require_dir

__all__ = ["FOLDER", "download_cifar100", "load_cifar100", "cifarfs_split", "fc100_split"]

FOLDER = "cifar-100-python"
HINT = "Download it with `python -m metazoo.data download cifarfs` (or --root DIR)."


def download_cifar100(root: str | os.PathLike | None = None) -> Path:
    """Download and unpack CIFAR-100 (torchvision's URL and md5) into ``root``; returns the folder."""
    from torchvision.datasets import CIFAR100

    CIFAR100(str(data_root(root)), train=True, download=True)
    return data_root(root) / FOLDER


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-100: no file {path}. {HINT}")
    with open(path, "rb") as handle:
        return pickle.load(handle, encoding="latin1")


def load_cifar100(root: str | os.PathLike | None = None) -> ClassDataset:
    """All 100 fine classes (train + test images, ``(60000, 3, 32, 32)`` uint8), coarse superclasses."""
    folder = require_dir(data_root(root) / FOLDER, "CIFAR-100", HINT)
    meta = _unpickle(folder / "meta")
    parts = [_unpickle(folder / name) for name in ("train", "test")]
    images = np.concatenate([np.asarray(p["data"], dtype=np.uint8) for p in parts])
    fine = np.concatenate([np.asarray(p["fine_labels"]) for p in parts])
    coarse = np.concatenate([np.asarray(p["coarse_labels"]) for p in parts])
    superclass = np.zeros(len(meta["fine_label_names"]), dtype=np.int64)
    superclass[fine] = coarse
    return ClassDataset(
        torch.from_numpy(images.reshape(-1, 3, 32, 32)),
        torch.from_numpy(fine.astype(np.int64)),
        list(meta["fine_label_names"]),
        torch.from_numpy(superclass),
        list(meta["coarse_label_names"]),
        "cifar100",
    )


def _select(
    full: ClassDataset, names: list[str], image_size: int | None, name: str
) -> ClassDataset:
    index = {n: i for i, n in enumerate(full.class_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise ValueError(f"{name}: classes {missing[:3]} are not in CIFAR-100's meta file")
    subset = full.subset([index[n] for n in names])
    subset.images = resize_images(subset.images, image_size)
    subset.name = name
    return subset


def cifarfs_split(
    split: str, image_size: int | None = 32, root: str | os.PathLike | None = None
) -> ClassDataset:
    """CIFAR-FS ``split`` (64/16/20 classes), images resized to ``image_size`` (None: 32)."""
    names = read_split_list("cifarfs", split)
    return _select(load_cifar100(root), names, image_size, f"cifarfs/{split}")


def fc100_split(
    split: str, image_size: int | None = 32, root: str | os.PathLike | None = None
) -> ClassDataset:
    """FC100 ``split``: every fine class of its 12/4/4 coarse classes (60/20/20 classes)."""
    full = load_cifar100(root)
    groups = set(read_split_list("fc100", split))
    unknown = groups - set(full.superclass_names)
    if unknown:
        raise ValueError(f"fc100/{split}: coarse classes {sorted(unknown)} are not in CIFAR-100")
    names = [
        n
        for n, s in zip(full.class_names, full.superclass.tolist())
        if full.superclass_names[s] in groups
    ]
    return _select(full, names, image_size, f"fc100/{split}")
