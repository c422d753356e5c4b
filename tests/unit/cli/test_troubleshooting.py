"""docs/troubleshooting.md quotes the messages as the code words them: each case here raises one,
puts the doc's CAPITAL placeholders in for its variable parts and finds it in the page."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from metazoo.bench.results import load_results
from metazoo.cli.main import main
from metazoo.testing import SyntheticBenchmark, TinyLearner
from metazoo.training import TrainConfig, load_checkpoint, train

PAGE = (Path(__file__).parents[3] / "docs" / "troubleshooting.md").read_text()


def documented(message: str, **placeholders: Path) -> None:
    """``message`` with each path put back as its placeholder is quoted on the page (code
    spans' backticks aside)."""
    for name, path in sorted(placeholders.items(), key=lambda kv: -len(str(kv[1]))):
        message = message.replace(str(path), name)
    assert message.replace("`", "") in PAGE.replace("`", ""), message


def cli_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err.removeprefix(f"metazoo {argv[0]}: error: ").rstrip("\n")


def tiny() -> TinyLearner:
    return TinyLearner(nn.Linear(8, 8), TinyLearner.Config())


def test_run_folder_messages_of_python_and_the_cli(tmp_path, capsys):
    for name in ("last.pt", "best.pt", "result.json"):
        (tmp_path / name).write_bytes(b"x")
    config = TrainConfig(steps=1, val_every=0, checkpoint_dir=str(tmp_path))
    with pytest.raises(FileExistsError) as used:
        train(tiny(), SyntheticBenchmark(), config)
    documented(str(used.value), DIR=tmp_path)
    both = TrainConfig(steps=1, checkpoint_dir=str(tmp_path), resume=True, overwrite=True)
    with pytest.raises(ValueError) as contradiction:
        train(tiny(), SyntheticBenchmark(), both)
    documented(str(contradiction.value))
    for field in ("resume", "overwrite"):
        with pytest.raises(ValueError) as alone:
            TrainConfig(**{field: True})
        documented(str(alone.value))
    argv = ["train", "maml", "sinusoid", "--resume", "--overwrite", "--out", str(tmp_path)]
    documented(cli_error(argv, capsys))
    documented(
        cli_error(["train", "maml", "sinusoid", "--out", str(tmp_path)], capsys), DIR=tmp_path
    )


def test_predicts_missing_support_folder(tmp_path, capsys, monkeypatch):
    from metazoo.predict import read_support
    from metazoo.predict.images import image_format

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as missing:
        read_support("no_such_dir", image_format("omniglot-5w1s"))
    documented(
        str(missing.value), ABSOLUTE=tmp_path / "no_such_dir", CWD=tmp_path, DIR="no_such_dir"
    )


def test_checkpoint_and_results_messages(tmp_path, capsys):
    missing = tmp_path / "nothing.pt"
    documented(cli_error(["eval", str(missing)], capsys), PATH=missing)
    documented(cli_error(["eval", str(tmp_path)], capsys), DIR=tmp_path)
    torch_file = tmp_path / "other.pt"
    torch.save({"weights": 1}, torch_file)
    with pytest.raises(ValueError) as foreign:
        load_checkpoint(torch_file)
    documented(str(foreign.value), PATH=torch_file)
    with pytest.raises(FileNotFoundError) as no_results:
        load_results(tmp_path / "results")
    documented(str(no_results.value), DIR=tmp_path / "results")
    documented(cli_error(["plot", str(tmp_path)], capsys), DIR=tmp_path)
