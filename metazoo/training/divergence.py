"""A non-finite meta-loss in training: which episodes of the batch cause it, which learning rate
most likely does, and the error that names them, the step and the last good checkpoint.

The rate is judged from where the non-finite value first appears: weights that are themselves
non-finite or have grown far beyond an initialisation's scale were pushed there by outer updates
(``lr``); ordinary weights whose adapted loss is not finite point at the inner loop (``inner_lr``).
A learner without gradient adaptation has only the outer rate.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from metazoo import distributed as dist
from metazoo.episode import EpisodeBatch
from metazoo.learner import adapts_by_gradient
from metazoo.training.config import NonFiniteLossError

__all__ = ["nonfinite_tasks", "diverged", "likely_rate"]

#: Largest weight magnitude an initialisation or a sane run reaches; beyond it the outer steps
#: (not the inner loop) are taken to have blown the weights up.
_ORDINARY_WEIGHT = 1e3


def nonfinite_tasks(learner: nn.Module, batch: EpisodeBatch) -> list[int]:
    """Positions in ``batch`` of the tasks whose own loss is not finite (all when none alone is)."""
    bad = []
    for j, task in enumerate(batch):
        try:
            with torch.enable_grad():
                loss = learner.meta_loss(task.batch())[0]
            finite = bool(torch.isfinite(loss.detach()))
        except Exception:  # a task that cannot even be evaluated counts as an offender
            finite = False
        if not finite:
            bad.append(j)
    return bad or list(range(len(batch)))


def likely_rate(learner: nn.Module) -> tuple[str, str]:
    """``("inner" | "outer", why)``: which learning rate most likely made the loss non-finite."""
    largest = max(
        (float(p.detach().abs().max()) for p in learner.parameters() if p.numel()), default=0.0
    )
    if not math.isfinite(largest):
        return "outer", "the weights themselves are no longer finite"
    if largest > _ORDINARY_WEIGHT:
        return "outer", f"the weights have grown to {largest:.3g} in magnitude"
    if not adapts_by_gradient(learner):
        return "outer", "this learner has no inner learning rate"
    return (
        "inner",
        f"the weights are ordinary (largest magnitude {largest:.3g}) but adaptation is not",
    )


def _advice(learner: nn.Module, config: Any) -> tuple[str, str]:
    rate, why = likely_rate(learner)
    if rate == "inner":
        current = getattr(getattr(learner, "config", None), "inner_lr", None)
        setting = f"inner_lr (now {current})" if current is not None else "the inner learning rate"
        return rate, f"Likely cause: the inner learning rate, as {why}; lower {setting}."
    fix = f"lower lr (now {config.lr})" + (" or set grad_clip" if config.grad_clip is None else "")
    return rate, f"Likely cause: the outer learning rate, as {why}; {fix}."


def diverged(
    run: Any, batch: EpisodeBatch, loss: float, step: int | None = None
) -> NonFiniteLossError:
    """The error for a non-finite ``loss`` at ``step`` (default ``run.step``) of the trainer's
    ``run``, naming the offending episodes (recomputed on ``batch``) and the last checkpoint."""
    step, m = run.step if step is None else step, run.meta_batch
    first = step * m + dist.task_range(m).start  # this rank's first task of the global batch
    tasks = [first + j for j in nonfinite_tasks(run.learner, batch)]
    rate, advice = _advice(run.learner, run.config)
    if run.last_saved:
        where = f"Last good checkpoint: {run.last_saved}; resume from it"
    else:
        where = "No checkpoint was written before this step; start again"
    message = (
        f"the meta-loss is {loss} at step {step}; training episodes {_shorten(tasks)} of the train "
        f"split (seed {run.config.seed}; batch {step} of {m} tasks) give a non-finite loss. "
        f"{advice} {where} with the lower rate."
    )
    return NonFiniteLossError(message, step, tasks, run.last_saved, rate)


def _shorten(tasks: list[int]) -> str:
    """``[25, ..., 49]`` for a run of consecutive indices, the list otherwise."""
    if len(tasks) > 4 and tasks == list(range(tasks[0], tasks[-1] + 1)):
        return f"{tasks[0]}-{tasks[-1]}"
    return str(tasks)
