"""A ProtoNet trained briefly on Omniglot, loaded back and used on copied Omniglot drawings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from metazoo import build_learner, evaluate, make_sampler, train
from metazoo.cli.main import main
from metazoo.data.omniglot import list_characters, load_omniglot, split_classes
from metazoo.metrics import accuracy
from metazoo.predict import class_probabilities, image_format, load_learner, read_support
from metazoo.training import TrainConfig, load_checkpoint

pytestmark = [
    pytest.mark.learning,  # the module's ProtoNet trains to beat chance
    pytest.mark.usefixtures("omniglot_data"),
]
BENCHMARK = "omniglot-5w1s"
EPISODES = 20


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """``metazoo train``'s checkpoint of a ProtoNet after 40 one-task steps (about 15 s here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("protonet-run")
    learner = build_learner("protonet", BENCHMARK, seed=0)
    config = TrainConfig(steps=40, meta_batch=1, val_every=0, checkpoint_dir=str(out))
    train(learner, BENCHMARK, config, metadata={"build": {}}, train_overrides={"queries": 5})
    yield out
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def characters() -> dict[str, list[str]]:
    """Five characters of the test split: name -> its drawings (png paths)."""
    found = {f"{a}/{c}": files for a, c, files in list_characters()}
    return {name: found[name] for name in split_classes("vinyals", "test")[:5]}


def test_load_learner_and_predict_give_the_harness_accuracy(run_dir):
    learner = load_learner(run_dir)
    harness = evaluate(learner, BENCHMARK, episodes=EPISODES, seed=0)
    sampler = make_sampler(BENCHMARK, "test", seed=0)
    scores = []
    for i in range(EPISODES):
        episode = sampler.episode(i)
        probs = class_probabilities(
            learner, episode.support_x, episode.support_y, episode.query_x, ways=episode.ways
        )
        scores.append(float(accuracy(probs, episode.query_y)))
    assert scores == pytest.approx(harness.scores, abs=1e-9)
    assert harness.mean > 50.0  # trained: chance is 20%
    assert load_checkpoint(run_dir / "last.pt")["learner_distribution"]["name"] == "metazoo"


def test_copied_drawings_are_the_datasets_images(characters, tmp_path):
    full = load_omniglot(image_size=28)
    for name, files in characters.items():
        for f in files[:2]:
            _copy(f, tmp_path / name.replace("/", "_"))
    support = read_support(tmp_path, image_format(BENCHMARK))
    first = full.class_names.index(list(characters)[0])
    expected = full.images[full.labels == first][:2].to(torch.float32) / 255.0
    assert torch.equal(support.x[:2], expected)  # the sampler's inputs, bit for bit


def _copy(source: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, folder / Path(source).name)


def test_metazoo_predict_on_five_omniglot_characters(run_dir, characters, tmp_path, capsys):
    for name, files in characters.items():
        label = name.replace("/", "_")
        _copy(files[0], tmp_path / "support" / label)
        for f in files[1:4]:
            _copy(f, tmp_path / "query" / label)
    out = tmp_path / "predictions.json"
    argv = ["predict", str(run_dir), "--support", str(tmp_path / "support")]
    assert main([*argv, "--query", str(tmp_path / "query"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"protonet trained on {BENCHMARK} (") and "last.pt" in printed[0]
    assert printed[1].split()[:3] == ["query", "true", "class"]
    assert len(printed) == 2 + 15 + 2  # header, 15 queries, accuracy, file
    saved = json.loads(out.read_text())
    classes = [n.replace("/", "_") for n in characters]
    assert saved["classes"] == classes and saved["learner"] == "protonet"
    rows = saved["predictions"]
    assert len(rows) == 15 and all(r["predicted"] in classes for r in rows)
    assert all(sum(r["probabilities"].values()) == pytest.approx(1.0) for r in rows)
    correct = sum(r["predicted"] == r["true_class"] for r in rows)
    assert saved["accuracy"] == pytest.approx(100.0 * correct / 15)
    assert printed[-2] == f"accuracy on the 15 labelled queries: {saved['accuracy']:.1f}%"
    assert saved["accuracy"] >= 40.0  # chance is 20%
