"""Cells of a suite side by side: ``jobs`` worker processes, each running whole cells.

Cells are independent (own seeds, own result file, own checkpoint folder), so a cell's numbers do
not depend on which process runs it or when: with the same torch threads per process, ``--jobs N``
writes the result files a serial run writes. Workers are started with ``spawn`` (no state copied
from the parent) and send their progress events through a queue; the parent hands them to the
suite's callback, one cell's lines at a time. The runner hands the cells over largest first
(:func:`metazoo.bench.runner.work_estimate`), so the suite does not end on one long cell while the
other cores idle. A failing cell is recorded by its worker and the
others go on. On Ctrl-C (or any error in the parent) every worker is stopped; a cell that was
running left its last training checkpoint and resumes from it on the next run.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from metazoo._registry import (
    BUILTIN_PACKAGE,
    LearnerEntry,
    get_learner,
    list_learners,
    register_learner,
)
from metazoo.bench.suite import Cell, Suite

__all__ = ["plan_jobs", "run_in_processes"]

Callback = Callable[[dict[str, Any]], None]
#: ``prctl`` option: the signal a process gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1
#: Seconds between checks of the event queue while cells run.
POLL_S = 0.2

_events: Any = None  # the worker's end of the event queue (set by _start_worker)


def plan_jobs(pending: int, jobs: int, cores: int) -> tuple[int, int]:
    """Processes and torch threads per process for ``pending`` cells.

    Args:
        pending: cells to run.
        jobs: processes asked for (>= 1).
        cores: CPU cores free for the suite (>= 1).

    Returns:
        ``(processes, threads)``: no more processes than cells, and the cores split evenly among
        them (at least one thread each).
    """
    if jobs < 1 or cores < 1:
        raise ValueError(f"need jobs >= 1 and cores >= 1, got jobs={jobs}, cores={cores}")
    processes = max(1, min(jobs, pending))
    return processes, max(1, cores // processes)


def _learners_to_carry(cells: list[Cell]) -> list[LearnerEntry]:
    """The cells' learners a fresh process would not find by itself (registered at run time,
    e.g. in a notebook or a test): their classes travel to the workers by reference."""
    entries = {cell.learner: get_learner(cell.learner) for cell in cells}
    return [e for e in entries.values() if not e.cls.__module__.startswith(BUILTIN_PACKAGE)]


def _start_worker(
    events: Any, threads: int | None, jobs: int, learners: list[LearnerEntry]
) -> None:
    from metazoo.engine.threads import set_threads

    global _events
    _events = events
    # Ctrl-C reaches every process of the terminal's group: the parent alone handles it and stops
    # the workers, which would otherwise die first and break the pool under it (exit 2, not 130).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    if threads is not None:
        set_threads(
            threads, jobs
        )  # recorded with each result: this cell ran beside jobs - 1 others
    known = set(list_learners())
    for entry in learners:
        if entry.name not in known:
            register_learner(entry.name, family=entry.family, **entry.defaults)(entry.cls)


def _die_with_parent() -> None:
    """On Linux, end this worker when the suite's process dies (even by SIGKILL), so no cell
    goes on writing beside a resumed run; elsewhere the pool's own shutdown ends workers."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _send(event: dict[str, Any]) -> None:
    _events.put(event)


def _work(run_one: Callable, suite: Suite, out: Path, index: int, cell: Cell, total: int, device):
    return (index, *run_one(suite, out, index, cell, total, device, _send))


def run_in_processes(
    suite: Suite,
    out: Path,
    pending: list[tuple[int, Cell]],
    total: int,
    device: str | None,
    callback: Callback | None,
    jobs: int,
    threads: int | None,
    run_one: Callable,
) -> list[tuple[int, Path, str]]:
    """Run ``pending`` ``(index, cell)`` pairs in ``jobs`` processes of ``threads`` threads.

    ``run_one(suite, out, index, cell, total, device, callback) -> (path, status)`` runs a cell
    in a worker (:func:`metazoo.bench.runner.run_one`; passed in, so this module needs no runner).

    Returns:
        ``(index, result path, status)`` of each cell, as its worker finished it.

    Raises:
        KeyboardInterrupt: Ctrl-C, after every worker was stopped.
    """
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    workers = min(jobs, len(pending))
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context,
        initializer=_start_worker,
        initargs=(events, threads, workers, _learners_to_carry([cell for _, cell in pending])),
    )  # fmt: skip
    finished: list[tuple[int, Path, str]] = []
    try:
        futures = {
            pool.submit(_work, run_one, suite, out, i, cell, total, device) for i, cell in pending
        }
        while futures:
            done, futures = wait(futures, timeout=POLL_S, return_when=FIRST_COMPLETED)
            _relay(events, callback)
            finished += [_outcome_of(future) for future in done]
        _relay(events, callback, wait_s=1.0)  # the last events may still be on their way
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown()
    return finished


def _outcome_of(future: Future) -> tuple[int, Path, str]:
    return future.result()  # a cell's own errors are recorded by run_one; this one is the pool's


def _relay(events: Any, callback: Callback | None, wait_s: float = 0.0) -> None:
    """Hand every queued event to ``callback`` (in the order the workers sent them), waiting up
    to ``wait_s`` for each next one."""
    while True:
        try:
            event = events.get(timeout=wait_s) if wait_s else events.get_nowait()
        except queue.Empty:
            return
        if callback is not None:
            callback(event)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop every worker now: queued cells are dropped, running ones end where their last
    checkpoint left them."""
    processes = list((pool._processes or {}).values())  # noqa: SLF001  (no public handle)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)
