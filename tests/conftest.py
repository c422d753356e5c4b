"""Shared test setup: data location, cache folder, the test tiers (markers), the Omniglot fixture,
one torch thread for learning tests, and a clean-commit view for the tests that tabulate their own
results."""

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


# Folders (under tests/) whose every test belongs to an expensive tier: marked here, so a test added
# there later cannot land in the fast tier by mistake. Elsewhere a module marks its expensive tests.
FOLDER_TIERS = {
    "lab": "lab",  # the speed lab and the GPU scripts (lab/speed, lab/gpu)
    "tools": "lab",  # the docs generators and record scripts (lab/docs, lab/records)
}


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection reads the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).resolve().parent
    for item in items:
        if item.path.is_relative_to(tests):
            folder = item.path.relative_to(tests).parts[0]
            if folder in FOLDER_TIERS:
                item.add_marker(FOLDER_TIERS[folder])
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


@pytest.fixture(autouse=True)
def one_torch_thread_when_learning(request: pytest.FixtureRequest):
    """A ``learning`` test trains on one intra-op thread, restored afterwards: CI runs two of them
    at once on two cores (pytest-xdist), and two threads per test on two shared cores were up to
    20x slower for these small models (measured on the development machine)."""
    if request.node.get_closest_marker("learning") is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def omniglot_data() -> Path:
    """The Omniglot folder (``$METAZOO_DATA/omniglot-py``) every test of the real data asks for.

    Missing, the test skips on a developer's machine, and fails in CI (``CI=true``), which has the
    data: a green run that skipped every Omniglot test would prove nothing.
    """
    root = Path(os.environ["METAZOO_DATA"]) / "omniglot-py"
    if not all((root / part).is_dir() for part in ("images_background", "images_evaluation")):
        message = (
            f"Omniglot not found at {root}: set METAZOO_DATA to the folder holding omniglot-py "
            "(`python -m metazoo.data download omniglot` fetches it there)"
        )
        if running_in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return root
