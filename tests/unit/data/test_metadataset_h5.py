"""The Meta-Dataset reader on P>M>F's ``.h5`` classes and the converter's bilevel (Omniglot)
spec, on files generated here in their real layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metazoo.data.metadataset import metadataset_split, read_spec

h5py = pytest.importorskip("h5py")  # the metadataset extra: without it this module skips

SIZE = 12


def _write_h5(path: Path, class_id: int, count: int, shape=(20, 24, 3)) -> None:
    """One class in P>M>F's layout: groups '0'..'n-1' with image (H, W, 3) RGB uint8, label, id.
    Image ``i`` of class ``c`` is filled with ``(c, i, 7)`` so it survives resizing."""
    with h5py.File(path, "w") as f:
        for i in range(count):
            group = f.create_group(str(i))
            image = np.empty(shape, dtype=np.uint8)
            image[...] = (class_id, i, 7)
            group.create_dataset("image", data=image)
            group.create_dataset("label", data=np.array(class_id))
            group.create_dataset("id", data=np.array(i))


def _spec(folder: Path, **fields) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"name": folder.name, "path": str(folder), "file_pattern": "{}.tfrecords", **fields}
    (folder / "dataset_spec.json").write_text(json.dumps(spec))


def test_h5_classes_are_read_in_group_order_and_resized(tmp_path):
    folder = tmp_path / "metadataset" / "aircraft"
    _spec(folder, classes_per_split={"TRAIN": 2, "VALID": 1, "TEST": 1}, class_names={"0": "a"})
    for c in range(4):
        _write_h5(folder / f"{c}.h5", c, count=12 if c == 1 else 3)
    train = metadataset_split("train", "aircraft", tmp_path, SIZE, 3)
    assert train.images.shape == (15, 3, SIZE, SIZE)
    assert train.class_names == ["a", "1"]
    second = train.images[train.labels == 1]
    # groups '10' and '11' come after '9': numeric, not lexicographic, order
    assert second[:, 1, 0, 0].tolist() == list(range(12))
    assert torch.equal(second[:, 0], torch.ones_like(second[:, 0]))
    assert (second[:, 2] == 7).all()
    grey = metadataset_split("test", "aircraft", tmp_path, SIZE, 1)
    assert grey.images.shape == (3, 1, SIZE, SIZE)
    expected = [Image.new("RGB", (1, 1), (3, i, 7)).convert("L").getpixel((0, 0)) for i in range(3)]
    assert grey.images[:, 0, 0, 0].tolist() == expected


def test_bilevel_spec_counts_the_classes_of_each_splits_alphabets(tmp_path):
    folder = tmp_path / "metadataset" / "omniglot"
    _spec(
        folder,
        superclasses_per_split={"Split.TRAIN": 2, "Split.VALID": 1, "Split.TEST": 1},
        classes_per_superclass={"0": 6, "1": 5, "2": 7, "3": 6},
        superclass_names={"0": "A", "1": "B", "2": "C", "3": "D"},
        class_names={str(c): f"char{c}" for c in range(24)},
    )
    assert read_spec(folder)["classes_per_split"] == {"TRAIN": 11, "VALID": 7, "TEST": 6}
    for c in range(24):
        _write_h5(folder / f"{c}.h5", c, count=4)
    val = metadataset_split("val", "omniglot", tmp_path, SIZE, 1)
    assert val.class_names == [f"char{c}" for c in range(11, 18)]
    assert val.superclass_names == ["C"] and val.superclass.tolist() == [0] * 7
