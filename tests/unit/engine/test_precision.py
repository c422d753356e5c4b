"""The reproducibility switch sets and restores PyTorch's numeric flags and reports them."""

from __future__ import annotations

import torch

from metazoo import engine


def test_reproducible_turns_tf32_off_and_cudnn_deterministic_and_restores_on_exit():
    before = engine.precision_mode()
    with engine.reproducible():
        mode = engine.precision_mode()
        assert mode["reproducible"] is True
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cudnn.deterministic is True
        assert torch.backends.cudnn.benchmark is False
        assert mode["deterministic_algorithms"] is True
    assert engine.precision_mode() == before


def test_reproducible_false_turns_tf32_on():
    with engine.reproducible(enabled=False):
        mode = engine.precision_mode()
        assert mode["matmul_tf32"] is True and mode["cudnn_tf32"] is True
        assert mode["reproducible"] is False
    assert set(mode) == {
        "matmul_tf32",
        "cudnn_tf32",
        "cudnn_deterministic",
        "cudnn_benchmark",
        "deterministic_algorithms",
        "float32_matmul_precision",
        "reproducible",
    }
