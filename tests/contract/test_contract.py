"""The contract suite over every registered learner (built-ins and installed plugins)."""

from __future__ import annotations

import pytest
import torch

from metazoo import list_learners
from metazoo.testing import check_learner


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread per contract check, restored afterwards: the checks use tiny tensors,
    and on two shared cores two threads made them up to 25x slower (measured on the dev machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list_learners())
def test_learner_honours_the_contract(name: str) -> None:
    check_learner(name)
