"""Shared test setup: data location, cache folder, and the gpu marker."""

from __future__ import annotations

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
    if torch.cuda.is_available():
        return
    deselected = [item for item in items if "gpu" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if "gpu" not in item.keywords]


def omniglot_available() -> bool:
    return (Path(os.environ["METAZOO_DATA"]) / "omniglot-py" / "images_background").is_dir()
