"""Shared test setup: data location, cache folder, and the gpu and triton markers."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests read the shared Omniglot copy unless METAZOO_DATA points elsewhere; caches go to our own folder.
os.environ.setdefault("METAZOO_DATA", str(SHARED_DATA))
os.environ.setdefault("METAZOO_CACHE", str(REPO / ".cache" / "metazoo"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = {
        "gpu": not torch.cuda.is_available(),
        "triton": importlib.util.find_spec("triton") is None,  # its wheels are Linux-only
    }
    unrunnable = [m for m, absent in missing.items() if absent]
    deselected = [item for item in items if any(m in item.keywords for m in unrunnable)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


def omniglot_available() -> bool:
    return (Path(os.environ["METAZOO_DATA"]) / "omniglot-py" / "images_background").is_dir()
