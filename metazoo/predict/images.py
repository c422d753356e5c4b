"""Your own images as a benchmark's inputs: a support folder of classes and query files.

Files are decoded by the data package's own reader (:func:`metazoo.data.image_folder`,
:func:`metazoo.data.images.decode_images`: any size, mode and format PIL reads, LANCZOS-resized to
the benchmark's side, grey or RGB as its ``input_shape`` says), then given the benchmark's
pixel convention (Omniglot's strokes inverted) and scaled to ``[0, 1]`` as the sampler does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from metazoo.cards import benchmark_card
from metazoo.data.images import IMAGE_SUFFIXES, decode_images, image_folder

__all__ = ["ImageFormat", "image_format", "Support", "Queries", "read_support", "read_queries"]

#: Datasets whose loaders invert grey levels (``metazoo.data.omniglot``: black strokes -> 1s).
_INVERTED_DATASETS = {"omniglot"}


@dataclass(frozen=True)
class ImageFormat:
    """How a benchmark's images look to a learner.

    Attributes:
        size: side of the square images.
        channels: 1 (grey) or 3 (RGB).
        invert: grey levels inverted (``255 - pixel``) before scaling.
    """

    size: int
    channels: int
    invert: bool = False

    def inputs(self, images: Tensor) -> Tensor:
        """``(n, C, size, size)`` uint8 images as float32 inputs in ``[0, 1]`` (the sampler's
        ``k / 255``)."""
        if self.invert:
            images = 255 - images
        return images.to(torch.float32).div_(255.0)


def image_format(benchmark: str) -> ImageFormat:
    """The :class:`ImageFormat` of a benchmark card (``input_shape``, ``dataset``).

    Raises:
        ValueError: a benchmark whose inputs are not images (sinusoid regression).
    """
    card = benchmark_card(benchmark)
    shape = card.get("input_shape") or []
    if card.get("task") != "classification" or len(shape) != 3:
        raise ValueError(
            f"benchmark {benchmark!r} is not an image classification benchmark (task "
            f"{card.get('task')!r}, input_shape {shape}): predict classifies images with a "
            "learner trained on one (omniglot-*, miniimagenet-*, ...)"
        )
    return ImageFormat(int(shape[-1]), int(shape[0]), card["dataset"] in _INVERTED_DATASETS)


@dataclass
class Support:
    """A labelled support set read from a folder.

    Attributes:
        x: ``(n, C, H, W)`` float inputs.
        y: ``(n,)`` int64 class index, in the order of ``classes``.
        classes: class names (the sub-folder names, sorted).
    """

    x: Tensor
    y: Tensor
    classes: list[str]


@dataclass
class Queries:
    """Query images read from files and folders.

    Attributes:
        x: ``(n, C, H, W)`` float inputs.
        files: the file of each query, in order.
        true_classes: the sub-folder a query was found in (its label, when named like a support
            class), or None for files given directly or lying in the query folder itself.
    """

    x: Tensor
    files: list[str]
    true_classes: list[str | None]


def read_support(folder: str | os.PathLike, fmt: ImageFormat) -> Support:
    """``folder/<class>/<image files>`` as a support set.

    Raises:
        FileNotFoundError: ``folder`` is not a folder (a relative path is read from the current
            folder; the message names both).
        ValueError: no class folder, a class folder with no image, or an unreadable image
            (each names the folder or file and what to do).
    """
    if not Path(folder).is_dir():
        raise FileNotFoundError(
            f"no support folder {folder} (looked for {Path(folder).resolve()}; a relative path "
            f"is read from the current folder, {Path.cwd()}): give a folder holding one "
            "sub-folder of images per class"
        )
    data = image_folder(folder, image_size=fmt.size, channels=fmt.channels, workers=0)
    return Support(fmt.inputs(data.images), data.labels, list(data.class_names))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _query_files(paths: list[str | os.PathLike]) -> list[tuple[Path, str | None]]:
    found: list[tuple[Path, str | None]] = []
    for given in map(Path, paths):
        if given.is_file():
            found.append((given, None))
        elif given.is_dir():
            found += [(f, None) for f in _image_files(given)]
            for sub in sorted(p for p in given.iterdir() if p.is_dir()):
                found += [(f, sub.name) for f in _image_files(sub)]
        else:
            raise FileNotFoundError(
                f"no query file or folder at {given} (looked for {given.resolve()}; a relative "
                f"path is read from the current folder, {Path.cwd()}): check the path"
            )
    if not found:
        raise ValueError(
            f"no query images in {', '.join(map(str, paths))}: give image files "
            f"({', '.join(IMAGE_SUFFIXES)}) or folders holding them"
        )
    return found


def read_queries(paths: list[str | os.PathLike], fmt: ImageFormat) -> Queries:
    """Image files, and the images in folders (and in their sub-folders, labelled by name).

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: no image found, or an image that cannot be read (naming the file).
    """
    found = _query_files(paths)
    images = decode_images([f for f, _ in found], fmt.size, fmt.channels, workers=0)
    return Queries(fmt.inputs(images), [str(f) for f, _ in found], [c for _, c in found])
