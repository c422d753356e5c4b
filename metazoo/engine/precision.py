"""Reproducibility switch: TF32 off, deterministic cuDNN, and the precision mode to record.

TF32 (on by default for cuDNN convolutions on Ampere and later) moves second-order
meta-gradients by 1-20%; results that claim to reproduce a number record the mode they ran in::

    import metazoo.engine as engine
    engine.reproducible()            # from now on
    with engine.reproducible():      # or only inside the block
        ...
    result["precision"] = engine.precision_mode()
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["reproducible", "precision_mode", "tf32"]


def _settings() -> dict[str, Any]:
    return {
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def _apply(settings: dict[str, Any]) -> None:
    torch.backends.cuda.matmul.allow_tf32 = settings["matmul_tf32"]
    torch.backends.cudnn.allow_tf32 = settings["cudnn_tf32"]
    torch.backends.cudnn.deterministic = settings["cudnn_deterministic"]
    torch.backends.cudnn.benchmark = settings["cudnn_benchmark"]
    torch.use_deterministic_algorithms(settings["deterministic_algorithms"], warn_only=True)


class reproducible:  # noqa: N801 - used like a function
    """Turn the reproducibility mode on (or off) now; as a context manager, restore on exit.

    On: TF32 off for matmuls and cuDNN, cuDNN deterministic with benchmarking off, and
    ``torch.use_deterministic_algorithms(True, warn_only=True)``; ``CUBLAS_WORKSPACE_CONFIG`` is
    set when absent (it only takes effect if CUDA has not been initialised yet).

    Args:
        enabled: True for the reproducible mode, False for PyTorch's fast defaults (TF32 on).
    """

    def __init__(self, enabled: bool = True):
        self._previous = _settings()
        if enabled:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        _apply(
            {
                "matmul_tf32": not enabled,
                "cudnn_tf32": not enabled,
                "cudnn_deterministic": enabled,
                "cudnn_benchmark": False if enabled else self._previous["cudnn_benchmark"],
                "deterministic_algorithms": enabled,
            }
        )

    def __enter__(self) -> reproducible:
        return self

    def __exit__(self, *exc: object) -> None:
        _apply(self._previous)


def precision_mode() -> dict[str, Any]:
    """The numeric settings in force, to record with every result.

    Returns:
        ``{"reproducible": bool, "matmul_tf32", "cudnn_tf32", "cudnn_deterministic",
        "cudnn_benchmark", "deterministic_algorithms", "float32_matmul_precision"}``.
    """
    settings = _settings()
    settings["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    settings["reproducible"] = (
        not settings["matmul_tf32"]
        and not settings["cudnn_tf32"]
        and settings["cudnn_deterministic"]
    )
    return settings


@contextlib.contextmanager
def tf32(enabled: bool | None) -> Iterator[None]:
    """TF32 for matmuls and cuDNN on (True) or off (False, plain fp32) inside the block; None
    leaves PyTorch's settings (cuDNN TF32 on by default) as they are."""
    if enabled is None:
        yield
        return
    previous = _settings()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        _apply(previous)
