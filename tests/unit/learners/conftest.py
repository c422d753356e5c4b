"""Fixtures for the learner unit tests (the helpers live in ``learner_checks``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from learner_checks import query_labels_unused_check, small_embedding_factory
from torch import nn


@pytest.fixture
def small_embedding() -> Callable[..., nn.Module]:
    """See :func:`learner_checks.small_embedding_factory`."""
    return small_embedding_factory()


@pytest.fixture
def assert_query_labels_unused() -> Callable[..., None]:
    """See :func:`learner_checks.query_labels_unused_check`."""
    return query_labels_unused_check()
