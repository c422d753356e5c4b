"""Train and test one resolved run, and the record it leaves: the same for ``metazoo train`` (its
run folder's ``result.json``) and a suite cell (``<cell>__<env>.json``), so every command that
reads runs (``table``, ``plot``, ``eval``, ``predict``, ``per-source``) reads both."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metazoo.engine.measured import choices_made, choices_mark
from metazoo.engine.precision import tf32
from metazoo.engine.threads import threads_for_run
from metazoo.evaluation import evaluate
from metazoo.evaluation.provenance import environment
from metazoo.runs.resolve import ResolvedRun
from metazoo.training import train

__all__ = ["RESULT_SCHEMA", "new_record", "train_and_test", "now"]

#: Version of the result-record layout.
RESULT_SCHEMA = 1


def now() -> str:
    """The time, UTC, to the second (ISO 8601): a record's ``started`` and ``finished``."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def new_record(
    learner: str,
    benchmark: str,
    seed: int,
    settings: dict[str, Any],
    *,
    device: str | None,
    checkpoints: str,
    suite: str | None = None,
    suite_path: str | None = None,
    cell: str | None = None,
    variant: str = "",
) -> dict[str, Any]:
    """The head of a run's record, before training.

    Args:
        settings: the run's settings (a suite cell's blocks, or a resolved run's).
        checkpoints: the run's checkpoint folder, relative to the record's folder (``.`` for a
            ``metazoo train`` run folder), so the record holds no machine path.
        cell: the record's key (default ``<learner>__<benchmark>__seed<seed>``).
    """
    return {
        "schema": RESULT_SCHEMA,
        "suite": suite,
        "suite_path": suite_path,
        "cell": cell or f"{learner}__{benchmark}__seed{seed}",
        "learner": learner,
        "variant": variant,
        "benchmark": benchmark,
        "seed": seed,
        "settings": settings,
        "checkpoints": checkpoints,
        "environment": environment(device),
        "started": now(),
    }


def train_and_test(
    run: ResolvedRun,
    *,
    checkpoint_dir: str | Path | None,
    resume: bool = False,
    device: str | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    quiet: bool = False,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build, train and evaluate ``run``; returns the ``ok`` part of its record (``result``,
    ``by_shots``, ``second_seed``, ``also_on``, ``train``, and the ``executors`` and ``threads``
    the run chose)."""
    since = choices_mark()
    learner = run.build_learner(device)
    config = run.train_config(
        checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
        resume=resume,
        device=device,
    )
    build, sampler = run.section("build"), run.section("sampler")
    if sampler.get("ways"):  # it sized the head: load_learner and `metazoo eval` build it the same
        build["ways"] = sampler["ways"]
    trained = train(
        learner, run.benchmark, config, callback=callback, quiet=quiet,
        metadata={"build": build, **(metadata or {})},
        train_overrides=run.section("train_sampler"), **sampler,
    )  # fmt: skip
    settings = run.section("eval")
    episodes, seed = int(settings["episodes"]), int(settings["seed"])  # one episode set per run
    with tf32(config.tf32):
        result = evaluate(learner, run.benchmark, episodes=episodes, seed=seed, **sampler)
        by_shots = {}
        for shots in settings["shots"]:
            extra = evaluate(
                learner, run.benchmark, episodes=episodes, seed=seed, **{**sampler, "shots": shots}
            )
            by_shots[str(shots)] = {"mean": extra.mean, "ci95": extra.ci95, "n": extra.n}
        second = None  # the same model on a second set of test episodes (`check_seed`)
        if settings.get("check_seed") is not None:
            check = int(settings["check_seed"])
            other = evaluate(learner, run.benchmark, episodes=episodes, seed=check, **sampler)
            second = {"seed": check, "mean": other.mean, "ci95": other.ci95, "n": other.n}
        also_on = {  # the same trained model on more benchmarks (60-way ProtoNet at 20 ways)
            other: evaluate(learner, other, episodes=episodes, seed=seed, **sampler).to_dict()
            for other in settings["also_on"]
        }
    recorded = dataclasses.asdict(config)
    recorded.pop("checkpoint_dir")  # a machine path; the record's `checkpoints` names the folder
    return {
        "result": result.to_dict(),
        "by_shots": by_shots,
        "second_seed": second,
        "also_on": also_on,
        "executors": [choice.to_dict() for choice in choices_made(since)],
        "threads": threads_for_run().to_dict(),
        "train": {
            "config": recorded,
            "history": trained.history,
            "best_val": trained.best_val,
            "best_step": trained.best_step,
            "final_step": trained.final_step,
            "stopped": trained.stopped,
            "seconds": trained.seconds,  # this call's
            "total_seconds": trained.total_seconds,  # with the calls it resumed
        },
    }
