"""`metazoo train/eval` on 2 processes started as torchrun would (RANK, WORLD_SIZE, LOCAL_RANK).

The processes meet through a file store (``METAZOO_INIT_METHOD``) and gloo on the loopback
interface, not torchrun's TCP store (which listens on every address).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
# A forced executor: `auto` times the executors in each process, and two ranks and one process may
# choose differently under load (equal results then differ in the last bits).
TRAIN = [
    "maml", "sinusoid", "steps=3", "meta_batch=4", "val_every=0", "executor=sequential",
    "--episodes", "5",
]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def _rank_env(rank: int, store: str) -> dict[str, str]:
    return _env(
        RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), METAZOO_INIT_METHOD=store,
        GLOO_SOCKET_IFNAME="lo",
    )  # fmt: skip


def _metazoo(*arguments: str, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "metazoo", *arguments]
    pipe = subprocess.PIPE
    return subprocess.Popen(command, env=env, stdout=pipe, stderr=pipe, text=True)


def _finish(processes: list[subprocess.Popen]) -> list[str]:
    """Wait for every process; their stdouts, after checking each succeeded."""
    outputs = [p.communicate(timeout=240) for p in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err
    return [out for out, _ in outputs]


def test_train_and_eval_distributed_cli_match_one_process(tmp_path):
    store = f"file://{tmp_path / 'store'}"
    train = [
        _metazoo("train", *TRAIN, "--out", str(tmp_path / "two"), "--distributed", env=env)
        for env in (_rank_env(0, store), _rank_env(1, store))
    ]
    train.append(_metazoo("train", *TRAIN, "--out", str(tmp_path / "one"), env=_env()))
    outputs = _finish(train)
    assert "mse" in outputs[0] and outputs[1] == ""  # only rank 0 reports
    two, one = (torch.load(tmp_path / r / "last.pt", weights_only=False) for r in ("two", "one"))
    assert two["step"] == one["step"] == 3
    for key, value in one["learner_state"].items():  # float32: summation order differs
        torch.testing.assert_close(two["learner_state"][key], value, rtol=1e-5, atol=1e-6)

    # metazoo eval under a launcher (no flag needed): 7 episodes over 2 ranks vs one process.
    store = f"file://{tmp_path / 'eval-store'}"
    evaluate = ["eval", str(tmp_path / "one"), "--episodes", "7", "--json"]
    runs = [
        _metazoo(*evaluate, str(tmp_path / f"eval{r}.json"), env=_rank_env(r, store))
        for r in (0, 1)
    ]
    runs.append(_metazoo(*evaluate, str(tmp_path / "eval-one.json"), env=_env()))
    _finish(runs)
    assert not (tmp_path / "eval1.json").exists()  # rank 1 writes nothing
    split, whole = (json.loads((tmp_path / f).read_text()) for f in ("eval0.json", "eval-one.json"))
    assert split["scores"] == whole["scores"] and len(set(whole["scores"])) == 7
    assert (split["mean"], split["ci95"]) == (whole["mean"], whole["ci95"])


def test_distributed_flag_outside_a_launcher_says_how_to_launch(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "metazoo", "train", *TRAIN, "--out", str(tmp_path), "--distributed"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--distributed needs a launcher: run `torchrun --nproc-per-node N -m metazoo train" in (
        done.stderr
    )
