"""`metazoo eval CHECKPOINT`: rebuilds the learner and reproduces the trained run's test scores."""

from __future__ import annotations

import json

from metazoo.cli.main import main
from metazoo.testing import registered


def test_eval_reproduces_the_scores_of_the_trained_learner(tmp_path, capsys):
    with registered() as tiny:
        assert main(["train", tiny, "sinusoid", "steps=3", "meta_batch=2", "val_every=0", "--out",
                     str(tmp_path / "run"), "--episodes", "4", "--quiet"]) == 0  # fmt: skip
        code = main(
            ["eval", str(tmp_path / "run"), "--episodes", "4", "--json", str(tmp_path / "e.json")]
        )
        assert code == 0
        other_seed = main(["eval", str(tmp_path / "run" / "last.pt"), "--episodes", "4", "--seed", "1",
                           "--json", str(tmp_path / "s1.json")])  # fmt: skip
        assert other_seed == 0
    trained = json.loads((tmp_path / "run" / "result.json").read_text())["result"]
    again = json.loads((tmp_path / "e.json").read_text())
    assert again["scores"] == trained["scores"] and again["seed"] == 0
    assert json.loads((tmp_path / "s1.json").read_text())["scores"] != trained["scores"]
    printed = capsys.readouterr().out
    assert "[checkpoint step 3," in printed
    peak = f"{again['peak_memory_mb']:,.0f} MiB: peak resident set of the process during the run"
    assert again["peak_memory_mb"] > 0 and peak in printed


def test_eval_of_a_missing_checkpoint_says_so(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing.pt")]) == 2
    assert capsys.readouterr().err == (
        f"metazoo eval: error: no run folder or checkpoint at {tmp_path / 'nothing.pt'}: give the "
        "folder `metazoo train --out` wrote (holding best.pt or last.pt) or a checkpoint file\n"
    )
    assert main(["eval", str(tmp_path)]) == 2  # a folder without checkpoints
    assert capsys.readouterr().err == (
        f"metazoo eval: error: no checkpoint in {tmp_path}: it holds neither best.pt nor "
        f"last.pt; train first (`metazoo train LEARNER BENCHMARK --out {tmp_path}`) or give the "
        "path of a .pt file\n"
    )
