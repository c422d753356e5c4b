"""Fast weights, functional forward passes, task losses and metrics.

Fast weights are a ``dict[str, Tensor]`` keyed like ``model.named_parameters()``; a forward pass is
``torch.func.functional_call(model, {**weights, **buffers}, x)``, so any ``nn.Module`` works as
given. Buffers are copied once per call of a learner so that no forward pass writes into the model
(BatchNorm's ``num_batches_tracked`` counter, for instance), except under ``bn_policy='running'``,
where the model's own buffers are used and updated.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from metazoo.metrics import accuracy

__all__ = [
    "TASKS",
    "parameters_of",
    "buffers_of",
    "forward",
    "task_loss",
    "task_metric",
    "metric_name",
    "check_task",
    "visible_logits",
]

#: The task types the engine computes a loss for.
TASKS = ("classification", "regression")


def check_task(task: str) -> str:
    """Return ``task`` or raise a ValueError listing the valid ones."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return task


def parameters_of(model: nn.Module) -> dict[str, Tensor]:
    """The model's parameters as a name -> tensor dict (the outer weights, still attached).

    Raises:
        ValueError: when the model has no parameters to adapt.
    """
    params = dict(model.named_parameters())
    if not params:
        raise ValueError(
            f"{type(model).__name__} has no parameters: gradient-based meta-learners need a model "
            "with trainable weights (e.g. metazoo.models.make_backbone('conv4', ...))"
        )
    return params


def buffers_of(model: nn.Module, bn_policy: str) -> dict[str, Tensor]:
    """Buffers to pass to ``functional_call``: copies, or none (the model's own) under ``running``."""
    if bn_policy == "running":
        return {}
    return {name: b.clone() for name, b in model.named_buffers()}


def forward(
    model: nn.Module,
    weights: Mapping[str, Tensor],
    buffers: Mapping[str, Tensor],
    x: Tensor,
    overrides: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """Run ``model`` on ``x`` with ``weights`` (then ``overrides``, e.g. per-step BN weights) in place of its own.

    Args:
        model: any ``nn.Module``.
        weights: name -> tensor for (a superset of) the model's parameters.
        buffers: name -> tensor for its buffers (may be empty: the model's own are used).
        x: ``(n, *x)`` inputs of one task.
        overrides: name -> tensor replacing entries of ``weights`` for this pass only.
    """
    merged = {**weights, **(overrides or {}), **buffers}
    return functional_call(model, merged, (x,), strict=False)


def visible_logits(out: Tensor, ways: int | None, padded_head: bool) -> Tensor:
    """The logits of a task's ``ways`` classes: the first ``ways`` columns of a padded head
    (the wider head's other classes are masked out), else ``out`` as it is.

    Args:
        out: ``(n, W)`` logits, ``W >= ways`` for a padded head.
    """
    if not padded_head or ways is None or out.dim() != 2 or out.shape[-1] < ways:
        return out
    return out[:, :ways]


def _check_output(
    out: Tensor, y: Tensor, task: str, ways: int | None, padded_head: bool = False
) -> None:
    if task == "classification":
        if padded_head and out.dim() == 2 and ways is not None and out.shape[-1] < ways:
            raise ValueError(
                f"the padded head has {out.shape[-1]} outputs but an episode is {ways}-way: "
                "build the model with out_features at least the benchmark's largest ways "
                "(the card's `ways`)"
            )
        if out.dim() != 2 or (ways is not None and out.shape[-1] != ways and not padded_head):
            raise ValueError(
                f"the model outputs shape {tuple(out.shape)} for {y.shape[0]} inputs, but the "
                f"episodes are {ways}-way: build the model with out_features={ways} "
                f"(e.g. metazoo.build_learner or make_backbone(..., out_features={ways}))"
            )
    elif out.shape != y.shape:
        raise ValueError(
            f"the model outputs shape {tuple(out.shape)} but the regression targets have shape "
            f"{tuple(y.shape)}: give the model out_features={y.shape[-1] if y.dim() > 1 else 1}"
        )


def task_loss(
    out: Tensor, y: Tensor, task: str, ways: int | None = None, padded_head: bool = False
) -> Tensor:
    """Cross-entropy (classification) or mean squared error (regression) of one task.

    Args:
        out: ``(n, N)`` logits or ``(n, *y)`` regression outputs.
        y: ``(n,)`` int64 labels or ``(n, *y)`` float targets.
        task: ``classification`` or ``regression``.
        ways: N, checked against the logits' width when given.
        padded_head: the head is wider than ``ways``; only the first ``ways`` logits count.

    Raises:
        ValueError: when the output shape does not fit the task, saying how to build the model.
    """
    _check_output(out, y, task, ways, padded_head)
    if task == "classification":
        return F.cross_entropy(visible_logits(out, ways, padded_head), y)
    return F.mse_loss(out, y)


def task_metric(out: Tensor, y: Tensor, task: str) -> Tensor:
    """Accuracy in % (classification, as every learner reports it) or MSE (regression), 0-dim, detached."""
    out = out.detach()
    if task == "classification":
        return accuracy(out, y)
    return F.mse_loss(out, y)


def metric_name(task: str) -> str:
    """``accuracy`` for classification, ``mse`` for regression."""
    return "accuracy" if task == "classification" else "mse"


def infer_task(y: Tensor) -> str:
    """``regression`` for float targets, ``classification`` for integer labels."""
    return "regression" if torch.is_floating_point(y) else "classification"
