"""The trainer's fast path: MAML-style learners stepped by :class:`metazoo.engine.FastMetaStep`.

With ``TrainConfig(fast_step=True)`` each meta-update is one call of a ``FastMetaStep`` built
around the learner's network, inner loop and learning rate: vectorized in memory-bounded chunks,
optionally ``torch.compile``-d, and on CUDA the whole step (meta-gradient, clipping, optimizer)
replayed from one CUDA graph. The meta-gradient is the one ``learner.meta_backward`` gives (the
tests check it); what changes is where the time goes.

It takes learners whose inner loop is plain: a float inner learning rate and no per-step weight
overrides (``maml``, ``fomaml``, ``anil``). Meta-SGD's and MAML++'s meta-learned tensors, Reptile's
outer step, learners outside the MAML family and multi-process training are refused with a message
that says to turn ``fast_step`` off.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from metazoo import distributed as dist
from metazoo.engine.fast import FastMetaStep, FastOptions
from metazoo.engine.functional import metric_name
from metazoo.episode import EpisodeBatch
from metazoo.learner import has_outer_step
from metazoo.training.config import FAST_STEP_OPTIONS, TrainConfig

__all__ = ["check_fast_step", "build_fast_step", "DeferredMetrics"]


def check_fast_step(learner: nn.Module) -> None:
    """Raise a ValueError naming why ``learner`` cannot train with ``fast_step`` (and what to do)."""
    name = getattr(learner, "registered_name", type(learner).__name__)
    fix = "train it with fast_step=False (the default)"
    if has_outer_step(learner) or not callable(getattr(learner, "inner_loop", None)):
        raise ValueError(f"fast_step runs MAML-style meta-gradients; {name} has none: {fix}")
    if not isinstance(learner.learning_rates(), float | int) or learner.overrides() is not None:
        raise ValueError(
            f"fast_step takes a float inner learning rate and no per-step weights; {name} "
            f"meta-learns them: {fix}"
        )
    if learner.inner_loop(training=True).bn_policy == "running":
        raise ValueError(f"fast_step uses batch statistics; {name} has bn_policy='running': {fix}")
    if dist.is_distributed():
        raise ValueError(f"fast_step runs in one process; this run has several: {fix}")


def build_fast_step(
    learner: nn.Module,
    optimizer: torch.optim.Optimizer,
    example: EpisodeBatch,
    config: TrainConfig,
) -> FastMetaStep:
    """The step for ``learner``, shaped like ``example`` (every later batch has its shapes).

    ``optimizer`` must be built with ``capturable=True`` on CUDA (:func:`make_optimizer` does).
    """
    check_fast_step(learner)
    chosen = {option: getattr(config, option) for option in FAST_STEP_OPTIONS}
    options = FastOptions(**chosen, grad_clip=config.grad_clip)
    loop = learner.inner_loop(training=True)
    lr = float(learner.learning_rates())
    return FastMetaStep(learner.model, loop, lr, optimizer, example, options)


class DeferredMetrics:
    """The fast steps' loss, metric and learning rate, kept on the device until read together.

    Reading them every step would make the host wait for each step before it queues the next
    batch; here one host read per :meth:`flush` returns every pending step's values.

    Args:
        task: the learner's task type (names the metric).
    """

    def __init__(self, task: str):
        self.metric = metric_name(task)
        self.pending: list[tuple[int, torch.Tensor]] = []
        self.since = time.perf_counter()

    def add(self, index: int, loss: torch.Tensor, step: FastMetaStep, lr: Any) -> None:
        """Keep step ``index``'s values: ``loss`` and ``step.last_metric`` (both overwritten by
        the next captured step, so copied now) and the learning rate (a float or a tensor)."""
        lr = lr.to(loss) if isinstance(lr, torch.Tensor) else loss.new_tensor(lr)
        self.pending.append((index, torch.stack([loss, step.last_metric.to(loss), lr])))

    def flush(self) -> list[tuple[int, dict[str, float], float]]:
        """``(index, metrics, seconds)`` of each pending step, oldest first; ``seconds`` is the
        mean wall time per step since the last flush (one host synchronisation)."""
        if not self.pending:
            return []
        values = torch.stack([v for _, v in self.pending]).tolist()
        now = time.perf_counter()
        seconds, self.since = (now - self.since) / len(values), now
        steps = [
            (index, {"loss": loss, self.metric: metric, "lr": lr}, seconds)
            for (index, _), (loss, metric, lr) in zip(self.pending, values, strict=True)
        ]
        self.pending = []
        return steps
