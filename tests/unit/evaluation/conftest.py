"""Fixtures: a synthetic benchmark and a tiny learner (no data needed)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metazoo.testing import SyntheticBenchmark, TinyLearner


@pytest.fixture
def bench() -> SyntheticBenchmark:
    return SyntheticBenchmark()


def _make_tiny(seed: int = 0, task: str = "classification") -> TinyLearner:
    torch.manual_seed(seed)
    model = (
        nn.Linear(8, 8)
        if task == "classification"
        else nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1))
    )
    return TinyLearner(model, TinyLearner.Config())


@pytest.fixture
def make_tiny():
    """``make_tiny(seed=0, task="classification")`` builds a fresh :class:`TinyLearner`."""
    return _make_tiny


@pytest.fixture
def tiny() -> TinyLearner:
    return _make_tiny()
