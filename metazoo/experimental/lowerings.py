"""Per-task convolution lowerings not yet proven on a GPU: ``matmul`` and ``triton``.

Importing this module registers two lowerings with
:func:`metazoo.experimental.taskconv.register_lowering`, so that
``batched_weight_gradients("matmul")`` or ``("triton")`` (and the options that lead there) work:

* ``matmul``: each task's convolution and input gradient as batched matrix products over im2col
  columns (col2im for the input gradient), so no grouped convolution is left; the weight
  gradients are the engine's batched product, as in ``grouped``;
* ``triton``: all three per-task operations as implicit-GEMM Triton kernels
  (:mod:`metazoo.experimental.implicit_gemm`; CUDA, or Triton's interpreter on CPU tensors for
  tests), with no im2col buffer either. Its fp32 products with TF32 off are ``ieee`` or
  ``tf32x3`` (:data:`metazoo.experimental.taskconv.FP32_PRODUCTS`). Triton comes with the ``kernels``
  extra (``pip install 'metazoo[kernels]'``, Linux) and is imported only when a kernel first runs,
  so this module (and ``matmul``) work without it.

Both are exact: second-order MAML through them equals plain ``vmap`` in float64 (tests in
``tests/unit/experimental``). Neither has been timed on a GPU. ``grouped`` is the engine's
default because it was measured faster than plain ``vmap`` on an H200.

When a lowering here rejoins the default path: only when a committed GPU result (under
``benchmarks/results/``) shows it beating cuDNN, i.e. the ``grouped`` lowering, at fp32
exactness (its fp32 meta-gradient inside the same gate against float64). It then moves into
:mod:`metazoo.experimental.taskconv`. ``lab/speed/conv_lowering.py`` times each lowering per layer;
``lab/speed`` times whole steps.
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F
from torch import Tensor

from metazoo.experimental.taskconv import (
    FP32_PRODUCTS,
    Lowering,
    Settings,
    register_lowering,
    task_weight_gradient,
)

__all__ = ["task_convolution", "task_input_gradient", "MATMUL", "TRITON"]


def task_convolution(x: Tensor, w: Tensor, settings: Settings) -> Tensor:
    """Each task's ``conv2d`` as one batched matrix product over im2col columns.

    Args:
        x: ``(T, N, Cin, H, W)`` each task's inputs.
        w: ``(T, Cout, Cin, kh, kw)`` each task's weights.
        settings: the convolution's :class:`~metazoo.experimental.taskconv.Settings`.

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
        settings: the convolution's :class:`~metazoo.experimental.taskconv.Settings`.

    Returns:
        ``(T, N, Cin, H, W)``.
    """
    stride, padding, dilation = settings.geometry
    tasks, n = grad_y.shape[:2]
    columns = torch.einsum("tok,tnol->tnkl", w.flatten(2), grad_y.flatten(3))  # (T, N, K, L)
    size, kernel = tuple(x_shape[-2:]), tuple(w.shape[-2:])
    images = F.fold(columns.flatten(0, 1), size, kernel, dilation, padding, stride)
    return images.unflatten(0, (tasks, n))


def _kernels():
    """The Triton kernels' module, imported when a kernel first runs (it needs triton)."""
    try:
        implicit_gemm = importlib.import_module("metazoo.experimental.implicit_gemm")
    except ImportError as error:
        raise ImportError(
            "the 'triton' lowering needs the triton package: `pip install 'metazoo[kernels]'` "
            "(Linux), or use the 'grouped' lowering"
        ) from error
    return implicit_gemm


def _triton_convolution(x: Tensor, w: Tensor, settings: Settings) -> Tensor:
    return _kernels().convolution(x, w, settings.geometry, settings.fp32_products)


def _triton_input_gradient(grad_y: Tensor, w: Tensor, x_shape, settings: Settings) -> Tensor:
    geometry, products = settings.geometry, settings.fp32_products
    return _kernels().input_gradient(grad_y, w, x_shape, geometry, products)


def _triton_weight_gradient(x: Tensor, grad_y: Tensor, w_shape, settings: Settings) -> Tensor:
    geometry, products = settings.geometry, settings.fp32_products
    return _kernels().weight_gradient(x, grad_y, w_shape, geometry, products)


#: im2col/col2im batched products; the weight gradients as in ``grouped``.
MATMUL = Lowering(task_convolution, task_input_gradient, task_weight_gradient)
#: implicit-GEMM Triton kernels for all three operations.
TRITON = Lowering(
    _triton_convolution, _triton_input_gradient, _triton_weight_gradient, FP32_PRODUCTS
)

register_lowering("matmul", MATMUL)
register_lowering("triton", TRITON)
