"""Decoded datasets cached as tensor files under ``$METAZOO_CACHE``, and the shipped split lists."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from metazoo._atomic import save_atomic
from metazoo.data.paths import cache_root

__all__ = [
    "cached",
    "content_key",
    "file_stamps",
    "files_key",
    "read_split_list",
    "resize_images",
]


def content_key(names: Sequence[str], *extra: object) -> str:
    """A short sha256 of a file list and settings: the cache key of a decoded dataset."""
    text = "\n".join([*map(str, extra), *names])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_stamps(paths: Sequence[str | os.PathLike], names: Sequence[str]) -> list[str]:
    """``"name size mtime_ns"`` of each file: a cache key part that changes when a file is
    edited, replaced or corrupted (one ``stat`` per file, no reading).

    Args:
        paths: the files on disk.
        names: how the key names each file (relative to the dataset's root).
    """
    stamps = []
    for path, name in zip(paths, names, strict=True):
        stat = os.stat(path)
        stamps.append(f"{name} {stat.st_size} {stat.st_mtime_ns}")
    return stamps


def files_key(paths: Sequence[str | os.PathLike], names: Sequence[str], *settings: object) -> str:
    """The cache key of data decoded from ``paths``: every file's name, size and modification
    time, and the decoding ``settings``, so an edited, replaced or corrupted file is decoded again
    (one ``stat`` per file, no reading). Every loader that caches decoded files keys them here.

    Args:
        paths: the files decoded (images, or the archive or pickle holding them).
        names: how the key names each file, relative to the dataset's root, so that two copies
            of one dataset share a cache entry.
        *settings: whatever else changes the decoded tensors (image size, cache version).
    """
    return content_key(file_stamps(paths, names), *settings)


def cached(folder: str, stem: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``build()``'s tensors, saved once to ``$METAZOO_CACHE/<folder>/<stem>.pt`` and loaded after.

    The file is written to a temporary name and renamed, so concurrent processes never read half
    of it.
    """
    path = cache_root() / folder / f"{stem}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    fields = build()
    save_atomic(fields, path)
    return fields


def read_split_list(dataset: str, name: str) -> list[str]:
    """Lines of the shipped ``metazoo/data/splits/<dataset>/<name>.txt`` (blank lines dropped)."""
    text = (
        resources.files("metazoo.data")
        .joinpath(f"splits/{dataset}/{name}.txt")
        .read_text(encoding="utf-8")
    )
    return [line for line in text.splitlines() if line.strip()]


def resize_images(images: Tensor, size: int | None) -> Tensor:
    """``(n, C, H, W)`` uint8 images resized to ``size x size`` (antialiased), unchanged if None."""
    if size is None or tuple(images.shape[-2:]) == (size, size):
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True)
    return resized.round_().clamp_(0, 255).to(torch.uint8)
