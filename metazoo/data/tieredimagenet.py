"""tiered-ImageNet (Ren et al. 2018): 608 classes in 34 superclasses, split 351/97/160 classes.

Files under ``$METAZOO_DATA/tieredimagenet/``, per split (``train``, ``val``, ``test``):

* ``<split>_labels.pkl``: a dict with ``label_specific`` (class of each image), ``label_general``
  (its superclass) and optionally ``label_specific_str`` / ``label_general_str`` (names);
* the images, either ``<split>_images.npz`` (key ``images``, ``(n, 84, 84, 3)`` uint8; the
  MetaOptNet/FEAT conversion) or Ren et al.'s ``<split>_images_png.pkl`` (a list of PNG-encoded
  byte strings, decoded once and cached under ``$METAZOO_CACHE``).

The class split is the one defined by those files (the superclasses do not cross splits), so the
superclass of each class is available for ``hierarchy="within"``. Get the files from
github.com/renmengye/few-shot-ssl-public (no automatic download: ImageNet's licence).
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from metazoo.data.cache import cached, files_key, resize_images
from metazoo.data.dataset import ClassDataset, from_tensors
from metazoo.data.paths import data_root, require_dir

__all__ = ["FOLDER", "tieredimagenet_split"]

FOLDER = "tieredimagenet"
HINT = (
    "tiered-ImageNet cannot be downloaded automatically: put <split>_labels.pkl and "
    "<split>_images.npz (or <split>_images_png.pkl) in that folder (see docs/data.md)."
)


def _load_pickle(path: Path):
    with open(path, "rb") as handle:
        return pickle.load(handle, encoding="latin1")  # written by Python 2


def _decode_pngs(path: Path) -> torch.Tensor:
    encoded = _load_pickle(path)
    arrays = []
    for number, data in enumerate(encoded):
        try:
            with Image.open(io.BytesIO(bytes(data))) as image:
                arrays.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
        except OSError as exc:
            raise ValueError(f"cannot read image {number} of {path}: {exc}") from None
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _images(folder: Path, split: str) -> torch.Tensor:
    npz = folder / f"{split}_images.npz"
    if npz.is_file():
        with np.load(npz) as data:
            return torch.from_numpy(data["images"]).permute(0, 3, 1, 2).contiguous()
    png = folder / f"{split}_images_png.pkl"
    if not png.is_file():
        raise FileNotFoundError(
            f"tiered-ImageNet: neither {npz.name} nor {png.name} in {folder}. {HINT}"
        )
    key = files_key([png], [png.name])
    return cached(FOLDER, f"{split}-{key}", lambda: {"images": _decode_pngs(png)})["images"]


def tieredimagenet_split(
    split: str, image_size: int = 84, root: str | os.PathLike | None = None
) -> ClassDataset:
    """One split of tiered-ImageNet with superclasses (``label_general``).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        image_size: side of the square images.
        root: the data root holding ``tieredimagenet/`` (default ``$METAZOO_DATA``).
    """
    folder = require_dir(data_root(root) / FOLDER, "tiered-ImageNet", HINT)
    labels_path = folder / f"{split}_labels.pkl"
    if not labels_path.is_file():
        raise FileNotFoundError(f"tiered-ImageNet: no {labels_path}. {HINT}")
    labels = _load_pickle(labels_path)
    specific = torch.as_tensor(np.asarray(labels["label_specific"]), dtype=torch.int64)
    general = torch.as_tensor(np.asarray(labels["label_general"]), dtype=torch.int64)
    images = resize_images(_images(folder, split), image_size)
    if len(images) != len(specific):
        raise ValueError(f"{folder}: {len(images)} images but {len(specific)} labels for {split}")
    values = torch.unique(specific)
    class_names = labels.get("label_specific_str")
    class_names = (
        [str(class_names[v]) for v in values.tolist()] if class_names is not None else None
    )
    groups, general = torch.unique(general, return_inverse=True)
    group_names = labels.get("label_general_str")
    group_names = (
        [str(group_names[g]) for g in groups.tolist()] if group_names is not None else None
    )
    return from_tensors(
        images,
        specific,
        general,
        class_names=class_names,
        superclass_names=group_names,
        name=f"tieredimagenet/{split}",
    )
