"""Per-task convolutions as implicit-GEMM Triton kernels: one launch for all tasks, no im2col.

After one inner step of vectorized MAML every task has its own convolution weights. ``vmap``
lowers such convolutions to grouped convolutions, which cuDNN runs group by group (most of a
compiled step's time on an H200, ``benchmarks/results/gpu-logs``); im2col plus ``bmm`` (the
``matmul`` lowering, :mod:`metazoo.experimental.lowerings`) writes and reads a ``Cin*kh*kw``-times
larger column buffer.
Here each of the three per-task operations is one matrix product whose operand tiles are gathered
straight from the images, with the task as the grid's third axis:

=====================  ==========================  ==============  ==========================
operation              rows                        columns         reduction
=====================  ==========================  ==============  ==========================
convolution            output pixels ``(n, p, q)``  ``Cout``        ``(Cin, i, j)``
input gradient         input pixels ``(n, h, w)``   ``Cin``         ``(Cout, i, j)``
weight gradient        ``Cout``                    ``(Cin, i, j)``  output pixels, split
=====================  ==========================  ==============  ==========================

Shapes: ``x`` ``(T, N, Cin, H, W)``, ``w`` ``(T, Cout, Cin, kh, kw)``, ``y`` ``(T, N, Cout, Ho,
Wo)``, any strides (channels-last, or a task axis expanded with stride 0); outputs keep the
input's layout. Accumulation is in the input's precision or fp32 (bf16); fp32 products use
TF32 only when ``torch.backends.cudnn.allow_tf32`` is set, as cuDNN's convolutions do, and are
otherwise plain fp32 or, asked for, 3xTF32 (:data:`metazoo.experimental.taskconv.FP32_PRODUCTS`). On
CUDA the tile sizes are autotuned per shape; CPU tensors run Triton's interpreter (exact, slow:
for tests; checked with Triton 3.8, whose interpreter runs kernels without ``TRITON_INTERPRET``;
3.6's fails on their loops, while its compiler builds them for sm_90).
The three are registered as ``torch.library`` operators so ``make_fx`` and ``torch.compile``
treat them as opaque calls; derivatives come from :mod:`metazoo.experimental.taskconv`, which writes
each operation's backward with the other two (the ``triton`` lowering of
:mod:`metazoo.experimental.lowerings` calls the functions here). The kernels themselves are in
:mod:`metazoo.experimental.implicit_gemm_kernels`. Experimental: see the lowerings module for
what would bring them onto the default path.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.runtime.interpreter import InterpretedFunction

from metazoo.experimental.implicit_gemm_kernels import (
    convolution_kernel,
    input_gradient_kernel,
    weight_gradient_kernel,
)
from metazoo.experimental.taskconv import FP32_PRODUCTS, Settings

__all__ = ["convolution", "input_gradient", "weight_gradient"]

#: ``((sh, sw), (ph, pw), (dh, dw))``, as :attr:`metazoo.experimental.taskconv.Settings.geometry`.
Geometry = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def _configs() -> list[triton.Config]:
    """Tile sizes tried per shape on CUDA: fp32 products without TF32 run on the FMA units and
    hold their operands in registers, so these are tiles that compile for sm_90 without spilling
    in the hot loop (``lab/gpu/triton_kernels.py`` checks, without a GPU)."""
    tiles = ((64, 64, 16, 8), (64, 64, 32, 8), (32, 64, 32, 4), (128, 64, 32, 8))
    return [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=warps, num_stages=3)
        for m, n, k, warps in tiles
    ]


def _quick_bench(kernel_call, quantiles):
    """Autotuning's timer, shortened (Triton's default spends 125 ms per tile and shape; a
    meta-training step has a few dozen shapes, tuned once per process and cached on disk)."""
    from triton.testing import do_bench

    return do_bench(kernel_call, warmup=5, rep=20, quantiles=quantiles)


#: What a tuned tile is remembered by: the shape, the products' precision, the reduction's order
#: and the memory layout (a channel stride) of the operand gathered along the reduction.
_SHAPE = ["N", "C", "H", "W", "COUT", "HO", "WO", "PRECISION", "TAPS_OUTER"]
_TUNING_KEYS = {
    convolution_kernel: [*_SHAPE, "xs_c"],
    input_gradient_kernel: [*_SHAPE, "gys_o"],
    weight_gradient_kernel: [*_SHAPE, "xs_c", "SPLIT"],
}
_TUNED = {
    kernel: triton.autotune(_configs(), key=keys, do_bench=_quick_bench, cache_results=True)(kernel)
    for kernel, keys in _TUNING_KEYS.items()
}
_INTERPRETED = {kernel: InterpretedFunction(kernel.fn) for kernel in _TUNING_KEYS}
#: Tile sizes of the interpreter (CPU tensors): the smallest ``tl.dot`` takes.
INTERPRETER_BLOCKS = {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16}


def _launch(kernel, grid, *args, device: torch.device, **constants) -> None:
    """Run ``kernel`` over ``grid(tiles)``: autotuned on CUDA, interpreted on a CPU."""
    if device.type == "cuda":
        _TUNED[kernel][grid](*args, **constants)
    else:
        blocks = INTERPRETER_BLOCKS
        _INTERPRETED[kernel][grid(blocks)](*args, **constants, **blocks)


def _numerics(dtype: torch.dtype, products: str) -> dict:
    accumulator = tl.float64 if dtype == torch.float64 else tl.float32
    return {"ACC": accumulator, "PRECISION": products}


def _channels_last(t: Tensor) -> bool:
    """Whether ``(T, N, C, H, W)`` ``t`` has channels innermost in memory."""
    return t.stride(2) == 1 and t.shape[3] * t.shape[4] > 1


#: A reduction runs taps outer (channel blocks per filter tap) from this many channels on; below
#: it, (channel, tap) pairs are flattened into one reduction (the smallest ``BLOCK_K``).
TAPS_OUTER_FROM = 16


def _empty(like: Tensor, shape: tuple[int, ...]) -> Tensor:
    """An empty ``(T, N, C, H, W)`` tensor with channels innermost when ``like``'s are."""
    if not _channels_last(like):
        return like.new_empty(shape)
    t, n, c, h, w = shape
    return like.new_empty((t, n, h, w, c)).permute(0, 1, 4, 2, 3)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@torch.library.custom_op("metazoo::task_convolution", mutates_args=())
def _convolution_op(x: Tensor, w: Tensor, geometry: list[int], products: str) -> Tensor:
    y = _convolution_fake(x, w, geometry, products)
    tasks, n, c, h, width = x.shape
    o, _, kh, kw = w.shape[1:]
    ho, wo = y.shape[-2:]
    grid = lambda b: (_cdiv(n * ho * wo, b["BLOCK_M"]), _cdiv(o, b["BLOCK_N"]), tasks)  # noqa: E731
    _launch(
        convolution_kernel, grid, x, w, y, n, c, h, width, o, ho, wo,
        *x.stride(), *w.stride(), *y.stride(), *geometry,
        KH=kh, KW=kw, TAPS_OUTER=c >= TAPS_OUTER_FROM, device=x.device,
        **_numerics(x.dtype, products),
    )  # fmt: skip
    return y


@_convolution_op.register_fake
def _convolution_fake(x: Tensor, w: Tensor, geometry: list[int], products: str) -> Tensor:
    sh, sw, ph, pw, dh, dw = geometry
    settings = Settings((sh, sw), (ph, pw), (dh, dw))
    ho, wo = settings.output_size(tuple(x.shape[-2:]), tuple(w.shape[-2:]))
    return _empty(x, (*x.shape[:2], w.shape[1], ho, wo))


@torch.library.custom_op("metazoo::task_input_gradient", mutates_args=())
def _input_gradient_op(
    grad_y: Tensor, w: Tensor, x_shape: list[int], geometry: list[int], products: str
) -> Tensor:
    grad_x = _input_gradient_fake(grad_y, w, x_shape, geometry, products)
    tasks, n, o, ho, wo = grad_y.shape
    _, c, h, width = x_shape
    kh, kw = w.shape[-2:]
    pixels = n * h * width
    grid = lambda b: (_cdiv(pixels, b["BLOCK_M"]), _cdiv(c, b["BLOCK_N"]), tasks)  # noqa: E731
    _launch(
        input_gradient_kernel, grid, grad_y, w, grad_x, n, c, h, width, o, ho, wo,
        *grad_y.stride(), *w.stride(), *grad_x.stride(), *geometry,
        KH=kh, KW=kw, TAPS_OUTER=o >= TAPS_OUTER_FROM, device=grad_y.device,
        **_numerics(grad_y.dtype, products),
    )  # fmt: skip
    return grad_x


@_input_gradient_op.register_fake
def _input_gradient_fake(
    grad_y: Tensor, w: Tensor, x_shape: list[int], geometry: list[int], products: str
) -> Tensor:
    return _empty(grad_y, (grad_y.shape[0], *x_shape))


def _splits(tasks: int, blocks: int, pixels: int, device: torch.device) -> int:
    """How many parts each task's reduction over output pixels is split into, so that the weight
    gradient fills the GPU when a task has few output tiles (the first layer)."""
    if device.type != "cuda":
        return 1 + (pixels > 64)  # the interpreter: exercise a split on all but tiny inputs
    processors = torch.cuda.get_device_properties(device).multi_processor_count
    # about four waves of programs: fewer leave a last wave mostly idle (288 programs on 132 SMs)
    return max(1, min(_cdiv(4 * processors, tasks * blocks), pixels // 512))


@torch.library.custom_op("metazoo::task_weight_gradient", mutates_args=())
def _weight_gradient_op(
    x: Tensor, grad_y: Tensor, w_shape: list[int], geometry: list[int], products: str
) -> Tensor:
    tasks, n, c, h, width = x.shape
    o, _, kh, kw = w_shape
    ho, wo = grad_y.shape[-2:]
    taps_outer = c >= TAPS_OUTER_FROM

    def column_blocks(block: int) -> int:
        return kh * kw * _cdiv(c, block) if taps_outer else _cdiv(c * kh * kw, block)

    split = _splits(tasks, _cdiv(o, 64) * column_blocks(64), n * ho * wo, x.device)
    accumulator = torch.float64 if x.dtype == torch.float64 else torch.float32
    parts = x.new_empty((tasks, split, o, c * kh * kw), dtype=accumulator)
    programs = tasks * split
    grid = lambda b: (_cdiv(o, b["BLOCK_M"]), column_blocks(b["BLOCK_N"]), programs)  # noqa: E731
    _launch(
        weight_gradient_kernel, grid, x, grad_y, parts, n, c, h, width, o, ho, wo,
        *x.stride(), *grad_y.stride(), *geometry, split,
        KH=kh, KW=kw, TAPS_OUTER=taps_outer, device=x.device,
        **_numerics(x.dtype, products),
    )  # fmt: skip
    summed = parts[:, 0] if split == 1 else parts.sum(1)  # no copy when nothing was split
    return summed.view(tasks, *w_shape).to(x.dtype)


@_weight_gradient_op.register_fake
def _weight_gradient_fake(
    x: Tensor, grad_y: Tensor, w_shape: list[int], geometry: list[int], products: str
) -> Tensor:
    return x.new_empty((x.shape[0], *w_shape))


def _flat(geometry: Geometry) -> list[int]:
    return [v for pair in geometry for v in pair]


def _products(t: Tensor, fp32_products: str) -> str:
    """How the kernels multiply ``t``'s dtype: fp32 with TF32 where cuDNN's flag allows it, else
    ``fp32_products``; other dtypes exactly."""
    if fp32_products not in FP32_PRODUCTS:
        raise ValueError(f"unknown fp32_products {fp32_products!r}; choose one of {FP32_PRODUCTS}")
    if t.dtype != torch.float32:
        return "ieee"
    return "tf32" if torch.backends.cudnn.allow_tf32 else fp32_products


def convolution(x: Tensor, w: Tensor, geometry: Geometry, fp32_products: str = "ieee") -> Tensor:
    """Each task's ``conv2d`` without bias: x ``(T, N, Cin, H, W)``, w ``(T, Cout, Cin, kh, kw)``
    -> ``(T, N, Cout, Ho, Wo)``, in ``x``'s layout. ``fp32_products``: one of
    :data:`metazoo.experimental.taskconv.FP32_PRODUCTS`."""
    return _convolution_op(x, w, _flat(geometry), _products(x, fp32_products))


def input_gradient(
    grad_y: Tensor, w: Tensor, x_shape, geometry: Geometry, fp32_products: str = "ieee"
) -> Tensor:
    """Each task's ``conv2d`` input gradient: grad_y ``(T, N, Cout, Ho, Wo)``, w ``(T, Cout, Cin,
    kh, kw)``, x_shape one task's input shape ``(N, Cin, H, W)`` -> ``(T, N, Cin, H, W)``."""
    products = _products(grad_y, fp32_products)
    return _input_gradient_op(grad_y, w, list(x_shape), _flat(geometry), products)


def weight_gradient(
    x: Tensor, grad_y: Tensor, w_shape, geometry: Geometry, fp32_products: str = "ieee"
) -> Tensor:
    """Each task's ``conv2d`` weight gradient: x ``(T, N, Cin, H, W)``, grad_y ``(T, N, Cout, Ho,
    Wo)``, w_shape ``(Cout, Cin, kh, kw)`` -> ``(T, Cout, Cin, kh, kw)``."""
    products = _products(x, fp32_products)
    return _weight_gradient_op(x, grad_y, list(w_shape), _flat(geometry), products)
