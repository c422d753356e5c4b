"""``lab/gpu/gpu_paper_rows.py`` rehearsed on the CPU, the data skeleton it carries, and the
README's GPU preset list."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab.docs.paper_docs import GPU_PRESETS, GPU_SCRIPT_PRESETS
from lab.docs.paper_rows import paper_presets
from lab.gpu import gpu_session
from metazoo.bench.suite import load_suite
from metazoo.data.cache import content_key, file_stamps

REPO = Path(__file__).resolve().parents[2]


def _stamps(root: Path, names: list[str]) -> list[str]:
    return file_stamps([str(root / name) for name in names], names)


def test_skeleton_recreates_sizes_and_mtimes_so_the_cache_key_matches(tmp_path, monkeypatch):
    monkeypatch.setenv("METAZOO_DATA", "unchanged after the test")  # make_skeleton sets it
    real, names = tmp_path / "real", ["omniglot-py/a/c01/1.png", "omniglot-py/b/c02/2.png"]
    for size, name in enumerate(names, 3):
        path = real / name
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x" * size * 100)
        os.utime(path, ns=(1_600_000_000_123_456_789 + size, 1_600_000_000_123_456_789 + size))
    listing = tmp_path / "files.txt.gz"
    assert gpu_session.write_skeleton(real, listing) == 2
    with gzip.open(listing, "rt") as lines:
        first = lines.readline()
    assert first == "300 1600000000123456792 omniglot-py/a/c01/1.png\n"
    gpu_session.make_skeleton(listing, tmp_path / "skeleton")
    assert os.environ["METAZOO_DATA"] == str(tmp_path / "skeleton")
    copy = tmp_path / "skeleton" / names[1]
    assert copy.stat().st_size == 400 and copy.stat().st_blocks == 0  # sparse: no disk used
    key = content_key(_stamps(real, names), 1, 28)
    assert content_key(_stamps(tmp_path / "skeleton", names), 1, 28) == key


def test_skeleton_refuses_an_old_name_only_list(tmp_path):
    listing = tmp_path / "old.txt.gz"
    with gzip.open(listing, "wt") as sink:
        sink.write("omniglot-py/a/c01/1.png\n")
    with pytest.raises(ValueError, match=r"old.txt.gz:1: expected 'size mtime_ns name'"):
        gpu_session.make_skeleton(listing, tmp_path / "skeleton")


def test_gpu_presets_exist_and_every_other_preset_runs_on_this_machines_data():
    presets = set(paper_presets())
    gpu = set(GPU_PRESETS) | set(GPU_SCRIPT_PRESETS)
    assert gpu <= presets
    for name in presets - gpu:
        benchmarks = {c.benchmark for c in load_suite(name).cells()}
        assert all(b.startswith(("omniglot", "sinusoid")) for b in benchmarks), (name, benchmarks)


@pytest.mark.slow
def test_dry_run_checks_the_step_runs_a_cell_under_a_time_limit_and_tables_it(tmp_path):
    done = subprocess.run(
        [sys.executable, "lab/gpu/gpu_paper_rows.py", "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "OUT": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check = (tmp_path / "check-omniglot-5w1s.log").read_text()
    assert "metazoo-auto: meta-gradient relative error" in check and " ok" in check
    suite = yaml.safe_load((tmp_path / "paper-maml-omniglot.yaml").read_text())
    assert suite["deviations"][-1].startswith("Trained for at most 0.25 minutes per cell")
    (folder,) = tmp_path.glob("paper-maml-omniglot-cpu-torch*")
    (path,) = folder.glob("maml__omniglot-5w1s__seed0__*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["train"]["final_step"] == 2
    config = record["train"]["config"]
    assert config["fast"] is not None and config["max_minutes"] == 0.25 and config["tf32"] is False
    assert len(record["result"]["scores"]) == 4
    lines = done.stdout.strip().splitlines()
    assert lines[-3].startswith("| learner | benchmark | ours (95% CI) | paper | status |")
    assert lines[-1].startswith("| maml | omniglot-5w1s | ")
    assert "| 98.7 | below | 2 |" in lines[-1] and lines[-1].endswith("| metazoo-auto (fp32) |")
