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

__all__ = ["ProgressReporter", "add_threads_argument", "set_threads", "DEFAULT_CPU_THREADS"]


def _fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


class ProgressReporter:
    """The trainer/suite callback: a rich progress bar on a terminal, plain lines otherwise.

    Args:
        quiet: print nothing.
        plain: force plain log lines (default: when stdout is not a terminal).
        every_s: seconds between plain log lines.
    """

    def __init__(self, quiet: bool = False, plain: bool | None = None, every_s: float = 10.0):
        self.quiet = quiet
        self.plain = (not sys.stdout.isatty()) if plain is None else plain
        self.every_s = every_s
        self.console = Console()
        self._bar: Progress | None = None
        self._task = None
        self._last = 0.0
        self._first: tuple[float, int] | None = None

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
        if kind in ("step", "episode"):
            self._step(event)
        elif kind == "val":
            unit = "%" if event["metric"] == "accuracy" else ""
            best = " (best)" if event.get("best") else ""
            self.say(
                f"  step {event['step']}: val {event['metric']} {event['mean']:.3f}{unit} ± {event['ci95']:.3f}{best}"
            )
        elif kind == "resume":
            self.say(f"  resuming at step {event['step']} of {event['steps']}")
        elif kind == "cell":
            self._cell(event)

    def _info(self, event: dict[str, Any]) -> str:
        parts = [f"loss {event['loss']:.4f}"] if "loss" in event else []
        parts += [f"{k} {event[k]:.3f}" for k in ("accuracy", "mse") if k in event]
        if "tasks_per_s" in event:
            parts.append(f"{event['tasks_per_s']:.0f} tasks/s")
        return "  ".join(parts)

    def _step(self, event: dict[str, Any]) -> None:
        if self._bar is not None:
            if self._task is None:
                label = "evaluate" if event["kind"] == "episode" else event.get("cell", "train")
                self._task = self._bar.add_task(label, total=event["steps"], info="")
            self._bar.update(
                self._task, completed=event["step"], total=event["steps"], info=self._info(event)
            )
            return
        now = time.perf_counter()
        if self._first is None:  # measure the rate from the first step: setup time is not progress
            self._first = (now, event["step"])
        if now - self._last < self.every_s and event["step"] != event["steps"]:
            return
        self._last = now
        done = event["step"] - self._first[1]
        eta = "?"
        if done > 0:
            rate = done / max(now - self._first[0], 1e-9)
            eta = _fmt_duration((event["steps"] - event["step"]) / rate)
        noun = "episode" if event["kind"] == "episode" else "step"
        info = self._info(event)
        self.say(
            f"  {noun} {event['step']}/{event['steps']}  {info}{'  ' if info else ''}ETA {eta}"
        )

    def _cell(self, event: dict[str, Any]) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.remove_task(self._task)
        self._task, self._first = None, None
        status = event["status"] + (f": {event['error']}" if event.get("error") else "")
        self.say(f"[{event['index'] + 1}/{event['total']}] {event['cell']}: {status}")


#: CPU threads when ``--threads`` is not given. Meta-learning models are small: on the 2-core
#: development machine two intra-op threads ran 10-40x slower than one whenever the other core was
#: busy (thread synchronisation, not arithmetic, dominates). Use processes (torchrun) for more cores.
DEFAULT_CPU_THREADS = 1


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--threads`` option of the commands that train or evaluate (see :func:`set_threads`)."""
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default 1: fastest for these small models)",
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


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads`` (recorded in every result's device name); None: the default above."""
    import torch

    threads = DEFAULT_CPU_THREADS if threads is None else threads
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
