"""`metazoo table DIR --format md|latex|csv`."""

from __future__ import annotations

import pytest

from metazoo.bench import parse_suite, run_suite
from metazoo.cli.main import main
from metazoo.testing import registered


@pytest.fixture(scope="module")
def results(tmp_path_factory, committed_code):
    out = tmp_path_factory.mktemp("results")
    with registered() as tiny:
        suite = parse_suite({
            "name": "unit", "seeds": [0],
            "train": {"steps": 2, "meta_batch": 2, "val_every": 0}, "eval": {"episodes": 3},
            "runs": [{"benchmark": "sinusoid", "learners": [tiny, "maml"]}],
        })  # fmt: skip
        run_suite(suite, out)
        yield out, tiny


def test_formats_go_to_stdout(results, capsys):
    out, tiny = results
    assert main(["table", str(out), "--format", "latex"]) == 0
    tex = capsys.readouterr().out
    assert (
        r"\toprule" in tex and "\nMAML & " in tex and r"~\cite{finn2017maml}" in tex and tiny in tex
    )
    assert main(["table", str(out), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("learner,benchmark,metric,mean,ci95") and len(lines) == 3


def test_out_writes_every_format_and_the_bib(results, tmp_path, capsys):
    out, _ = results
    assert main(["table", str(out), "--format", "all", "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["references.bib", "table.csv", "table.md", "table.tex"]
    assert "@inproceedings{finn2017maml," in (tmp_path / "references.bib").read_text()


def test_empty_or_missing_folders_are_errors(tmp_path, capsys):
    assert main(["table", str(tmp_path)]) == 2
    assert f"no successful results in {tmp_path}" in capsys.readouterr().err
    assert main(["table", str(tmp_path / "nope")]) == 2
    assert "run `metazoo bench SUITE --out" in capsys.readouterr().err
