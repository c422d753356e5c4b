"""The inner loop: one task's adaptation, shared by both executors.

An :class:`InnerLoop` holds the static choices (steps, first or second order, inner optimizer,
task type, BatchNorm policy, which weights adapt). The tensors that may be meta-learned travel
separately: learning rates (:data:`LearningRate`) and per-step weight overrides (MAML++'s
per-step BatchNorm weights). :func:`run_inner_steps` is the one inner loop, on any loss (the
functional API of :mod:`metazoo.engine.adapt_api` passes a user's loss); :func:`run_inner_loop`
is it on a task's support loss. Both take a gradient function, so the same step code runs with
``torch.autograd.grad`` (sequential executor) and ``torch.func.grad`` (vectorized).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from metazoo.engine.batchnorm import check_bn_policy
from metazoo.engine.functional import check_task, forward, task_loss

__all__ = [
    "InnerLoop",
    "LearningRate",
    "INNER_OPTIMIZERS",
    "lr_at",
    "override_at",
    "sgd_update",
    "adam_update",
    "run_inner_steps",
    "run_inner_loop",
    "StepLoss",
    "autograd_grads",
    "functorch_grads",
]

#: Inner-loop learning rates: one float; a dict name -> tensor (scalar or the parameter's shape,
#: Meta-SGD); or a sequence of such dicts, one per step (MAML++). Steps past the end reuse the last.
LearningRate = float | Mapping[str, Tensor | float] | Sequence[Mapping[str, Tensor | float]]

#: Inner optimizers: plain gradient descent (MAML) or a differentiable Adam.
INNER_OPTIMIZERS = ("sgd", "adam")

Weights = dict[str, Tensor]
LossFn = Callable[[Weights, Mapping[str, Tensor]], Tensor]
GradFn = Callable[[LossFn, Weights, Mapping[str, Tensor]], tuple[Weights, Tensor]]
#: ``(weights, buffers, step) -> loss``: the loss the inner loop descends before step ``step``.
StepLoss = Callable[[Weights, Mapping[str, Tensor], int], Tensor]


@dataclass(frozen=True)
class InnerLoop:
    """Static settings of one task's adaptation: fixed for a learner in a mode.

    Facts of one call (the episodes' ways, whether the outer graph is kept, multi-step losses)
    are arguments of the executors, never fields patched in here.
    """

    #: Gradient steps on the support set (0: no adaptation).
    steps: int
    #: Drop second-order terms (first-order MAML): inner gradients are constants to the outer loop.
    first_order: bool = False
    #: ``sgd`` or ``adam`` (differentiable; state starts at zero for every task).
    optimizer: str = "sgd"
    #: ``classification`` (cross-entropy) or ``regression`` (mean squared error).
    task: str = "classification"
    #: BatchNorm policy, see :mod:`metazoo.engine.batchnorm`.
    bn_policy: str = "transductive"
    #: Names of the weights the inner loop updates; None for all the model's parameters.
    adapt_names: tuple[str, ...] | None = None
    #: Adam's (beta1, beta2).
    adam_betas: tuple[float, float] = (0.9, 0.999)
    #: Adam's epsilon (also keeps ``sqrt`` differentiable at a zero second moment).
    adam_eps: float = 1e-8
    #: The head is padded to the largest ways of varied episodes: a task's logits are the first
    #: ``ways`` outputs (the others masked out), so every task shares one set of weight shapes.
    padded_head: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(
                f"inner_steps must be a non-negative integer, got {self.steps!r}: use 0 for no "
                "adaptation, 1 or more gradient steps otherwise"
            )
        if self.optimizer not in INNER_OPTIMIZERS:
            raise ValueError(
                f"inner_optimizer must be one of {INNER_OPTIMIZERS}, got {self.optimizer!r}"
            )
        check_task(self.task)
        check_bn_policy(self.bn_policy)

    def adaptable(self, weights: Mapping[str, Tensor]) -> list[str]:
        """Names of ``weights`` the inner loop updates, in the model's order."""
        if self.adapt_names is None:
            return list(weights)
        chosen = set(self.adapt_names)
        missing = chosen - set(weights)
        if missing:
            raise KeyError(
                f"adapt_names {sorted(missing)} are not parameters of the model; "
                f"parameters are {list(weights)}"
            )
        return [n for n in weights if n in chosen]

    def bound_to(self, params: Mapping[str, Tensor]) -> InnerLoop:
        """These settings with ``adapt_names`` resolved for ``params``: frozen parameters
        (``requires_grad=False``) stay out of the inner loop. Idempotent."""
        names = tuple(n for n in self.adaptable(params) if params[n].requires_grad)
        if names == self.adapt_names:
            return self
        return dataclasses.replace(self, adapt_names=names)


def lr_at(lr: LearningRate, step: int, name: str) -> Tensor | float:
    """The learning rate of weight ``name`` at inner step ``step`` (0-based)."""
    if isinstance(lr, (int, float)):
        return float(lr)
    if isinstance(lr, Mapping):
        return lr[name]
    return lr[min(step, len(lr) - 1)][name]


def override_at(
    overrides: Sequence[Mapping[str, Tensor]] | None, step: int
) -> Mapping[str, Tensor] | None:
    """Per-step weight overrides for forward passes at ``step`` (clamped to the last one)."""
    if not overrides:
        return None
    return overrides[min(max(step, 0), len(overrides) - 1)]


def sgd_update(weights: Weights, grads: Weights, lr: LearningRate, step: int) -> Weights:
    """``w - lr * g`` for every adapted weight."""
    return {n: w - lr_at(lr, step, n) * grads[n] for n, w in weights.items()}


def adam_update(
    weights: Weights,
    grads: Weights,
    lr: LearningRate,
    step: int,
    state: dict[str, tuple[Tensor, Tensor]],
    betas: tuple[float, float],
    eps: float,
) -> tuple[Weights, dict[str, tuple[Tensor, Tensor]]]:
    """One differentiable Adam step (bias-corrected; ``sqrt(v_hat + eps**2) + eps`` denominator).

    The ``eps**2`` inside the root keeps its derivative finite where a gradient is exactly zero
    (dead ReLU units); it changes the step by a relative ``eps**2 / v_hat``.
    """
    b1, b2 = betas
    t = step + 1
    new_weights, new_state = {}, {}
    for n, w in weights.items():
        g = grads[n]
        m, v = state.get(n, (torch.zeros_like(g), torch.zeros_like(g)))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        new_weights[n] = w - lr_at(lr, step, n) * m_hat / (torch.sqrt(v_hat + eps * eps) + eps)
        new_state[n] = (m, v)
    return new_weights, new_state


def autograd_grads(
    loss_fn: LossFn, adapted: Weights, buffers: Mapping[str, Tensor], create_graph: bool
) -> tuple[Weights, Tensor]:
    """Gradients of ``loss_fn(adapted, buffers)`` by ``torch.autograd.grad`` (unused weights: zeros)."""
    loss = loss_fn(adapted, buffers)
    names = list(adapted)
    grads = torch.autograd.grad(
        loss, [adapted[n] for n in names], create_graph=create_graph, allow_unused=True
    )
    out = {n: torch.zeros_like(adapted[n]) if g is None else g for n, g in zip(names, grads)}
    return out, loss


def functorch_grads(
    loss_fn: LossFn, adapted: Weights, buffers: Mapping[str, Tensor], first_order: bool
) -> tuple[Weights, Tensor]:
    """Gradients of ``loss_fn(adapted, buffers)`` by ``torch.func.grad`` (composes with ``vmap``).

    Buffers are an input of the transformed function (not captured), so BatchNorm's in-place
    ``num_batches_tracked`` update on the copies is allowed.
    """
    grads, loss = torch.func.grad_and_value(loss_fn)(adapted, buffers)
    if first_order:
        grads = {n: g.detach() for n, g in grads.items()}
    return grads, loss


def run_inner_steps(
    weights: Weights,
    buffers: Mapping[str, Tensor],
    loss_at: StepLoss,
    loop: InnerLoop,
    lr: LearningRate,
    grad_fn: GradFn,
    *,
    every_step: bool = False,
) -> tuple[list[Weights], list[Tensor]]:
    """Adapt ``weights`` by ``loop.steps`` steps on any loss: the one inner loop of the engine.

    Args:
        weights: every parameter of the model by name (outer weights or detached copies).
        buffers: buffers for ``functional_call`` (empty: the model's own).
        loss_at: ``(weights, buffers, step) -> ()`` loss at the full weight dict before inner
            step ``step`` (a task's support loss, or any loss a user computes).
        loop: the static settings (``steps``, ``first_order`` via ``grad_fn``, ``optimizer``,
            ``adapt_names``).
        lr: learning rates (see :data:`LearningRate`).
        grad_fn: ``(loss_fn, adapted, buffers) -> (grads, loss)``; see :func:`autograd_grads`,
            :func:`functorch_grads`.
        every_step: keep the weights after every step, not only the last.

    Returns:
        ``(trajectory, losses)``: the full weight dict after each step (only the final one
        unless ``every_step``; the initial weights when ``steps == 0``) and the loss before each
        step (``steps`` detached 0-dim tensors).
    """
    names = loop.adaptable(weights)
    adapted = {n: weights[n] for n in names}
    fixed = {n: w for n, w in weights.items() if n not in adapted}
    trajectory, losses, adam_state = [], [], {}
    for step in range(loop.steps):

        def current_loss(current: Weights, buffers: Mapping[str, Tensor], step: int = step):
            return loss_at({**fixed, **current}, buffers, step)

        grads, loss = grad_fn(current_loss, adapted, buffers)
        losses.append(loss.detach())
        if loop.optimizer == "adam":
            adapted, adam_state = adam_update(
                adapted, grads, lr, step, adam_state, loop.adam_betas, loop.adam_eps
            )
        else:
            adapted = sgd_update(adapted, grads, lr, step)
        if every_step or step == loop.steps - 1:
            trajectory.append({**fixed, **adapted})
    if not trajectory:
        trajectory.append(dict(weights))
    return trajectory, losses


def run_inner_loop(
    model: nn.Module,
    weights: Weights,
    buffers: Mapping[str, Tensor],
    support_x: Tensor,
    support_y: Tensor,
    loop: InnerLoop,
    lr: LearningRate,
    grad_fn: GradFn,
    overrides: Sequence[Mapping[str, Tensor]] | None = None,
    *,
    ways: int | None = None,
    every_step: bool = False,
) -> tuple[list[Weights], list[Tensor]]:
    """Adapt ``weights`` to one task's support set: :func:`run_inner_steps` on the task loss.

    Args:
        model: the network, run through ``functional_call``.
        weights: every parameter of the model by name (outer weights or detached copies).
        buffers: buffers for ``functional_call`` (empty: the model's own).
        support_x: ``(N*K, *x)`` support inputs.
        support_y: ``(N*K,)`` labels or ``(N*K, *y)`` targets.
        loop: the static settings.
        lr: learning rates (see :data:`LearningRate`).
        grad_fn: ``(loss_fn, adapted, buffers) -> (grads, loss)``; see :func:`autograd_grads`,
            :func:`functorch_grads`.
        overrides: per-step weights replacing entries of ``weights`` in the forward passes.
        ways: N of a classification task, checked against the model's output width.
        every_step: keep the weights after every step (multi-step query loss), not only the last.

    Returns:
        ``(trajectory, support_losses)`` as :func:`run_inner_steps` returns them.
    """

    def support_loss(full: Weights, buffers: Mapping[str, Tensor], step: int) -> Tensor:
        out = forward(model, full, buffers, support_x, override_at(overrides, step))
        return task_loss(out, support_y, loop.task, ways, loop.padded_head)

    return run_inner_steps(weights, buffers, support_loss, loop, lr, grad_fn, every_step=every_step)
