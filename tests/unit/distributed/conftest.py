"""One 2-rank gloo spawn shared by the distributed tests (process start-up is most of their time)."""

from __future__ import annotations

import pytest
from dist_helpers import rank_job, run_ranks

WORLD = 2
#: Equivalence scenarios: learners, steps, global meta-batch (2 ranks x 8 vs 1 process x 16).
SCENARIOS = (["maml", "protonet", "cnp", "reptile", "reptile-optimizer"], 4, 16)
#: Trainer runs share this config; ``checkpoint_dir`` is filled per run.
TRAIN_BASE = {"meta_batch": 16, "lr": 0.05, "val_every": 3, "val_episodes": 5, "log_every": 1}
REPTILE_RUN = ("reptile", {**TRAIN_BASE, "steps": 4, "val_every": 0})
#: Distributed evaluation: 7 episodes, so the blocks are uneven (3 and 4).
EVALUATION = ("protonet", 7)


def train_config(folder: str, steps: int, resume: bool = False) -> dict:
    return {**TRAIN_BASE, "steps": steps, "checkpoint_dir": folder, "resume": resume}


@pytest.fixture(scope="session")
def two_ranks(tmp_path_factory) -> dict:
    """Each rank's results of :func:`dist_helpers.rank_job`, plus the run folder."""
    folder = tmp_path_factory.mktemp("two_ranks")
    full, part = str(folder / "full"), str(folder / "part")
    plan = {
        "scenarios": SCENARIOS,
        "trainer": [
            ("tiny-maml", train_config(full, 6)),
            ("tiny-maml", train_config(part, 3)),
            ("tiny-maml", train_config(part, 6, resume=True)),
            REPTILE_RUN,
            ("tiny-maml", train_config(str(folder / "handover"), 3)),  # resumed in one process
        ],
        "evaluation": EVALUATION,
    }
    return {"ranks": run_ranks(rank_job, WORLD, folder / "store", plan), "folder": folder}
