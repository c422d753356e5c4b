"""One 2-rank gloo spawn shared by the distributed tests (process start-up is most of their time)."""

from __future__ import annotations

import pytest
from dist_helpers import rank_job, run_ranks
from dist_plan import EVALUATION, REPTILE_RUN, SCENARIOS, WORLD, train_config


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
