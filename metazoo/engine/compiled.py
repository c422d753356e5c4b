"""The vectorized meta-gradient as one compiled program (``FastOptions(compile=True)``).

``torch.func.grad`` (outer) of ``vmap`` over tasks of the inner loop (``torch.func.grad``
inside): the compiler sees all three differentiation orders at once and fuses the plain-ops
BatchNorm and the elementwise work around the convolutions. With a per-task convolution lowering
(:mod:`metazoo.engine.taskconv`) the program is first traced to ATen operations with ``make_fx``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from metazoo.engine.batchnorm import BatchNormMode
from metazoo.engine.functional import buffers_of, forward, task_loss, task_metric
from metazoo.engine.inner import InnerLoop, functorch_grads, run_inner_loop
from metazoo.engine.taskconv import batched_weight_gradients
from metazoo.episode import EpisodeBatch

__all__ = ["compiled_meta_gradient", "check_policy"]


def check_policy(loop: InnerLoop) -> None:
    """Refuse running BatchNorm statistics, which the fast step does not support."""
    if loop.bn_policy == "running":
        raise ValueError(
            "the fast step supports bn_policy 'transductive' and 'per_step'; for running "
            "statistics use metazoo.engine.adapt_and_query(..., executor='sequential')"
        )


def _vmapped_meta_loss(model, loop, lr, scale, convolutions, weights, buffers, sx, sy, qx, qy):
    """``scale`` times the summed query loss of a chunk of tasks, as one functional program;
    ``convolutions()`` is the context the tasks' convolutions run in."""

    grad_fn = partial(functorch_grads, first_order=loop.first_order)
    convolutions = convolutions()

    def task(sx, sy, qx, qy):
        with convolutions:
            trajectory, _ = run_inner_loop(model, weights, buffers, sx, sy, loop, lr, grad_fn)
            out = forward(model, trajectory[-1], buffers, qx)
        return task_loss(out, qy, loop.task, loop.ways), task_metric(out, qy, loop.task)

    with BatchNormMode(loop.bn_policy, vectorized=True):
        losses, metrics = torch.func.vmap(task)(sx, sy, qx, qy)
    return losses.sum() * scale, (losses.detach(), metrics)


def compiled_meta_gradient(
    model: nn.Module,
    loop: InnerLoop,
    lr: float,
    tasks: int,
    *,
    chunk: int | None = None,
    lowering: str | None = None,
    fp32_products: str = "ieee",
) -> Callable[[EpisodeBatch], Tensor]:
    """A ``torch.compile``-d accumulator of the vectorized meta-gradient, ``batch -> meta-loss``.

    The program is ``torch.func.grad`` (outer) of ``vmap`` over tasks of the inner loop
    (``torch.func.grad`` inside), so the compiler sees all three differentiation orders at once.
    Each call adds the meta-gradient of a ``tasks``-task batch to the parameters' ``.grad``, one
    chunk at a time, and returns ``(2,)``: the detached mean query loss and mean query metric.
    Supports a float inner learning rate and no per-step overrides (MAML, first-order MAML,
    ANIL-style ``adapt_names``).

    Args:
        model: the network (BatchNorm with batch statistics, i.e. ``transductive``).
        loop: inner-loop settings; ``loop.ways`` should be set.
        lr: the inner learning rate.
        tasks: the meta-batch size T every batch has (scales the loss by ``1/T``).
        chunk: tasks per compiled call (None: all T).
        lowering: how per-task convolutions run: None keeps ``vmap``'s grouped convolutions;
            a name of :data:`metazoo.engine.taskconv.LOWERINGS` batches the weight gradients
            (and more), and the program is then traced to ATen operations with ``make_fx`` on
            the first batch of each shape and that graph is compiled
            (:attr:`FastOptions.lowering` names the choice of each option).
        fp32_products: with ``lowering="triton"``, how its kernels multiply fp32 with TF32 off
            (:data:`metazoo.engine.taskconv.FP32_PRODUCTS`).
    """
    check_policy(loop)
    if not isinstance(lr, float | int):
        raise ValueError("compiled_meta_gradient takes a float inner learning rate")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = dict(model.named_parameters())
    buffers = buffers_of(model, loop.bn_policy)
    convolutions = (
        partial(batched_weight_gradients, lowering, fp32_products)
        if lowering
        else contextlib.nullcontext
    )
    program = partial(_vmapped_meta_loss, model, loop, float(lr), 1.0 / tasks, convolutions)
    gradient = torch.func.grad(program, has_aux=True)
    step = _traced_then_compiled(gradient) if lowering else torch.compile(gradient, dynamic=False)

    def accumulate(batch: EpisodeBatch) -> Tensor:
        total = batch.query_x.new_zeros(2)
        for part in batch.split(chunk or len(batch)):
            weights = {n: p.detach() for n, p in params.items()}
            grads, (losses, metrics) = step(
                weights, buffers, part.support_x, part.support_y, part.query_x, part.query_y
            )
            for n in names:
                p = params[n]
                p.grad = grads[n] if p.grad is None else p.grad.add_(grads[n])
            total = total + torch.stack([losses.sum(), metrics.sum()]) / tasks
        return total

    return accumulate


def _traced_then_compiled(function: Callable) -> Callable:
    """``function`` traced to ATen operations (``make_fx``, fake tensors) per input shape, then
    compiled: ``torch.compile`` cannot trace the ``vmap`` rules of ``autograd.Function`` s."""
    from torch.fx.experimental.proxy_tensor import make_fx

    compiled: dict[tuple, Callable] = {}

    def call(weights: dict, buffers: dict, *batch: Tensor):
        leaves = [*weights.values(), *buffers.values(), *batch]
        key = tuple((t.shape, t.stride(), t.dtype, t.device) for t in leaves)
        if key not in compiled:
            graph = make_fx(function, tracing_mode="fake")(weights, buffers, *batch)
            compiled[key] = torch.compile(graph, dynamic=False)
        return compiled[key](weights, buffers, *batch)

    return call
