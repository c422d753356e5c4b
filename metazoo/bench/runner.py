"""Run a suite: train and evaluate each cell, one atomically written JSON result file per cell.

A cell whose result file (same cell, same environment tag) says ``ok`` and was written by the same
code version is skipped, so a killed suite resumes where it stopped (the interrupted cell itself
resumes from its training checkpoint, kept per code version). A result of other code is moved to
``superseded/`` and its cell runs again: a results folder holds one commit's numbers. A cell that
raises is recorded with ``status: failed``, its error and traceback, and the suite goes on.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metazoo._atomic import write_json_atomic
from metazoo.bench.suite import Cell, Suite
from metazoo.evaluation import evaluate
from metazoo.evaluation.provenance import code_version, environment, environment_tag
from metazoo.training import TrainConfig, train

__all__ = [
    "run_suite",
    "run_cell",
    "write_json_atomic",
    "SuiteReport",
    "RESULT_SCHEMA",
]

#: Version of the result-file layout.
RESULT_SCHEMA = 1
Callback = Callable[[dict[str, Any]], None]


@dataclass
class SuiteReport:
    """What a suite run did: result files written, cells skipped as done, cells that failed."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _is_done(path: Path, version: str) -> bool:
    """Whether ``path`` holds an ``ok`` result of code ``version``; a result of other code is moved
    to ``superseded/`` beside it (kept, never overwritten), so the cell runs again."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False  # missing or unreadable: run the cell again
    if code_version((record.get("environment") or {}).get("git")) == version:
        return record.get("status") == "ok"
    superseded = path.parent / "superseded" / path.name
    superseded.parent.mkdir(exist_ok=True)
    os.replace(path, superseded.with_stem(f"{path.stem}__{record.get('finished', 'unknown')}"))
    return False


def build_cell_learner(cell: Cell, device: str | None = None) -> nn.Module:
    """The untrained learner of one suite cell, as :func:`run_cell` trains it."""
    from metazoo.build import build_learner

    return build_learner(
        cell.learner,
        cell.benchmark,
        seed=cell.seed,
        device=device,
        ways=cell.section("sampler").get("ways"),  # a head sized for the suite's ways
        **cell.section("build"),
        **cell.section("config"),
    )


def run_cell(
    cell: Cell, checkpoint_dir: Path, device: str | None = None, callback: Callback | None = None
) -> dict[str, Any]:
    """Build, train and evaluate one cell; returns the ``ok`` part of its result record."""
    from metazoo.build import train_defaults

    build, sampler = cell.section("build"), cell.section("sampler")
    learner = build_cell_learner(cell, device)
    # the paper's training settings from the learner card, under the suite's own
    paper = train_defaults(cell.learner, cell.benchmark)
    train_settings = {"val_every": 0, **paper, **cell.section("train")}
    config = TrainConfig(
        **{
            **train_settings,
            "seed": cell.seed,
            "checkpoint_dir": str(checkpoint_dir),
            "resume": True,
        }
    )
    metadata = {"build": build, "cell": cell.key}
    trained = train(
        learner, cell.benchmark, config, callback=callback, metadata=metadata,
        quiet=callback is None,  # a suite without a callback prints nothing (the CLI passes one)
        train_overrides=cell.section("train_sampler"), **sampler,
    )  # fmt: skip
    eval_settings = cell.section("eval")
    episodes = int(eval_settings.get("episodes", 600))
    seed = int(eval_settings.get("seed", 0))  # one episode set for every cell: results pair up
    result = evaluate(learner, cell.benchmark, episodes=episodes, seed=seed, **sampler)
    by_shots = {}
    for shots in eval_settings.get("shots", []):
        extra = evaluate(
            learner, cell.benchmark, episodes=episodes, seed=seed, **sampler, shots=shots
        )
        by_shots[str(shots)] = {"mean": extra.mean, "ci95": extra.ci95, "n": extra.n}
    check = eval_settings.get("check_seed")  # a second set of test episodes for the same model
    second = None
    if check is not None:
        other = evaluate(learner, cell.benchmark, episodes=episodes, seed=int(check), **sampler)
        second = {"seed": int(check), "mean": other.mean, "ci95": other.ci95, "n": other.n}
    also_on = {  # the same trained model on more benchmarks (e.g. 60-way ProtoNet at 20 ways)
        other: evaluate(learner, other, episodes=episodes, seed=seed, **sampler).to_dict()
        for other in eval_settings.get("also_on", [])
    }
    return {
        "result": result.to_dict(),
        "by_shots": by_shots,
        "second_seed": second,
        "also_on": also_on,
        "train": {
            "config": {
                k: v
                for k, v in dataclasses.asdict(config).items()
                if k not in ("checkpoint_dir", "resume")
            },
            "history": trained.history,
            "best_val": trained.best_val,
            "best_step": trained.best_step,
            "final_step": trained.final_step,
            "seconds": trained.seconds,  # this call's
            "total_seconds": trained.total_seconds,  # with the calls it resumed
        },
    }


def _record(cell: Cell, suite: Suite, device: str | None) -> dict[str, Any]:
    return {
        "schema": RESULT_SCHEMA,
        "suite": suite.name,
        "suite_path": str(suite.path) if suite.path else None,
        "cell": cell.key,
        "learner": cell.learner,
        "variant": cell.variant,
        "benchmark": cell.benchmark,
        "seed": cell.seed,
        "settings": cell.settings,
        "environment": environment(device),
        "started": _now(),
    }


def run_suite(
    suite: Suite,
    out: str | Path,
    *,
    shard: tuple[int, int] | None = None,
    device: str | None = None,
    callback: Callback | None = None,
) -> SuiteReport:
    """Run every cell of ``suite`` (or of one shard) not already done in ``out``.

    Args:
        suite: a :class:`Suite` (see :func:`metazoo.bench.load_suite`).
        out: the results folder; result files go to ``out/<cell>__<env>.json``, training
            checkpoints to ``out/checkpoints/<cell>@<code version>/``.
        shard: ``(i, n)`` runs only cells ``i, i+n, i+2n, ...`` (for job arrays).
        device: where to train and evaluate (default: CPU).
        callback: receives ``{"kind": "cell", "cell", "index", "total", "status"}`` events and the
            trainer's events (with ``"cell"`` added).
    """
    out = Path(out)
    tag, version = environment_tag(device), code_version()
    report = SuiteReport()
    cells = suite.cells(shard)
    for index, cell in enumerate(cells):
        path = out / cell.filename(tag)
        event = {"kind": "cell", "cell": cell.key, "index": index, "total": len(cells)}
        if _is_done(path, version):
            report.skipped.append(path)
            _emit(callback, {**event, "status": "skipped"})
            continue
        _emit(callback, {**event, "status": "running"})
        record = _record(cell, suite, device)
        tick = time.perf_counter()
        relay = None if callback is None else (lambda e, key=cell.key: callback({**e, "cell": key}))
        try:
            checkpoints = out / "checkpoints" / f"{cell.key}@{version[:12]}{version[40:]}"
            record.update(run_cell(cell, checkpoints, device, relay))
            record["status"] = "ok"
        except Exception as exc:  # a broken learner or plugin fails its cell, not the suite
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            record["traceback"] = traceback.format_exc()
        record.update(finished=_now(), seconds=time.perf_counter() - tick)
        write_json_atomic(record, path)
        (report.done if record["status"] == "ok" else report.failed).append(path)
        _emit(callback, {**event, "status": record["status"], "error": record.get("error")})
        if device is not None and torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    return report


def _emit(callback: Callback | None, event: dict[str, Any]) -> None:
    if callback is not None:
        callback(event)
