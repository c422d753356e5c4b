"""``metazoo bench --jobs``: cells in worker processes give the numbers of a serial run, and
Ctrl-C stops every worker and leaves a suite that resumes to the same numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [
    pytest.mark.slow,  # spawns processes
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]


def _suite(folder: Path, steps: int) -> Path:
    path = folder / "jobs.yaml"
    path.write_text(yaml.safe_dump({
        "name": "jobs", "seeds": [0, 1],
        "train": {"steps": steps, "meta_batch": 5, "val_every": 0, "checkpoint_every": 5},
        "eval": {"episodes": 5},
        "runs": [{"benchmark": "sinusoid", "learners": ["fomaml"]}],
    }))  # fmt: skip
    return path


def _command(suite: Path, out: Path, jobs: int) -> list[str]:
    return [
        sys.executable, "-m", "metazoo", "bench", str(suite), "--out", str(out),
        "--jobs", str(jobs), "--threads", "1", "--allow-dirty",  # the tree as it is
    ]  # fmt: skip


def _numbers(out: Path) -> dict[str, tuple]:
    """Each cell's test scores and training losses, by result file name."""
    numbers = {}
    for path in sorted(out.glob("*.json")):
        record = json.loads(path.read_text())
        assert record["status"] == "ok", record.get("error")
        losses = [h["loss"] for h in record["train"]["history"] if h.get("kind") == "train"]
        numbers[path.name] = (record["result"]["scores"], losses)
    return numbers


def _running_in_group(group: int) -> list[str]:
    """Command lines of the live (not zombie) processes of process group ``group``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) == group:
                found.append((stat.parent / "cmdline").read_text().replace("\0", " "))
        except (OSError, IndexError, ValueError):
            continue  # a process that ended while being read
    return found


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_two_jobs_give_the_numbers_of_one_and_ctrl_c_resumes_to_them(tmp_path):
    suite = _suite(tmp_path, steps=60)
    serial = _run(_command(suite, tmp_path / "serial", 1))
    parallel = _run(_command(suite, tmp_path / "parallel", 2))
    assert "2 side by side" in parallel and "side by side" not in serial
    expected = _numbers(tmp_path / "serial")
    assert len(expected) == 2
    assert _numbers(tmp_path / "parallel") == expected
    for folder, jobs in [("serial", 1), ("parallel", 2)]:  # each result says how its cell ran
        for path in (tmp_path / folder).glob("*.json"):
            threads = json.loads(path.read_text())["result"]["provenance"]["threads"]
            assert (threads["threads"], threads["jobs"]) == (1, jobs)

    out = tmp_path / "interrupted"
    victim = subprocess.Popen(
        _command(suite, out, 2), start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while not list(out.glob("checkpoints/*/last.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGINT)  # what Ctrl-C sends: every process of the group
    printed, _ = victim.communicate(timeout=120)
    assert victim.returncode == 130, printed
    assert "interrupted: finished cells are kept" in printed
    deadline = time.monotonic() + 60
    while _running_in_group(victim.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running_in_group(victim.pid) == []  # no worker left running
    assert all(json.loads(p.read_text())["status"] == "ok" for p in out.glob("*.json"))
    resumed = _run(_command(suite, out, 2))
    scores = {name: numbers[0] for name, numbers in expected.items()}
    # the same test scores (the training log's window at the interruption averages fewer steps)
    assert {name: numbers[0] for name, numbers in _numbers(out).items()} == scores
    assert "resuming at step" in resumed  # the interrupted cells go on from their checkpoints
