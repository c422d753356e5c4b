"""The peers' way of meta-training: one task at a time, in plain PyTorch, ``higher`` and learn2learn.

Each function computes the MAML meta-gradient of a meta-batch into ``.grad`` of the model's
parameters (mean over tasks of the query cross-entropy after ``steps`` inner SGD steps, second
order), calling ``backward`` once per task as the peers' examples do, so memory stays at one
task's graph. The evaluation counterparts adapt without an outer graph and predict under
``no_grad``; they return the per-task query accuracy.
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from metazoo.episode import EpisodeBatch

__all__ = [
    "torch_loop_backward",
    "torch_loop_meta_loss",
    "torch_loop_evaluate",
    "higher_backward",
    "higher_evaluate",
    "learn2learn_backward",
    "learn2learn_evaluate",
    "optional_module",
]


def optional_module(name: str):
    """The imported module, or None when it is not installed or fails to import."""
    try:
        return importlib.import_module(name)
    except Exception:  # a broken install (learn2learn on 3.11 fails to build) is "absent" here
        return None


def _adapt(
    model: nn.Module, x: Tensor, y: Tensor, steps: int, lr: float, create_graph: bool
) -> dict[str, Tensor]:
    """Fast weights after ``steps`` SGD steps on ``(x (B, C, H, W), y (B,))``."""
    params = dict(model.named_parameters())
    if not create_graph:
        params = {k: p.detach().requires_grad_() for k, p in params.items()}
    for _ in range(steps):
        loss = F.cross_entropy(functional_call(model, params, (x,)), y)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
        params = {k: p - lr * g for (k, p), g in zip(params.items(), grads)}
    return params


def torch_loop_meta_loss(model: nn.Module, batch: EpisodeBatch, steps: int, lr: float) -> Tensor:
    """The meta-loss of ``batch`` as one graph (for whole-step capture); no host synchronisation.

    Args:
        batch: ``support_x (T, N*K, C, H, W)``, ``query_x (T, N*Q, C, H, W)`` and labels.
    """
    total = 0.0
    for t in range(len(batch)):
        fast = _adapt(model, batch.support_x[t], batch.support_y[t], steps, lr, True)
        logits = functional_call(model, fast, (batch.query_x[t],))
        total = total + F.cross_entropy(logits, batch.query_y[t])
    return total / len(batch)


def torch_loop_backward(model: nn.Module, batch: EpisodeBatch, steps: int, lr: float) -> None:
    """Accumulate the meta-gradient into ``.grad`` with ``functional_call`` + ``autograd.grad``."""
    for t in range(len(batch)):
        fast = _adapt(model, batch.support_x[t], batch.support_y[t], steps, lr, True)
        logits = functional_call(model, fast, (batch.query_x[t],))
        (F.cross_entropy(logits, batch.query_y[t]) / len(batch)).backward()


def _accuracy(logits: Tensor, y: Tensor) -> Tensor:
    return 100.0 * (logits.argmax(-1) == y).float().mean()


def torch_loop_evaluate(model: nn.Module, batch: EpisodeBatch, steps: int, lr: float) -> Tensor:
    """``(T,)`` query accuracy in % after first-order-free adaptation of each task."""
    accuracies = []
    for t in range(len(batch)):
        with torch.enable_grad():
            fast = _adapt(model, batch.support_x[t], batch.support_y[t], steps, lr, False)
        with torch.no_grad():
            logits = functional_call(model, fast, (batch.query_x[t],))
        accuracies.append(_accuracy(logits, batch.query_y[t]))
    return torch.stack(accuracies)


def higher_backward(model: nn.Module, batch: EpisodeBatch, steps: int, lr: float) -> None:
    """Accumulate the meta-gradient with ``higher.innerloop_ctx`` (its MAML example's loop)."""
    higher = importlib.import_module("higher")
    inner_opt = torch.optim.SGD(model.parameters(), lr=lr)
    for t in range(len(batch)):
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, opt):
            for _ in range(steps):
                opt.step(F.cross_entropy(fmodel(batch.support_x[t]), batch.support_y[t]))
            loss = F.cross_entropy(fmodel(batch.query_x[t]), batch.query_y[t])
            (loss / len(batch)).backward()


def higher_evaluate(model: nn.Module, batch: EpisodeBatch, steps: int, lr: float) -> Tensor:
    """``(T,)`` query accuracy in %, adapting with ``higher`` without tracking higher-order grads."""
    higher = importlib.import_module("higher")
    inner_opt = torch.optim.SGD(model.parameters(), lr=lr)
    accuracies = []
    for t in range(len(batch)):
        with (
            torch.enable_grad(),
            higher.innerloop_ctx(model, inner_opt, track_higher_grads=False) as (fmodel, opt),
        ):
            for _ in range(steps):
                opt.step(F.cross_entropy(fmodel(batch.support_x[t]), batch.support_y[t]))
            with torch.no_grad():
                accuracies.append(_accuracy(fmodel(batch.query_x[t]), batch.query_y[t]))
    return torch.stack(accuracies)


def learn2learn_backward(maml: nn.Module, batch: EpisodeBatch, steps: int) -> None:
    """Accumulate the meta-gradient with learn2learn's ``MAML.clone()`` / ``adapt`` loop.

    Args:
        maml: a ``learn2learn.algorithms.MAML`` wrapping the model (its ``lr`` is the inner lr).
    """
    for t in range(len(batch)):
        learner = maml.clone()
        for _ in range(steps):
            learner.adapt(F.cross_entropy(learner(batch.support_x[t]), batch.support_y[t]))
        loss = F.cross_entropy(learner(batch.query_x[t]), batch.query_y[t])
        (loss / len(batch)).backward()


def learn2learn_evaluate(maml: nn.Module, batch: EpisodeBatch, steps: int) -> Tensor:
    """``(T,)`` query accuracy in % with learn2learn, first-order adaptation (no outer graph kept)."""
    accuracies = []
    for t in range(len(batch)):
        with torch.enable_grad():
            learner = maml.clone(first_order=True)
            for _ in range(steps):
                learner.adapt(F.cross_entropy(learner(batch.support_x[t]), batch.support_y[t]))
        with torch.no_grad():
            accuracies.append(_accuracy(learner(batch.query_x[t]), batch.query_y[t]))
    return torch.stack(accuracies)
