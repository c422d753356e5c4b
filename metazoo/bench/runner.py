"""Run a suite: train and evaluate each cell, one atomically written JSON result file per cell.

A cell whose result file (same cell, same environment tag) says ``ok`` and was written by the same
code version is already done and not run again, so a killed suite resumes where it stopped (the interrupted cell itself
resumes from its training checkpoint, kept per code version). A result of other code is moved to
``superseded/`` and its cell runs again: a results folder holds one commit's numbers. A cell that
raises is recorded with ``status: failed``, its error and traceback, and the suite goes on.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from metazoo._atomic import write_json_atomic
from metazoo.bench.suite import Cell, Suite, suite_dir
from metazoo.engine.threads import set_threads
from metazoo.evaluation.provenance import code_version, environment_tag, portable_path
from metazoo.runs.execute import RESULT_SCHEMA, new_record, now, train_and_test
from metazoo.runs.resolve import ResolvedRun, resolve_run

__all__ = [
    "run_suite",
    "run_cell",
    "run_one",
    "write_json_atomic",
    "SuiteReport",
    "RESULT_SCHEMA",
]

Callback = Callable[[dict[str, Any]], None]


@dataclass
class SuiteReport:
    """What a suite run did: result files written, cells already done (``skipped``), cells that
    failed; each list in the suite's cell order."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)


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


def resolve_cell(cell: Cell, suite: str = "suite") -> ResolvedRun:
    """The settings of ``cell``, resolved as ``metazoo train`` and Python resolve theirs: its
    merged suite blocks as the preset, its seed over them."""
    return resolve_run(
        cell.learner, cell.benchmark, preset=cell.settings, preset_source=f"suite {suite}",
        seed=cell.seed, overrides_source=f"suite {suite} (seeds)",
    )  # fmt: skip


def run_cell(
    cell: Cell,
    checkpoint_dir: Path,
    device: str | None = None,
    callback: Callback | None = None,
    suite: str = "suite",
) -> dict[str, Any]:
    """Build, train and evaluate one cell; returns the ``ok`` part of its result record."""
    return train_and_test(
        resolve_cell(cell, suite), checkpoint_dir=checkpoint_dir, resume=True, device=device,
        callback=callback, metadata={"cell": cell.key},
        quiet=callback is None,  # a suite without a callback prints nothing (the CLI passes one)
    )  # fmt: skip


def recorded_suite_path(suite: Suite) -> str | None:
    """The suite as result files record it: a built-in suite by name (``metazoo bench NAME``
    loads it anywhere), another file by its path relative to the working folder."""
    if suite.path is None:
        return None
    builtin = suite_dir() / suite.path.name
    if builtin.is_file() and Path(str(builtin)).resolve() == suite.path.resolve():
        return suite.path.stem
    return portable_path(suite.path)


def _record(cell: Cell, suite: Suite, device: str | None, checkpoints: str) -> dict[str, Any]:
    return new_record(
        cell.learner, cell.benchmark, cell.seed, cell.settings, device=device,
        checkpoints=checkpoints, suite=suite.name,
        suite_path=recorded_suite_path(suite), cell=cell.key, variant=cell.variant,
    )  # fmt: skip


def run_suite(
    suite: Suite,
    out: str | Path,
    *,
    shard: tuple[int, int] | None = None,
    device: str | None = None,
    callback: Callback | None = None,
    jobs: int = 1,
    threads: int | None = None,
) -> SuiteReport:
    """Run every cell of ``suite`` (or of one shard) not already done in ``out``.

    Args:
        suite: a :class:`Suite` (see :func:`metazoo.bench.load_suite`).
        out: the results folder; result files go to ``out/<cell>__<env>.json``, training
            checkpoints to ``out/checkpoints/<cell>@<code version>/``.
        shard: ``(i, n)`` runs only cells ``i, i+n, i+2n, ...`` (for job arrays).
        device: where to train and evaluate (default: CPU).
        callback: receives ``{"kind": "cell", "cell", "index", "total", "status"}`` events
            (``status`` is ``already done``, ``running``, ``ok`` or ``failed``; a finished cell's
            event adds ``seconds``, ``left`` (cells still to finish) and its ``metric``, ``mean``
            and ``ci95``) and the trainer's events (with ``"cell"`` added).
        jobs: cells run side by side in this many processes (:mod:`metazoo.bench.parallel`);
            each cell's numbers are those of a serial run at the same ``threads``.
        threads: torch CPU threads of each process running cells (None: this process's).
    """
    out = Path(out)
    tag, version = environment_tag(device), code_version()
    report = SuiteReport()
    cells = suite.cells(shard)
    pending = []
    for index, cell in enumerate(cells):
        path = out / cell.filename(tag)
        if _is_done(path, version):
            report.skipped.append(path)
            _emit(callback, {**_cell_event(cell, index, len(cells)), "status": "already done"})
        else:
            pending.append((index, cell))
    callback = _counting_left(callback, len(pending))
    if jobs > 1 and len(pending) > 1:
        from metazoo.bench.parallel import run_in_processes

        largest_first = sorted(pending, key=lambda p: -work_estimate(p[1], suite.name))
        finished = run_in_processes(
            suite, out, largest_first, len(cells), device, callback, jobs, threads, run_one
        )
    else:
        if threads is not None:
            set_threads(threads)
        finished = [
            (i, *run_one(suite, out, i, cell, len(cells), device, callback)) for i, cell in pending
        ]
    for _, path, status in sorted(finished):
        (report.done if status == "ok" else report.failed).append(path)
    return report


def work_estimate(cell: Cell, suite: str = "suite") -> float:
    """A rough size of ``cell``'s training, to start the largest cells first when cells run side
    by side (the last one to start is then a short one, and the suite ends soonest): training steps
    x tasks per step x examples per task x input size. Only the order matters, not the unit."""
    from math import prod

    from metazoo.cards import benchmark_card

    try:
        run = resolve_cell(cell, suite)
        card = benchmark_card(cell.benchmark)
    except Exception:  # noqa: BLE001  (the cell's own run records why it cannot be resolved)
        return 0.0
    episode = {**card, **run.settings["sampler"], **run.settings["train_sampler"]}
    examples = (episode.get("ways") or 1) * (
        (episode.get("shots") or 1) + (episode.get("queries") or 1)
    )
    train = run.settings["train"]
    return float(
        train["steps"] * train["meta_batch"] * examples * prod(card.get("input_shape", [1]))
    )


def _counting_left(callback: Callback | None, pending: int) -> Callback | None:
    """``callback`` with ``left`` (cells of this run not finished yet) added to each finished
    cell's event, in the order the events arrive (cells side by side finish in any order)."""
    if callback is None:
        return None
    left = [pending]

    def relay(event: dict[str, Any]) -> None:
        if event.get("kind") == "cell" and event["status"] in ("ok", "failed"):
            left[0] -= 1
            event = {**event, "left": left[0]}
        callback(event)

    return relay


def _cell_event(cell: Cell, index: int, total: int) -> dict[str, Any]:
    return {"kind": "cell", "cell": cell.key, "index": index, "total": total}


def run_one(
    suite: Suite,
    out: Path,
    index: int,
    cell: Cell,
    total: int,
    device: str | None,
    callback: Callback | None,
) -> tuple[Path, str]:
    """Run one cell of ``suite`` and write its result file; returns its path and status.

    A cell that raises an ``Exception`` is recorded as ``failed``; an interruption
    (``KeyboardInterrupt``, a kill) writes nothing, and the cell resumes from its checkpoint.
    """
    tag, version = environment_tag(device), code_version()
    path = out / cell.filename(tag)
    event = _cell_event(cell, index, total)
    _emit(callback, {**event, "status": "running"})
    tick = time.perf_counter()
    relay = None if callback is None else (lambda e, key=cell.key: callback({**e, "cell": key}))
    checkpoints = Path("checkpoints") / f"{cell.key}@{version[:12]}{version[40:]}"
    record = _record(cell, suite, device, str(checkpoints))
    try:
        record.update(run_cell(cell, out / checkpoints, device, relay, suite.name))
        record["status"] = "ok"
    except Exception as exc:  # a broken learner or plugin fails its cell, not the suite
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        record["traceback"] = traceback.format_exc()
    record.update(finished=now(), seconds=time.perf_counter() - tick)
    write_json_atomic(record, path)
    _emit(callback, {**event, **_outcome(record)})
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    return path, record["status"]


def _outcome(record: dict[str, Any]) -> dict[str, Any]:
    """The finished-cell event's facts: status, error, seconds, and the score when ``ok``."""
    outcome = {"status": record["status"], "error": record.get("error")}
    outcome["seconds"] = record["seconds"]
    result = record.get("result") or {}
    if "mean" in result:
        outcome.update(metric=result.get("metric"), mean=result["mean"], ci95=result["ci95"])
    return outcome


def _emit(callback: Callback | None, event: dict[str, Any]) -> None:
    if callback is not None:
        callback(event)
