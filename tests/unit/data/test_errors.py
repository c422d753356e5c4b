"""Bad input gets a clear error naming what is wrong and what to do."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from data_fixtures import grid_dataset
from PIL import Image

from metazoo.data import ClassDataset, MissingDataError, from_tensors, image_folder, make_sampler
from metazoo.data.images import decode_images

needs_omniglot = pytest.mark.usefixtures("omniglot_data")  # skips, or fails in CI, without it


def test_more_ways_than_classes(grid):
    with pytest.raises(
        ValueError,
        match=re.escape(
            "grid split 'train': ways=13 but the split has only 12 classes; lower `ways`"
        ),
    ):
        make_sampler(grid, ways=13, shots=1, queries=1)


@needs_omniglot
def test_more_ways_than_omniglot_classes_counts_rotations():
    message = (
        "omniglot-5w1s split 'val': ways=700 but the split has only 688 classes (after rotations)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        make_sampler("omniglot-5w1s", split="val", ways=700)


@needs_omniglot
def test_more_shots_and_queries_than_images():
    message = (
        "omniglot-5w1s split 'train': shots+queries=25 but class 'Alphabet_of_the_Magi/character01' "
        "has only 20 images; lower `shots`/`queries` or pass replacement=True to repeat images"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        make_sampler("omniglot-5w1s", shots=10, queries=15)
    assert (
        make_sampler("omniglot-5w1s", shots=10, queries=15, replacement=True)
        .episode(0)
        .query_x.shape[0]
        == 75
    )


def test_missing_roots_say_where_and_how(tmp_path):
    with pytest.raises(
        MissingDataError,
        match=rf"mini-ImageNet not found: no folder {tmp_path}/miniimagenet \(METAZOO_DATA is ",
    ):
        make_sampler("miniimagenet-5w1s", root=tmp_path)
    with pytest.raises(MissingDataError, match=r"python -m metazoo.data download cifarfs"):
        make_sampler("cifarfs-5w1s", root=tmp_path)
    with pytest.raises(MissingDataError, match=r"CUB-200-2011 not found: .*CUB_200_2011/images"):
        make_sampler("cub-5w5s", root=tmp_path)
    with pytest.raises(MissingDataError, match=r"tiered-ImageNet not found"):
        make_sampler("tieredimagenet-5w5s", root=tmp_path)


def test_corrupt_image_is_named(tmp_path):
    good, bad = tmp_path / "a" / "0.png", tmp_path / "a" / "1.png"
    good.parent.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(good)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(
        ValueError, match=rf"cannot read image {re.escape(str(bad))}: .*delete or replace that file"
    ):
        image_folder(tmp_path, image_size=8)
    with pytest.raises(ValueError, match=rf"cannot read image {re.escape(str(bad))}"):
        decode_images([good, bad], 8, channels=1, workers=1)


def test_empty_class_folder(tmp_path):
    (tmp_path / "cats").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "cats" / "0.png")
    (tmp_path / "dogs").mkdir()
    with pytest.raises(
        ValueError, match=rf"empty class folder {tmp_path}/dogs: it holds no image files"
    ):
        image_folder(tmp_path, image_size=8)


def test_empty_class_in_tensors():
    x = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(
        ValueError, match=r"mine: class\(es\) with no images: b; remove them or add images"
    ):
        ClassDataset(x, torch.tensor([0, 0, 2, 2]), ["a", "b", "c"], name="mine")
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        from_tensors(x, torch.tensor([0, 0, 1]))


def test_bad_options(grid):
    with pytest.raises(
        ValueError, match=r"mode must be one of \('train-val', 'train-train'\), got 'val'"
    ):
        make_sampler(grid, ways=2, shots=1, queries=1, mode="val")
    no_groups = from_tensors(grid.images, grid.labels)
    with pytest.raises(
        ValueError, match=r"hierarchy='within' and meta_batch_diversity need superclasses"
    ):
        make_sampler(no_groups, ways=2, shots=1, queries=1, hierarchy="within")
    with pytest.raises(ValueError, match=r"no superclass has 5 classes \(largest has 4\)"):
        make_sampler(grid, ways=5, shots=1, queries=1, hierarchy="within")
    with pytest.raises(ValueError, match=r"rotations need square \(C, H, W\) images"):
        make_sampler(
            from_tensors(torch_float_features(), grid_dataset().labels),
            ways=2,
            shots=1,
            queries=1,
            rotations=True,
        )
    with pytest.raises(
        KeyError,
        match=r"unknown benchmark 'omniglot-5w2s'; did you mean 'omniglot-5w5s', .* known benchmarks: ",
    ):
        make_sampler("omniglot-5w2s")
    with pytest.raises(ValueError, match=r"augment must be None, a callable or one of"):
        make_sampler(grid, ways=2, shots=1, queries=1, augment="mixup")


def torch_float_features():
    return torch.randn(120, 7)


def test_download_command_explains_manual_datasets(tmp_path):
    from metazoo.data.__main__ import main

    with pytest.raises(
        SystemExit,
        match=rf"miniimagenet cannot be downloaded automatically; see docs/data.md .* under {tmp_path}",
    ):
        main(["download", "miniimagenet", "--root", str(tmp_path)])
