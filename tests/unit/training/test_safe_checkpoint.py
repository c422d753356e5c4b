"""Checkpoints load with ``torch.load(weights_only=True)``: a file whose pickle would run code is
refused (and the code never runs), every file the trainer writes loads safely, and a file the user
made with other objects in it loads with ``trust=True`` or converts into a safe one."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from metazoo.cli.main import main
from metazoo.predict import load_learner
from metazoo.testing import SyntheticBenchmark, TinyLearner
from metazoo.training import (
    TrainConfig,
    UnsafeCheckpointError,
    convert_checkpoint,
    load_checkpoint,
    train,
)
from metazoo.training.checkpoint import FORMAT, save_atomic

BENCH = SyntheticBenchmark()


def leave_marker(path: str) -> str:
    """The payload: unpickling a :class:`Payload` calls this, which writes a file."""
    Path(path).write_text("the checkpoint ran code")
    return "payload ran"


class Payload:
    """An object whose unpickling calls :func:`leave_marker` (what a malicious file carries)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (leave_marker, (str(self.marker),))


def _tiny() -> TinyLearner:
    torch.manual_seed(0)
    return TinyLearner(nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2)), TinyLearner.Config())


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    """A run folder trained with every kind of state a checkpoint holds: SGD momentum buffers, a
    step schedule, RNG states, best weights, history, and metadata/configs holding a ``Path``, a
    NumPy number and a tuple (stored as plain values)."""
    config = TrainConfig(
        steps=4, lr=0.05, optimizer="sgd", momentum=0.9, lr_schedule="step", lr_step_size=2,
        val_every=2, val_episodes=2, log_every=1, checkpoint_dir=tmp_path / "run",
    )  # fmt: skip
    metadata = {
        "build": {},
        "data": Path("/somewhere/data"),
        "scale": np.float32(0.5),
        "shape": (1, 2),
    }
    train(_tiny(), BENCH, config, metadata=metadata, quiet=True)
    return tmp_path / "run"


def _malicious(tmp_path: Path, run_folder: Path) -> tuple[Path, Path]:
    """A real checkpoint with a payload slipped into its metadata, and the marker it would write."""
    marker = tmp_path / "marker"
    ckpt = torch.load(run_folder / "best.pt", weights_only=True)
    ckpt["metadata"] = {**ckpt["metadata"], "note": Payload(marker)}
    evil = tmp_path / "shared" / "best.pt"
    save_atomic(ckpt, evil)
    return evil, marker


def test_every_checkpoint_the_trainer_writes_loads_with_the_safe_loader(run_folder: Path):
    for name in ("last.pt", "best.pt"):
        raw = torch.load(run_folder / name, weights_only=True)  # raises on any other object
        assert raw["format"] == FORMAT and raw["kind"] == name.removesuffix(".pt")
        assert raw["metadata"]["data"] == "/somewhere/data" and raw["metadata"]["scale"] == 0.5
        assert raw["metadata"]["shape"] == (1, 2)
        assert raw["train_config"]["checkpoint_dir"] == str(run_folder)
    last = load_checkpoint(run_folder / "last.pt")
    assert last["step"] == 4 and isinstance(last["rng"]["torch"], torch.Tensor)
    assert last["optimizer_state"]["state"][0]["momentum_buffer"].shape == (8, 8)
    assert last["scheduler_state"]["last_epoch"] == 4


def test_resume_from_the_safe_checkpoint_continues_bit_identically(tmp_path: Path):
    common = dict(steps=6, lr=0.05, optimizer="sgd", momentum=0.9, val_every=3, val_episodes=2)
    straight = _tiny()
    train(straight, BENCH, TrainConfig(**common, checkpoint_dir=str(tmp_path / "a")), quiet=True)
    half = TrainConfig(**{**common, "steps": 3}, checkpoint_dir=str(tmp_path / "b"))
    train(_tiny(), BENCH, half, quiet=True)
    resumed = _tiny()
    rest = dataclasses.replace(half, steps=6, resume=True)
    train(resumed, BENCH, rest, quiet=True)
    after, before = straight.state_dict(), resumed.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in after)


def test_a_checkpoint_carrying_code_is_refused_and_the_code_never_runs(tmp_path, run_folder):
    evil, marker = _malicious(tmp_path, run_folder)
    for load in (load_checkpoint, load_learner):
        with pytest.raises(UnsafeCheckpointError) as refused:
            load(evil)
        assert not marker.exists()
    message = str(refused.value)
    assert message.startswith(f"{evil} was refused: it holds Python objects beyond tensors")
    assert "Unsupported global: GLOBAL test_safe_checkpoint.leave_marker" in message or (
        "leave_marker was not an allowed global" in message
    )
    assert "trust=True in Python" in message and "--trust-checkpoint on the command line" in message
    assert f"convert_checkpoint({str(evil)!r})" in message
    # the payload is real: the explicit trust option runs it
    assert load_checkpoint(evil, trust=True)["metadata"]["note"] == "payload ran"
    assert marker.read_text() == "the checkpoint ran code"


def test_the_cli_refuses_it_and_says_how_to_trust_it(tmp_path, run_folder, capsys):
    evil, marker = _malicious(tmp_path, run_folder)
    (tmp_path / "support" / "a").mkdir(parents=True)
    assert main(["predict", str(evil.parent), "--support", str(tmp_path / "support"),
                 "--query", str(tmp_path)]) == 2  # fmt: skip
    assert main(["eval", str(evil), "--episodes", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("was refused: it holds Python objects") == 2 and not marker.exists()
    assert "--trust-checkpoint on the command line" in err


def test_a_checkpoint_the_user_made_converts_into_one_that_loads_safely(tmp_path, run_folder):
    ckpt = torch.load(run_folder / "last.pt", weights_only=True)
    ckpt["metadata"] = {**ckpt["metadata"], "data": Path("/my/data")}  # a Path object, pickled
    mine = tmp_path / "mine.pt"
    save_atomic(ckpt, mine)
    with pytest.raises(UnsafeCheckpointError, match="PosixPath"):
        load_checkpoint(mine)
    convert_checkpoint(mine)
    converted = load_checkpoint(mine)
    assert converted["metadata"]["data"] == "/my/data"
    assert all(
        torch.equal(converted["learner_state"][k], v) for k, v in ckpt["learner_state"].items()
    )


@pytest.mark.slow  # runs the command in a fresh interpreter
def test_the_refusal_message_s_conversion_command_works(tmp_path, run_folder):
    ckpt = torch.load(run_folder / "best.pt", weights_only=True)
    save_atomic({**ckpt, "metadata": {"build": {}, "when": Path("x")}}, tmp_path / "best.pt")
    with pytest.raises(UnsafeCheckpointError) as refused:
        load_checkpoint(tmp_path / "best.pt")
    command = str(refused.value).split('python -c "')[1].rstrip('"')
    subprocess.run([sys.executable, "-c", command], check=True, cwd=tmp_path)
    assert load_checkpoint(tmp_path / "best.pt")["metadata"]["when"] == "x"
