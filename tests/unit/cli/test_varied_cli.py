"""Varied (Meta-Dataset-style) episodes through the CLI: `metazoo train` and `metazoo bench` on
omniglot-varied, and the per-source report (`metazoo per-source`, then `metazoo table`) of runs
trained through the Meta-Dataset reader on converted Omniglot."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

import metazoo
from metazoo.bench.per_source import evaluate_per_source, per_source_table
from metazoo.bench.suite import suite_dir
from metazoo.cli.main import main
from metazoo.data.convert import convert_omniglot

TINY = ["steps=2", "meta_batch=2", "hidden=8", "val_every=0", "ways=10"]


def test_train_maml_on_varied_omniglot(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "maml", "omniglot-varied", *TINY, "--episodes", "2", "--out", str(out)]
    assert main([*argv, "--quiet", "--threads", "1"]) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["train"]["final_step"] == 2
    result = record["result"]
    assert result["protocol"]["episode_shape"] == "varied"
    assert result["protocol"]["sampler"]["ways"] == 10
    again = metazoo.evaluate(metazoo.load_learner(out), "omniglot-varied", 2, 0, ways=10)
    assert result["scores"] == pytest.approx(again.scores, abs=1e-4)


@pytest.mark.slow
def test_bench_a_tiny_copy_of_the_omniglot_varied_suite(tmp_path, capsys):
    suite = yaml.safe_load((suite_dir() / "omniglot-varied.yaml").read_text())
    suite["eval"]["episodes"] = 2
    run = suite["runs"][0]
    run.update(train={"steps": 2, "meta_batch": 2}, sampler={"ways": 10})
    run["build"]["backbone_options"]["hidden"] = 8
    suite["overrides"]["cnp@omniglot-varied"]["config"]["conv_hidden"] = 8
    path = tmp_path / "omniglot-varied-tiny.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = tmp_path / "results"
    assert (
        main(["bench", str(path), "--out", str(out), "--quiet", "--threads", "1", "--jobs", "1"])
        == 0
    )
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert sorted(r["learner"] for r in records) == ["cnp", "maml", "protonet"]
    for record in records:
        assert record["status"] == "ok", record.get("error")
        assert record["result"]["protocol"]["episode_shape"] == "varied"
        assert len(record["result"]["scores"]) == 2
    table = (out / "tables" / "table.md").read_text()
    titles = {"maml": "MAML", "protonet": "ProtoNet", "cnp": "CNP"}
    for record in records:
        result = record["result"]
        assert f"| {titles[record['learner']]} | " in table
        assert f"{result['mean']:.2f} ± {result['ci95']:.2f}" in table
    assert "varied ways and shots (Meta-Dataset)" in table
    assert "tables: " in capsys.readouterr().out


@pytest.fixture(scope="module")
def converted(tmp_path_factory, omniglot_data):
    root = tmp_path_factory.mktemp("md")
    convert_omniglot(root=root, alphabets=["Greek", "Tagalog", "Atlantean"])
    return root


def test_per_source_report_from_the_cli(converted, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("METAZOO_DATA", str(converted))
    results = tmp_path / "per-source"
    for learner in ("protonet", "matchingnet"):
        run = tmp_path / learner
        argv = ["train", learner, "metadataset-omniglot", "steps=1", "hidden=8", "val_every=0"]
        assert main([*argv, "--episodes", "2", "--out", str(run), "--quiet"]) == 0
        json_path = results / f"{learner}.json"
        assert main(["per-source", str(run), "--episodes", "3", "--json", str(json_path)]) == 0
    printed = capsys.readouterr().out
    torch.manual_seed(0)
    direct = evaluate_per_source(metazoo.load_learner(tmp_path / "matchingnet"), "metadataset-omniglot", 3)  # fmt: skip
    cell = f"{direct['omniglot'].mean:.2f} ± {direct['omniglot'].ci95:.2f} (3)"
    assert f"| matchingnet | {cell} |" in printed
    assert main(["table", str(results)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| learner | omniglot | mean over sources |\n| --- | --- | --- |\n")
    assert table == per_source_table(sorted(results.glob("*.json")))
    assert main(["table", str(results), "--format", "all", "--out", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "per_source.csv").read_text().startswith("learner,omniglot,")
    assert main(["table", str(results), "--format", "latex"]) == 2
    assert "per-source tables are Markdown or CSV" in capsys.readouterr().err
