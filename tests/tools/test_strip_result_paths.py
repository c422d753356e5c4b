"""``lab/records/strip_result_paths.py``: committed result files lose the machine's paths, nothing else."""

from __future__ import annotations

import json

import pytest

from lab.records.strip_result_paths import NumbersChangedError, main, numbers, ran_in, rewrite
from metazoo._atomic import write_json_atomic

pytestmark = pytest.mark.lab

RECORD = {
    "suite": "quickstart",
    "suite_path": "/home/me/metazoo/registry/suites/quickstart.yaml",
    "mean": 48.125,
    "scores": [40.0, 56.25, float("nan")],
    "environment": {
        "git": {"sha": "ab" * 20, "dirty": False},
        "command": "/home/me/metazoo/metazoo/__main__.py bench quickstart --out /home/me/out --quiet",
        "argv": ["/home/me/metazoo/metazoo/cli/speed.py", "--out", "/scratch/x"],
    },
    "train": {"config": {"checkpoint_dir": "/tmp/run", "lr": 0.001}},
}


def test_paths_become_relative_to_the_checkout_and_every_other_byte_stays():
    text = json.dumps(RECORD, indent=1)
    assert ran_in(RECORD) == "/home/me/metazoo"
    new, changes = rewrite(text, "/home/me/metazoo")
    data = json.loads(new)
    assert data["suite_path"] == "quickstart"  # a built-in suite, by name
    assert data["environment"]["command"] == "metazoo bench quickstart --out ../out --quiet"
    assert data["environment"]["argv"] == ["metazoo/cli/speed.py", "--out", "../../../scratch/x"]
    assert data["train"]["config"]["checkpoint_dir"] == "../../../tmp/run"
    assert data["environment"]["git"] == RECORD["environment"]["git"]  # the commit it belongs to
    assert numbers(data) == numbers(RECORD) and len(changes) == 5
    assert new.count("\n") == text.count("\n") and '"mean": 48.125' in new and "NaN" in new
    assert rewrite(new, "/home/me/metazoo") == (new, {})  # nothing left to rewrite


def test_a_rewrite_that_would_touch_anything_else_is_refused():
    # the path is also a key: replacing its text would rename the key, so nothing is written
    text = json.dumps({"command": "/a/b/c run", "/a/b/c run": 1.5})
    with pytest.raises(
        NumbersChangedError, match="(a number|something besides the path strings) changed"
    ):
        rewrite(text, "/a")
    escaped = '{"checkpoint_dir": "\\/tmp\\/run"}'  # not spelled as json.dumps spells it
    with pytest.raises(NumbersChangedError, match="is not spelled as json.dumps spells it"):
        rewrite(escaped, "/a")


def test_check_reports_and_the_rewrite_writes_only_changed_files(tmp_path, capsys):
    write_json_atomic(RECORD, tmp_path / "a.json")
    write_json_atomic({"mean": 1.0, "command": "metazoo bench x"}, tmp_path / "clean.json")
    before = (tmp_path / "clean.json").read_text()
    assert main([str(tmp_path), "--check"]) == 1
    assert "would rewrite 1 of 2 result files" in capsys.readouterr().out
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads(json.dumps(RECORD))
    assert main([str(tmp_path)]) == 0 and main([str(tmp_path), "--check"]) == 0
    assert "/home/me" not in (tmp_path / "a.json").read_text()
    assert (tmp_path / "clean.json").read_text() == before
