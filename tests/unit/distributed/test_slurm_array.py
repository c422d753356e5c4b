"""docs/slurm/metazoo-array.sbatch, run as Slurm would (stub `metazoo` and `sbatch`), covers a suite."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from metazoo.bench.suite import load_suite, parse_shard

SCRIPT = Path(__file__).resolve().parents[3] / "docs" / "slurm" / "metazoo-array.sbatch"
SUITE_YAML = """
name: array-test
seeds: [0, 1, 2]
runs:
  - benchmark: omniglot-5w1s
    learners: [maml, protonet, matchingnet]
  - benchmark: sinusoid
    learners: [maml, cnp]
"""


@pytest.fixture
def stubs(tmp_path: Path) -> dict:
    """A PATH whose `metazoo` and `sbatch` only log their arguments."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name in ("metazoo", "sbatch"):
        stub = bin_dir / name
        stub.write_text(f'#!/bin/bash\nprintf "%q " {name} "$@" >> "{log}"\necho >> "{log}"\n')
        stub.chmod(0o755)
    suite = tmp_path / "array-test.yaml"
    suite.write_text(SUITE_YAML)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SUITE": str(suite)}
    env["RESULTS"] = str(tmp_path / "results")
    return {"env": env, "log": log, "suite": suite, "cwd": tmp_path}


def _array_task(
    stubs: dict, task: int | None, count: int, shards: int
) -> subprocess.CompletedProcess:
    env = {**stubs["env"], "SHARDS": str(shards), "SLURM_ARRAY_JOB_ID": "4242"}
    if task is not None:
        env.update(SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_COUNT=str(count))
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, cwd=stubs["cwd"], capture_output=True, text=True
    )


def test_array_tasks_cover_the_suite_exactly_once(stubs):
    shards = 4
    for task in range(shards):
        done = _array_task(stubs, task, shards, shards)
        assert done.returncode == 0, done.stderr
    calls = [shlex.split(line) for line in stubs["log"].read_text().splitlines()]
    bench = [c for c in calls if c[0] == "metazoo"]
    results = stubs["env"]["RESULTS"]
    assert [c[:2] + c[3:] for c in bench] == [
        ["metazoo", "bench", "--shard", f"{i}/{shards}", "--out", results, "--device", "cuda"]
        + ["--no-download"]
        for i in range(shards)
    ]
    suite = load_suite(bench[0][2])
    ran = Counter(cell.key for c in bench for cell in suite.cells(parse_shard(c[4])))
    assert sorted(ran) == sorted(cell.key for cell in suite.cells())  # all 15 cells ...
    assert set(ran.values()) == {1}  # ... each once
    tables = [c for c in calls if c[0] == "sbatch"]
    assert len(tables) == 1  # submitted by task 0 only, after the whole array
    assert "--dependency=afterany:4242" in tables[0]
    suite_path = stubs["suite"]
    assert tables[0][-1] == (
        f"metazoo table '{results}' --suite '{suite_path}' --format all --out '{results}/tables'"
    )
    assert calls.index(tables[0]) < calls.index(bench[0])  # submitted before task 0's shard runs


def test_array_size_must_match_the_shard_count(stubs):
    done = _array_task(stubs, 0, 3, 4)
    assert done.returncode == 2
    assert "--array has 3 tasks but SHARDS=4: use --array=0-3" in done.stderr
    assert not stubs["log"].exists()


def test_outside_slurm_the_script_says_how_to_run_a_shard(stubs):
    done = _array_task(stubs, None, 0, 4)
    assert done.returncode == 2
    assert f"metazoo bench {stubs['suite']} --shard i/4 --out" in done.stderr
