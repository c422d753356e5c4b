"""CUB-200-2011 (Wah et al. 2011) with the standard 100/50/50 few-shot class split.

Reads ``$METAZOO_DATA/CUB_200_2011/images/<NNN.Class_name>/*.jpg`` (the layout of the official
``CUB_200_2011.tgz``). The split (Hilliard et al. 2018, as used by Chen et al. 2019 "A Closer Look at
Few-shot Classification" and Torchmeta: over the sorted class folders, index ``i % 2 == 0`` train,
``i % 4 == 1`` val, ``i % 4 == 3`` test) is shipped in ``metazoo/data/splits/cub``. Images are
resized to ``image_size`` (whole image, no bounding-box crop), decoded once and cached.
Get the archive from https://data.caltech.edu/records/65de6-vp158 (no automatic download here).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from metazoo.data.cache import cached, files_key, read_split_list
from metazoo.data.dataset import ClassDataset
from metazoo.data.images import IMAGE_SUFFIXES, decode_images
from metazoo.data.paths import data_root, require_dir

__all__ = ["FOLDER", "cub_split"]

FOLDER = "CUB_200_2011"
HINT = "Download CUB_200_2011.tgz from https://data.caltech.edu/records/65de6-vp158 and unpack it there."


def _class_files(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise FileNotFoundError(
            f"CUB: class folder {folder} is missing; the copy is incomplete. {HINT}"
        )
    files = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"empty class folder {folder}: no image files; re-extract CUB")
    return files


def cub_split(
    split: str,
    image_size: int = 84,
    root: str | os.PathLike | None = None,
    workers: int | None = None,
) -> ClassDataset:
    """One split of CUB (100/50/50 bird species).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        image_size: side of the square images.
        root: the data root holding ``CUB_200_2011/`` (default ``$METAZOO_DATA``).
        workers: decoding processes.
    """
    images_dir = require_dir(data_root(root) / FOLDER / "images", "CUB-200-2011", HINT)
    names = read_split_list("cub", split)
    per_class = [_class_files(images_dir / name) for name in names]
    files = [f for class_files in per_class for f in class_files]

    def build() -> dict:
        return {"images": decode_images(files, image_size, channels=3, workers=workers)}

    key = files_key(files, [os.path.relpath(f, images_dir) for f in files], image_size)
    images = cached("cub", f"{split}-{image_size}px-{key}", build)["images"]
    labels = torch.repeat_interleave(
        torch.arange(len(names)), torch.tensor([len(c) for c in per_class])
    )
    return ClassDataset(images, labels, names, name=f"cub/{split}")
