"""``metazoo speed LEARNER BENCHMARK``: a registered learner's speed and meta-gradient, measured here.

For any registered learner (built-ins and plugins alike), on this machine:

* meta-training throughput (tasks/s): the learner stepped as the trainer steps it
  (``outer_step``, the plain MAML-family step or ``meta_loss(...).backward()``, then Adam);
* evaluation throughput (episodes/s): adapt and predict as the harness scores episodes;
* peak memory of one training step (CUDA allocator peak; on a CPU, approximate);
* the fp32 meta-gradient (Reptile: its outer update) against the same learner in float64 on the
  same batch and weights, as one relative error ``||g - g64|| / ||g64||``.

Episodes are synthetic and shaped like the benchmark card's (ways, shots, queries, input shape,
meta-batch), so no dataset has to be downloaded: each class is a random template plus noise
(a regression task is a random sinusoid). Speed depends on shapes, not on pixel values.

    >>> report = measure_speed("maml", "omniglot-5w1s", device="cuda")
    >>> print(report.render())
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from metazoo.bench.speed_episodes import (
    SYNTHETIC_CLASSES,
    benchmark_episodes,
    regression_episodes,
    synthetic_episodes,
)
from metazoo.bench.timing import Timing, memory_kind, peak_memory_mb, time_calls
from metazoo.engine import precision_mode
from metazoo.engine.measured import choices_made, choices_mark
from metazoo.engine.plain import accumulate_step, plan_step, step_settings
from metazoo.engine.precision import tf32 as tf32_mode
from metazoo.episode import EpisodeBatch
from metazoo.evaluation.harness import score_block
from metazoo.learner import OuterStepLearner
from metazoo.training.step import steps_by_gradient

__all__ = [
    "SpeedReport",
    "measure_speed",
    "speed_learner",
    "benchmark_episodes",
    "synthetic_episodes",
    "regression_episodes",
    "training_step",
    "accumulate_update",
    "meta_gradient",
    "relative_error",
    "SYNTHETIC_CLASSES",
]


def speed_learner(
    name: str, benchmark: str, *, seed: int = 0, device: torch.device | str = "cpu", **config: Any
) -> nn.Module:
    """Learner ``name`` as :func:`metazoo.build_learner` makes it for ``benchmark``; a learner
    that pre-trains on dataset-wide classes gets :data:`SYNTHETIC_CLASSES` of them."""
    from metazoo.build import build_learner, config_fields

    if "num_classes" in config_fields(name):
        config.setdefault("num_classes", SYNTHETIC_CLASSES)
    return build_learner(name, benchmark, seed=seed, device=device, **config)


class _KeepUpdate:
    """An optimizer stand-in for ``outer_step``: the update is left in ``.grad``, not applied."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass

    def step(self) -> None:
        pass


def accumulate_update(learner: nn.Module, batch: EpisodeBatch, optimizer: Any) -> None:
    """Put the learner's meta-gradient of ``batch`` into ``.grad`` (Reptile: apply its outer step
    with ``optimizer``), the way the trainer does."""
    if isinstance(learner, OuterStepLearner):
        learner.outer_step(batch, optimizer, None)
    elif steps_by_gradient(learner):  # the trainer's plain step (metazoo.engine.plain)
        loop, weights = step_settings(learner, None, batch.query_x)
        cfg = learner.config
        plan = plan_step(learner, loop, batch, executor=cfg.executor, chunk=cfg.chunk_size)
        accumulate_step(learner, batch, loop, weights, plan)
    else:
        learner.meta_loss(batch)[0].backward()


def training_step(
    learner: nn.Module, optimizer: torch.optim.Optimizer, batch: EpisodeBatch
) -> None:
    """One meta-training step as the trainer takes it: meta-gradient, then the optimizer's step."""
    learner.train()
    optimizer.zero_grad(set_to_none=True)
    accumulate_update(learner, batch, optimizer)
    if not isinstance(learner, OuterStepLearner):  # outer_step applies its own update
        optimizer.step()


def meta_gradient(learner: nn.Module, batch: EpisodeBatch) -> list[Tensor]:
    """The meta-gradient of ``batch``, one tensor per trainable parameter (Reptile: the parameter
    change of its outer step), leaving weights and buffers as they were; sampling seeded with 0."""
    params = [(n, p) for n, p in learner.named_parameters() if p.requires_grad]
    state = copy.deepcopy(learner.state_dict())
    learner.zero_grad(set_to_none=True)
    learner.train()
    devices = [batch.query_x.device] if batch.query_x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        accumulate_update(learner, batch, _KeepUpdate())
    grads = [
        (state[n] - p.detach()) if p.grad is None else p.grad.detach().clone() for n, p in params
    ]
    learner.load_state_dict(state)
    learner.zero_grad(set_to_none=True)
    return grads


def relative_error(grads: list[Tensor], reference: list[Tensor]) -> float:
    """``||g - g_ref|| / ||g_ref||`` over all parameters together, in float64.

    Per-parameter ratios mislead here: a conv bias followed by BatchNorm has an exactly zero
    meta-gradient, so its ratio is rounding noise over rounding noise.
    """
    flat = torch.cat([g.detach().double().flatten().cpu() for g in grads])
    ref = torch.cat([g.detach().double().flatten().cpu() for g in reference])
    return float((flat - ref).norm() / ref.norm())


@dataclass(frozen=True)
class SpeedReport:
    """What :func:`measure_speed` measured (``to_dict`` for JSON, ``render`` for people)."""

    learner: str
    benchmark: str
    #: the episodes, in words (synthetic, shaped like the card's).
    episodes: str
    device: str
    meta_batch: int
    train: Timing
    eval: Timing
    #: MiB one training step adds (None where the platform cannot tell).
    train_peak_memory_mb: float | None
    memory_kind: str
    #: fp32 against float64, same batch and weights.
    meta_grad_rel_error: float
    #: ``meta-gradient`` or ``outer update`` (Reptile).
    checked: str
    precision: dict = field(default_factory=dict)
    #: ``executor='auto'``'s choices for training and evaluation (:mod:`metazoo.engine.measured`)
    executors: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """A JSON-ready record."""
        return {
            "learner": self.learner,
            "benchmark": self.benchmark,
            "episodes": self.episodes,
            "device": self.device,
            "meta_batch": self.meta_batch,
            "train_tasks_per_s": self.train.rate,
            "train_seconds_per_step": self.train.seconds_per_call,
            "eval_episodes_per_s": self.eval.rate,
            "train_peak_memory_mb": self.train_peak_memory_mb,
            "memory_kind": self.memory_kind,
            "meta_grad_rel_error": self.meta_grad_rel_error,
            "checked": self.checked,
            "precision": self.precision,
            "executors": self.executors,
        }

    def render(self) -> str:
        """Four lines of results under a heading."""
        memory = "not measurable here"
        if self.train_peak_memory_mb is not None:
            memory = f"{self.train_peak_memory_mb:,.1f} MiB ({self.memory_kind})"
        return "\n".join(
            [
                f"{self.learner} on {self.benchmark}, {self.device}: {self.episodes}",
                f"  train:  {self.train.rate:,.2f} tasks/s (median of {len(self.train.seconds_per_call)} "
                f"runs, spread {self.train.spread:.0%})",
                f"  eval:   {self.eval.rate:,.2f} episodes/s",
                f"  memory: {memory}",
                f"  {self.checked}, fp32 against float64: relative error {self.meta_grad_rel_error:.2e}",
                *map(_describe_choice, self.executors),
            ]
        )


def _describe_choice(choice: dict) -> str:
    """``  auto (train): vectorized/25, from sequential 71.2 ms, vectorized/25 9.5 ms``."""
    chosen = choice["executor"] + (f"/{choice['chunk']}" if choice["chunk"] else "")
    timings = ", ".join(f"{name} {ms:,.1f} ms" for name, ms in choice["timings_ms"].items())
    source = " (cached)" if choice["cached"] else ""
    return f"  auto ({choice['purpose']}): {chosen}{source}, from {timings or 'no alternative'}"


def _timed(call, batches, device, items, warmup, repeats, min_run_s) -> tuple[Timing, float | None]:
    """Warm up (the last warm-up call measures peak memory and sizes the runs), then time."""
    for i in range(max(0, warmup - 1)):
        call(batches[i % len(batches)])
    start = time.perf_counter()
    peak = peak_memory_mb(lambda: call(batches[-1]), device)
    last = time.perf_counter() - start
    steps = max(1, math.ceil(min_run_s / max(last, 1e-6)))
    timing = time_calls(
        call, batches, device=device, items_per_call=items, warmup=0, repeats=repeats, steps=steps
    )
    return timing, peak


def measure_speed(
    learner: str,
    benchmark: str,
    *,
    device: torch.device | str = "cpu",
    meta_batch: int | None = None,
    warmup: int = 2,
    repeats: int = 5,
    min_run_s: float = 0.5,
    seed: int = 0,
    tf32: bool = False,
    **config: Any,
) -> SpeedReport:
    """Time learner ``learner`` on synthetic ``benchmark``-shaped episodes and check its
    meta-gradient against float64.

    Args:
        learner: a registered learner name (plugins included).
        benchmark: a benchmark card name; sets the backbone, the episode shape and the meta-batch.
        device: ``cpu``, ``cuda``, ``cuda:1``...
        meta_batch: tasks per training step (default: the card's).
        warmup: untimed calls before timing (the last one measures peak memory).
        repeats: timed runs; the median is reported.
        min_run_s: a timed run repeats the call until it lasts about this long.
        seed: the learner's initialisation and the episodes.
        tf32: allow TF32 (off by default: the check then measures fp32 itself).
        **config: learner config overrides (e.g. ``inner_steps=5``).

    Raises:
        KeyError: an unknown learner or benchmark (the message lists the known ones).
        ValueError: the learner does not run on this benchmark's task type.
    """
    from metazoo import list_learners

    if learner not in list_learners():
        raise KeyError(
            f"unknown learner {learner!r}; registered: {', '.join(list_learners())} "
            "(a plugin's learner appears once its package is installed)"
        )
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda was asked for but torch.cuda.is_available() is False")
    batches = benchmark_episodes(benchmark, 2, meta_batch=meta_batch, seed=seed, device=device)
    with tf32_mode(tf32):
        model = speed_learner(learner, benchmark, seed=seed, device=device, **config)
        twin = copy.deepcopy(model).double()
        if dataclasses.is_dataclass(getattr(twin, "config", None)) and hasattr(
            twin.config, "executor"
        ):
            twin.config = dataclasses.replace(twin.config, executor="sequential")  # no timing
        since = choices_mark()
        error = relative_error(
            meta_gradient(model, batches[0]),
            meta_gradient(twin, batches[0].float_as(torch.float64)),
        )
        del twin
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        tasks = len(batches[0])
        train, peak = _timed(
            lambda b: training_step(model, optimizer, b),
            batches, device, tasks, warmup, repeats, min_run_s,
        )  # fmt: skip
        model.eval()
        evaluation, _ = _timed(
            lambda b: score_block(model, list(b)),
            batches,
            device,
            tasks,
            warmup,
            repeats,
            min_run_s,
        )
        mode = precision_mode()
    sample = batches[0]
    chosen = [c.to_dict() for c in choices_made(since)]
    return SpeedReport(
        learner=learner,
        benchmark=benchmark,
        episodes=_describe(benchmark, sample),
        device=str(device),
        meta_batch=tasks,
        train=train,
        eval=evaluation,
        train_peak_memory_mb=peak,
        memory_kind=memory_kind(device),
        meta_grad_rel_error=error,
        checked="outer update" if isinstance(model, OuterStepLearner) else "meta-gradient",
        precision=mode,
        executors=chosen,
    )


def _describe(benchmark: str, batch: EpisodeBatch) -> str:
    """E.g. ``synthetic 5-way episodes, support (1, 28, 28) x 5, query x 75, meta-batch 32``."""
    kind = "regression" if batch.is_regression else f"{batch.ways}-way"
    return (
        f"synthetic {kind} episodes shaped like {benchmark}'s card: support "
        f"{tuple(batch.support_x.shape[2:])} x {batch.support_x.shape[1]}, query x "
        f"{batch.query_x.shape[1]}, meta-batch {len(batch)}"
    )
