"""`metazoo train`: type-checked key=value overrides, a full run, progress output."""

from __future__ import annotations

import json
import re

import pytest
import torch

from metazoo.cli.main import main
from metazoo.cli.progress import ProgressReporter
from metazoo.runs import resolve_run
from metazoo.testing import registered
from metazoo.training import load_checkpoint


def parse_overrides(pairs, learner):
    """The learner config and training settings a command line passes on (no card block sets
    either for maml on sinusoid or protonet on omniglot-5w1s)."""
    benchmark = "sinusoid" if learner == "maml" else "omniglot-5w1s"
    run = resolve_run(learner, benchmark, overrides=pairs)
    return run.section("config"), run.section("train")


def test_overrides_are_typed_and_routed():
    learner, train = parse_overrides(
        [
            "inner_lr=0.4",
            "test_inner_steps=null",
            "steps=10",
            "lr=1",
            "train.seed=3",
            "first_order=true",
        ],
        "maml",
    )
    assert learner == {"inner_lr": 0.4, "test_inner_steps": None, "first_order": True}
    assert train == {"steps": 10, "lr": 1.0, "seed": 3}
    assert isinstance(train["lr"], float)


def test_bad_overrides_say_what_is_valid():
    with pytest.raises(TypeError, match=r"^steps='ten': expected int, got str$"):
        parse_overrides(["steps=ten"], "maml")
    with pytest.raises(TypeError, match=r"^inner_lr='\[1, 2\]': expected float, got list$"):
        parse_overrides(["inner_lr=[1, 2]"], "maml")
    with pytest.raises(TypeError) as info:
        parse_overrides(["stepz=3"], "maml")
    assert str(info.value).startswith(
        "unknown key 'stepz' (did you mean 'steps'?); learner 'maml' takes: inner_lr, inner_steps,"
    )
    assert "training takes: steps, meta_batch, lr," in str(info.value)
    with pytest.raises(ValueError, match=r"override 'lr' is not key=value"):
        parse_overrides(["lr"], "maml")


@pytest.mark.parametrize(
    "override,flag",
    [("resume=true", "--resume"), ("device=cpu", "--device"), ("checkpoint_dir=x", "--out DIR")],
)
def test_overrides_that_flags_set_are_refused(override, flag, capsys):
    key = override.split("=")[0]
    assert main(["train", "maml", "sinusoid", override]) == 2
    expected = f"metazoo train: error: give {key} with {flag}, not as {key}=...\n"
    assert capsys.readouterr().err == expected


def test_train_command_trains_checkpoints_and_tests(tmp_path, capsys):
    threads = torch.get_num_threads()
    with registered() as tiny:
        code = main(["train", tiny, "sinusoid", "steps=4", "meta_batch=2", "val_every=2", "val_episodes=3",
                     "inner_lr=0.05", "--out", str(tmp_path), "--episodes", "3", "--quiet", "--threads", "1"])  # fmt: skip
    torch_threads_seen, _ = torch.get_num_threads(), torch.set_num_threads(threads)
    assert code == 0 and torch_threads_seen == 1
    result = json.loads((tmp_path / "result.json").read_text())
    assert len(result["result"]["scores"]) == 3 and result["result"]["metric"] == "mse"
    assert result["result"]["provenance"]["config"]["inner_lr"] == 0.05
    best, last = load_checkpoint(tmp_path / "best.pt"), load_checkpoint(tmp_path / "last.pt")
    assert last["step"] == 4 and best["step"] == result["train"]["best_step"]
    out = capsys.readouterr().out
    assert f"{tiny} on sinusoid (test, 3 episodes, seed 0): mse" in out


def test_train_command_rejects_unknown_keys(capsys):
    assert main(["train", "maml", "sinusoid", "bogus=1"]) == 2
    assert "metazoo train: error: unknown key 'bogus'" in capsys.readouterr().err


def test_plain_progress_log(capsys):
    with ProgressReporter(plain=True, every_s=0.0) as progress:
        step4 = {"kind": "step", "step": 4, "steps": 10, "loss": 0.6, "accuracy": 70.0}
        progress({**step4, "tasks_per_s": 9.0})
        progress(
            {
                "kind": "step",
                "step": 5,
                "steps": 10,
                "loss": 0.5,
                "accuracy": 80.0,
                "tasks_per_s": 12.0,
            }
        )
        progress(
            {
                "kind": "val",
                "step": 5,
                "metric": "accuracy",
                "mean": 81.0,
                "ci95": 1.5,
                "best": True,
            }
        )
        progress(
            {
                "kind": "cell",
                "cell": "a__b__seed0",
                "index": 0,
                "total": 2,
                "status": "failed",
                "error": "E: x",
            }
        )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "  step 4/10  loss 0.6000  accuracy 70.000  9 tasks/s  ETA ?"
    assert re.fullmatch(
        r"  step 5/10  loss 0.5000  accuracy 80.000  12 tasks/s  ETA \d+m\d\ds", lines[1]
    )
    assert lines[2] == "  step 5: val accuracy 81.000% ± 1.500 (best)"
    assert lines[3] == "[1/2] a__b__seed0: failed: E: x"
    with ProgressReporter(quiet=True) as progress:
        progress({"kind": "step", "step": 1, "steps": 2, "loss": 1.0, "tasks_per_s": 1.0})
    assert capsys.readouterr().out == ""
