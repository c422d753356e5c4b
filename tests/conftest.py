"""Shared test setup: data location, cache folder, the gpu and triton markers, a clean-commit
view for the tests that tabulate their own results."""

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


@pytest.fixture(scope="module")
def committed_code():
    """For the tests that tabulate results they make: those results count as coming from a clean
    checkout of metazoo (this one's commit), whatever the developer's tree holds, so their tables
    render as in CI. Asked for by name: every other test sees the real provenance."""
    from metazoo.evaluation import provenance

    real = provenance.git_revision
    found = real()
    clean = None if found is None else {**found, "dirty": False}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(provenance, "git_revision", lambda path=None: real(path) if path else clean)
        yield clean


def omniglot_available() -> bool:
    return (Path(os.environ["METAZOO_DATA"]) / "omniglot-py" / "images_background").is_dir()
