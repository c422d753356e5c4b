"""Provenance that is metazoo's own: git is asked only in metazoo's checkout, the version comes from
the installed distribution; peak memory on the CPU is measured."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

import pytest
import torch

from metazoo.evaluation import evaluate, provenance
from metazoo.evaluation.provenance import (
    MemoryMeter,
    code_version,
    git_revision,
    metazoo_checkout,
    metazoo_version,
    portable_argv,
    portable_command,
)
from metazoo.testing import SyntheticBenchmark, TinyLearner

METAZOO_PROJECT = '[project]\nname = "metazoo"\nversion = "0.1.0"\n'


def _tree(root: Path, project: str | None, git: str = "folder") -> Path:
    """A fake work tree: ``.git`` (a folder, or a worktree's file), a pyproject holding
    ``project`` and a ``metazoo/`` package folder; returns the package folder."""
    root.mkdir(parents=True, exist_ok=True)
    if git == "folder":
        (root / ".git").mkdir()
    elif git == "file":
        (root / ".git").write_text("gitdir: /elsewhere/.git/worktrees/x\n")
    if project is not None:
        (root / "pyproject.toml").write_text(project)
    (root / "metazoo").mkdir()
    return root / "metazoo"


def test_a_checkout_of_metazoo_is_recognised_worktrees_too(tmp_path):
    assert metazoo_checkout(_tree(tmp_path / "clone", METAZOO_PROJECT)) == tmp_path / "clone"
    worktree = _tree(tmp_path / "wt", METAZOO_PROJECT, git="file")
    assert metazoo_checkout(worktree) == tmp_path / "wt"


def test_an_installation_inside_another_repository_is_not_a_checkout(tmp_path):
    user = tmp_path / "user-repo"
    _tree(user, '[project]\nname = "my-paper"\n')
    site = user / ".venv" / "lib" / "python3.11" / "site-packages" / "metazoo"
    site.mkdir(parents=True)
    assert metazoo_checkout(site) is None  # the user's repository holds the installation
    assert metazoo_checkout(user / "metazoo") is None  # a folder named metazoo in their project
    assert metazoo_checkout(_tree(tmp_path / "no-project", None)) is None
    assert metazoo_checkout(_tree(tmp_path / "no-git", METAZOO_PROJECT, git="none")) is None


def test_a_wheel_installed_in_a_venv_inside_metazoo_s_own_checkout_is_not_it(tmp_path):
    _tree(tmp_path / "clone", METAZOO_PROJECT)
    site = tmp_path / "clone" / ".venv" / "lib" / "python3.11" / "site-packages" / "metazoo"
    site.mkdir(parents=True)
    assert metazoo_checkout(site) is None


def test_without_a_checkout_no_git_is_recorded_and_the_version_is_the_distribution_s(
    tmp_path, monkeypatch
):
    user = tmp_path / "user"
    user.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=user, check=True)
    monkeypatch.setattr(provenance, "metazoo_checkout", lambda package=None: None)
    monkeypatch.chdir(user)
    assert git_revision() is None
    assert (
        code_version() == f"metazoo-{metadata.version('metazoo')}" == f"metazoo-{metazoo_version()}"
    )
    assert provenance.environment()["git"] is None


def test_this_checkout_records_its_own_commit():
    top = metazoo_checkout()
    if top is None:
        pytest.skip("metazoo runs from an installed wheel here, not from its checkout")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=top, capture_output=True, text=True)
    assert git_revision()["sha"] == head.stdout.strip()


def test_a_cpu_evaluation_records_its_peak_memory():
    torch.manual_seed(0)
    learner = TinyLearner(torch.nn.Linear(8, 8), TinyLearner.Config())
    result = evaluate(learner, SyntheticBenchmark(), episodes=2)
    memory = result.provenance["memory"]
    assert result.peak_memory_mb > 0 and memory["peak_mb"] == result.peak_memory_mb
    assert memory["measure"] == provenance.memory_measure(torch.device("cpu"))
    assert 0 < memory["start_mb"] <= result.peak_memory_mb


def test_the_cpu_peak_sees_memory_allocated_and_freed_within_the_block():
    with MemoryMeter(torch.device("cpu")) as quiet:
        pass
    with MemoryMeter(torch.device("cpu")) as busy:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched, then freed
        del block
    assert busy.peak_mb - busy.start_mb >= 60
    assert quiet.peak_mb - quiet.start_mb < 20


def test_commands_are_recorded_without_the_machine_s_paths(tmp_path):
    package = tmp_path / "checkout" / "metazoo"
    argv = [str(package / "__main__.py"), "bench", "quickstart", "--out", str(tmp_path / "out"),
            f"data={tmp_path / 'checkout' / 'd'}"]  # fmt: skip
    cwd = tmp_path / "checkout"
    assert portable_command(argv, cwd, package) == "metazoo bench quickstart --out ../out data=d"
    speed = [str(package / "cli" / "speed.py"), "--threads", "2"]
    assert portable_command(speed, cwd, package) == "python -m metazoo.cli.speed --threads 2"
    assert portable_command(["/venv/bin/metazoo", "ls"], cwd) == "metazoo ls"
    assert portable_command(["benchmarks/x.py", "/elsewhere/y"], "/work") == (
        "benchmarks/x.py ../elsewhere/y"
    )
    assert portable_argv(["/a/b", "k=/a/c", "plain"], "/a") == ["b", "k=c", "plain"]
    assert not provenance.environment()["command"].startswith("/")
