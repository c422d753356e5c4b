"""Fixtures for the learner unit tests (the helpers live in ``learner_checks``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from learner_checks import query_labels_unused_check, small_embedding_factory
from torch import nn


@pytest.fixture
def one_torch_thread():
    """Run a test on one intra-op thread, then restore the setting.

    On two shared cores, two torch threads fighting other processes made these small-tensor tests
    25x slower (132 s against 5 s, measured here); one thread is also deterministic.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def float64_one_thread(one_torch_thread):
    """float64 by default (finite-difference gates need it) on one thread; both restored after."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


@pytest.fixture
def small_embedding() -> Callable[..., nn.Module]:
    """See :func:`learner_checks.small_embedding_factory`."""
    return small_embedding_factory()


@pytest.fixture
def assert_query_labels_unused() -> Callable[..., None]:
    """See :func:`learner_checks.query_labels_unused_check`."""
    return query_labels_unused_check()
