"""Fixtures for the data tests; the generated datasets live in data_fixtures.py."""

from __future__ import annotations

import pytest
from data_fixtures import grid_dataset

from metazoo.data import ClassDataset


@pytest.fixture
def grid() -> ClassDataset:
    return grid_dataset()
