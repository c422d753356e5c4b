"""Per-task convolutions: ordinary convolutions, one per task, where ``vmap`` would group them.

After one inner step every task has its own weights, and ``vmap`` lowers a convolution with
per-task weights to one grouped convolution (groups = tasks), for the forward pass and for every
order of backward. cuDNN runs grouped convolutions group by group with layout copies between
(profiled on an H200: 92% of a compiled meta-training step was convolution kernels, a third of it
in per-group weight gradients). Under :func:`task_convolutions` a model's ``F.conv2d`` calls go
through three ``autograd.Function`` s (the convolution, its input gradient and its weight gradient)
whose ``vmap`` rules fold the tasks into the batch when the weights are shared, and otherwise run
one ordinary convolution per task. Each function's backward is written with the other two, so the
set is closed under differentiation: second-order MAML through it is exact to rounding (tested
against plain ``vmap`` in float64).

``torch.compile`` cannot trace ``autograd.Function`` s with custom ``vmap`` rules inside
``torch.func`` transforms, so :func:`metazoo.engine.fast.compiled_meta_gradient` first traces the
whole program to ATen operations with ``make_fx`` and compiles that graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

__all__ = ["task_convolutions", "TASKS_PER_TRACE"]

#: Tasks per traced program with per-task convolutions: the traced graph, and the compile time,
#: grow with the tasks in it (one convolution per task). With 4 a Conv-4 step compiled in 1.5x the
#: time of the plain program on this project's CPU; at 32 it had not finished after 8 minutes.
TASKS_PER_TRACE = 4

#: ``(stride, padding, dilation)``, each a pair.
Settings = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def _leading(t: Tensor, dim: int | None, size: int) -> Tensor:
    """``t`` with its vmapped dimension first (expanded to ``size`` when it has none)."""
    return t.expand(size, *t.shape) if dim is None else t.movedim(dim, 0)


def _convolution(x: Tensor, w: Tensor, settings: Settings) -> Tensor:
    stride, padding, dilation = settings
    return torch.ops.aten.convolution.default(
        x, w, None, stride, padding, dilation, False, (0, 0), 1
    )


class _Conv(torch.autograd.Function):
    """``conv2d(x, w)`` without bias; x ``(N, Cin, H, W)``, w ``(Cout, Cin, kh, kw)``."""

    @staticmethod
    def forward(x: Tensor, w: Tensor, settings: Settings) -> Tensor:
        return _convolution(x, w, settings)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.settings = inputs[2]

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        x, w = ctx.saved_tensors
        grad_x = _InputGrad.apply(grad_y, w, tuple(x.shape), ctx.settings)
        return grad_x, _WeightGrad.apply(x, grad_y, tuple(w.shape), ctx.settings), None

    @staticmethod
    def vmap(info, dims, x: Tensor, w: Tensor, settings: Settings):
        if dims[1] is None:  # shared weights: the tasks are more batch
            x = x.movedim(dims[0], 0)
            return _Conv.apply(x.flatten(0, 1), w, settings).unflatten(0, x.shape[:2]), 0
        x, w = _leading(x, dims[0], info.batch_size), _leading(w, dims[1], info.batch_size)
        return torch.stack([_Conv.apply(a, b, settings) for a, b in zip(x, w, strict=True)]), 0


class _InputGrad(torch.autograd.Function):
    """The input gradient of ``conv2d`` (a transposed convolution of ``grad_y`` by ``w``)."""

    @staticmethod
    def forward(grad_y: Tensor, w: Tensor, x_shape: tuple[int, ...], settings: Settings) -> Tensor:
        return torch.nn.grad.conv2d_input(x_shape, w, grad_y, *settings)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.settings = inputs[3]

    @staticmethod
    def backward(ctx, grad_grad_x: Tensor):
        grad_y, w = ctx.saved_tensors
        by_grad_y = _Conv.apply(grad_grad_x, w, ctx.settings)
        by_w = _WeightGrad.apply(grad_grad_x, grad_y, tuple(w.shape), ctx.settings)
        return by_grad_y, by_w, None, None

    @staticmethod
    def vmap(info, dims, grad_y: Tensor, w: Tensor, x_shape, settings: Settings):
        if dims[1] is None:
            g = grad_y.movedim(dims[0], 0)
            folded = (g.shape[0] * x_shape[0], *x_shape[1:])
            out = _InputGrad.apply(g.flatten(0, 1), w, folded, settings)
            return out.unflatten(0, g.shape[:2]), 0
        grad_y = _leading(grad_y, dims[0], info.batch_size)
        w = _leading(w, dims[1], info.batch_size)
        parts = [_InputGrad.apply(g, b, x_shape, settings) for g, b in zip(grad_y, w, strict=True)]
        return torch.stack(parts), 0


class _WeightGrad(torch.autograd.Function):
    """The weight gradient of ``conv2d`` (a convolution of ``x`` with ``grad_y``)."""

    @staticmethod
    def forward(x: Tensor, grad_y: Tensor, w_shape: tuple[int, ...], settings: Settings) -> Tensor:
        return torch.nn.grad.conv2d_weight(x, w_shape, grad_y, *settings)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.settings = inputs[3]

    @staticmethod
    def backward(ctx, grad_grad_w: Tensor):
        x, grad_y = ctx.saved_tensors
        by_x = _InputGrad.apply(grad_y, grad_grad_w, tuple(x.shape), ctx.settings)
        return by_x, _Conv.apply(x, grad_grad_w, ctx.settings), None, None

    @staticmethod
    def vmap(info, dims, x: Tensor, grad_y: Tensor, w_shape, settings: Settings):
        x = _leading(x, dims[0], info.batch_size)
        grad_y = _leading(grad_y, dims[1], info.batch_size)
        parts = [_WeightGrad.apply(a, g, w_shape, settings) for a, g in zip(x, grad_y, strict=True)]
        return torch.stack(parts), 0


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _conv2d_arguments(args, kwargs) -> tuple:
    """``F.conv2d``'s arguments in order, defaults filled in."""
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    defaults = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
    values = {**defaults, **dict(zip(names, args, strict=False)), **kwargs}
    return tuple(values[n] for n in names)


class _TaskConvolutions(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.conv2d or func is torch.conv2d:
            x, w, bias, stride, padding, dilation, groups = _conv2d_arguments(args, kwargs or {})
            if groups == 1 and not isinstance(padding, str) and x.dim() == 4:
                settings = (_pair(stride), _pair(padding), _pair(dilation))
                y = _Conv.apply(x, w, settings)
                return y if bias is None else y + bias[:, None, None]
        return func(*args, **(kwargs or {}))


def task_convolutions() -> TorchFunctionMode:
    """A context in which ``F.conv2d`` (ungrouped, 4-D input) runs as per-task convolutions.

    Use it around the per-task function given to ``torch.func.vmap``; outside ``vmap`` it
    computes exactly ``F.conv2d`` (to every order of differentiation). Other convolutions
    (grouped, ``padding='same'``) are left to PyTorch.
    """
    return _TaskConvolutions()
