"""mini-ImageNet (Vinyals et al. 2016) with the Ravi & Larochelle (2017) 64/16/20 class split.

Two on-disk formats under ``$METAZOO_DATA/miniimagenet/``, tried in this order:

* the common pickles ``mini-imagenet-cache-{train,val,test}.pkl``: a dict with ``image_data``
  ``(n, 84, 84, 3)`` uint8 and ``class_dict`` ``{wnid: [row indices]}``;
* Ravi & Larochelle's CSVs ``{train,val,test}.csv`` (header ``filename,label``) with the images in
  ``images/<filename>`` (decoded once, resized to ``image_size``, cached under ``$METAZOO_CACHE``).

The class lists are shipped in ``metazoo/data/splits/miniimagenet``; a copy whose classes differ is
an error. mini-ImageNet cannot be downloaded automatically (ImageNet's licence): get the CSVs from
github.com/twitter/meta-learning-lstm (``data/miniImagenet``) and the images from ImageNet, or the
pickles from the MAML++ / learn2learn instructions, and put them in that folder.
"""

from __future__ import annotations

import csv
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from metazoo.data.cache import cached, files_key, read_split_list, resize_images
from metazoo.data.dataset import ClassDataset
from metazoo.data.images import decode_images
from metazoo.data.paths import data_root, require_dir

__all__ = ["FOLDER", "miniimagenet_split", "HINT"]

FOLDER = "miniimagenet"
HINT = (
    "mini-ImageNet cannot be downloaded automatically: put mini-imagenet-cache-<split>.pkl, or "
    "<split>.csv plus images/, in that folder (see docs/data.md)."
)


def _check_classes(found: list[str], split: str, where: Path) -> list[str]:
    expected = read_split_list(FOLDER, split)
    if sorted(found) != expected:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        raise ValueError(
            f"{where}: classes differ from the Ravi & Larochelle {split} split "
            f"(missing {missing[:3]}, unexpected {extra[:3]}); use the standard files"
        )
    return expected


def _from_pickle(path: Path, split: str, image_size: int) -> ClassDataset:
    with open(path, "rb") as handle:
        data = pickle.load(handle)
    wnids = _check_classes(list(data["class_dict"]), split, path)
    rows = [np.asarray(data["class_dict"][w], dtype=np.int64) for w in wnids]
    order = torch.from_numpy(np.concatenate(rows))
    images = torch.from_numpy(np.ascontiguousarray(data["image_data"])).permute(0, 3, 1, 2)
    labels = torch.repeat_interleave(torch.arange(len(wnids)), torch.tensor([len(r) for r in rows]))
    images = resize_images(images[order].contiguous(), image_size)
    return ClassDataset(images, labels, wnids, name=f"miniimagenet/{split}")


def _from_csv(folder: Path, split: str, image_size: int, workers: int | None) -> ClassDataset:
    path = folder / f"{split}.csv"
    with open(path, newline="") as handle:
        rows = sorted((r["label"], r["filename"]) for r in csv.DictReader(handle))
    if not rows:
        raise ValueError(
            f"{path}: no rows; expected a header 'filename,label' and one row per image"
        )
    wnids = _check_classes(sorted({label for label, _ in rows}), split, path)
    require_dir(folder / "images", "mini-ImageNet images", HINT)
    files = [str(folder / "images" / name) for _, name in rows]

    def build() -> dict:
        index = {w: i for i, w in enumerate(wnids)}
        return {
            "images": decode_images(files, image_size, channels=3, workers=workers),
            "labels": torch.tensor([index[label] for label, _ in rows]),
        }

    # the CSV too: relabelling an image changes the decoded labels
    key = files_key([path, *files], [path.name, *(name for _, name in rows)], image_size)
    fields = cached(FOLDER, f"{split}-{image_size}px-{key}", build)
    return ClassDataset(fields["images"], fields["labels"], wnids, name=f"miniimagenet/{split}")


def miniimagenet_split(
    split: str,
    image_size: int = 84,
    root: str | os.PathLike | None = None,
    workers: int | None = None,
) -> ClassDataset:
    """One split of mini-ImageNet (600 images of each of 64/16/20 classes).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        image_size: side of the square images.
        root: the data root holding ``miniimagenet/`` (default ``$METAZOO_DATA``).
        workers: decoding processes (CSV format).
    """
    folder = require_dir(data_root(root) / FOLDER, "mini-ImageNet", HINT)
    pickled = folder / f"mini-imagenet-cache-{split}.pkl"
    if pickled.is_file():
        return _from_pickle(pickled, split, image_size)
    if (folder / f"{split}.csv").is_file():
        return _from_csv(folder, split, image_size, workers)
    raise FileNotFoundError(
        f"mini-ImageNet: neither {pickled.name} nor {split}.csv in {folder}. {HINT}"
    )
