"""`metazoo train --tensorboard DIR`: training and validation curves read back from the event file."""

from __future__ import annotations

import json

import pytest

from metazoo.cli.main import main
from metazoo.testing import registered

# the tensorboard extra: without it this module skips
EventAccumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator"
).EventAccumulator


def test_tensorboard_logs_train_and_val_scalars_at_their_steps(tmp_path):
    board = tmp_path / "board"
    with registered() as tiny:
        argv = ["train", tiny, "sinusoid", "steps=4", "meta_batch=2", "val_every=2",
                "val_episodes=3", "--out", str(tmp_path / "run"), "--episodes", "3",
                "--tensorboard", str(board), "--quiet"]  # fmt: skip
        assert main(argv) == 0
    events = EventAccumulator(str(board))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/mse", "train/lr", "train/tasks_per_s"} <= tags
    assert {"val/mse", "val/mse_ci95"} <= tags
    assert not any(tag.split("/")[0] not in ("train", "val") for tag in tags)
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]  # every step
    assert [e.step for e in events.Scalars("val/mse")] == [2, 4]  # each validation
    # the values are the run's own: validation means match result.json's history
    history = json.loads((tmp_path / "run" / "result.json").read_text())["train"]["history"]
    val = [h["mean"] for h in history if h["kind"] == "val"]
    assert [e.value for e in events.Scalars("val/mse")] == pytest.approx(val, rel=1e-6)  # float32
