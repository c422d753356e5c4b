"""What the commands that train or evaluate share: the progress reporter, ``--threads`` and
``--trust-checkpoint``.

Rich output lives only in ``metazoo.cli``; ``train``, ``eval`` and ``bench`` import these from
here rather than from one another.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["ProgressReporter", "add_threads_argument", "set_threads"]


def _fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


class ProgressReporter:
    """The trainer/suite callback: rich progress bars on a terminal, plain lines otherwise.

    One bar (or one line prefix) per running cell, so cells running side by side
    (``metazoo bench --jobs``) stay readable. For a suite, each finished cell's line gives its
    score and time, and the suite's elapsed and estimated remaining time (the finished cells'
    pace applied to the cells left).

    Args:
        quiet: print nothing.
        plain: force plain log lines (default: when stdout is not a terminal).
        every_s: seconds between plain log lines of one run.
    """

    def __init__(self, quiet: bool = False, plain: bool | None = None, every_s: float = 10.0):
        self.quiet = quiet
        self.plain = (not sys.stdout.isatty()) if plain is None else plain
        self.every_s = every_s
        self.console = Console()
        self._bar: Progress | None = None
        self._tasks: dict[str | None, Any] = {}  # cell (None outside a suite) -> bar task
        self._last: dict[str | None, float] = {}
        self._first: dict[str | None, tuple[float, int]] = {}
        self._suite_start = time.perf_counter()
        self._finished = 0  # cells run to the end in this call

    def __enter__(self) -> ProgressReporter:
        if not self.quiet and not self.plain:
            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=self.console,
            )  # fmt: skip
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def say(self, message: str) -> None:
        """A line of text, above the bar when there is one."""
        if not self.quiet:
            (self._bar.console if self._bar else self.console).print(message, highlight=False)

    def __call__(self, event: dict[str, Any]) -> None:
        if self.quiet:
            return
        kind = event.get("kind")
        where = f"  {event['cell']}:" if "cell" in event and kind != "cell" else " "
        if kind in ("step", "episode"):
            self._step(event)
        elif kind == "val":
            unit = "%" if event["metric"] == "accuracy" else ""
            best = " (best)" if event.get("best") else ""
            self.say(
                f"{where} step {event['step']}: val {event['metric']} {event['mean']:.3f}{unit} ± {event['ci95']:.3f}{best}"
            )
        elif kind == "resume":
            self.say(f"{where} resuming at step {event['step']} of {event['steps']}")
        elif kind == "cell":
            self._cell(event)

    def _info(self, event: dict[str, Any]) -> str:
        parts = [f"loss {event['loss']:.4f}"] if "loss" in event else []
        parts += [f"{k} {event[k]:.3f}" for k in ("accuracy", "mse") if k in event]
        if "tasks_per_s" in event:
            parts.append(f"{event['tasks_per_s']:.0f} tasks/s")
        return "  ".join(parts)

    def _step(self, event: dict[str, Any]) -> None:
        run = event.get("cell")
        if self._bar is not None:
            if run not in self._tasks:
                label = "evaluate" if event["kind"] == "episode" and run is None else run or "train"
                self._tasks[run] = self._bar.add_task(label, total=event["steps"], info="")
            self._bar.update(
                self._tasks[run], completed=event["step"], total=event["steps"],
                info=self._info(event),
            )  # fmt: skip
            return
        now = time.perf_counter()
        if run not in self._first:  # the rate from the first step: setup time is not progress
            self._first[run] = (now, event["step"])
        if now - self._last.get(run, 0.0) < self.every_s and event["step"] != event["steps"]:
            return
        self._last[run] = now
        first_time, first_step = self._first[run]
        done = event["step"] - first_step
        eta = "?"
        if done > 0:
            rate = done / max(now - first_time, 1e-9)
            eta = _fmt_duration((event["steps"] - event["step"]) / rate)
        noun = "episode" if event["kind"] == "episode" else "step"
        info = self._info(event)
        prefix = f"  {run}:" if run else " "
        self.say(
            f"{prefix} {noun} {event['step']}/{event['steps']}  {info}{'  ' if info else ''}ETA {eta}"
        )

    def _cell(self, event: dict[str, Any]) -> None:
        run = event["cell"]
        if event["status"] == "running":
            self.say(f"[{event['index'] + 1}/{event['total']}] {run}: running")
            return
        if self._bar is not None and run in self._tasks:
            self._bar.remove_task(self._tasks[run])
        for kept in (self._tasks, self._first, self._last):
            kept.pop(run, None)
        self._finished += event["status"] != "already done"
        self.say(f"[{event['index'] + 1}/{event['total']}] {run}: {_outcome(event)}")
        if event["status"] != "already done":
            self.say(f"  suite: {self._pace(event)}")

    def _pace(self, event: dict[str, Any]) -> str:
        """Elapsed time of this suite run and the estimated time left for the cells left."""
        elapsed = time.perf_counter() - self._suite_start
        left = event.get("left")
        if left is None:
            return f"{_fmt_duration(elapsed)} elapsed"
        remaining = elapsed / max(self._finished, 1) * left
        return f"{_fmt_duration(elapsed)} elapsed, about {_fmt_duration(remaining)} left"


def _outcome(event: dict[str, Any]) -> str:
    """``ok: accuracy 51.2 ± 1.4 in 3m10s``, ``failed: <error>``, ``already done``."""
    status = event["status"]
    if event.get("error"):
        return f"{status}: {event['error']}"
    if "mean" in event:
        unit = "%" if event.get("metric") == "accuracy" else ""
        status += f": {event['metric']} {event['mean']:.3f}{unit} ± {event['ci95']:.3f}"
    if "seconds" in event:
        status += f" in {_fmt_duration(event['seconds'])}"
    return status


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--threads`` option of the commands that train or evaluate (see :func:`set_threads`)."""
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: the cores free now, see docs/speed.md)",
    )


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--trust-checkpoint`` option of the commands that load a checkpoint: the CLI's
    ``trust=True`` of :func:`metazoo.training.load_checkpoint`."""
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load a checkpoint that holds arbitrary Python objects (unpickling them runs code): "
        "only for a file you made yourself",
    )


def set_threads(threads: int | None, jobs: int = 1) -> int:
    """Torch threads by :func:`metazoo.engine.threads.set_threads`'s rule (``threads`` when
    given, else the free cores split among ``jobs`` processes); returns the count."""
    from metazoo.engine.threads import set_threads as apply

    return apply(threads, jobs).threads
