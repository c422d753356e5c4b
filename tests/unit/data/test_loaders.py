"""Every dataset loader on small files the test writes in the dataset's real on-disk format."""

from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metazoo.data import episode_loader, image_folder, load_split, make_sampler
from metazoo.data.cache import read_split_list
from metazoo.data.cifar import cifarfs_split, fc100_split
from metazoo.data.cub import cub_split
from metazoo.data.miniimagenet import miniimagenet_split
from metazoo.data.tieredimagenet import tieredimagenet_split


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Decoded generated data must not land in (or come from) the shared cache."""
    monkeypatch.setenv("METAZOO_CACHE", str(tmp_path / "cache"))


def coded_image(class_id: int, number: int, size: int = 8) -> np.ndarray:
    """An RGB image whose flat colour encodes (class, number), exact through PNG."""
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = class_id % 256, number, 7
    return image


def read_code(x: torch.Tensor) -> tuple[int, int]:
    """(class, number) back from a float ``(3, H, W)`` image."""
    pixel = (x[:, 0, 0] * 255).round().long().tolist()
    return pixel[0], pixel[1]


def test_miniimagenet_pickle_format(tmp_path):
    folder = tmp_path / "miniimagenet"
    folder.mkdir()
    wnids = read_split_list("miniimagenet", "val")
    images, class_dict = [], {}
    for c, wnid in enumerate(reversed(wnids)):  # order in the file does not matter
        class_dict[wnid] = [len(images) + i for i in range(3)]
        images += [coded_image(c, i, 84) for i in range(3)]
    with open(folder / "mini-imagenet-cache-val.pkl", "wb") as handle:
        pickle.dump({"image_data": np.stack(images), "class_dict": class_dict}, handle)
    data = miniimagenet_split("val", root=tmp_path)
    assert data.num_classes == 16 and data.class_names == wnids
    assert data.images.shape == (48, 3, 84, 84)
    # class j of the dataset holds the images written for wnids[j]
    for j, wnid in enumerate(wnids):
        written = 15 - j
        codes = {tuple(x[:, 0, 0].tolist()) for x in data.images[data.labels == j]}
        assert codes == {(written, i, 7) for i in range(3)}, wnid


def test_miniimagenet_csv_format_and_class_check(tmp_path):
    folder = tmp_path / "miniimagenet"
    (folder / "images").mkdir(parents=True)
    wnids = read_split_list("miniimagenet", "test")
    with open(folder / "test.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "label"])
        for c, wnid in enumerate(wnids):
            for i in range(2):
                name = f"{wnid}{i:08d}.jpg"
                Image.fromarray(coded_image(c, i, 100)).save(folder / "images" / name, quality=100)
                writer.writerow([name, wnid])
    data = miniimagenet_split("test", image_size=84, root=tmp_path)
    assert data.num_classes == 20 and data.images.shape == (40, 3, 84, 84)
    assert data.class_counts.tolist() == [2] * 20
    # JPEG is lossy: the flat colours come back within a few levels
    red = data.images[:, 0].float().mean((1, 2))
    assert (red - data.labels.float()).abs().max() < 4
    with open(folder / "val.csv", "w") as handle:
        handle.write("filename,label\nx.jpg,n99999999\n")
    with pytest.raises(ValueError, match=r"classes differ from the Ravi & Larochelle val split"):
        miniimagenet_split("val", root=tmp_path)


def test_tieredimagenet_npz_and_png_formats(tmp_path):
    folder = tmp_path / "tieredimagenet"
    folder.mkdir()
    specific = np.repeat(np.arange(6), 3)
    general = specific // 3  # classes 0-2 in superclass 0, 3-5 in superclass 1
    images = np.stack([coded_image(c, i % 3, 84) for i, c in enumerate(specific)])
    labels = {
        "label_specific": specific,
        "label_general": general,
        "label_specific_str": [f"n0{c}" for c in range(6)],
        "label_general_str": ["animal", "thing"],
    }
    for split in ("train", "test"):
        with open(folder / f"{split}_labels.pkl", "wb") as handle:
            pickle.dump(labels, handle, protocol=2)
    np.savez(folder / "train_images.npz", images=images)
    encoded = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append(np.frombuffer(buffer.getvalue(), np.uint8))
    with open(folder / "test_images_png.pkl", "wb") as handle:
        pickle.dump(encoded, handle)
    train = tieredimagenet_split("train", root=tmp_path)
    test = tieredimagenet_split("test", root=tmp_path)
    for data in (train, test):
        assert data.num_classes == 6 and data.superclass.tolist() == [0, 0, 0, 1, 1, 1]
        assert data.superclass_names == ["animal", "thing"] and data.class_names[4] == "n04"
        assert torch.equal(data.images.permute(0, 2, 3, 1), torch.from_numpy(images))
    within = make_sampler(train, ways=3, shots=1, queries=2, hierarchy="within")
    for classes in within.batch(0, 10).classes:
        assert len(set(train.superclass[classes].tolist())) == 1


def write_cifar100(root: Path, per_class: int = 3) -> list[str]:
    """A CIFAR-100 python folder (train/test/meta pickles) with ``per_class`` images per class."""
    fine_names = sorted(
        set(read_split_list("cifarfs", "train"))
        | set(read_split_list("cifarfs", "val"))
        | set(read_split_list("cifarfs", "test"))
    )
    coarse_names = sorted(
        {
            *read_split_list("fc100", "train"),
            *read_split_list("fc100", "val"),
            *read_split_list("fc100", "test"),
        }
    )
    coarse_of = {n: i % 20 for i, n in enumerate(fine_names)}  # 5 fine classes per coarse class
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for part, numbers in (
        ("train", range(per_class - 1)),
        ("test", range(per_class - 1, per_class)),
    ):
        fine = [c for c in range(100) for _ in numbers]
        data = np.stack([coded_image(c, n, 32) for c in range(100) for n in numbers])
        record = {
            "data": data.transpose(0, 3, 1, 2).reshape(len(fine), -1),
            "fine_labels": fine,
            "coarse_labels": [coarse_of[fine_names[c]] for c in fine],
        }
        with open(folder / part, "wb") as handle:
            pickle.dump(record, handle, protocol=2)
    with open(folder / "meta", "wb") as handle:
        pickle.dump({"fine_label_names": fine_names, "coarse_label_names": coarse_names}, handle)
    return fine_names


def test_cifarfs_and_fc100_from_cifar100_pickles(tmp_path):
    fine_names = write_cifar100(tmp_path)
    cifarfs = cifarfs_split("test", root=tmp_path)
    assert cifarfs.class_names == read_split_list("cifarfs", "test")
    assert cifarfs.images.shape == (60, 3, 32, 32)  # 20 classes x (2 train + 1 test) images
    for j, name in enumerate(cifarfs.class_names):
        codes = sorted(tuple(x[:2, 0, 0].tolist()) for x in cifarfs.images[cifarfs.labels == j])
        assert codes == [(fine_names.index(name), n) for n in range(3)]
    sizes = [cifarfs_split(s, root=tmp_path).num_classes for s in ("train", "val", "test")]
    assert sizes == [64, 16, 20]
    fc100 = [fc100_split(s, root=tmp_path) for s in ("train", "val", "test")]
    assert [d.num_classes for d in fc100] == [60, 20, 20]
    assert [len(d.superclass_names) for d in fc100] == [12, 4, 4]
    assert set(fc100[2].superclass_names) == set(read_split_list("fc100", "test"))
    assert cifarfs_split("val", image_size=16, root=tmp_path).images.shape[-1] == 16
    # the benchmark card wires the loader: 5-way tasks inside one coarse class of the test split
    sampler = make_sampler("fc100-5w1s", "test", root=tmp_path, queries=2, hierarchy="within")
    batch = sampler.batch(0, 4)
    assert batch.support_x.shape == (4, 5, 3, 32, 32) and sampler.num_classes == 20
    assert all(len(set(fc100[2].superclass[c].tolist())) == 1 for c in batch.classes)


def test_cub_folder_format(tmp_path):
    images_dir = tmp_path / "CUB_200_2011" / "images"
    names = read_split_list("cub", "val")
    for c, name in enumerate(names):
        (images_dir / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(coded_image(c, i, 40)).save(images_dir / name / f"{name}_{i}.png")
    data = cub_split("val", image_size=24, root=tmp_path)
    assert data.num_classes == 50 and data.images.shape == (100, 3, 24, 24)
    assert [read_code(x.float() / 255) for x in data.images[:4]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len(read_split_list("cub", "train")) == 100 and len(read_split_list("cub", "test")) == 50
    with pytest.raises(
        FileNotFoundError, match=r"class folder .*001.Black_footed_Albatross is missing"
    ):
        cub_split("train", root=tmp_path)


def test_image_folder_flat_and_with_superclasses(tmp_path):
    for group in ("birds", "cars"):
        for k in range(3):
            folder = tmp_path / "nested" / group / f"{group}{k}"
            folder.mkdir(parents=True)
            for i in range(4):
                code = 10 * (group == "cars") + k
                Image.fromarray(coded_image(code, i, 12)).save(folder / f"{i}.png")
    nested = image_folder(tmp_path / "nested", image_size=12, superclass_level=True)
    assert nested.class_names[3] == "cars/cars0" and nested.superclass.tolist() == [
        0,
        0,
        0,
        1,
        1,
        1,
    ]
    flat = image_folder(tmp_path / "nested" / "cars", image_size=12)
    assert flat.class_names == ["cars0", "cars1", "cars2"] and flat.superclass is None
    episode = make_sampler(flat, ways=2, shots=1, queries=3, seed=1).episode(0)
    for x, y in zip(episode.query_x, episode.query_y):
        assert read_code(x)[0] == 10 + int(episode.classes[y])
    lazy = image_folder(tmp_path / "nested" / "cars", image_size=12, in_memory=False)
    lazy_episode = make_sampler(lazy, ways=2, shots=1, queries=3, seed=1, rotations=True)
    eager_episode = make_sampler(flat, ways=2, shots=1, queries=3, seed=1, rotations=True)
    for a, b in zip(lazy_episode.batch(0, 6), eager_episode.batch(0, 6)):
        assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    # files decoded in 2 worker processes: the same meta-batches as in this process
    loaded = list(episode_loader(lazy_episode, meta_batch=3, batches=2, num_workers=2))
    for index, batch in enumerate(loaded):
        expected = eager_episode.batch(index, 3)
        assert torch.equal(batch.query_x, expected.query_x)
        assert torch.equal(batch.classes, expected.classes)


def test_load_split_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"no loader for dataset 'imagenet21k'"):
        load_split("imagenet21k", "train")
    with pytest.raises(
        ValueError, match=r"split must be one of \('train', 'val', 'test'\), got 'dev'"
    ):
        load_split("omniglot", "dev")
