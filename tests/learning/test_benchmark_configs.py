"""The paper-protocol configs in ``benchmarks/configs/`` load as suites and build every learner."""

from __future__ import annotations

from pathlib import Path

import pytest

from metazoo import build_learner
from metazoo.bench.suite import load_suite

CONFIGS = Path(__file__).resolve().parents[2] / "benchmarks" / "configs"
LEARNERS = ("protonet", "matchingnet", "relationnet", "snail", "mann", "cnp")


@pytest.mark.parametrize("learner", LEARNERS)
def test_paper_config_is_a_valid_suite_whose_cells_build(learner: str) -> None:
    path = CONFIGS / f"{learner}-paper.yaml"
    suite = load_suite(path)
    cells = suite.cells()
    assert cells and {cell.learner for cell in cells} == {learner}
    for cell in cells:
        built = build_learner(
            cell.learner, cell.benchmark, **cell.section("build"), **cell.section("config")
        )
        for key, value in cell.section("config").items():
            got = getattr(built.config, key)
            assert (list(got) if isinstance(got, tuple) else got) == value, (cell.key, key)
