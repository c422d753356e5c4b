"""Per-task weight gradients of convolutions as one batched matrix product over tasks.

After one inner step every task has its own weights, so a vectorized MAML step needs, for every
convolution, each task's weight gradient (in the inner loop and in the query backward). ``vmap``
lowers those to grouped convolutions (groups = tasks), and cuDNN runs a grouped weight gradient
group by group with layout copies between: on an H200 the weight gradients were the largest
single share of a compiled meta-training step (``benchmarks/results/gpu-logs``). Here a task's
weight gradient is the product of the output gradient with the unfolded input (im2col), so all T
of them are one ``bmm`` with T x (Cout x Cin*k*k) outputs and a reduction over the task's pixels.

Under :func:`batched_weight_gradients` a model's ``F.conv2d`` calls go through ``autograd.Function``
s whose ``vmap`` rules keep ``vmap``'s own lowering for the convolution and its input gradient
(shared weights fold the tasks into the batch; per-task weights group them) and route every
per-task weight gradient to the batched product. With ``lowering="matmul"`` the per-task
convolutions and input gradients are batched products too (im2col, and col2im for the input
gradient), so no grouped convolution is left; with ``lowering="triton"`` all three are
implicit-GEMM Triton kernels (:mod:`metazoo.engine.implicit_gemm`), with no im2col buffer either.
Which pays depends on the layer and the GPU (``benchmarks/conv_lowering.py`` measures each).
Each function's backward is written with the others, so the set is closed under
differentiation: second-order MAML through it equals plain ``vmap`` to rounding (tested in
float64).

``torch.compile`` cannot trace ``autograd.Function`` s with custom ``vmap`` rules inside
``torch.func`` transforms, so :func:`metazoo.engine.compiled.compiled_meta_gradient` first
traces the whole program to ATen operations (and the Triton kernels' operators) with ``make_fx``
and compiles that graph.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

__all__ = [
    "batched_weight_gradients",
    "task_weight_gradient",
    "task_convolution",
    "task_input_gradient",
    "Settings",
    "LOWERINGS",
    "FP32_PRODUCTS",
    "check_lowering",
]


#: How per-task convolutions run under :func:`batched_weight_gradients`, by name: ``grouped``
#: keeps ``vmap``'s grouped convolutions and input gradients, with the weight gradients as one
#: ``bmm``; ``matmul`` makes all three batched products over im2col columns (col2im for the input
#: gradient); ``triton`` runs all three as implicit-GEMM kernels (:mod:`.implicit_gemm`, CUDA).
LOWERINGS = ("grouped", "matmul", "triton")
#: How the ``triton`` lowering multiplies fp32 operands when TF32 is off: ``ieee`` on the FMA units
#: (plain fp32), or ``tf32x3`` as three TF32 tensor-core products of each operand's high and low
#: parts (errors of the order of fp32 rounding; a separately reported mode, not plain fp32).
FP32_PRODUCTS = ("ieee", "tf32x3")


class Settings(NamedTuple):
    """A convolution's geometry, and how its per-task forms run."""

    #: ``(sh, sw)``.
    stride: tuple[int, int]
    #: ``(ph, pw)``.
    padding: tuple[int, int]
    #: ``(dh, dw)``.
    dilation: tuple[int, int]
    #: how the per-task operations run (:data:`LOWERINGS`).
    lowering: str = "grouped"
    #: the ``triton`` lowering's fp32 products (:data:`FP32_PRODUCTS`).
    fp32_products: str = "ieee"

    @property
    def geometry(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """``(stride, padding, dilation)``, in ``torch.nn.grad``'s argument order."""
        return self.stride, self.padding, self.dilation

    def output_size(self, size: tuple[int, int], kernel: tuple[int, int]) -> tuple[int, int]:
        """``(Ho, Wo)`` of an ``(H, W)`` input and a ``(kh, kw)`` filter."""
        return tuple(
            (n + 2 * p - d * (k - 1) - 1) // s + 1
            for n, k, s, p, d in zip(size, kernel, *self.geometry, strict=True)
        )


def _implicit_gemm():
    """The Triton kernels, imported on first use: CPU-only PyTorch builds have no Triton."""
    from metazoo.engine import implicit_gemm

    return implicit_gemm


def _leading(t: Tensor, dim: int | None, size: int) -> Tensor:
    """``t`` with its vmapped dimension first (expanded to ``size`` when it has none)."""
    return t.expand(size, *t.shape) if dim is None else t.movedim(dim, 0)


def _convolution(x: Tensor, w: Tensor, settings: Settings) -> Tensor:
    stride, padding, dilation = settings.geometry
    return torch.ops.aten.convolution.default(
        x, w, None, stride, padding, dilation, False, (0, 0), 1
    )


def _input_gradient(grad_y: Tensor, w: Tensor, x_shape, settings: Settings) -> Tensor:
    return torch.nn.grad.conv2d_input(x_shape, w, grad_y, *settings.geometry)


def task_weight_gradient(x: Tensor, grad_y: Tensor, w_shape, settings: Settings) -> Tensor:
    """Each task's ``conv2d`` weight gradient as one batched matrix product.

    Args:
        x: ``(T, N, Cin, H, W)`` each task's inputs.
        grad_y: ``(T, N, Cout, Ho, Wo)`` the gradient of each task's outputs.
        w_shape: ``(Cout, Cin, kh, kw)``.
        settings: the convolution's :class:`Settings`.

    Returns:
        ``(T, Cout, Cin, kh, kw)``.
    """
    stride, padding, dilation = settings.geometry
    tasks, n = x.shape[:2]
    out_channels, in_channels, kh, kw = w_shape
    columns = F.unfold(x.flatten(0, 1), (kh, kw), dilation, padding, stride)  # (T*N, Cin*k*k, L)
    columns = columns.unflatten(0, (tasks, n))
    grad = grad_y.reshape(tasks, n, out_channels, -1)  # (T, N, Cout, L)
    return torch.einsum("tnol,tnkl->tok", grad, columns).reshape(tasks, *w_shape)


def task_convolution(x: Tensor, w: Tensor, settings: Settings) -> Tensor:
    """Each task's ``conv2d`` as one batched matrix product over im2col columns.

    Args:
        x: ``(T, N, Cin, H, W)`` each task's inputs.
        w: ``(T, Cout, Cin, kh, kw)`` each task's weights.
        settings: the convolution's :class:`Settings`.

    Returns:
        ``(T, N, Cout, Ho, Wo)``, channels-last in memory.
    """
    stride, padding, dilation = settings.geometry
    tasks, n = x.shape[:2]
    kernel = tuple(w.shape[-2:])
    columns = F.unfold(x.flatten(0, 1), kernel, dilation, padding, stride)  # (T*N, K, L)
    out = torch.einsum("tok,tnkl->tnlo", w.flatten(2), columns.unflatten(0, (tasks, n)))
    out_size = settings.output_size(tuple(x.shape[-2:]), kernel)
    return out.unflatten(2, out_size).permute(0, 1, 4, 2, 3)


def task_input_gradient(grad_y: Tensor, w: Tensor, x_shape, settings: Settings) -> Tensor:
    """Each task's ``conv2d`` input gradient as one batched matrix product, then col2im.

    Args:
        grad_y: ``(T, N, Cout, Ho, Wo)`` the gradient of each task's outputs.
        w: ``(T, Cout, Cin, kh, kw)`` each task's weights.
        x_shape: one task's input shape ``(N, Cin, H, W)``.
        settings: the convolution's :class:`Settings`.

    Returns:
        ``(T, N, Cin, H, W)``.
    """
    stride, padding, dilation = settings.geometry
    tasks, n = grad_y.shape[:2]
    columns = torch.einsum("tok,tnol->tnkl", w.flatten(2), grad_y.flatten(3))  # (T, N, K, L)
    size, kernel = tuple(x_shape[-2:]), tuple(w.shape[-2:])
    images = F.fold(columns.flatten(0, 1), size, kernel, dilation, padding, stride)
    return images.unflatten(0, (tasks, n))


def _grouped_convolution(x: Tensor, w: Tensor, settings: Settings) -> Tensor:
    return torch.func.vmap(_convolution, in_dims=(0, 0, None))(x, w, settings)


def _grouped_input_gradient(grad_y: Tensor, w: Tensor, x_shape, settings: Settings) -> Tensor:
    per_task = torch.func.vmap(_input_gradient, in_dims=(0, 0, None, None))
    return per_task(grad_y, w, x_shape, settings)


#: Each lowering's per-task operations but the Triton ones, by name; each takes its tensors (and
#: the shape it needs), then the settings.
_FORMS = {
    "grouped": {
        "convolution": _grouped_convolution,
        "input_gradient": _grouped_input_gradient,
        "weight_gradient": task_weight_gradient,
    },
    "matmul": {
        "convolution": task_convolution,
        "input_gradient": task_input_gradient,
        "weight_gradient": task_weight_gradient,
    },
}


def _per_task(operation: str, settings: Settings, *args):
    """Per-task ``operation`` (``convolution``, ``input_gradient``, ``weight_gradient``) of
    ``args`` as ``settings.lowering`` runs it."""
    if settings.lowering == "triton":
        kernel = getattr(_implicit_gemm(), operation)
        return kernel(*args, settings.geometry, settings.fp32_products)
    return _FORMS[settings.lowering][operation](*args, settings)


class _Op(torch.autograd.Function):
    """Each of the six functions saves its two tensor inputs; its last input is the settings."""

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.settings = inputs[-1]


def _family(per_task: bool) -> tuple[type[_Op], type[_Op], type[_Op]]:
    """``(convolution, input gradient, weight gradient)``: the per-task ones or the plain ones."""
    if per_task:
        return _TaskConv, _TaskInputGrad, _TaskWeightGrad
    return _Conv, _InputGrad, _WeightGrad


def _conv_backward(ctx, grad_y: Tensor, per_task: bool):
    _, input_grad, weight_grad = _family(per_task)
    (x, w), lead = ctx.saved_tensors, int(per_task)
    by_x = input_grad.apply(grad_y, w, tuple(x.shape[lead:]), ctx.settings)
    return by_x, weight_grad.apply(x, grad_y, tuple(w.shape[lead:]), ctx.settings), None


def _input_grad_backward(ctx, grad_grad_x: Tensor, per_task: bool):
    conv, _, weight_grad = _family(per_task)
    (grad_y, w), lead = ctx.saved_tensors, int(per_task)
    by_grad_y = conv.apply(grad_grad_x, w, ctx.settings)
    by_w = weight_grad.apply(grad_grad_x, grad_y, tuple(w.shape[lead:]), ctx.settings)
    return by_grad_y, by_w, None, None


def _weight_grad_backward(ctx, grad_grad_w: Tensor, per_task: bool):
    conv, input_grad, _ = _family(per_task)
    (x, grad_y), lead = ctx.saved_tensors, int(per_task)
    by_x = input_grad.apply(grad_y, grad_grad_w, tuple(x.shape[lead:]), ctx.settings)
    return by_x, conv.apply(x, grad_grad_w, ctx.settings), None, None


class _TaskConv(_Op):
    """Per-task ``conv2d``: x ``(T, N, Cin, H, W)``, w ``(T, Cout, Cin, kh, kw)``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, w: Tensor, settings: Settings) -> Tensor:
        return _per_task("convolution", settings, x, w)

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        return _conv_backward(ctx, grad_y, per_task=True)


class _TaskInputGrad(_Op):
    """Per-task input gradient of ``conv2d``: grad_y ``(T, N, Cout, ...)``, w ``(T, ...)``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad_y: Tensor, w: Tensor, x_shape, settings: Settings) -> Tensor:
        return _per_task("input_gradient", settings, grad_y, w, x_shape)

    @staticmethod
    def backward(ctx, grad_grad_x: Tensor):
        return _input_grad_backward(ctx, grad_grad_x, per_task=True)


class _TaskWeightGrad(_Op):
    """Per-task weight gradient of ``conv2d`` (:func:`task_weight_gradient`)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, grad_y: Tensor, w_shape, settings: Settings) -> Tensor:
        return _per_task("weight_gradient", settings, x, grad_y, w_shape)

    @staticmethod
    def backward(ctx, grad_grad_w: Tensor):
        return _weight_grad_backward(ctx, grad_grad_w, per_task=True)


class _Conv(_Op):
    """``conv2d(x, w)`` without bias, one task: x ``(N, Cin, H, W)``, w ``(Cout, Cin, kh, kw)``."""

    @staticmethod
    def forward(x: Tensor, w: Tensor, settings: Settings) -> Tensor:
        return _convolution(x, w, settings)

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        return _conv_backward(ctx, grad_y, per_task=False)

    @staticmethod
    def vmap(info, dims, x: Tensor, w: Tensor, settings: Settings):
        if dims[1] is None:  # shared weights: the tasks are more batch
            x = x.movedim(dims[0], 0)
            return _Conv.apply(x.flatten(0, 1), w, settings).unflatten(0, x.shape[:2]), 0
        x, w = _leading(x, dims[0], info.batch_size), _leading(w, dims[1], info.batch_size)
        return _TaskConv.apply(x, w, settings), 0


class _InputGrad(_Op):
    """The input gradient of ``conv2d``, one task."""

    @staticmethod
    def forward(grad_y: Tensor, w: Tensor, x_shape, settings: Settings) -> Tensor:
        return _input_gradient(grad_y, w, x_shape, settings)

    @staticmethod
    def backward(ctx, grad_grad_x: Tensor):
        return _input_grad_backward(ctx, grad_grad_x, per_task=False)

    @staticmethod
    def vmap(info, dims, grad_y: Tensor, w: Tensor, x_shape, settings: Settings):
        grad_y = _leading(grad_y, dims[0], info.batch_size)
        if dims[1] is None:
            folded = (grad_y.shape[0] * x_shape[0], *x_shape[1:])
            out = _InputGrad.apply(grad_y.flatten(0, 1), w, folded, settings)
            return out.unflatten(0, grad_y.shape[:2]), 0
        w = _leading(w, dims[1], info.batch_size)
        return _TaskInputGrad.apply(grad_y, w, x_shape, settings), 0


class _WeightGrad(_Op):
    """The weight gradient of ``conv2d``, one task."""

    @staticmethod
    def forward(x: Tensor, grad_y: Tensor, w_shape, settings: Settings) -> Tensor:
        return torch.nn.grad.conv2d_weight(x, w_shape, grad_y, *settings.geometry)

    @staticmethod
    def backward(ctx, grad_grad_w: Tensor):
        return _weight_grad_backward(ctx, grad_grad_w, per_task=False)

    @staticmethod
    def vmap(info, dims, x: Tensor, grad_y: Tensor, w_shape, settings: Settings):
        x = _leading(x, dims[0], info.batch_size)
        grad_y = _leading(grad_y, dims[1], info.batch_size)
        return _TaskWeightGrad.apply(x, grad_y, w_shape, settings), 0


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class _Conv2dArgs(NamedTuple):
    """``F.conv2d``'s arguments by name, defaults filled in (as ``BatchNormArgs`` for BatchNorm)."""

    input: Tensor
    weight: Tensor
    bias: Tensor | None = None
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] | str = 0
    dilation: int | tuple[int, int] = 1
    groups: int = 1


class _BatchedWeightGradients(TorchFunctionMode):
    def __init__(self, lowering: str, fp32_products: str):
        super().__init__()
        self.lowering, self.fp32_products = lowering, fp32_products

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.conv2d or func is torch.conv2d:
            a = _Conv2dArgs(*args, **(kwargs or {}))
            if a.groups == 1 and not isinstance(a.padding, str) and a.input.dim() == 4:
                geometry = (_pair(a.stride), _pair(a.padding), _pair(a.dilation))
                y = _Conv.apply(
                    a.input, a.weight, Settings(*geometry, self.lowering, self.fp32_products)
                )
                return y if a.bias is None else y + a.bias[:, None, None]
        return func(*args, **(kwargs or {}))


def batched_weight_gradients(
    lowering: str = "grouped", fp32_products: str = "ieee"
) -> TorchFunctionMode:
    """A context in which ``F.conv2d`` (ungrouped, 4-D input) computes per-task weight gradients
    as one batched operation when run under ``vmap`` over tasks, and the per-task convolutions
    and input gradients as ``lowering`` says (one of :data:`LOWERINGS`); ``fp32_products``
    (:data:`FP32_PRODUCTS`) is the ``triton`` lowering's way to multiply fp32 with TF32 off.

    Use it around the per-task function given to ``torch.func.vmap``; outside ``vmap`` it
    computes exactly ``F.conv2d`` (to every order of differentiation). Other convolutions
    (grouped, ``padding='same'``) are left to PyTorch.
    """
    check_lowering(lowering, fp32_products)
    return _BatchedWeightGradients(lowering, fp32_products)


def check_lowering(lowering: str | None, fp32_products: str = "ieee") -> None:
    """Refuse an unknown lowering or fp32 products, and fp32 products other than ``ieee``
    anywhere but the ``triton`` lowering (None: ``vmap``'s own convolutions)."""
    if lowering is not None and lowering not in LOWERINGS:
        raise ValueError(f"unknown lowering {lowering!r}; choose one of {LOWERINGS}")
    if fp32_products not in FP32_PRODUCTS:
        raise ValueError(f"unknown fp32_products {fp32_products!r}; choose one of {FP32_PRODUCTS}")
    if fp32_products != "ieee" and lowering != "triton":
        raise ValueError(
            f"fp32_products={fp32_products!r} is a choice of the 'triton' lowering "
            "(triton_convolutions=True)"
        )
