"""The contract suite over every registered learner (built-ins and installed plugins)."""

from __future__ import annotations

import pytest

from metazoo import list_learners
from metazoo.testing import check_learner


@pytest.mark.parametrize("name", list_learners())
def test_learner_honours_the_contract(name: str) -> None:
    check_learner(name)
