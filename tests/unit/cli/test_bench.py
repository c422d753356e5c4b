"""`metazoo bench`: shards without Slurm, tables at the end, failures in the exit code, no data."""

from __future__ import annotations

import json

import pytest
import yaml

from metazoo.cli.bench import ensure_data
from metazoo.cli.main import main
from metazoo.evaluation.provenance import environment_tag
from metazoo.testing import TinyLearner, registered


class Broken(TinyLearner):
    def meta_loss(self, batch, step=None):
        raise RuntimeError("broken on purpose")


def _suite(path, *learners):
    path.write_text(
        "# Run with: metazoo bench unit.yaml --out results\n"
        + yaml.safe_dump(
            {
                "name": "unit",
                "seeds": [0, 1],
                "train": {"steps": 2, "meta_batch": 2, "val_every": 0},
                "eval": {"episodes": 3},
                "runs": [{"benchmark": "sinusoid", "learners": list(learners)}],
            }
        )  # fmt: skip
    )
    return path


def test_shards_cover_the_suite_and_the_table_is_written(tmp_path, capsys, committed_code):
    with registered() as a, registered() as b:
        suite = _suite(tmp_path / "unit.yaml", a, b)
        out = tmp_path / "res"
        assert (
            main(
                ["bench", str(suite), "--out", str(out), "--shard", "0/2", "--quiet", "--jobs", "1"]
            )
            == 0
        )
        first = sorted(p.name for p in out.glob("*.json"))
        assert (
            main(
                ["bench", str(suite), "--out", str(out), "--shard", "1/2", "--quiet", "--jobs", "1"]
            )
            == 0
        )
        everything = sorted(p.name for p in out.glob("*.json"))
    tag = environment_tag()
    assert first == sorted(
        [f"{a}__sinusoid__seed0__{tag}.json", f"{b}__sinusoid__seed0__{tag}.json"]
    )
    assert everything == sorted(
        f"{n}__sinusoid__seed{s}__{tag}.json" for n in (a, b) for s in (0, 1)
    )
    table = (out / "tables" / "table.md").read_text()
    assert f"| {a} | " in table and f"| {b} | " in table and "training seeds: 0, 1." in table
    assert "tables: " in capsys.readouterr().out


def test_a_failing_cell_sets_the_exit_code_and_the_rest_runs(tmp_path, capsys, committed_code):
    with registered() as good, registered(Broken) as bad:
        suite = _suite(tmp_path / "unit.yaml", bad, good)
        assert (
            main(["bench", str(suite), "--out", str(tmp_path / "r"), "--quiet", "--jobs", "1"]) == 1
        )
    out = capsys.readouterr().out
    assert "2 cell(s) failed; their errors and tracebacks are in:" in out
    failed = json.loads(
        (tmp_path / "r" / f"{bad}__sinusoid__seed1__{environment_tag()}.json").read_text()
    )
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: broken on purpose"
    table = (tmp_path / "r" / "tables" / "table.md").read_text()
    assert f"- Failed: {bad}__sinusoid__seed0: RuntimeError: broken on purpose" in table


def test_without_data_or_download_it_says_exactly_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("METAZOO_DATA", str(tmp_path))
    ensure_data(["sinusoid"], download=False)  # no dataset to fetch: nothing happens
    with pytest.raises(RuntimeError) as info:
        ensure_data(["omniglot-5w1s"], download=False)
    message = str(info.value)
    assert message.startswith(
        f"Omniglot is not in {tmp_path / 'omniglot-py'} and could not be downloaded"
    )
    assert f"python -m metazoo.data download omniglot --root {tmp_path}" in message
    assert "images_background.zip and images_evaluation.zip" in message
