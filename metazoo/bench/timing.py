"""Timing and peak memory of meta-training steps: ``metazoo speed`` and the speed lab measure alike.

Timings: untimed warm-up steps first (allocator, cuDNN autotuning, graph capture), then
``repeats`` timed runs of ``steps`` calls each, the device synchronised before and after each run;
the reported figure is the median run. Peak memory: on CUDA the allocator's peak over one call;
on a CPU the growth of the process's resident-set high-water mark over one call (Linux
``/proc/self/clear_refs``), after returning freed heap to the system: approximate, labelled so.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from metazoo.evaluation.provenance import reset_peak_rss, resident_mb

__all__ = [
    "Timing",
    "time_calls",
    "peak_memory_mb",
    "synchronize",
    "memory_kind",
    "keep_freed_memory",
]

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters


def synchronize(device: torch.device) -> None:
    """Wait for all queued work on ``device`` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """Seconds per call of each timed run, and the derived rate."""

    #: seconds per call, one entry per timed run.
    seconds_per_call: list[float]
    #: work items (tasks or episodes) per call.
    items_per_call: int

    @property
    def median_s(self) -> float:
        """Median seconds per call over the runs."""
        return statistics.median(self.seconds_per_call)

    @property
    def rate(self) -> float:
        """Items per second at the median run."""
        return self.items_per_call / self.median_s

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median over the runs: the run-to-run noise."""
        times = self.seconds_per_call
        return (max(times) - min(times)) / self.median_s


def time_calls(
    call: Callable[[object], object],
    inputs: Sequence[object],
    *,
    device: torch.device,
    items_per_call: int,
    warmup: int,
    repeats: int,
    steps: int,
) -> Timing:
    """Time ``call(inputs[i % len(inputs)])``.

    Args:
        call: one unit of work (a meta-training step, or the evaluation of one meta-batch).
        inputs: the data, cycled (the same list for every contender).
        device: synchronised around each timed run.
        items_per_call: tasks or episodes one call processes.
        warmup: untimed calls first.
        repeats: timed runs; the median is reported.
        steps: calls per timed run.
    """
    for i in range(warmup):
        call(inputs[i % len(inputs)])
    synchronize(device)
    runs = []
    for r in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for s in range(steps):
            call(inputs[(r * steps + s) % len(inputs)])
        synchronize(device)
        runs.append((time.perf_counter() - start) / steps)
    return Timing(runs, items_per_call)


def memory_kind(device: torch.device) -> str:
    """What :func:`peak_memory_mb` measures on ``device`` (recorded with results)."""
    if device.type == "cuda":
        return "CUDA allocator peak over one step"
    return "growth of the process RSS high-water mark over one step (approximate)"


def keep_freed_memory() -> str:
    """Make glibc keep freed memory in the process (no ``mmap`` chunks, no trimming).

    The speed lab runs contenders one after another in one process. With glibc's defaults, the
    gigabytes one contender frees go back to the system and the next contender pays page faults
    to get them again (measured here: up to 3x slower on 2 CPU cores); a process that trains one
    model keeps its heap warm. Returns what was set, for the result file (or why nothing was).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):
        return "default allocator (glibc not found)"
    return "glibc: no mmap chunks, no trimming" if ok else "default allocator (mallopt refused)"


def _release_heap() -> None:
    gc.collect()
    # Give freed heap back so the next high-water mark starts from what is really in use.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_memory_mb(call: Callable[[], object], device: torch.device) -> float | None:
    """Peak memory (MiB) that ``call()`` adds; None where the platform cannot measure it."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        call()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    _release_heap()
    if not reset_peak_rss():  # VmHWM back to the current RSS
        return None
    base = resident_mb("VmRSS")
    call()
    return max(0.0, resident_mb("VmHWM") - base)
