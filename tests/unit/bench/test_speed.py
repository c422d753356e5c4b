"""``metazoo speed LEARNER BENCHMARK``: what it measures is sane, for any registered learner."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from metazoo.bench.speed import (
    SYNTHETIC_CLASSES,
    benchmark_episodes,
    measure_speed,
    meta_gradient,
    speed_learner,
)
from metazoo.cli.main import main

QUICK = {"meta_batch": 2, "warmup": 1, "repeats": 2, "min_run_s": 0.0}


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_maml_on_omniglot_is_timed_and_its_fp32_meta_gradient_matches_float64():
    report = measure_speed("maml", "omniglot-5w1s", **QUICK)
    assert report.meta_batch == 2 and report.checked == "meta-gradient"
    assert report.train.rate > 0 and report.eval.rate > 0
    assert len(report.train.seconds_per_call) == 2
    assert report.train.rate == pytest.approx(2 / report.train.median_s)
    assert 0 < report.meta_grad_rel_error < 1e-4  # measured 2e-6: one inner step, 2 tasks
    assert report.train_peak_memory_mb is None or report.train_peak_memory_mb > 0
    assert report.precision["cudnn_tf32"] is False  # measured in plain fp32 unless --tf32
    record = report.to_dict()
    assert record["train_tasks_per_s"] == report.train.rate and record["learner"] == "maml"
    assert "5-way episodes shaped like omniglot-5w1s's card" in report.render()


def test_a_regression_benchmark_gets_sinusoid_episodes():
    (batch,) = benchmark_episodes("sinusoid", 1, meta_batch=3)
    assert batch.support_x.shape == (3, 10, 1) and batch.query_y.shape == (3, 10, 1)
    assert batch.is_regression and batch.support_y.abs().max() <= 5.0
    report = measure_speed("maml", "sinusoid", **QUICK)
    assert report.train.rate > 0 and report.meta_grad_rel_error < 1e-4


def test_reptile_is_checked_on_its_outer_update_and_left_as_it_was():
    learner = speed_learner("reptile", "omniglot-5w1s")
    (batch,) = benchmark_episodes("omniglot-5w1s", 1, meta_batch=2)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    first, second = meta_gradient(learner, batch), meta_gradient(learner, batch)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert all(torch.equal(v, learner.state_dict()[k]) for k, v in before.items())
    assert torch.cat([g.flatten() for g in first]).norm() > 0


def test_learners_that_pretrain_on_all_classes_get_synthetic_class_ids():
    (batch,) = benchmark_episodes("omniglot-5w1s", 1, meta_batch=4)
    assert batch.classes.shape == (4, 5) and int(batch.classes.max()) < SYNTHETIC_CLASSES
    assert all(len(set(row.tolist())) == 5 for row in batch.classes)  # distinct within a task
    assert speed_learner("finetune", "omniglot-5w1s").config.num_classes == SYNTHETIC_CLASSES


def test_an_unknown_learner_is_named_with_the_registered_ones():
    with pytest.raises(KeyError, match=r"unknown learner 'nope'; registered: .*maml"):
        measure_speed("nope", "omniglot-5w1s")


def test_the_command_prints_and_writes_the_measurements(tmp_path, capsys):
    out = tmp_path / "speed.json"
    args = ["speed", "maml", "sinusoid", "--tasks", "2", "--repeats", "1", "--warmup", "1"]
    assert main([*args, "--min-run", "0", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("maml on sinusoid, cpu: synthetic regression episodes")
    assert "meta-gradient, fp32 against float64: relative error" in printed
    record = json.loads(out.read_text())
    assert record["meta_batch"] == 2 and record["train_tasks_per_s"] > 0
    assert main([*args, "--min-run", "0", "--max-error", "0"]) == 1  # nothing is exact
    assert "is above --max-error 0" in capsys.readouterr().out
    assert main(["speed", "nope", "sinusoid"]) == 2
    assert "unknown learner 'nope'" in capsys.readouterr().err


def test_the_user_facing_speed_check_imports_no_peer_and_no_lab():
    code = (
        "import sys, metazoo.bench.speed, metazoo.cli.speed; "
        "print([m for m in sys.modules if m.split('.')[0] in ('higher', 'learn2learn', 'benchmarks')])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
