"""A non-finite meta-loss in training: which episodes of the batch cause it, and the error that
names them, the step and the last good checkpoint."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from metazoo import distributed as dist
from metazoo.episode import EpisodeBatch
from metazoo.training.config import NonFiniteLossError

__all__ = ["nonfinite_tasks", "diverged"]


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


def diverged(
    run: Any, batch: EpisodeBatch, loss: float, step: int | None = None
) -> NonFiniteLossError:
    """The error for a non-finite ``loss`` at ``step`` (default ``run.step``) of the trainer's
    ``run``, naming the offending episodes (recomputed on ``batch``) and the last checkpoint."""
    step, m = run.step if step is None else step, run.meta_batch
    first = step * m + dist.task_range(m).start  # this rank's first task of the global batch
    tasks = [first + j for j in nonfinite_tasks(run.learner, batch)]
    where = run.last_saved or "none (set checkpoint_dir to keep one)"
    message = (
        f"the meta-loss is {loss} at step {step}; training episodes {tasks} of the train split "
        f"(seed {run.config.seed}; batch {step} of {m} tasks) give a non-finite loss. "
        f"Last good checkpoint: {where}. Inspect those episodes (sampler.episode(i)), then lower "
        "lr or set grad_clip and resume from the checkpoint."
    )
    return NonFiniteLossError(message, step, tasks, run.last_saved)
