"""``python -m metazoo.data convert-metadataset omniglot``: the real Omniglot (a few alphabets)
converted to Meta-Dataset's form, then read, trained and evaluated through the Meta-Dataset
reader."""

from __future__ import annotations

import json
import math

import pytest
import torch

import metazoo
from metazoo.data import make_sampler
from metazoo.data.__main__ import main
from metazoo.data.convert import convert_omniglot
from metazoo.data.metadataset import metadataset_split
from metazoo.models import make_backbone
from metazoo.training import TrainConfig, train

ALPHABETS = ["Greek", "Latin", "Tagalog", "Atlantean"]  # train, train, valid, test


@pytest.fixture(scope="module")
def converted(tmp_path_factory, omniglot_data):
    root = tmp_path_factory.mktemp("converted")
    assert main(["convert-metadataset", "omniglot", "--root", str(root), "--alphabets", *ALPHABETS]) == 0  # fmt: skip
    return root


def test_the_spec_is_meta_datasets_bilevel_spec(converted, capsys):
    spec = json.loads((converted / "metadataset" / "omniglot" / "dataset_spec.json").read_text())
    assert spec["__class__"] == "BiLevelDatasetSpecification"
    assert spec["superclasses_per_split"] == {"TRAIN": 2, "VALID": 1, "TEST": 1}
    assert spec["superclass_names"] == {
        "0": "Greek",
        "1": "Latin",
        "2": "Tagalog",
        "3": "Atlantean",
    }
    assert spec["classes_per_superclass"] == {"0": 24, "1": 26, "2": 17, "3": 26}
    assert spec["class_names"]["24"] == "Latin-character01"
    assert set(spec["images_per_class"].values()) == {20}
    assert main(["convert-metadataset", "omniglot", "--root", str(converted)]) == 1
    assert "is already converted; delete that folder to convert again" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"no alphabet \['Klingon'\] in"):
        convert_omniglot(root=converted / "other", alphabets=["Klingon"])


def test_the_reader_gives_the_official_split_with_inverted_images(converted):
    val = metadataset_split("val", "omniglot", converted, 28, 1)
    assert val.class_names[0] == "Tagalog-character01" and len(val.class_names) == 17
    assert val.superclass_names == ["Tagalog"]
    assert val.images.shape == (17 * 20, 1, 28, 28)
    assert (
        float(val.images.float().mean()) < 60
    )  # white strokes on black, as Meta-Dataset stores them


def test_two_training_steps_and_evaluation_through_the_reader(converted):
    torch.manual_seed(0)
    options = {"root": str(converted)}
    sampler = make_sampler("metadataset-omniglot", "train", 0, **options)
    for index in range(6):
        names = [sampler.class_name(int(c)) for c in sampler.episode(index).classes]
        assert len({n.split("-")[0] for n in names}) == 1  # one alphabet per episode
    learner = metazoo.create_learner("protonet", make_backbone("conv4", (1, 28, 28), hidden=8))
    config = TrainConfig(steps=2, meta_batch=2, val_every=0, log_every=1)
    result = train(learner, "metadataset-omniglot", config, **options)
    assert result.final_step == 2
    assert all(math.isfinite(h["loss"]) for h in result.history if h["kind"] == "train")
    scores = metazoo.evaluate(learner, "metadataset-omniglot", 3, 0, **options)
    assert scores.n == 3 and 0 < scores.mean <= 100
