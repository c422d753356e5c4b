"""The trainer's one step protocol: ``step(batch, index) -> metrics`` for every learner.

:func:`build_train_step` returns a :data:`TrainStep` for the learner's kind, and every kind gives
the same output, a dict of detached 0-dim tensors (``loss``, then ``accuracy`` or ``mse`` and any
other metric), read back by :class:`DeferredMetrics`:

* the MAML family (a :class:`~metazoo.learner.GradientLearner`), by default the plain step
  (:mod:`metazoo.engine.plain`): the meta-gradient of ``meta_loss`` accumulated into ``.grad``
  task by task (or chunk by chunk with the vectorized executor), so one task's graph is alive at
  a time, then the optimizer step; no graph object, no copy of the batch. With
  ``TrainConfig.fast`` the opt-in :class:`metazoo.engine.fast.FastMetaStep` instead (compiled,
  on CUDA replayed from a CUDA graph; the same meta-gradient);
* an :class:`~metazoo.learner.OuterStepLearner` (Reptile): its own ``outer_step``;
* every other learner: ``meta_loss(batch, step)[0].backward()`` then the optimizer step.

Unless the step is captured in a CUDA graph, a non-finite loss raises before the optimizer step
(so the weights stay those of the last good step), and gradients are averaged across processes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from metazoo import distributed as dist
from metazoo.engine.autoselect import ExecutorPlan
from metazoo.engine.fast import FastMetaStep
from metazoo.engine.functional import metric_name
from metazoo.engine.plain import accumulate_step, plan_step, step_settings
from metazoo.episode import EpisodeBatch
from metazoo.learner import GradientLearner, OuterStepLearner
from metazoo.training.config import TrainConfig

__all__ = ["TrainStep", "build_train_step", "steps_by_gradient", "DeferredMetrics"]

#: One meta-update: ``(batch, 0-based step) -> metrics`` as detached 0-dim tensors.
TrainStep = Callable[[EpisodeBatch, int], dict[str, Tensor]]
#: ``(batch, loss) -> the exception to raise`` for a non-finite loss.
Failure = Callable[[EpisodeBatch, float], Exception]


def steps_by_gradient(learner: nn.Module) -> bool:
    """True for MAML-family learners, which the engine's plain (or fast) step steps: a
    :class:`GradientLearner` without an outer step of its own."""
    return isinstance(learner, GradientLearner) and not isinstance(learner, OuterStepLearner)


def _tensors(metrics: dict[str, float]) -> dict[str, Tensor]:
    return {k: torch.tensor(float(v), dtype=torch.float64) for k, v in metrics.items()}


def _check_fast_step(learner: nn.Module) -> None:
    """Raise a ValueError naming why ``learner`` cannot train with ``TrainConfig.fast``."""
    name = getattr(learner, "registered_name", type(learner).__name__)
    fix = "train it without TrainConfig.fast (the plain step, the default)"
    if not steps_by_gradient(learner):
        raise ValueError(f"the fast step runs MAML-style meta-gradients; {name} has none: {fix}")
    if learner.inner_loop(training=True).bn_policy == "running":
        raise ValueError(
            f"the fast step uses batch statistics; {name} has bn_policy='running': {fix}"
        )
    if dist.is_distributed():
        raise ValueError(f"the fast step runs in one process; this run has several: {fix}")


def build_train_step(
    learner: nn.Module,
    optimizer: torch.optim.Optimizer,
    example: EpisodeBatch,
    config: TrainConfig,
    meta_batch: int,
    fail: Failure,
) -> TrainStep:
    """The step for ``learner``, shaped like ``example`` (every later batch has its shapes).

    Args:
        meta_batch: tasks of the global meta-batch (all processes), for averaging.
        fail: builds the error raised for a non-finite loss (naming the step and the tasks).
    """
    if config.fast is not None:
        _check_fast_step(learner)
        return _fast_step(learner, optimizer, example, config, meta_batch, fail)
    if isinstance(learner, OuterStepLearner):
        return _outer_step(learner, optimizer, meta_batch, fail)
    if steps_by_gradient(learner) and isinstance(example, EpisodeBatch):  # not varied episodes
        return _plain_gradient_step(learner, optimizer, example, config, meta_batch, fail)
    return _loss_step(learner, optimizer, config, meta_batch, fail)


def _outer_step(learner, optimizer, meta_batch: int, fail: Failure) -> TrainStep:
    """Reptile-style: the learner's own ``outer_step``, averaged across processes."""

    def step(batch: EpisodeBatch, index: int) -> dict[str, Tensor]:
        metrics = dist.outer_step(learner, batch, optimizer, meta_batch, step=index)
        params_ok = all(bool(torch.isfinite(p).all()) for p in learner.parameters())
        if not math.isfinite(metrics.get("loss", 0.0)) or not params_ok:
            raise fail(batch, metrics.get("loss", math.nan))
        return _tensors(metrics)

    return step


def _synchronise(learner, batch, metrics, meta_batch: int, fail: Failure) -> dict[str, float]:
    """Average metrics across processes, raise on a non-finite loss (every process alike), then
    average gradients and BatchNorm buffers over all tasks."""
    metrics = dist.average_metrics(metrics, len(batch), meta_batch)
    if not math.isfinite(metrics["loss"]):
        raise fail(batch, metrics["loss"])
    dist.average_gradients(learner.parameters(), len(batch), meta_batch)
    dist.average_buffers(learner, len(batch), meta_batch)
    return metrics


def _plain_gradient_step(learner, optimizer, example, config, meta_batch, fail) -> TrainStep:
    """The MAML family by default: the meta-gradient accumulated into ``.grad`` by the learner's
    executor (:mod:`metazoo.engine.plain`), then :func:`_update`."""
    metric = metric_name(learner.inner_loop(True).task)
    plans: dict[tuple, ExecutorPlan] = {}  # per schedule phase; ``auto`` measured once each

    def step(batch: EpisodeBatch, index: int) -> dict[str, Tensor]:
        loop, weights = step_settings(learner, index, example.query_x)
        phase = (loop, weights is not None)
        if phase not in plans:
            plans[phase] = plan_step(
                learner, loop, example, executor=learner.config.executor,
                chunk=learner.config.chunk_size, channels_last=config.channels_last,
                step_weights=weights,
            )  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        loss, value = accumulate_step(learner, batch, loop, weights, plans[phase]).tolist()
        metrics = {"loss": loss, metric: value}
        return _update(learner, optimizer, batch, metrics, config, meta_batch, fail)

    return step


def _fast_step(learner, optimizer, example, config, meta_batch, fail) -> TrainStep:
    """The opt-in fast step: :class:`FastMetaStep` with ``config.fast``, the learner's executor
    and the config's ``grad_clip`` and ``channels_last``."""
    options = dataclasses.replace(
        config.fast,
        executor=learner.config.executor,
        chunk=learner.config.chunk_size,
        channels_last=config.channels_last,
        grad_clip=config.grad_clip,
    )
    metric = metric_name(learner.inner_loop(True).task)
    current: dict[str, Any] = {}

    def check(out: Tensor) -> None:
        loss, value = out.tolist()
        metrics = {"loss": loss, metric: value}
        current["metrics"] = _synchronise(learner, current["batch"], metrics, meta_batch, fail)

    device = next(learner.parameters()).device
    graphed = device.type == "cuda" if options.cuda_graph is None else options.cuda_graph
    fast = FastMetaStep(learner, optimizer, example, options, None if graphed else check)

    def step(batch: EpisodeBatch, index: int) -> dict[str, Tensor]:
        current["batch"] = batch
        loss = fast(batch, index)
        if graphed:  # read back later, together (DeferredMetrics)
            return {"loss": loss, metric: fast.last_metric}
        return _tensors(current.pop("metrics"))

    return step


def _loss_step(learner, optimizer, config, meta_batch: int, fail: Failure) -> TrainStep:
    """Any learner: ``meta_loss(batch, step)[0].backward()``, then :func:`_update`."""

    def step(batch: EpisodeBatch, index: int) -> dict[str, Tensor]:
        optimizer.zero_grad(set_to_none=True)
        loss, metrics = learner.meta_loss(batch, index)
        metrics = {**metrics, "loss": float(loss.detach())}
        loss.backward()
        return _update(learner, optimizer, batch, metrics, config, meta_batch, fail)

    return step


def _update(learner, optimizer, batch, metrics, config, meta_batch: int, fail: Failure):
    """After the backward: synchronise (raising on a non-finite loss), clip, optimizer step."""
    metrics = _synchronise(learner, batch, metrics, meta_batch, fail)
    if config.grad_clip is not None:
        nn.utils.clip_grad_norm_(learner.parameters(), config.grad_clip)
    optimizer.step()
    return _tensors(metrics)


class DeferredMetrics:
    """Steps' metrics and learning rates, kept (on the device for a graphed step) until read
    together: one host read per :meth:`flush` returns every pending step's values."""

    def __init__(self):
        self.pending: list[tuple[int, list[str], Tensor]] = []
        self.since = time.perf_counter()

    def add(self, index: int, metrics: dict[str, Tensor], lr: Any) -> None:
        """Keep step ``index``'s ``metrics`` (copied now: a captured step overwrites them) and
        learning rate (a float or a tensor)."""
        values = [v.detach().to(torch.float64) for v in metrics.values()]
        lr = lr.detach() if isinstance(lr, Tensor) else torch.tensor(float(lr))
        values = torch.stack([*(v.to(values[0].device) for v in values), lr.to(values[0])])
        self.pending.append((index, [*metrics, "lr"], values))

    def flush(self) -> list[tuple[int, dict[str, float], float]]:
        """``(index, metrics, seconds)`` of each pending step, oldest first; ``seconds`` is the
        mean wall time per step since the last flush (one host synchronisation)."""
        if not self.pending:
            return []
        rows = [(index, names, values.tolist()) for index, names, values in self.pending]
        now = time.perf_counter()
        seconds, self.since = (now - self.since) / len(rows), now
        self.pending = []
        return [(i, dict(zip(names, vals, strict=True)), seconds) for i, names, vals in rows]
