"""The trainer and the harness under 2 gloo ranks: same weights, checkpoints, scores as one process."""

from __future__ import annotations

import pytest
import torch
from dist_helpers import evaluation_run, trainer_run
from dist_plan import EVALUATION, REPTILE_RUN, train_config

pytestmark = pytest.mark.slow


def _assert_same_state(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-9, atol=1e-11)


def test_trainer_on_two_ranks_matches_one_process(two_ranks, tmp_path):
    single = trainer_run("tiny-maml", train_config(str(tmp_path), 6), init_seed=0)
    for rank in two_ranks["ranks"]:
        got = rank["trainer"][0]
        assert got["divergence"] == 0.0
        _assert_same_state(got["state"], single["state"])
        assert got["best_val"] == pytest.approx(single["best_val"], abs=1e-9)
        losses = [e["loss"] for e in got["history"] if e["kind"] == "train"]
        expected = [e["loss"] for e in single["history"] if e["kind"] == "train"]
        assert losses == pytest.approx(expected, rel=1e-9)


def test_resume_under_two_ranks_matches_uninterrupted(two_ranks):
    uninterrupted, first_part, resumed = two_ranks["ranks"][0]["trainer"][:3]
    assert first_part["final_step"] == 3 and resumed["final_step"] == 6
    _assert_same_state(resumed["state"], uninterrupted["state"])
    assert [e["step"] for e in resumed["history"]] == [e["step"] for e in uninterrupted["history"]]
    # Both ranks resumed from the one last.pt rank 0 wrote.
    _assert_same_state(two_ranks["ranks"][1]["trainer"][2]["state"], resumed["state"])
    saved, reference = (
        torch.load(two_ranks["folder"] / run / "last.pt", weights_only=False)
        for run in ("part", "full")
    )
    assert saved["step"] == 6
    _assert_same_state(saved["learner_state"], reference["learner_state"])
    _assert_same_state(
        saved["best_state"], resumed["state"]
    )  # the learner ends on the best weights


def test_two_rank_checkpoint_resumes_in_one_process(two_ranks):
    folder = str(two_ranks["folder"] / "handover")
    resumed = trainer_run("tiny-maml", train_config(folder, 6, resume=True), init_seed=0)
    assert resumed["final_step"] == 6
    _assert_same_state(resumed["state"], two_ranks["ranks"][0]["trainer"][0]["state"])


def test_reptile_trainer_on_two_ranks_matches_one_process(two_ranks):
    single = trainer_run(*REPTILE_RUN, init_seed=0)
    for rank in two_ranks["ranks"]:
        assert rank["trainer"][3]["divergence"] == 0.0
        _assert_same_state(rank["trainer"][3]["state"], single["state"])


def test_distributed_evaluation_equals_one_process(two_ranks):
    single = evaluation_run(*EVALUATION)
    episodes = EVALUATION[1]
    for rank in two_ranks["ranks"]:
        got = rank["evaluation"]
        assert got["ids"] == list(range(episodes))
        assert got["scores"] == single["scores"]  # exact: same episodes, same order
        assert (got["mean"], got["ci95"]) == (single["mean"], single["ci95"])
    assert len(set(single["scores"])) > 1  # a CI over distinct scores, not a constant
