"""``python -m lab.speed --quick`` and the GPU script's CPU rehearsal, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lab.speed import cli as speedlab
from lab.speed.cli import main
from lab.speed.report import render_markdown

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_speed_run_writes_checked_results(tmp_path, capsys):
    assert main(["--quick", "--tasks", "1", "--out", str(tmp_path)]) == 0
    (json_path,) = (tmp_path / "results").glob("speed-cpu-*core-torch*-quick.json")
    assert not list((tmp_path / "results").glob("*.partial"))  # the whole result replaced it
    document = json.loads(json_path.read_text())
    (shape,) = document["shapes"]
    assert shape["shape"]["name"] == "omniglot-5w1s" and shape["shape"]["meta_batch"] == 1
    records = {r["name"]: r for r in shape["contenders"]}
    for name in (
        "higher",
        "torch-loop",
        "metazoo-sequential",
        "metazoo-vectorized",
        "metazoo-auto",
    ):
        assert records[name]["status"] == "ok", records[name]
        assert records[name]["meta_grad_rel_error"] < 1e-3
        assert records[name]["train"]["per_s"] > 0
        assert records[name]["details"]["build_seconds"] > 0  # what a first step costs
    if "learn2learn" not in sys.modules:
        assert records["learn2learn"]["status"] in ("skipped", "ok")
    table = (tmp_path / "tables" / f"{json_path.stem}.md").read_text()
    assert table == render_markdown(document)
    out = capsys.readouterr().out
    assert "meta-gradient relative error" in out and f"wrote {json_path}" in out


def test_a_killed_speed_run_leaves_what_it_measured(tmp_path, monkeypatch, capsys):
    """Each progress report replaces the partial file; a run stopped before its end keeps the
    last one, marked partial, where result globs and ``lab/docs/generate.py`` do not read it."""

    def killed_after_two_reports(config, log, progress):
        for rounds in (1, 2):
            document = {
                "schema": "metazoo-speed/1",
                "mode": "full",
                "environment": {
                    "device": {"type": "cpu", "threads": 2},
                    "versions": {"torch": "2.14.1"},
                },
                "tag": None,
                "partial": True,
                "shapes": [{"rounds": rounds}],
            }
            progress(document)
        raise KeyboardInterrupt  # what a timeout's kill leaves: no final document

    monkeypatch.setattr(speedlab, "run_speed", killed_after_two_reports)
    assert main(["--out", str(tmp_path)]) == 130
    assert "interrupted" in capsys.readouterr().err
    results = tmp_path / "results"
    assert not list(results.glob("*.json"))
    kept = json.loads((results / "speed-cpu-2core-torch2.14.1.json.partial").read_text())
    assert kept["partial"] is True and kept["shapes"] == [{"rounds": 2}]
    from lab.script_tools import latest_speed_result

    assert latest_speed_result(tmp_path) == kept  # what gpu_session reports when killed


@pytest.mark.slow
def test_gpu_check_dry_run_ends_with_the_short_table(tmp_path):
    done = subprocess.run(
        [sys.executable, "lab/gpu/gpu_check.py", "--dry-run", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert (
        lines[-6] == "| shape | contender | precision | rel. error | tasks/s | × loop | eval ep/s |"
    )
    assert lines[-1] == "| omniglot-5w1s | metazoo-auto+bf16 (skipped) | bf16 | – | – | – | – |"
    assert "## Correctness (TF32 off; float64 sequential reference)" in done.stdout
    (result,) = (tmp_path / "results").glob("speed-cpu-*-quick.json")
    assert (tmp_path / "logs" / "omniglot-5w1s.log").is_file()
    records = {r["name"]: r for r in json.loads(result.read_text())["shapes"][0]["contenders"]}
    assert records["metazoo-vectorized+graph"]["note"] == "CUDA-only variant"
    assert records["metazoo-auto"]["meta_grad_rel_error"] < 1e-3


def test_gpu_check_refuses_to_run_without_cuda_unless_rehearsing():
    done = subprocess.run(
        [sys.executable, "lab/gpu/gpu_check.py"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "no CUDA device here: use --dry-run to rehearse on the CPU" in done.stderr


def _gpu_session(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """``lab/gpu/gpu_session.py --dry-run`` with its run and outputs under ``tmp_path``."""
    return subprocess.run(
        [sys.executable, "lab/gpu/gpu_session.py", "--dry-run", *args]
        + ["--run-dir", str(tmp_path / "run")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "OUT": str(tmp_path / "out")},
    )


@pytest.mark.slow
def test_gpu_session_dry_run_checks_times_trains_and_reports(tmp_path):
    """The one-call GPU session, rehearsed on the CPU: speed check, a short MAML run, the tables."""
    cache = tmp_path / "compile-cache"
    # 3 steps of 32 tasks take about 30 s on 2 CPU cores: the limit must not cut them short
    done = _gpu_session(tmp_path, "--train-minutes", "2", "--compile-cache", str(cache))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "## MAML, Omniglot 5-way 1-shot, fast step 'metazoo-auto'" in done.stdout
    result = json.loads((tmp_path / "out" / "train-result.json").read_text())
    assert result["train"]["config"]["fast"] is not None and result["train"]["final_step"] == 3
    assert len(result["result"]["scores"]) == 20
    assert (tmp_path / "out" / "speed.log").is_file()
    assert cache.is_dir() and (tmp_path / "out" / "compile-cache.tar.gz").is_file()
    resumed = _gpu_session(tmp_path, "--resume", "--steps", "5")  # the same run goes on
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "-m lab.speed" not in resumed.stdout and "-m metazoo train" in resumed.stdout
    again = json.loads((tmp_path / "out" / "train-result.json").read_text())["train"]
    assert again["final_step"] == 5 and again["config"]["resume"]
    assert again["total_seconds"] > again["seconds"] + result["train"]["seconds"] * 0.5


@pytest.mark.slow
def test_gpu_session_speed_only_ends_with_the_speed_table_and_trains_nothing(tmp_path):
    cache = tmp_path / "compile-cache"
    done = _gpu_session(tmp_path, "--speed-only", "--compile-cache", str(cache))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "-m lab.speed" in done.stdout and "-m metazoo train" not in done.stdout
    lines = done.stdout.strip().splitlines()
    assert (
        lines[-5] == "| shape | contender | precision | rel. error | tasks/s | × loop | eval ep/s |"
    )
    assert lines[-1].startswith("| omniglot-5w1s | maml-learner | fp32 |")
    assert (tmp_path / "out" / "compile-cache.tar.gz").is_file()  # packed for the next session
    assert not (tmp_path / "out" / "train-result.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "script,args",
    [
        ("conv_lowering.py", ["--device", "cpu", "--tasks", "2", "--repeats", "1"]),
        ("profile_step.py", ["--device", "cpu", "--tasks", "2", "--steps", "1", "--top", "5"]),
    ],
)
def test_gpu_diagnosis_scripts_rehearse_on_the_cpu(script, args):
    """The scripts a GPU session runs to see where time goes: they run, and the lowerings agree."""
    done = subprocess.run(
        [sys.executable, f"lab/speed/{script}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    if script == "conv_lowering.py":
        rows = [line.split(" | ") for line in done.stdout.splitlines() if "px) |" in line]
        assert len(rows) == 4 * 8  # four layers, eight lowerings
        assert all(float(row[2]) < 1e-4 for row in rows), done.stdout
    else:
        assert "| kernel family | device ms | share |" in done.stdout


def test_gpu_session_trains_the_fastest_checked_step_tf32_only_when_allowed(monkeypatch):
    from lab.gpu import gpu_session

    def row(name, precision, error, rate, ok):
        return {"name": name, "precision": precision, "meta_grad_rel_error": error,
                "gradient_ok": ok, "train": {"per_s": rate}}  # fmt: skip

    rows = [
        row("metazoo-compiled+channels-last", "fp32", 5e-4, 1400.0, True),
        row("metazoo-compiled+channels-last+batched-wgrad", "fp32", 2e-3, 1600.0, False),
        row("metazoo-compiled+channels-last+tf32", "tf32", 1e-2, 2400.0, False),
        row("metazoo-compiled+channels-last+batched-wgrad+tf32", "tf32", 0.2, 2600.0, False),
    ]
    document = {"shapes": [{"contenders": rows}]}
    assert gpu_session._best_fast_step(document)[0] == "metazoo-compiled+channels-last"
    best, options = gpu_session._best_fast_step(document, tf32=True)
    assert best == "metazoo-compiled+channels-last+tf32" and "tf32=true" in options


def test_every_contender_the_gpu_session_names_is_registered(monkeypatch):
    """A misspelt name would cost a GPU session's scarce minutes: its default list and the names
    in its recipes are all contenders the speed lab knows on CUDA."""
    import re

    from lab.gpu import gpu_session
    from lab.speed.runner import SpeedConfig

    named = re.findall(r"(?<![\w-])(torch-loop|metazoo-[\w+.-]*\w)", gpu_session.__doc__)
    assert "metazoo-compiled+channels-last+triton-conv+3xtf32" in named
    for names in (list(gpu_session.SPEED_CONTENDERS), named):
        assert SpeedConfig(contenders=names).contender_names(torch.device("cuda")) == names


@pytest.mark.triton  # the kernels' names come from their module, which needs triton
def test_the_profile_counts_metazoos_triton_kernels_apart_from_cudnn():
    from types import SimpleNamespace

    from lab.speed import profile_step

    rows = [
        SimpleNamespace(key=name, self_device_time_total=us)
        for name, us in (
            ("weight_gradient_kernel", 3000.0),
            ("convolution_kernel", 1000.0),
            ("sm90_xmma_fprop_implicit_gemm_f32f32", 500.0),
            ("triton_poi_fused_add_0", 500.0),
        )
    ]
    table = profile_step.kernel_summary(rows, wall_us=10_000.0).splitlines()
    assert table[2] == "| metazoo triton convolution | 4.00 | 80% |"
    assert table[3] == "| convolution | 0.50 | 10% |"
    assert table[-1] == "device busy 5.00 ms of 10.00 ms wall"
