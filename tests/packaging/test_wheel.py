"""The package boundary: the wheel, installed outside the checkout, runs what the README shows.

The wheel is built from a copy of what the build reads (so no ``build/`` lands in the checkout and
no stale ``build/lib`` leaks into it) and installed into a fresh virtual environment in a temporary
folder. That environment reuses the torch already installed through a ``.pth`` line naming the
current site-packages: a folder added that way does not run its own ``.pth`` files, so the editable
install's finder, which maps ``metazoo`` to the checkout, stays out. Everything then runs with its
working directory outside the checkout, and every ``metazoo`` module must come from the environment.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

needs_omniglot = pytest.mark.usefixtures("omniglot_data")  # skips, or fails in CI, without it

# A one-cell suite: ProtoNet on Omniglot 5-way 1-shot, a few steps, a few test episodes.
ONE_CELL = """\
name: one-cell
seeds: [0]
train: {steps: 5, meta_batch: 2, val_every: 0, log_every: 1}
eval: {episodes: 10, seed: 0}
runs:
  - benchmark: omniglot-5w1s
    learners: [protonet]
    build: {backbone_options: {hidden: 16}}
"""

# Appended to the README's snippet: what it computed, and where every metazoo module came from.
REPORT = """
import json as _json, sys as _sys
_grads = [p.grad for p in learner.parameters()]
print("REPORT " + _json.dumps({
    "loss": loss.item(),
    "params": len(_grads),
    "grads": sum(g is not None and bool(g.abs().sum() > 0) for g in _grads),
    "modules": sorted({m.__file__ for n, m in _sys.modules.items()
                       if n.split(".")[0] == "metazoo" and getattr(m, "__file__", None)}),
}))
"""


def readme_snippet() -> str:
    """The Python block under the README's "Using it from Python" heading, run line for line with
    a meta-batch of 4 tasks instead of its 32: second-order MAML on 32 tasks takes minutes on a
    busy 2-core CPU, and the point here is where the code and cards are read from."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using it from Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README: no ```python block under 'Using it from Python'"
    code, count = re.subn(r"meta_batch=\d+", "meta_batch=4", match.group(1))
    assert count == 1, "README snippet: expected one `meta_batch=N` to shrink"
    return code


def build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("pyproject.toml", "README.md"):
        src.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    for name in ("metazoo", "registry"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    dist = tmp / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(src)], cwd=tmp)  # fmt: skip
    (wheel,) = dist.glob("metazoo-*.whl")
    return wheel


def make_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    # --system-site-packages: torch where it sits in the base interpreter (the .pth line below
    # adds it where it sits in this virtual environment); the wheel's metazoo comes first
    run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        cwd=tmp,
    )
    (site,) = venv.glob("lib/python*/site-packages")
    here = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "_reuse_torch.pth").write_text("".join(f"{p}\n" for p in here))
    # pip comes from the reused site-packages; --ignore-installed: never touch the editable install
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--ignore-installed",
         "--no-index", "--disable-pip-version-check", "-q", str(wheel)], cwd=tmp)  # fmt: skip
    return venv


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    assert not tmp.resolve().is_relative_to(ROOT)
    return build_wheel(tmp)


@pytest.fixture(scope="module")
def installed(wheel) -> tuple[Path, Path, dict[str, str]]:
    """(venv, working folder outside the checkout, environment) with the wheel installed."""
    tmp = wheel.parent.parent
    venv = make_venv(tmp, wheel)
    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "METAZOO_REGISTRY")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["COLUMNS"] = "200"  # rich tables: wide enough that names are not cut
    return venv, work, env


def test_wheel_holds_the_package_cards_suites_and_splits(wheel):
    """Every module, card, suite and split of the checkout is in the wheel, and nothing else."""
    with zipfile.ZipFile(wheel) as whl:
        names = {n for n in whl.namelist() if not n.startswith("metazoo-")}
    files = {
        p.relative_to(ROOT).as_posix()
        for folder in ("metazoo", "registry")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    expected = {f"metazoo/{f}" if f.startswith("registry/") else f for f in files}
    assert names == expected
    assert {
        "metazoo/registry/suites/quickstart.yaml",
        "metazoo/registry/learners/maml.yaml",
        "metazoo/registry/benchmarks/omniglot-5w1s.yaml",
        "metazoo/data/splits/omniglot/vinyals/test.txt",
    } <= names


def test_metazoo_ls_and_imports_come_from_the_environment(installed):
    venv, work, env = installed
    where = run([str(venv / "bin" / "python"), "-c",
                 "import metazoo, metazoo.registry; print(metazoo.__file__, metazoo.registry.__file__)"],
                cwd=work, env=env).split()  # fmt: skip
    assert all(Path(p).is_relative_to(venv) for p in where), where
    listing = run([str(venv / "bin" / "metazoo"), "ls"], cwd=work, env=env)
    for name in ("maml", "protonet", "cnp", "omniglot-5w1s", "sinusoid"):
        assert name in listing, f"`metazoo ls` from the wheel does not list {name}:\n{listing}"


@needs_omniglot
def test_readme_python_snippet_runs_from_the_wheel(installed):
    venv, work, env = installed
    script = work / "snippet.py"
    script.write_text(readme_snippet() + REPORT)
    out = run([str(venv / "bin" / "python"), str(script)], cwd=work, env=env)
    report = json.loads(out.split("REPORT ", 1)[1])
    assert math.isfinite(report["loss"]) and report["loss"] > 0
    assert report["grads"] == report["params"] > 0  # the meta-gradient reached every parameter
    outside = [f for f in report["modules"] if not Path(f).is_relative_to(venv)]
    assert not outside, f"modules loaded from outside the environment: {outside}"


@needs_omniglot
def test_one_cell_suite_on_omniglot_from_the_wheel(installed):
    venv, work, env = installed
    (work / "one.yaml").write_text(ONE_CELL)
    out = run([str(venv / "bin" / "metazoo"), "bench", "one.yaml", "--out", "results", "--quiet"],
              cwd=work, env=env)  # fmt: skip
    (path,) = (work / "results").glob("protonet__omniglot-5w1s__seed0__*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok"
    result = record["result"]
    assert result["metric"] == "accuracy" and len(result["scores"]) == 10
    assert 0.0 <= result["mean"] <= 100.0
    table = (work / "results" / "tables" / "table.md").read_text()
    assert "protonet" in table.lower() and "omniglot-5w1s" in table
    assert "tables: " in out


def test_a_wheel_installed_inside_a_user_repository_records_metazoo_s_version(wheel, tmp_path):
    """The user's repository holds the virtual environment: its commit is not metazoo's, and a
    suite runner that took it for metazoo's would re-run every cell at each of their commits."""
    user = tmp_path / "my-paper"
    user.mkdir()
    (user / "pyproject.toml").write_text('[project]\nname = "my-paper"\nversion = "3.0"\n')
    for cmd in (["init", "-q"], ["add", "pyproject.toml"],
                ["-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "-m", "mine"]):  # fmt: skip
        run(["git", *cmd], cwd=user)
    their_commit = run(["git", "rev-parse", "HEAD"], cwd=user).strip()
    venv = make_venv(user, wheel)  # my-paper/venv, inside their work tree
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "METAZOO_REGISTRY")}
    probe = (
        "import json, metazoo\n"
        "from metazoo.evaluation.provenance import code_version, environment, metazoo_checkout\n"
        "e = environment()\n"
        "print(json.dumps({'file': metazoo.__file__, 'metazoo': e['metazoo'], 'git': e['git'],\n"
        "                  'version': code_version(), 'checkout': str(metazoo_checkout())}))\n"
    )
    out = run([str(venv / "bin" / "python"), "-c", probe], cwd=user, env=env)
    seen = json.loads(out)
    assert Path(seen["file"]).is_relative_to(venv)  # the installed wheel, inside their repository
    assert seen["metazoo"] == "0.1.0" and seen["version"] == "metazoo-0.1.0"
    assert seen["git"] is None and seen["checkout"] == "None"
    assert their_commit not in out
