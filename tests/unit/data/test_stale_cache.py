"""Decoded caches follow every file's size and modification time: an edited image is decoded again.

Each dataset that caches decoded images (Omniglot, CUB, mini-ImageNet's CSV format, tiered-ImageNet's
PNG pickle) is written small in its real on-disk format, loaded (filling the cache), loaded again
(from the cache), then its first image is edited and the next load must show the new pixels.
"""

from __future__ import annotations

import csv
import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metazoo.data.cache import files_key, read_split_list
from metazoo.data.cub import cub_split
from metazoo.data.miniimagenet import miniimagenet_split
from metazoo.data.omniglot import load_omniglot
from metazoo.data.tieredimagenet import tieredimagenet_split


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("METAZOO_CACHE", str(tmp_path / "cache"))


def flat(value: int, channels: int = 3) -> Image.Image:
    """An 8x8 image of one flat value (exact through PNG and any resize)."""
    shape = (8, 8, channels) if channels == 3 else (8, 8)
    return Image.fromarray(np.full(shape, value, np.uint8))


def _edit(path: Path, edit: Callable[[], None]) -> None:
    """Rewrite ``path`` only; its modification time moves on a second, as a later edit's would."""
    before = path.stat().st_mtime_ns
    edit()
    os.utime(path, ns=(before + 10**9, before + 10**9))


def omniglot(root: Path, first: int) -> Path:
    for set_name, alphabet in (("images_background", "A"), ("images_evaluation", "B")):
        where = root / "omniglot-py" / set_name / alphabet / "character01"
        where.mkdir(parents=True, exist_ok=True)
        for i in range(2):
            value = first if (set_name, i) == ("images_background", 0) else 200
            flat(value, channels=1).save(where / f"{i}.png")
    return root / "omniglot-py" / "images_background" / "A" / "character01" / "0.png"


def cub(root: Path, first: int) -> Path:
    images = root / "CUB_200_2011" / "images"
    for c, name in enumerate(read_split_list("cub", "val")):
        (images / name).mkdir(parents=True, exist_ok=True)
        flat(first if c == 0 else 200).save(images / name / "0.png")
    return images / read_split_list("cub", "val")[0] / "0.png"


def miniimagenet(root: Path, first: int) -> Path:
    folder = root / "miniimagenet"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    wnids = read_split_list("miniimagenet", "val")
    with open(folder / "val.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "label"])
        for c, wnid in enumerate(wnids):
            flat(first if c == 0 else 200).save(folder / "images" / f"{wnid}.png")
            writer.writerow([f"{wnid}.png", wnid])
    return folder / "images" / f"{wnids[0]}.png"


def tieredimagenet(root: Path, first: int) -> Path:
    folder = root / "tieredimagenet"
    folder.mkdir(parents=True, exist_ok=True)
    labels = {"label_specific": np.arange(3), "label_general": np.zeros(3, np.int64)}
    with open(folder / "test_labels.pkl", "wb") as handle:
        pickle.dump(labels, handle, protocol=2)
    encoded = []
    for value in (first, 200, 200):
        buffer = io.BytesIO()
        flat(value).save(buffer, format="PNG")
        encoded.append(np.frombuffer(buffer.getvalue(), np.uint8))
    with open(folder / "test_images_png.pkl", "wb") as handle:
        pickle.dump(encoded, handle)
    return folder / "test_images_png.pkl"


#: name -> (writer of the dataset with its first image's value, loader, first pixel as decoded)
DATASETS = {
    "omniglot": (omniglot, lambda r: load_omniglot(r, image_size=8), lambda v: 255 - v),  # inverted
    "cub": (cub, lambda r: cub_split("val", image_size=8, root=r), lambda v: v),
    "miniimagenet": (
        miniimagenet,
        lambda r: miniimagenet_split("val", image_size=8, root=r),
        lambda v: v,
    ),
    "tieredimagenet": (
        tieredimagenet,
        lambda r: tieredimagenet_split("test", image_size=8, root=r),
        lambda v: v,
    ),
}


@pytest.mark.parametrize("name", DATASETS)
def test_an_edited_image_is_decoded_again(name, tmp_path):
    write, load, decoded = DATASETS[name]
    root = tmp_path / "data"
    image = write(root, first=10)
    assert load(root).images[0].flatten()[0].item() == decoded(10)
    cache = tmp_path / "cache"
    entries = sorted(cache.rglob("*.pt"))
    assert len(entries) == 1  # decoded once, cached
    assert load(root).images[0].flatten()[0].item() == decoded(10)
    assert sorted(cache.rglob("*.pt")) == entries  # the second load came from the cache
    if image.suffix == ".png":  # the image alone is rewritten
        _edit(image, lambda: flat(90, channels=1 if name == "omniglot" else 3).save(image))
    else:  # the pickle holding every image, the first one edited
        _edit(image, lambda: write(root, first=90))
    edited = load(root).images
    assert edited[0].flatten()[0].item() == decoded(90)
    assert edited[1:].flatten().unique().tolist() == [decoded(200)]  # the others as they were
    assert len(list(cache.rglob("*.pt"))) == 2  # a new entry: the stale one is never read


def test_files_key_names_files_by_the_given_names_and_follows_size_and_mtime(tmp_path):
    a, b = tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"
    for path in (a, b):
        path.parent.mkdir()
        path.write_bytes(b"12345")
        os.utime(path, ns=(7, 7))
    # two copies of one dataset (same names, sizes, times) share the cache entry
    assert files_key([a], ["x.png"], 28) == files_key([b], ["x.png"], 28)
    assert files_key([a], ["x.png"], 28) != files_key([a], ["x.png"], 84)  # settings count
    b.write_bytes(b"1234")  # truncated: same name and time, another size
    os.utime(b, ns=(7, 7))
    assert files_key([a], ["x.png"], 28) != files_key([b], ["x.png"], 28)
