"""`metazoo train --distributed` on 2 processes started as torchrun would (RANK, WORLD_SIZE, ...).

The processes meet through a file store (``METAZOO_INIT_METHOD``) and gloo on the loopback
interface, not torchrun's TCP store (which listens on every address).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
TRAIN = ["maml", "sinusoid", "steps=3", "meta_batch=4", "val_every=0", "--episodes", "5"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def _train(out: Path, *flags: str, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "metazoo", "train", *TRAIN, "--out", str(out), *flags]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_train_distributed_cli_matches_one_process(tmp_path):
    store = f"file://{tmp_path / 'store'}"
    ranks = [
        _train(
            tmp_path / "two",
            "--distributed",
            env=_env(RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r), METAZOO_INIT_METHOD=store,
                     GLOO_SOCKET_IFNAME="lo"),
        )
        for r in range(2)
    ]  # fmt: skip
    single = _train(tmp_path / "one", env=_env())
    outputs = [p.communicate(timeout=240) for p in [*ranks, single]]
    for process, (_, err) in zip([*ranks, single], outputs):
        assert process.returncode == 0, err
    assert "mse" in outputs[0][0] and outputs[1][0] == ""  # only rank 0 reports
    two, one = (torch.load(tmp_path / r / "last.pt", weights_only=False) for r in ("two", "one"))
    assert two["step"] == one["step"] == 3
    for key, value in one["learner_state"].items():  # float32: summation order differs
        torch.testing.assert_close(two["learner_state"][key], value, rtol=1e-5, atol=1e-6)


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
