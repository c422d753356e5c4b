"""Per-task weight gradients of convolutions as one batched matrix product over tasks.

After one inner step every task has its own weights, so a vectorized MAML step needs, for every
convolution, each task's weight gradient (in the inner loop and in the query backward). ``vmap``
lowers those to grouped convolutions (groups = tasks), and cuDNN runs a grouped weight gradient
group by group with layout copies between: on an H200 the weight gradients were the largest
single share of a compiled meta-training step (``benchmarks/results/gpu-logs``). Here a task's
weight gradient is the product of the output gradient with the unfolded input (im2col), so all T
of them are one ``bmm`` with T x (Cout x Cin*k*k) outputs and a reduction over the task's pixels.

Under :func:`batched_weight_gradients` a model's ``F.conv2d`` calls go through ``autograd.Function``
s whose ``vmap`` rules send the per-task convolution, input gradient and weight gradient to a
*lowering* (:class:`Lowering`). The one built in, ``grouped``, keeps ``vmap``'s own grouped
convolutions and input gradients and routes every per-task weight gradient to the batched
product; it was measured faster than plain ``vmap`` on an H200 (``docs/speed.md``). Other
lowerings are registered with :func:`register_lowering`: ``metazoo.experimental.lowerings`` adds
``matmul`` (im2col/col2im products) and ``triton`` (implicit-GEMM kernels), not yet shown faster
on a GPU. Each function's backward is written with the others, so the set is closed under
differentiation: second-order MAML through any lowering equals plain ``vmap`` to rounding (tested
in float64).

``torch.compile`` cannot trace ``autograd.Function`` s with custom ``vmap`` rules inside
``torch.func`` transforms, so :func:`metazoo.engine.compiled.compiled_meta_gradient` with a
lowering first traces the whole program to ATen operations (and any custom operators a lowering
calls) with ``make_fx`` and compiles that graph (:func:`traced_then_compiled`).

Experimental (issue 25): the ``F.conv2d`` interception (a ``TorchFunctionMode``) and the
``make_fx`` path join the default engine when a committed GPU result shows them beating the
plain compiled step (``FastOptions(compile=True)`` without a lowering).
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from metazoo.engine.compiled import Lowerings, register_lowerings

__all__ = [
    "batched_weight_gradients",
    "task_weight_gradient",
    "Settings",
    "Lowering",
    "register_lowering",
    "get_lowering",
    "LOWERINGS",
    "FP32_PRODUCTS",
    "check_lowering",
    "traced_then_compiled",
]

#: The ways a lowering may multiply fp32 operands when TF32 is off: ``ieee`` (plain fp32, what
#: every lowering does) or ``tf32x3`` (three TF32 tensor-core products of each operand's high and
#: low parts; errors of the order of fp32 rounding, a separately reported mode). Which of them a
#: lowering offers is its :attr:`Lowering.fp32_products`.
FP32_PRODUCTS = ("ieee", "tf32x3")

#: Lowerings that an optional module registers, and what a user does to get each.
_OPTIONAL = {
    "matmul": "`import metazoo.experimental.lowerings` first",
    "triton": (
        "`pip install 'metazoo[kernels]'` (Triton, Linux) and "
        "`import metazoo.experimental.lowerings` first"
    ),
}


class Settings(NamedTuple):
    """A convolution's geometry, and how its per-task forms run."""

    #: ``(sh, sw)``.
    stride: tuple[int, int]
    #: ``(ph, pw)``.
    padding: tuple[int, int]
    #: ``(dh, dw)``.
    dilation: tuple[int, int]
    #: how the per-task operations run (a name of :data:`LOWERINGS`).
    lowering: str = "grouped"
    #: how the lowering multiplies fp32 with TF32 off (:data:`FP32_PRODUCTS`).
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


class Lowering(NamedTuple):
    """How the three per-task operations of a convolution run, for ``T`` tasks at once.

    Each callable takes its tensors (task first), the shape it needs, then the :class:`Settings`:

    * ``convolution(x, w, settings)``: x ``(T, N, Cin, H, W)``, w ``(T, Cout, Cin, kh, kw)``
      -> ``(T, N, Cout, Ho, Wo)``;
    * ``input_gradient(grad_y, w, x_shape, settings)``: grad_y ``(T, N, Cout, Ho, Wo)``, x_shape
      one task's ``(N, Cin, H, W)`` -> ``(T, N, Cin, H, W)``;
    * ``weight_gradient(x, grad_y, w_shape, settings)``: w_shape ``(Cout, Cin, kh, kw)``
      -> ``(T, Cout, Cin, kh, kw)``.

    They need not be differentiable: :func:`batched_weight_gradients` writes each one's
    derivatives with the other two.
    """

    convolution: Callable[..., Tensor]
    input_gradient: Callable[..., Tensor]
    weight_gradient: Callable[..., Tensor]
    #: the :data:`FP32_PRODUCTS` it offers.
    fp32_products: tuple[str, ...] = ("ieee",)


_REGISTRY: dict[str, Lowering] = {}
#: The registered lowerings by name (a read-only view; :func:`register_lowering` adds to it).
LOWERINGS = MappingProxyType(_REGISTRY)


def register_lowering(name: str, lowering: Lowering) -> None:
    """Make ``lowering`` available as ``batched_weight_gradients(name)``.

    Raises:
        ValueError: ``name`` is taken by another lowering, or ``lowering`` offers fp32 products
            outside :data:`FP32_PRODUCTS`.
    """
    unknown = set(lowering.fp32_products) - set(FP32_PRODUCTS)
    if unknown or "ieee" not in lowering.fp32_products:
        raise ValueError(
            f"lowering {name!r} offers fp32_products {lowering.fp32_products}; they must include "
            f"'ieee' and come from {FP32_PRODUCTS}"
        )
    if _REGISTRY.get(name, lowering) != lowering:
        raise ValueError(
            f"a lowering named {name!r} is already registered ({_REGISTRY[name].convolution}); "
            "register yours under another name"
        )
    _REGISTRY[name] = lowering


def get_lowering(name: str) -> Lowering:
    """The lowering registered as ``name``.

    Raises:
        ValueError: none is; the message says how to get an optional one.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _OPTIONAL:
        raise ValueError(f"the {name!r} lowering is experimental: {_OPTIONAL[name]}")
    raise ValueError(f"unknown lowering {name!r}; choose one of {tuple(_REGISTRY)}")


def check_lowering(lowering: str | None, fp32_products: str = "ieee") -> None:
    """Refuse an unknown or unregistered lowering, unknown fp32 products, and fp32 products the
    lowering does not offer (None: ``vmap``'s own convolutions, plain fp32 products)."""
    if fp32_products not in FP32_PRODUCTS:
        raise ValueError(f"unknown fp32_products {fp32_products!r}; choose one of {FP32_PRODUCTS}")
    offered = ("ieee",) if lowering is None else get_lowering(lowering).fp32_products
    if fp32_products in offered:
        return
    offering = " or ".join(
        repr(n) for n, e in _REGISTRY.items() if fp32_products in e.fp32_products
    )
    where = (
        f"the {offering} lowering"
        if offering
        else f"the experimental 'triton' lowering: {_OPTIONAL['triton']}"
    )
    raise ValueError(f"fp32_products={fp32_products!r} is a choice of {where}")


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


def _grouped_convolution(x: Tensor, w: Tensor, settings: Settings) -> Tensor:
    return torch.func.vmap(_convolution, in_dims=(0, 0, None))(x, w, settings)


def _grouped_input_gradient(grad_y: Tensor, w: Tensor, x_shape, settings: Settings) -> Tensor:
    per_task = torch.func.vmap(_input_gradient, in_dims=(0, 0, None, None))
    return per_task(grad_y, w, x_shape, settings)


register_lowering(
    "grouped", Lowering(_grouped_convolution, _grouped_input_gradient, task_weight_gradient)
)


def _per_task(operation: str, settings: Settings, *args) -> Tensor:
    """Per-task ``operation`` (a field of :class:`Lowering`) of ``args`` as ``settings.lowering``
    runs it."""
    return getattr(get_lowering(settings.lowering), operation)(*args, settings)


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
    """A context in which ``F.conv2d`` (ungrouped, 4-D input) run under ``vmap`` over tasks
    computes its per-task operations as the registered lowering ``lowering`` says (the built-in
    ``grouped``: each weight gradient of all tasks as one batched product).

    Use it around the per-task function given to ``torch.func.vmap``; outside ``vmap`` it
    computes exactly ``F.conv2d`` (to every order of differentiation). Other convolutions
    (grouped, ``padding='same'``) are left to PyTorch.

    Args:
        lowering: a name of :data:`LOWERINGS`.
        fp32_products: how the lowering multiplies fp32 with TF32 off (:data:`FP32_PRODUCTS`;
            one its :attr:`Lowering.fp32_products` offers).

    Raises:
        ValueError: see :func:`check_lowering`.
    """
    check_lowering(lowering, fp32_products)
    return _BatchedWeightGradients(lowering, fp32_products)


def traced_then_compiled(function: Callable) -> Callable:
    """``function`` traced to ATen operations (``make_fx``, fake tensors) per input shape, then
    compiled: ``torch.compile`` cannot trace the ``vmap`` rules of ``autograd.Function`` s."""
    from torch.fx.experimental.proxy_tensor import make_fx

    compiled: dict[tuple, Callable] = {}

    def call(tensors: dict, buffers: dict, step_weights, *batch: Tensor):
        leaves = [*tensors.values(), *buffers.values(), *batch]
        if step_weights is not None:
            leaves.append(step_weights)
        key = tuple((t.shape, t.stride(), t.dtype, t.device) for t in leaves)
        if key not in compiled:
            graph = make_fx(function, tracing_mode="fake")(tensors, buffers, step_weights, *batch)
            compiled[key] = torch.compile(graph, dynamic=False)
        return compiled[key](tensors, buffers, step_weights, *batch)

    return call


register_lowerings(Lowerings(check_lowering, batched_weight_gradients, traced_then_compiled))
