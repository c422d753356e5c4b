"""run_suite: one atomic JSON per cell, done cells skipped, failures recorded, kills resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from metazoo.bench import parse_suite, run_suite
from metazoo.bench.runner import write_json_atomic
from metazoo.evaluation.provenance import environment_tag
from metazoo.testing import TinyLearner, registered


class BrokenLearner(TinyLearner):
    """A plugin whose meta_loss raises: its cell must fail, the suite must go on."""

    def meta_loss(self, batch, step=None):
        raise RuntimeError("this plugin is broken")


class Killed(BaseException):
    """Stands in for the process being killed (not an Exception: the runner must not catch it)."""


@pytest.fixture
def learners():
    with registered(TinyLearner) as tiny, registered(BrokenLearner) as broken:
        yield tiny, broken


def _suite(*learners: str) -> dict:
    return parse_suite(
        {
            "name": "unit",
            "seeds": [0],
            "train": {
                "steps": 4,
                "meta_batch": 2,
                "val_every": 2,
                "val_episodes": 3,
                "log_every": 1,
            },
            "eval": {"episodes": 5},
            "runs": [{"benchmark": "sinusoid", "learners": list(learners)}],
        }
    )


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def test_cells_write_results_and_a_failing_cell_is_recorded(tmp_path, learners):
    tiny, broken = learners
    report = run_suite(_suite(broken, tiny), tmp_path)
    tag = environment_tag()
    assert _files(tmp_path) == sorted(
        [f"{broken}__sinusoid__seed0__{tag}.json", f"{tiny}__sinusoid__seed0__{tag}.json"]
    )
    failed = json.loads((tmp_path / f"{broken}__sinusoid__seed0__{tag}.json").read_text())
    assert failed["status"] == "failed"
    assert failed["error"] == "RuntimeError: this plugin is broken"
    assert "in meta_loss" in failed["traceback"]
    ok = json.loads((tmp_path / f"{tiny}__sinusoid__seed0__{tag}.json").read_text())
    assert ok["status"] == "ok" and ok["result"]["metric"] == "mse"
    assert len(ok["result"]["scores"]) == 5 and ok["train"]["final_step"] == 4
    assert ok["environment"]["torch"] == torch.__version__
    assert [p.name for p in report.failed] == [f"{broken}__sinusoid__seed0__{tag}.json"]

    again = run_suite(_suite(broken, tiny), tmp_path)  # done cells are skipped, failed ones retried
    assert [p.name for p in again.skipped] == [f"{tiny}__sinusoid__seed0__{tag}.json"]
    assert [p.name for p in again.failed] == [f"{broken}__sinusoid__seed0__{tag}.json"]
    assert json.loads((tmp_path / f"{tiny}__sinusoid__seed0__{tag}.json").read_text()) == ok


@pytest.mark.slow
def test_a_killed_suite_resumes_to_the_same_results(tmp_path, learners):
    tiny, _ = learners
    suite = _suite(tiny)
    suite.seeds = [0, 1]
    run_suite(suite, tmp_path / "straight")

    def kill(event):
        if event.get("cell") == f"{tiny}__sinusoid__seed1" and event.get("step") == 3:
            raise Killed

    with pytest.raises(Killed):
        run_suite(suite, tmp_path / "killed", callback=kill)
    tag = environment_tag()
    # the finished cell is on disk, the interrupted one left no file, not even a partial one
    assert _files(tmp_path / "killed") == [f"{tiny}__sinusoid__seed0__{tag}.json"]
    events = []
    report = run_suite(suite, tmp_path / "killed", callback=events.append)
    assert [p.name for p in report.skipped] == [f"{tiny}__sinusoid__seed0__{tag}.json"]
    assert {"kind": "resume", "step": 2, "steps": 4, "cell": f"{tiny}__sinusoid__seed1"} in events
    for seed in (0, 1):
        name = f"{tiny}__sinusoid__seed{seed}__{tag}.json"
        a, b = (json.loads((tmp_path / d / name).read_text()) for d in ("straight", "killed"))
        assert a["result"]["scores"] == b["result"]["scores"]
        timeless = [
            [
                {k: v for k, v in h.items() if k not in ("tasks_per_s", "seconds")}
                for h in r["train"]["history"]
            ]
            for r in (a, b)
        ]
        assert timeless[0] == timeless[1]
    resumed = json.loads((tmp_path / "killed" / f"{tiny}__sinusoid__seed1__{tag}.json").read_text())
    assert resumed["train"]["total_seconds"] > resumed["train"]["seconds"] > 0  # both calls counted


def test_result_files_are_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "cell.json"
    write_json_atomic({"status": "ok", "value": 1}, target)
    with pytest.raises(TypeError):  # fails while serialising: the old file must survive intact
        write_json_atomic({"status": "ok", "value": object()}, target)
    assert json.loads(target.read_text()) == {"status": "ok", "value": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["cell.json"]


@pytest.mark.slow
def test_a_suite_killed_with_sigkill_resumes_without_losing_or_duplicating(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    suite = tmp_path / "kill.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "kill", "seeds": [0, 1, 2],
        "train": {"steps": 40, "meta_batch": 5, "val_every": 20, "val_episodes": 3},
        "eval": {"episodes": 5},
        "runs": [{"benchmark": "sinusoid", "learners": ["fomaml"]}],
    }))  # fmt: skip
    command = [sys.executable, "-m", "metazoo", "bench", str(suite), "--quiet", "--threads", "1"]
    command.append("--allow-dirty")  # a subprocess sees the developer's tree as it is
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    victim = subprocess.Popen([*command, "--out", str(tmp_path / "killed")], env=env)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "killed").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    before = sorted(p.name for p in (tmp_path / "killed").glob("*.json"))
    assert 1 <= len(before) < 3, before  # killed part-way through the suite
    for out in ("killed", "straight"):
        done = subprocess.run(
            [*command, "--out", str(tmp_path / out)], env=env, capture_output=True
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    tag = environment_tag()
    names = [f"fomaml__sinusoid__seed{s}__{tag}.json" for s in range(3)]
    for name in names:
        killed, straight = (
            json.loads((tmp_path / d / name).read_text()) for d in ("killed", "straight")
        )
        assert killed["status"] == straight["status"] == "ok"
        assert killed["result"]["scores"] == straight["result"]["scores"]
    assert sorted(p.name for p in (tmp_path / "killed").glob("*.json")) == sorted(names)


def test_a_result_of_other_code_is_kept_aside_and_its_cell_runs_again(tmp_path, learners):
    tiny, _ = learners
    suite = _suite(tiny)
    first = run_suite(suite, tmp_path).done[0]
    record = json.loads(first.read_text())
    record["environment"]["git"] = {"sha": "0" * 40, "dirty": False}  # as written by older code
    record["finished"] = "2026-01-01T00:00:00+00:00"
    write_json_atomic(record, first)
    again = run_suite(suite, tmp_path)
    assert again.done == [first] and not again.skipped
    assert json.loads(first.read_text())["environment"]["git"]["sha"] != "0" * 40
    kept = tmp_path / "superseded" / f"{first.stem}__2026-01-01T00:00:00+00:00.json"
    assert json.loads(kept.read_text())["environment"]["git"]["sha"] == "0" * 40
    assert run_suite(suite, tmp_path).skipped == [first]  # same code: done


def test_also_on_and_check_seed_test_the_same_model_on_more_episodes(tmp_path, committed_code):
    from metazoo.bench import collect

    suite = parse_suite(
        {
            "name": "unit",
            "train": {"steps": 2, "meta_batch": 2, "val_every": 0},
            "eval": {"episodes": 4, "also_on": ["omniglot-20w1s"], "check_seed": 1},
            "build": {"backbone_options": {"hidden": 8}},
            "runs": [{"benchmark": "omniglot-5w1s", "learners": ["protonet"]}],
        }
    )
    report = run_suite(suite, tmp_path)
    record = json.loads(report.done[0].read_text())
    assert record["also_on"]["omniglot-20w1s"]["protocol"]["ways"] == 20
    # the same model on a second set of test episodes: another mean, kept beside the first
    second = record["second_seed"]
    assert (second["seed"], second["n"]) == (1, 4) and second["mean"] != record["result"]["mean"]
    cells = collect(tmp_path).cells
    assert sorted(cells) == [("protonet", "omniglot-20w1s"), ("protonet", "omniglot-5w1s")]
    assert (
        cells[("protonet", "omniglot-20w1s")].scores
        == record["also_on"]["omniglot-20w1s"]["scores"]
    )


def test_a_suite_that_sets_ways_gets_a_head_of_those_ways(tmp_path):
    suite = parse_suite(
        {
            "name": "unit",
            "train": {"steps": 1, "meta_batch": 2, "val_every": 0},
            "eval": {"episodes": 2},
            "sampler": {"ways": 3},
            "build": {"backbone_options": {"hidden": 8}},
            "runs": [{"benchmark": "omniglot-5w1s", "learners": ["maml"]}],
        }
    )
    report = run_suite(suite, tmp_path)
    record = json.loads(report.done[0].read_text())
    assert record["status"] == "ok" and record["result"]["protocol"]["ways"] == 3


def test_a_suite_without_a_callback_prints_nothing(tmp_path, learners, capfd):
    tiny, _ = learners
    report = run_suite(_suite(tiny), tmp_path)
    assert len(report.done) == 1
    assert capfd.readouterr() == ("", "")  # the trainer's progress lines stay off


def test_results_name_a_built_in_suite_by_name_and_another_by_a_relative_path(tmp_path):
    import os

    from metazoo.bench import load_suite
    from metazoo.bench.runner import recorded_suite_path

    assert recorded_suite_path(load_suite("quickstart")) == "quickstart"
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\nruns:\n  - benchmark: sinusoid\n    learners: [maml]\n")
    recorded = recorded_suite_path(load_suite(str(mine)))
    assert recorded == os.path.relpath(mine) and not recorded.startswith("/")
