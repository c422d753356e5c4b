"""Cells side by side (metazoo.bench.parallel), threads (metazoo.engine.threads) and the suite's
progress lines (metazoo.cli.progress): the in-process logic; the processes are in test_jobs.py."""

from __future__ import annotations

import os

import pytest

from metazoo.bench.parallel import plan_jobs
from metazoo.cli.progress import ProgressReporter
from metazoo.engine import threads


@pytest.mark.parametrize(
    "pending,jobs,cores,expected",
    [
        (8, 2, 2, (2, 1)),  # the quickstart on two cores: two cells at a time, one thread each
        (8, 2, 16, (2, 8)),
        (8, 3, 16, (3, 5)),
        (1, 4, 8, (1, 8)),  # no more processes than cells
        (8, 4, 2, (4, 1)),  # at least one thread each
        (0, 2, 2, (1, 2)),
    ],
)
def test_processes_and_threads_split_the_cores(pending, jobs, cores, expected):
    assert plan_jobs(pending, jobs, cores) == expected


def test_plan_jobs_refuses_zero_jobs():
    with pytest.raises(ValueError, match="jobs >= 1"):
        plan_jobs(3, 0, 2)


@pytest.fixture
def machine(monkeypatch):
    """A machine of 4 usable cores whose load average the test sets."""
    load = [0.0]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load[0], 0.0, 0.0))
    return load


def test_threads_are_the_free_cores_split_among_jobs(machine):
    assert threads.choose_threads().threads == 4
    assert threads.choose_threads(jobs=2).threads == 2
    machine[0] = 2.6  # three cores busy elsewhere: one is free
    choice = threads.choose_threads()
    assert (choice.threads, choice.usable_cores, choice.load, choice.rule) == (
        1, 4, 2.6, "free cores"
    )  # fmt: skip
    machine[0] = 9.0
    assert threads.choose_threads(jobs=3).threads == 1  # at least one
    assert threads.choose_threads(asked=3).to_dict()["rule"] == "asked"
    with pytest.raises(ValueError, match="threads must be >= 1"):
        threads.choose_threads(asked=0)


def _suite_lines(events) -> list[str]:
    lines = []
    reporter = ProgressReporter(plain=True, every_s=0.0)
    reporter.say = lines.append
    for event in events:
        reporter(event)
    return lines


def test_progress_says_already_done_and_each_finished_cells_score_time_and_the_time_left():
    cell = {"kind": "cell", "total": 3}
    lines = _suite_lines(
        [
            {**cell, "cell": "maml__sinusoid__seed0", "index": 0, "status": "already done"},
            {**cell, "cell": "cnp__sinusoid__seed0", "index": 1, "status": "running"},
            {"kind": "step", "cell": "cnp__sinusoid__seed0", "step": 5, "steps": 10, "loss": 0.5},
            {
                **cell, "cell": "cnp__sinusoid__seed0", "index": 1, "status": "ok", "error": None,
                "seconds": 75.0, "metric": "mse", "mean": 0.25, "ci95": 0.01, "left": 1,
            },
        ]
    )  # fmt: skip
    assert lines[0] == "[1/3] maml__sinusoid__seed0: already done"
    assert lines[1] == "[2/3] cnp__sinusoid__seed0: running"
    assert lines[2] == "  cnp__sinusoid__seed0: step 5/10  loss 0.5000  ETA ?"
    assert lines[3] == "[2/3] cnp__sinusoid__seed0: ok: mse 0.250 ± 0.010 in 1m15s"
    assert lines[4].startswith("  suite: 0m") and lines[4].endswith(" left")
    assert len(lines) == 5


def test_cells_side_by_side_start_largest_first(monkeypatch, tmp_path):
    """The quickstart's four Omniglot cells (CNP's 300 steps first) start before its sinusoid
    ones, so the last cell to start is a short one and no core idles through a long tail."""
    from metazoo.bench import parallel, runner
    from metazoo.bench.suite import load_suite

    suite = load_suite("quickstart")
    estimates = {
        (c.learner, c.benchmark): runner.work_estimate(c, suite.name) for c in suite.cells()
    }
    # steps x tasks x examples x pixels: 300 x 8 x 5*(1+15) x 784 for CNP on Omniglot
    assert estimates["cnp", "omniglot-5w1s"] == 300 * 8 * 80 * 784
    assert estimates["maml", "sinusoid"] == 3000 * 25 * (10 + 10) * 1
    started = []

    def record_order(suite, out, pending, *args):
        started.extend((cell.learner, cell.benchmark) for _, cell in pending)
        return []

    monkeypatch.setattr(parallel, "run_in_processes", record_order)
    runner.run_suite(suite, tmp_path, jobs=2, threads=1)
    assert started[0] == ("cnp", "omniglot-5w1s")
    assert {b for _, b in started[:4]} == {"omniglot-5w1s"}
    assert {b for _, b in started[4:]} == {"sinusoid"}
