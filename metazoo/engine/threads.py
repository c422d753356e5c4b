"""How many torch CPU threads a run uses: the cores actually free, split among processes.

The rule (the same for the command line and for Python): the free cores are the cores this
process may run on (``os.sched_getaffinity``) less the machine's one-minute load average, rounded,
and at least 1; a run alone takes them all, and ``jobs`` processes running side by side
(``metazoo bench --jobs``) take ``free // jobs`` each (at least 1). Meta-learning models are
small, so threads that would share a core with another busy process only wait on each other (two
threads were measured 7x slower than one beside another job, and 1.8x faster on an idle machine:
issue 28). The choice and the facts behind it are recorded with each result.

Threads change how a CPU sums floats in parallel, so results are comparable bit for bit only at
the same thread count; the count is recorded in every result's environment.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import torch

__all__ = ["ThreadChoice", "choose_threads", "free_cores", "set_threads", "threads_for_run"]

#: torch's thread count when metazoo was imported: a different count later was set by the user.
_TORCH_DEFAULT = torch.get_num_threads()
#: the last choice applied in this process (None: none yet).
_APPLIED: list[ThreadChoice] = []


@dataclass(frozen=True)
class ThreadChoice:
    """Torch threads per process and why (recorded with results)."""

    #: torch intra-op threads of each process.
    threads: int
    #: processes sharing the free cores.
    jobs: int
    #: cores this process may run on.
    usable_cores: int
    #: one-minute load average when chosen (None where the platform has none).
    load: float | None
    #: ``asked`` (given by the user) or ``free cores`` (the rule above).
    rule: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields."""
        return asdict(self)


def usable_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def free_cores() -> tuple[int, int, float | None]:
    """``(free, usable, load)``: usable cores less the one-minute load average (at least 1)."""
    usable = usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows): count every usable core free
        return usable, usable, None
    return max(1, min(usable, usable - round(load))), usable, load


def choose_threads(asked: int | None = None, jobs: int = 1) -> ThreadChoice:
    """Threads per process for ``jobs`` processes, or ``asked`` when given.

    Args:
        asked: threads the user asked for (``--threads``); None: the free-cores rule.
        jobs: processes that will run side by side.

    Raises:
        ValueError: ``asked`` or ``jobs`` below 1.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    free, usable, load = free_cores()
    if asked is not None:
        if asked < 1:
            raise ValueError(f"threads must be >= 1, got {asked}")
        return ThreadChoice(asked, jobs, usable, load, "asked")
    return ThreadChoice(max(1, free // jobs), jobs, usable, load, "free cores")


def set_threads(asked: int | None = None, jobs: int = 1) -> ThreadChoice:
    """:func:`choose_threads`, applied with ``torch.set_num_threads``; returns the choice."""
    choice = choose_threads(asked, jobs)
    torch.set_num_threads(choice.threads)
    _APPLIED[:] = [choice]
    return choice


def threads_for_run() -> ThreadChoice:
    """The threads a training or evaluation run uses, chosen once per process: the choice
    already applied (the command line's, or :func:`set_threads`'s), the user's own
    (``OMP_NUM_THREADS``, or ``torch.set_num_threads`` after importing metazoo), else the
    free-cores rule, applied now."""
    if _APPLIED and _APPLIED[0].threads == torch.get_num_threads():
        return _APPLIED[0]
    if "OMP_NUM_THREADS" in os.environ or torch.get_num_threads() != _TORCH_DEFAULT:
        return set_threads(torch.get_num_threads())
    return set_threads()
