"""Decoding image files into uint8 tensors, and any folder of classes (ImageFolder layout).

Decoding runs in a ``multiprocessing`` pool when there are many files; an unreadable file raises an
error naming it. :class:`FileImages` is the on-demand source for datasets that do not fit in memory.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from metazoo.data.dataset import ClassDataset
from metazoo.data.paths import require_dir

__all__ = ["decode_image", "decode_images", "FileImages", "image_folder", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_POOL_THRESHOLD = 2000  # below this many files a pool costs more than it saves


def decode_image(
    path: str, size: int | None, channels: int = 3, invert: bool = False
) -> np.ndarray:
    """One image as a ``(C, size, size)`` uint8 array (antialiased LANCZOS resize).

    Args:
        path: the file.
        size: side of the square output, or None to keep the file's size.
        channels: 1 (grey) or 3 (RGB).
        invert: ``255 - pixel`` (Omniglot: black strokes on white become 1s on 0s).

    Raises:
        ValueError: naming the file when it cannot be read or decoded.
    """
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if size is not None and image.size != (size, size):
                image = image.resize((size, size), Image.LANCZOS)
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}; delete or replace that file") from None
    if invert:
        array = 255 - array
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _decode_star(args: tuple) -> np.ndarray:
    return decode_image(*args)


def decode_images(
    paths: Sequence[str | os.PathLike],
    size: int | None,
    channels: int = 3,
    invert: bool = False,
    workers: int | None = None,
) -> Tensor:
    """Decode ``paths`` into one ``(len(paths), C, size, size)`` uint8 tensor, in order.

    Args:
        paths: image files.
        size: side of the square output (None: all files must already have the same size).
        channels: 1 or 3.
        invert: invert grey levels.
        workers: processes (default: the CPUs this process may use; 0 or 1: no pool).
    """
    jobs = [(str(p), size, channels, invert) for p in paths]
    if workers is None:
        workers = (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        )
    if workers > 1 and len(jobs) >= _POOL_THRESHOLD:
        context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with context.Pool(workers) as pool:
            arrays = pool.map(_decode_star, jobs, chunksize=max(64, len(jobs) // (8 * workers)))
            # Workers leave on their own before the pool's exit terminates them: a worker killed
            # while it holds the task queue's lock left another waiting forever (seen in CI).
            pool.close()
            pool.join()
    else:
        arrays = [_decode_star(job) for job in jobs]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images have different sizes {sorted(shapes)[:3]}: pass image_size=")
    if not arrays:
        return torch.empty(0, channels, size or 0, size or 0, dtype=torch.uint8)
    return torch.from_numpy(np.stack(arrays))


class FileImages:
    """Images decoded from their files when gathered (the DataLoader path for large datasets).

    Args:
        paths: one file per image.
        size: side of the square output.
        channels: 1 or 3.
    """

    def __init__(self, paths: Sequence[str], size: int, channels: int = 3) -> None:
        self.paths, self.size, self.channels = list(paths), size, channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor:
        return torch.from_numpy(decode_image(self.paths[index], self.size, self.channels))

    def gather(self, indices: Tensor) -> Tensor:
        """``(len(indices), C, size, size)`` uint8 images."""
        arrays = [decode_image(self.paths[i], self.size, self.channels) for i in indices.tolist()]
        return torch.from_numpy(np.stack(arrays))


def _class_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(
            f"empty class folder {folder}: it holds no image files ({', '.join(IMAGE_SUFFIXES)}); "
            "remove it or add images"
        )
    return files


def image_folder(
    root: str | os.PathLike,
    image_size: int = 84,
    channels: int = 3,
    superclass_level: bool = False,
    in_memory: bool = True,
    workers: int | None = None,
    name: str | None = None,
) -> ClassDataset:
    """Any folder of classes: ``root/<class>/*.png`` (or ``root/<superclass>/<class>/*`` with
    ``superclass_level=True``), read in sorted order.

    Args:
        root: the folder.
        image_size: images are resized to ``image_size x image_size``.
        channels: 1 (grey) or 3 (RGB).
        superclass_level: the first folder level names superclasses, the second classes.
        in_memory: decode everything now into one tensor (fast sampling) or keep file paths and
            decode on demand (for the DataLoader path).
        workers: decoding processes.
        name: for error messages (default: the folder name).
    """
    root = require_dir(
        Path(root), f"image folder {root}", "Point `root` at a folder of class folders."
    )
    tops = sorted(p for p in root.iterdir() if p.is_dir())
    groups = [(top, sorted(p for p in top.iterdir() if p.is_dir())) for top in tops]
    if not superclass_level:
        groups = [(None, tops)]
    files, labels, class_names, superclass = [], [], [], []
    for group_id, (group, classes) in enumerate(groups):
        for folder in classes:
            class_files = _class_files(folder)
            labels += [len(class_names)] * len(class_files)
            files += class_files
            class_names.append(folder.name if group is None else f"{group.name}/{folder.name}")
            superclass.append(group_id)
    if not class_names:
        raise ValueError(f"no class folders in {root}: expected {root}/<class>/<image files>")
    images = (
        decode_images(files, image_size, channels, workers=workers)
        if in_memory
        else FileImages([str(f) for f in files], image_size, channels)
    )
    return ClassDataset(
        images,
        torch.tensor(labels),
        class_names,
        torch.tensor(superclass) if superclass_level else None,
        [g.name for g, _ in groups] if superclass_level else None,
        name or root.name,
    )
