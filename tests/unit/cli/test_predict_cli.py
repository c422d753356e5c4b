"""``metazoo predict``: a table and a JSON file; errors as one line saying what to do, status 2."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from metazoo.build import build_learner
from metazoo.cli.main import main
from metazoo.training.checkpoint import FORMAT, save_atomic


def _folders(root):
    """Two classes of one textured image; the query folder holds the same images, labelled."""
    textures = np.random.default_rng(0).integers(0, 256, (2, 9, 9), dtype=np.uint8)
    for c, texture in enumerate(textures):
        for folder in ("support", "query"):
            (root / folder / f"c{c}").mkdir(parents=True)
            Image.fromarray(texture).save(root / folder / f"c{c}" / f"q{c}.png")
    return ["--support", str(root / "support"), "--query", str(root / "query")]


def test_run_without_checkpoint(tmp_path, capsys):
    args = _folders(tmp_path)
    assert main(["predict", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"metazoo predict: error: no checkpoint in {tmp_path}: it holds neither")


def test_learner_not_installed(tmp_path, capsys):
    args = _folders(tmp_path)
    ckpt = {
        "format": FORMAT,
        "learner": "myalgo",
        "learner_distribution": {"name": "metazoo-myalgo", "version": None},
        "learner_config": {},
        "benchmark": "omniglot-5w1s",
        "step": 3,
        "learner_state": build_learner("protonet", "omniglot-5w1s").state_dict(),
    }
    save_atomic(ckpt, tmp_path / "last.pt")
    assert main(["predict", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert (
        "from the distribution 'metazoo-myalgo', which is not installed here: `pip install "
        "metazoo-myalgo`, then load it again" in err
    )


def _protonet_run(folder):
    torch.manual_seed(0)
    learner = build_learner("protonet", "omniglot-5w1s")
    ckpt = {"format": FORMAT, "learner": "protonet", "learner_config": {},
            "benchmark": "omniglot-5w1s", "step": 3, "learner_state": learner.state_dict()}  # fmt: skip
    save_atomic(ckpt, folder / "best.pt")
    return str(folder / "best.pt")


def test_a_missing_support_folder_is_named_where_the_user_stands(tmp_path, capsys, monkeypatch):
    query = _folders(tmp_path)[3]
    run = _protonet_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["predict", run, "--support", "no_such_dir", "--query", query]) == 2
    assert capsys.readouterr().err == (
        f"metazoo predict: error: no support folder no_such_dir (looked for "
        f"{tmp_path / 'no_such_dir'}; a relative path is read from the current folder, "
        f"{tmp_path}): give a folder holding one sub-folder of images per class\n"
    )


def test_one_query_image_is_said_to_be_normalised_alone(tmp_path, capsys):
    support = _folders(tmp_path)[1]
    run = _protonet_run(tmp_path)
    one = str(tmp_path / "query" / "c0" / "q0.png")
    assert main(["predict", run, "--support", support, "--query", one]) == 0
    err = capsys.readouterr().err
    assert err.startswith(
        f"metazoo predict: warning: one query image ({one}): the learner's BatchNorm normalises "
        "the queries with their own batch statistics, so a single image is normalised alone"
    )
    assert main(["predict", run, "--support", support, "--query", str(tmp_path / "query")]) == 0
    assert capsys.readouterr().err == ""  # two queries: normalised together, as in an episode


def test_predicts_and_writes_json(tmp_path, capsys):
    args = _folders(tmp_path)
    torch.manual_seed(0)
    learner = build_learner("protonet", "omniglot-5w1s")
    ckpt = {"format": FORMAT, "learner": "protonet", "learner_config": {},
            "benchmark": "omniglot-5w1s", "step": 3, "learner_state": learner.state_dict()}  # fmt: skip
    save_atomic(ckpt, tmp_path / "best.pt")
    out = tmp_path / "p.json"
    assert main(["predict", str(tmp_path / "best.pt"), *args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in printed[2:4]] == [
        ["q0.png", "c0", "c0"],
        ["q1.png", "c1", "c1"],
    ]
    assert printed[-2:] == ["accuracy on the 2 labelled queries: 100.0%", f"predictions: {out}"]
    saved = json.loads(out.read_text())
    assert saved["classes"] == ["c0", "c1"] and saved["benchmark"] == "omniglot-5w1s"
    assert [r["predicted"] for r in saved["predictions"]] == ["c0", "c1"]
