"""The Meta-Dataset reader on small sources generated here in the converted form, multi-source
training, per-source evaluation and report, and the cross-domain EMNIST test split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import metazoo
from metazoo.bench.per_source import evaluate_per_source, per_source_table, save_per_source
from metazoo.data import make_sampler
from metazoo.data.benchmarks import benchmark_protocol
from metazoo.data.metadataset import metadataset_split
from metazoo.data.multisource import MultiSourceSampler
from metazoo.models import make_backbone
from metazoo.training import TrainConfig, train

SIZE = 16


def _source(root: Path, name: str, splits: tuple[int, int, int], images=6, alphabets=None):
    """A source in the converter's layout: dataset_spec.json and one PNG folder per class id.
    Pixel [0, 0] holds the class id, pixel [0, 1] the image number."""
    folder = root / "metadataset" / name
    total = sum(splits)
    spec = {
        "name": name,
        "classes_per_split": dict(zip(["Split.TRAIN", "Split.VALID", "Split.TEST"], splits)),
        "class_names": {str(c): f"{name}-c{c}" for c in range(total)},
        "file_pattern": "{}.tfrecords",
    }
    if alphabets:
        spec["classes_per_superclass"] = {str(s): n for s, n in enumerate(alphabets)}
        spec["superclass_names"] = {str(s): f"alphabet{s}" for s in range(len(alphabets))}
    for c in range(total):
        (folder / str(c)).mkdir(parents=True)
        for i in range(images):
            pixels = np.zeros((SIZE, SIZE), dtype=np.uint8)
            pixels[0, 0], pixels[0, 1] = c, i
            Image.fromarray(pixels).save(folder / str(c) / f"{i:03d}.png")
    (folder / "dataset_spec.json").write_text(json.dumps(spec))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("md")
    _source(root, "omniglot", (12, 5, 6), alphabets=[6, 6, 5, 6])  # 2 train alphabets
    _source(root, "aircraft", (8, 5, 5))
    _source(root, "traffic_sign", (0, 0, 6), images=8)
    return root


def _options(root, **more):
    return {"root": str(root), "image_size": SIZE, "channels": 1, **more}


def _codes(x: torch.Tensor) -> list[tuple[int, int]]:
    return [tuple(c) for c in (x[:, 0, 0, :2] * 255).round().long().tolist()]


def test_official_class_splits_and_alphabets(root):
    train = metadataset_split("train", "omniglot", root, SIZE, 1)
    test = metadataset_split("test", "omniglot", root, SIZE, 1)
    assert train.class_names == [f"omniglot-c{c}" for c in range(12)]
    assert test.class_names == [f"omniglot-c{c}" for c in range(17, 23)]
    assert train.superclass.tolist() == [0] * 6 + [1] * 6
    assert train.superclass_names == ["alphabet0", "alphabet1"]
    assert test.superclass_names == ["alphabet3"]
    assert metadataset_split("train", "aircraft", root, SIZE, 1).superclass is None


def test_omniglot_episodes_come_from_one_alphabet(root):
    sampler = make_sampler("metadataset-omniglot", "train", 0, **_options(root))
    for index in range(8):
        e = sampler.episode(index)
        classes = {c for c, _ in _codes(e.support_x)}
        assert classes <= set(range(6)) or classes <= set(range(6, 12))
        assert 5 <= e.ways <= 6


def test_traffic_sign_is_shuffled_the_same_way_every_time(root):
    a = metadataset_split("test", "traffic_sign", root, SIZE, 1)
    numbers = (a.images[a.labels == 0][:, 0, 0, 1]).tolist()
    assert sorted(numbers) == list(range(8)) and numbers != list(range(8))
    b = metadataset_split("test", "traffic_sign", root, SIZE, 1)
    assert torch.equal(a.images, b.images)


def test_multi_source_episodes_take_one_source_each(root):
    options = _options(root, sources=["omniglot", "aircraft"])
    sampler = make_sampler("metadataset", "train", 0, **options)
    assert isinstance(sampler, MultiSourceSampler)
    seen = set()
    for index in range(12):
        e, source = sampler.episode(index), sampler.source_of(index)
        seen.add(source)
        alone = make_sampler("metadataset", "train", 0, **{**options, "sources": [source]})
        assert torch.equal(e.support_x, alone.episode(index).support_x)
        limit = 12 if source == "omniglot" else 8
        assert all(c < limit for c, _ in _codes(e.query_x))
    assert seen == {"omniglot", "aircraft"}


def test_two_source_training_and_per_source_report(root, tmp_path):
    torch.manual_seed(0)
    options = _options(root, sources=["omniglot", "aircraft"])
    learner = metazoo.create_learner("protonet", make_backbone("conv4", (1, SIZE, SIZE), hidden=8))
    before = [p.detach().clone() for p in learner.parameters()]
    config = TrainConfig(steps=3, meta_batch=2, val_every=0, log_every=1)
    result = train(learner, "metadataset", config, **options)
    assert result.final_step == 3
    assert all(math.isfinite(h["loss"]) for h in result.history if h["kind"] == "train")
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.parameters()))
    test = ["omniglot", "aircraft", "traffic_sign"]
    by_source = evaluate_per_source(learner, "metadataset", 6, 0, test, **_options(root))
    assert list(by_source) == test
    assert all(r.n == 6 and 0 <= r.mean <= 100 for r in by_source.values())
    path = save_per_source(by_source, tmp_path / "protonet.json")
    table = per_source_table([path])
    cells = " | ".join(f"{by_source[s].mean:.2f} ± {by_source[s].ci95:.2f} (6)" for s in test)
    assert f"| protonet | {cells} |" in table
    assert benchmark_protocol("metadataset")["sources"][-2:] == ["traffic_sign", "mscoco"]


def test_errors_say_what_to_do(root, tmp_path):
    with pytest.raises(ValueError, match="'traffic_sign' is test-only: evaluate on it"):
        metadataset_split("train", "traffic_sign", root, SIZE, 1)
    with pytest.raises(metazoo.data.MissingDataError, match="Meta-Dataset dtd not found"):
        metadataset_split("train", "dtd", root, SIZE, 1)
    (tmp_path / "metadataset" / "fungi" / "0").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="dataset_spec.json is missing"):
        metadataset_split("train", "fungi", tmp_path, SIZE, 1)
    spec = {"classes_per_split": {"TRAIN": 1, "VALID": 0, "TEST": 0}}
    (tmp_path / "metadataset" / "fungi" / "dataset_spec.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="empty class folder .*fungi/0: it holds no image files"):
        metadataset_split("train", "fungi", tmp_path, SIZE, 1)
    with pytest.raises(ValueError, match=r"\['dtd'\] are not test sources"):
        evaluate_per_source(None, "metadataset-omniglot", 1, 0, ["dtd"])


def _idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_emnist_is_the_test_split_of_the_cross_domain_benchmark(tmp_path):
    raw = tmp_path / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    labels = np.repeat(np.arange(6), 20)
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    images[:, 0, 5] = labels  # transposed on disk: upright, this is pixel [5, 0]
    _idx(raw / "emnist-balanced-test-images-idx3-ubyte", images, 2051)
    _idx(raw / "emnist-balanced-test-labels-idx1-ubyte", labels, 2049)
    sampler = make_sampler("omniglot-emnist-5w5s", "test", 0, root=str(tmp_path))
    e = sampler.episode(0)
    assert (e.ways, len(e.support_y), len(e.query_y)) == (5, 25, 75)
    codes = (e.support_x[:, 0, 5, 0] * 255).round().long()
    assert torch.equal(codes, e.classes.repeat_interleave(5))
    assert benchmark_protocol("omniglot-emnist-5w5s") == {"domain": "omniglot -> emnist"}
