"""Prediction on your own images: image reading and every error, without a dataset or training."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

import metazoo
from metazoo.build import build_learner
from metazoo.predict import (
    ImageFormat,
    LearnerNotInstalledError,
    find_checkpoint,
    image_format,
    load_learner,
    predict_folders,
    read_queries,
    read_support,
)
from metazoo.training.checkpoint import FORMAT, learner_distribution, save_atomic


def _image(path, size=(40, 30), mode="RGB", value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], len(mode))
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode=mode).save(path)
    return path


@pytest.fixture
def folders(tmp_path):
    """Three classes of images of mixed sizes, modes and formats, and two queries."""
    for c, value in enumerate((0, 120, 250)):
        _image(tmp_path / "support" / f"class{c}" / "a.png", (40, 30), "RGB", value)
        _image(tmp_path / "support" / f"class{c}" / "b.jpg", (17, 17), "L", value)
    _image(tmp_path / "query" / "q1.bmp", (64, 64), "L", 5)
    _image(tmp_path / "query" / "class2" / "q2.png", (28, 28), "RGB", 245)
    return tmp_path


def test_image_format_comes_from_the_benchmark_card():
    assert image_format("omniglot-5w1s") == ImageFormat(28, 1, invert=True)
    assert image_format("miniimagenet-5w1s") == ImageFormat(84, 3, invert=False)
    with pytest.raises(ValueError, match="'sinusoid' is not an image classification benchmark"):
        image_format("sinusoid")


def test_any_size_mode_and_format_become_the_benchmarks_inputs(folders):
    fmt = image_format("omniglot-5w1s")
    support = read_support(folders / "support", fmt)
    assert support.classes == ["class0", "class1", "class2"]
    assert support.x.shape == (6, 1, 28, 28) and support.x.dtype == torch.float32
    assert support.y.tolist() == [0, 0, 1, 1, 2, 2]
    # uniform grey v, inverted as Omniglot's strokes are: (255 - v) / 255 everywhere
    assert torch.allclose(support.x[2], torch.full((1, 28, 28), 135 / 255))
    queries = read_queries([folders / "query"], fmt)
    assert [p.rsplit("/", 1)[-1] for p in queries.files] == ["q1.bmp", "q2.png"]
    assert queries.true_classes == [None, "class2"]
    rgb = read_queries([folders / "query" / "q1.bmp"], image_format("miniimagenet-5w1s"))
    assert rgb.x.shape == (1, 3, 84, 84) and torch.allclose(rgb.x, torch.full_like(rgb.x, 5 / 255))


def test_a_query_set_equal_to_the_support_set_is_classified_exactly(tmp_path):
    """With Conv-4's batch statistics (the benchmark's transductive BatchNorm) the same images
    embed the same in both sets, so each query sits on its own class's prototype."""
    torch.manual_seed(0)
    learner = build_learner("protonet", "omniglot-5w1s")
    textures = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    for c, texture in enumerate(textures):
        for folder in ("support", "query"):
            (tmp_path / folder / f"class{c}").mkdir(parents=True)
            Image.fromarray(texture).save(tmp_path / folder / f"class{c}" / "a.png")
    predictions = predict_folders(
        learner, "omniglot-5w1s", tmp_path / "support", [tmp_path / "query"]
    )
    assert predictions.probabilities.shape == (3, 3)
    assert torch.allclose(predictions.probabilities.sum(-1), torch.ones(3))
    assert predictions.predicted == ["class0", "class1", "class2"]
    assert predictions.accuracy == 100.0
    csv = predictions.to_csv().splitlines()
    assert csv[0] == "query,true_class,predicted,probability,p(class0),p(class1),p(class2)"
    assert len(csv) == 4 and csv[2].split(",")[1:3] == ["class1", "class1"]


def test_empty_class_folder_is_named(folders):
    (folders / "support" / "class3").mkdir()
    with pytest.raises(ValueError, match=r"empty class folder .*class3: .*remove it or add images"):
        read_support(folders / "support", image_format("omniglot-5w1s"))


def test_unreadable_image_is_named(folders):
    (folders / "support" / "class1" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*class1/broken\.png: .*replace"):
        read_support(folders / "support", image_format("omniglot-5w1s"))
    (folders / "query" / "bad.jpg").write_text("nope")
    with pytest.raises(ValueError, match=r"cannot read image .*query/bad\.jpg"):
        read_queries([folders / "query"], image_format("omniglot-5w1s"))


def test_missing_query_path_is_named(folders):
    with pytest.raises(FileNotFoundError, match=r"no query file or folder at .*nowhere"):
        read_queries([folders / "nowhere"], image_format("omniglot-5w1s"))


def test_more_classes_than_a_fixed_head_says_what_to_do(folders):
    learner = build_learner("maml", "omniglot-5w1s")
    for c in range(3, 7):
        _image(folders / "support" / f"class{c}" / "a.png")
    message = (
        "the support folder has 7 classes, more than the 5 maml was trained for (its classifier "
        "head has 5 outputs): give at most 5 class folders, or train maml on 7-way episodes"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        predict_folders(learner, "omniglot-5w1s", folders / "support", [folders / "query"])
    snail = build_learner("snail", "omniglot-5w1s")
    with pytest.raises(ValueError, match=re.escape("more than the 5 snail was trained for (it en")):
        predict_folders(snail, "omniglot-5w1s", folders / "support", [folders / "query"])


def test_fewer_classes_than_an_n_way_head_says_what_to_do(folders):
    learner = build_learner("maml", "omniglot-5w1s")
    with pytest.raises(ValueError, match="give exactly 5 class folders, or train maml on 3-way"):
        predict_folders(learner, "omniglot-5w1s", folders / "support", [folders / "query"])


def test_run_without_checkpoint_says_how_to_get_one(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"no checkpoint in .*neither best\.pt nor last\.pt"
    ):
        find_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no run folder or checkpoint at .*missing"):
        load_learner(tmp_path / "missing")


def _checkpoint(tmp_path, name="protonet", distribution="record"):
    learner = build_learner("protonet", "omniglot-5w1s")
    ckpt = {
        "format": FORMAT,
        "learner": name,
        "learner_config": {},
        "benchmark": "omniglot-5w1s",
        "metadata": {"build": {}},
        "step": 0,
        "learner_state": learner.state_dict(),
    }
    if distribution == "record":
        ckpt["learner_distribution"] = learner_distribution("protonet")
    elif distribution is not None:
        ckpt["learner_distribution"] = distribution
    save_atomic(ckpt, tmp_path / "best.pt")
    return learner


def test_load_learner_restores_the_weights(tmp_path):
    torch.manual_seed(3)
    saved = _checkpoint(tmp_path)
    loaded = load_learner(tmp_path)
    assert metazoo.load_learner is load_learner and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(saved.parameters(), loaded.parameters()))


def test_checkpoint_records_the_distribution():
    assert learner_distribution("protonet")["name"] == "metazoo"
    assert learner_distribution("no-such-learner") is None


def test_learner_not_installed_names_its_distribution(tmp_path):
    _checkpoint(tmp_path, "myalgo", {"name": "metazoo-myalgo", "version": "1.2"})
    message = (
        "holds learner 'myalgo' from the distribution 'metazoo-myalgo' 1.2, which is not installed "
        "here: `pip install metazoo-myalgo==1.2`, then load it again"
    )
    with pytest.raises(LearnerNotInstalledError, match=re.escape(message)):
        load_learner(tmp_path)
    _checkpoint(tmp_path, "myalgo", None)
    with pytest.raises(LearnerNotInstalledError, match="install the plugin package that registers"):
        load_learner(tmp_path / "best.pt")
