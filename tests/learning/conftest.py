"""The learning tests run on one torch thread (as ``learning_protocol.run_protocol`` does)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread for each test here, restored afterwards (two threads on two shared
    cores were up to 20x slower for these small models, measured on the development machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
