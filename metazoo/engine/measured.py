"""``executor='auto'`` by measurement: time each applicable executor on the real step, keep the
fastest.

A fixed rule cannot be right at every shape: on one CPU thread, MAML on sinusoid (meta-batch 25,
an MLP 1-40-40-1) ran 7x faster vectorized than task by task, while MAML on Omniglot (Conv-4,
meta-batch 8) ran 2.4x slower vectorized (issue 28). So ``auto`` times a few runs of each
candidate (:func:`candidates`: sequential, vectorized over the whole meta-batch, vectorized in
halves) on the actual batch, device, dtype and thread count, and keeps the fastest.

Measuring never changes what is computed: the caller runs each candidate on copies (training:
a deep copy of the learner, so no ``.grad`` and no optimizer step touch the real one) and
:func:`choose_executor` restores the random number generators it consumed, so a run with
``auto`` gives the numbers of a run forced to the executor ``auto`` chose.

Choices are cached per key (the computation, the shapes, device, dtype, threads, torch version
and CPU model) in memory and as small JSON files under ``$METAZOO_CACHE/executors/``; every
choice, measured or cached, is appended to :func:`choices_made`, which the trainer's suite
runner and the evaluation harness record with their results.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from metazoo._atomic import write_json_atomic
from metazoo.data.paths import cache_root

__all__ = [
    "ExecutorChoice",
    "candidates",
    "choose_executor",
    "choices_made",
    "choices_mark",
    "choice_key",
    "computation_facts",
    "TIMED_RUNS",
]

#: Timed runs per candidate after one untimed warm-up run (the fastest of them counts).
TIMED_RUNS = 2
#: A candidate whose first timed run is this many times slower than the best so far is dropped
#: without more runs, and so are the smaller chunks of its executor (measuring a slow
#: executor must not cost a slow run's time).
GIVE_UP_FACTOR = 2.0
#: Folder under ``$METAZOO_CACHE`` holding measured choices.
CACHE_FOLDER = "executors"

#: Choices are kept for the life of the process (key -> choice).
_MEMORY: dict[str, ExecutorChoice] = {}
#: Every choice this process made, in order (see :func:`choices_made`).
_MADE: list[ExecutorChoice] = []

#: ``(executor, chunk)``: ``("sequential", None)`` or ``("vectorized", tasks per chunk)``.
Candidate = tuple[str, int | None]


@dataclass(frozen=True)
class ExecutorChoice:
    """What ``auto`` runs, and the measurements behind it (recorded with results)."""

    #: ``sequential`` or ``vectorized``.
    executor: str
    #: tasks per vectorized chunk (None for sequential).
    chunk: int | None
    #: ``train`` (the meta-gradient step) or ``eval`` (adaptation and query scores).
    purpose: str
    #: candidate label (``sequential``, ``vectorized/25``) -> milliseconds per run; a candidate
    #: given up early keeps the time of the run that disqualified it.
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: the cache key (see :func:`choice_key`).
    key: str = ""
    #: True when read from the memory or disk cache rather than measured in this call.
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields."""
        return asdict(self)


def label(candidate: Candidate) -> str:
    """``sequential`` or ``vectorized/<chunk>``."""
    executor, chunk = candidate
    return executor if chunk is None else f"{executor}/{chunk}"


def candidates(tasks: int, chunk: int | None = None, vectorizable: bool = True) -> list[Candidate]:
    """The executors worth timing for a meta-batch of ``tasks``.

    Args:
        tasks: meta-batch size T.
        chunk: the largest vectorized chunk allowed (a user's ``chunk_size``, or what memory
            allows on a GPU); None: all T tasks.
        vectorizable: False where ``vmap`` cannot run the step (``bn_policy='running'`` while
            training): sequential only.

    Returns:
        sequential first, then vectorized in chunks of ``chunk`` and of half of it (when that
        differs and holds at least 2 tasks).
    """
    found: list[Candidate] = [("sequential", None)]
    if not vectorizable or tasks < 2:
        return found
    largest = min(tasks, chunk or tasks)
    for size in (largest, (largest + 1) // 2):
        if size >= 2 and ("vectorized", size) not in found:
            found.append(("vectorized", size))
    return found


def choice_key(purpose: str, device: torch.device, dtype: torch.dtype, **facts: Any) -> str:
    """A short hash naming one measured computation on one machine.

    Args:
        purpose: ``train`` or ``eval``.
        device: where it runs; dtype: the inputs' floating type.
        **facts: what else decides the speed (the inner-loop settings, the model's weight
            shapes, the batch's shapes); anything with a stable ``repr``.
    """
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.machine()} {platform.processor()} {os.cpu_count()} cores"
    )
    parts = {
        "purpose": purpose,
        "device": where,
        "dtype": str(dtype),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        **{name: repr(value) for name, value in sorted(facts.items())},
    }
    text = json.dumps(parts, sort_keys=True)
    return f"{purpose}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


def computation_facts(model: torch.nn.Module, loop: object, batch: Any) -> dict[str, Any]:
    """What decides an executor's speed besides the machine: the model's class and weight
    shapes, the inner-loop settings and the meta-batch's tensor shapes (the :func:`choice_key`
    facts of a step)."""
    shapes = [tuple(getattr(batch, name).shape) for name in ("support_x", "support_y", "query_x")]
    return {
        "model": type(model).__name__,
        "weights": [(n, tuple(p.shape)) for n, p in model.named_parameters()],
        "loop": loop,
        "batch": shapes,
    }


def choose_executor(
    key: str,
    purpose: str,
    options: Sequence[Candidate],
    run: Callable[[str, int | None], object],
    device: torch.device,
) -> tuple[ExecutorChoice, object]:
    """The fastest of ``options`` for ``run``, measured once per ``key`` (then cached).

    Args:
        key: :func:`choice_key` of the computation.
        purpose: ``train`` or ``eval`` (recorded).
        options: candidates from :func:`candidates`; one candidate is chosen unmeasured.
        run: ``run(executor, chunk)`` runs the computation once with that executor, on copies
            where it would change state (it may consume random numbers: they are restored).
        device: where ``run`` computes (CUDA is synchronised around each timed run).

    Returns:
        the choice (also appended to :func:`choices_made`), and what the chosen candidate's last
        ``run`` returned when it was measured now and no run consumed random numbers (so that
        output is exactly a forced run's; None otherwise: run it).
    """
    choice, output = _MEMORY.get(key) or _read_cached(key), None
    if choice is not None:
        choice = replace(choice, cached=True)
    elif len(options) == 1:
        choice = ExecutorChoice(*options[0], purpose, {}, key)
    else:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            before = _rng_states(device)
            timings, outputs = _time_candidates(options, run, device)
            untouched = all(torch.equal(a, b) for a, b in zip(before, _rng_states(device)))
        best = min(timings, key=timings.get)
        executor, chunk = next(c for c in options if label(c) == best)
        choice = ExecutorChoice(executor, chunk, purpose, timings, key)
        output = outputs[best] if untouched else None
        _write_cached(choice)
    _MEMORY[key] = replace(choice, cached=False)
    if not _MADE or _MADE[-1].key != key:  # a step or block repeated is one choice
        _MADE.append(choice)
    return choice, output


def choices_mark() -> int:
    """A mark for :func:`choices_made`: the choices made so far in this process."""
    return len(_MADE)


def choices_made(since: int = 0) -> list[ExecutorChoice]:
    """The choices this process made after the mark ``since`` (:func:`choices_mark`), one per
    key, in the order first made."""
    first = {}
    for choice in _MADE[since:]:
        first.setdefault(choice.key, choice)
    return list(first.values())


def _time_candidates(
    options: Sequence[Candidate], run: Callable[[str, int | None], object], device
) -> tuple[dict[str, float], dict[str, object]]:
    """Milliseconds per run of each candidate timed (the fastest of its timed runs after a
    warm-up: :data:`TIMED_RUNS`, or one when it was given up) and each candidate's last output."""
    timings: dict[str, float] = {}
    outputs: dict[str, object] = {}
    given_up: set[str] = set()
    for candidate in options:
        if candidate[0] in given_up:  # a smaller chunk of an executor far behind: not timed
            continue
        best = min(timings.values(), default=float("inf")) / 1000  # seconds
        times: list[float] = []
        for _ in range(1 + TIMED_RUNS):
            elapsed, outputs[label(candidate)] = _timed(run, candidate, device)
            times.append(elapsed)
            # the warm-up pays one-time costs (vmap's first call): only a timed run disqualifies
            if len(times) > 1 and elapsed > GIVE_UP_FACTOR * best:
                given_up.add(candidate[0])
                break
        timings[label(candidate)] = round(min(times[1:]) * 1000, 3)
    return timings, outputs


def _timed(run: Callable[[str, int | None], object], candidate: Candidate, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    tick = time.perf_counter()
    output = run(*candidate)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - tick, output


def _rng_states(device: torch.device) -> list[torch.Tensor]:
    states = [torch.random.get_rng_state()]
    if device.type == "cuda":
        states.append(torch.cuda.get_rng_state(device))
    return states


def _cache_path(key: str):
    return cache_root() / CACHE_FOLDER / f"{key}.json"


def _read_cached(key: str) -> ExecutorChoice | None:
    try:
        fields = json.loads(_cache_path(key).read_text())
        return ExecutorChoice(**fields)
    except (OSError, ValueError, TypeError):
        return None  # absent, unreadable or of another layout: measure again


def _write_cached(choice: ExecutorChoice) -> None:
    with contextlib.suppress(OSError):  # a read-only cache only costs a measurement next time
        write_json_atomic(choice.to_dict(), _cache_path(choice.key))
