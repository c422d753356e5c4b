"""2 gloo ranks x meta-batch 8 train the same weights as 1 process x meta-batch 16."""

from __future__ import annotations

import pytest
import torch
from dist_helpers import run_ranks, train_scenario, train_scenarios

STEPS, GLOBAL_BATCH, WORLD = 4, 16, 2
LEARNERS = ["tiny-maml", "tiny-reptile"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """Every learner trained on 2 ranks, in one spawn (process start-up dominates)."""
    folder = tmp_path_factory.mktemp("ranks")
    return run_ranks(train_scenarios, WORLD, folder, LEARNERS, STEPS, GLOBAL_BATCH)


@pytest.mark.parametrize("name", LEARNERS)
def test_two_ranks_match_one_process(ranks, name):
    single = train_scenario(name, STEPS, GLOBAL_BATCH, init_seed=0)
    for rank_result in ranks:
        result = rank_result[name]
        assert result["divergence"] == 0.0  # the ranks hold identical weights
        for key, expected in single["state"].items():
            torch.testing.assert_close(result["state"][key], expected, rtol=1e-9, atol=1e-11)
        for got, want in zip(result["history"], single["history"]):
            assert got.keys() == want.keys()
            for metric, value in want.items():
                assert got[metric] == pytest.approx(value, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", LEARNERS)
def test_training_moved_the_weights(ranks, name):
    # Guards the comparison above against a learner that never updates.
    untouched = train_scenario(name, 0, GLOBAL_BATCH, init_seed=0)["state"]
    trained = ranks[0][name]["state"]
    assert any(not torch.equal(trained[k], untouched[k]) for k in untouched)
