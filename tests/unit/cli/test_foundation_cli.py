"""`metazoo --version`, `metazoo ls`, `metazoo card check`."""

from __future__ import annotations

import yaml

from metazoo import __version__
from metazoo.cli.main import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"metazoo {__version__}"


def test_ls_lists_benchmarks(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["ls", "benchmarks"]) == 0
    out = capsys.readouterr().out
    assert "omniglot-5w1s" in out and "sinusoid" in out


def test_ls_suites_lists_every_built_in_suite_with_its_description(capsys):
    from pathlib import Path

    shipped = sorted(
        p.stem for p in (Path(__file__).parents[3] / "registry" / "suites").glob("*.yaml")
    )
    assert "quickstart" in shipped and "paper-maml-omniglot" in shipped
    assert main(["ls", "suites"]) == 0
    lines = capsys.readouterr().out.splitlines()
    named = [line.split("│")[1].strip() for line in lines if line.startswith("│ ")]
    assert named == shipped
    quickstart = next(line for line in lines if line.startswith("│ quickstart "))
    assert (
        "Sinusoid regression and Omniglot 5-way 1-shot with CPU-sized training budgets"
        in quickstart
    )


def test_card_check_reports_each_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    good = tmp_path / "good.yaml"
    good.write_text(
        yaml.safe_dump(
            {
                "name": "good",
                "family": "metric",
                "title": "T",
                "authors": "A B",
                "venue": "V",
                "year": 2020,
                "model": "none",
                "tasks": ["regression"],
                "bibtex": "@misc{g}",
            }
        )
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nfamily: metric\n")
    assert main(["card", "check", str(good)]) == 0
    assert main(["card", "check", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "ok" in out and "invalid" in out and "missing required field 'title'" in out


def test_card_check_of_a_missing_file_says_so(capsys):
    assert main(["card", "check", "/no/such/card.yaml"]) == 1
    assert "no such card file" in capsys.readouterr().out
