"""One kind of run folder: a `metazoo train` run folder and a `metazoo bench` cell are read the same
by `table`, `plot`, `eval`, `predict` and `per-source` (issue 25, part 5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from metazoo.cli.main import main

TINY = {"steps": 2, "meta_batch": 1, "val_every": 1, "val_episodes": 2, "log_every": 1}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, committed_code):
    """A tiny ProtoNet trained by `metazoo train` and the same run as a one-cell suite."""
    root = tmp_path_factory.mktemp("runs")
    pairs = [f"{k}={v}" for k, v in TINY.items()]
    argv = ["train", "protonet", "omniglot-5w1s", *pairs, "hidden=8", "--episodes", "3"]
    assert main([*argv, "--out", str(root / "pn"), "--quiet"]) == 0
    suite = root / "tiny.yaml"
    suite.write_text(json.dumps({
        "name": "tiny", "learners": ["protonet"], "benchmarks": ["omniglot-5w1s"],
        "train": TINY, "eval": {"episodes": 3}, "build": {"backbone_options": {"hidden": 8}},
    }))  # fmt: skip
    assert main(["bench", str(suite), "--out", str(root / "suite"), "--quiet", "--jobs", "1"]) == 0
    (cell,) = sorted((root / "suite").glob("protonet__omniglot-5w1s__seed0__*.json"))
    return {"train": root / "pn", "cell": cell}


@pytest.mark.parametrize("kind", ["train", "cell"])
def test_table_and_plot_read_a_run_folder_and_a_cell(runs, kind, tmp_path, capsys):
    record = json.loads(
        ((runs[kind] / "result.json") if kind == "train" else runs[kind]).read_text()
    )
    assert record["status"] == "ok" and record["learner"] == "protonet"
    assert main(["table", str(runs[kind]), "--allow-dirty"]) == 0
    table = capsys.readouterr().out
    assert f"{record['result']['mean']:.2f} ± {record['result']['ci95']:.2f}" in table
    assert main(["plot", str(runs[kind]), "--out", str(tmp_path), "--format", "png"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["curves-omniglot-5w1s.png"]


def test_a_run_folder_and_its_cell_hold_the_same_record(runs):
    train = json.loads((runs["train"] / "result.json").read_text())
    cell = json.loads(runs["cell"].read_text())
    assert set(train) == set(cell)
    assert train["result"]["scores"] == pytest.approx(cell["result"]["scores"])
    # the same settings; a suite cell always resumes what a killed suite left
    assert {**train["train"]["config"], "resume": True} == cell["train"]["config"]
    assert train["checkpoints"] == "." and cell["checkpoints"].startswith("checkpoints/protonet__")


@pytest.mark.parametrize("kind", ["train", "cell"])
def test_eval_and_predict_read_a_run_folder_and_a_cell(runs, kind, tmp_path, capsys):
    assert (
        main(
            [
                "eval",
                str(runs[kind]),
                "--episodes",
                "3",
                "--quiet",
                "--json",
                str(tmp_path / "e.json"),
            ]
        )
        == 0
    )
    recorded = json.loads(runs["cell"].read_text())["result"]["scores"]
    assert json.loads((tmp_path / "e.json").read_text())["scores"] == pytest.approx(recorded)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 9, 9), dtype=np.uint8)
    for c, image in enumerate(pixels):
        for folder in ("support", "query"):
            (tmp_path / folder / f"c{c}").mkdir(parents=True)
            Image.fromarray(image).save(tmp_path / folder / f"c{c}" / "a.png")
    argv = ["--support", str(tmp_path / "support"), "--query", str(tmp_path / "query")]
    assert main(["predict", str(runs[kind]), *argv, "--out", str(tmp_path / "p.json")]) == 0
    predictions = json.loads((tmp_path / "p.json").read_text())
    assert predictions["learner"] == "protonet" and predictions["run"].endswith("best.pt")


def test_per_source_reads_a_cell_as_it_reads_a_run_folder(runs, capsys):
    for kind in ("train", "cell"):
        assert main(["per-source", str(runs[kind]), "--episodes", "2"]) == 2
        err = (
            capsys.readouterr().err
        )  # found the checkpoint, then refused a single-source benchmark
        assert "no checkpoint" not in err and "omniglot-5w1s" in err, err
