"""docs/speed.md shows exactly what the committed speed result files say."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.docs.generate import update_speed_docs, write_speed_tables
from lab.speed.docs import readme_speed_table, training_table
from lab.speed.report import _peak_memory
from lab.speed.targets import fp32_tolerance, gradient_correct

REPO = Path(__file__).resolve().parents[2]


def test_speed_page_is_generated_from_the_committed_results():
    assert update_speed_docs(
        REPO / "docs" / "speed.md", REPO / "benchmarks" / "results", check=True
    ), "docs/speed.md is stale: run `python -m lab.docs.generate` and commit it"


def test_each_runs_table_is_generated_from_its_result_file():
    assert write_speed_tables(check=True) == []


def _shape(loop_error: float, *rows: tuple[str, str, float]) -> dict:
    records = [{"name": "torch-loop", "precision": "fp32", "meta_grad_rel_error": loop_error}]
    records += [{"name": n, "precision": p, "meta_grad_rel_error": e} for n, p, e in rows]
    return {"shape": {"name": "s"}, "contenders": records}


def test_fp32_gate_is_twice_the_loop_error_only_where_the_loop_misses_the_tolerance():
    passing = _shape(5e-4, ("a", "fp32", 9e-4), ("b", "fp32", 1.1e-3))
    assert fp32_tolerance(passing, 1e-3) == 1e-3
    assert [gradient_correct(r, passing, 1e-3) for r in passing["contenders"]] == [
        True,
        True,
        False,
    ]
    noisy = _shape(8e-3, ("a", "fp32", 1.5e-2), ("b", "fp32", 1.7e-2), ("c", "bf16", 1e-2))
    assert fp32_tolerance(noisy, 1e-3) == pytest.approx(1.6e-2)
    assert [gradient_correct(r, noisy, 1e-3) for r in noisy["contenders"]] == [
        True,
        True,
        False,
        False,
    ]


def _run(mean: float, seconds: float, tf32: bool = False) -> dict:
    provenance = {
        "device": "cuda:0",
        "device_name": "GPU X",
        "precision": {"tf32_cudnn": tf32},
        "config": {"inner_lr": 0.4, "inner_steps": 1, "test_inner_steps": 3},
    }
    return {
        "train": {"config": {"fast_step": True, "compile": True}, "seconds": seconds,
                  "final_step": 900, "best_val": 98.0},
        "result": {"benchmark": "omniglot-5w1s", "mean": mean, "ci95": 0.3,
                   "scores": [mean] * 600, "provenance": provenance},
    }  # fmt: skip


def test_training_target_rows_come_from_the_run_files():
    met, slow = ("a.json", _run(98.9, 600.0)), ("b.json", _run(98.9, 1200.0, tf32=True))
    table = training_table([met, slow])
    assert (
        "| GPU X | fast_step, compile | alpha=0.4, 1 step(s), 3 at test | off | 10.0 min" in table
    )
    assert "| 98.90 ± 0.30 (600 ep.) | met | `a.json` |" in table
    assert "| on | 20.0 min |" in table and "not met: 98.90% after 20.0 min" in table
    readme = readme_speed_table(documents=[], runs=[slow])
    assert (
        "| MAML to 98.7% on omniglot-5w1s in under 15 minutes on one GPU | `b.json` (GPU X)"
        in readme
    )
    assert "900 steps, 24 tasks/s all in" in readme  # 900 steps x 32 tasks (the card's) / 1200 s


def test_a_captured_steps_memory_is_its_peak_while_built():
    graphed = {"train": {"peak_memory_mb": 0.0}, "details": {"build_peak_memory_mb": 4200.0}}
    eager = {"train": {"peak_memory_mb": 180.0}}
    assert _peak_memory(graphed) == 4200.0 and _peak_memory(eager) == 180.0
