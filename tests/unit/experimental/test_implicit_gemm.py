"""The implicit-GEMM Triton kernels (metazoo.experimental.implicit_gemm), run by Triton's
interpreter on the CPU in float64: each task's conv2d, input gradient and weight gradient, in every
layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import metazoo.experimental.lowerings  # noqa: F401  (registers the 'triton' lowering)
from metazoo.experimental.taskconv import FP32_PRODUCTS, batched_weight_gradients

# Triton ships for Linux only: elsewhere this module is skipped as a whole (the dev extra installs
# it on Linux, where CI runs it)
tl = pytest.importorskip("triton.language", reason="Triton ships for Linux only")
implicit_gemm = pytest.importorskip("metazoo.experimental.implicit_gemm")

GEOMETRIES = [
    ((1, 1), (1, 1), (1, 1)),
    ((2, 2), (0, 0), (1, 1)),
    ((1, 2), (2, 1), (2, 2)),
]


def _channels_last(t):
    """``(T, N, C, H, W)`` with channels innermost in memory, as ``channels_last`` images."""
    return t.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


LAYOUTS = {
    "contiguous": lambda t: t,
    "channels-last": _channels_last,
    "task-expanded": lambda t: t[:1].expand_as(t),  # a task axis vmap added with stride 0
}


def _inputs(channels: int = 3, out_channels: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 2, channels, 7, 7, generator=gen, dtype=torch.float64)
    w = torch.randn(3, out_channels, channels, 3, 3, generator=gen, dtype=torch.float64)
    return x, w


#: ``(Cin, Cout)``: reductions flattened over (channel, tap) pairs, and taps outer with a partial
#: last channel block (``implicit_gemm.TAPS_OUTER_FROM`` channels and more).
CHANNELS = {"few-channels": (3, 4), "taps-outer": (17, 18)}


def _per_task(x, w, grad_y, geometry):
    """Each task through PyTorch's own conv2d and its gradients, one task at a time."""
    stride, padding, dilation = geometry
    y = torch.stack([F.conv2d(a, b, None, stride, padding, dilation) for a, b in zip(x, w)])
    by_x = [torch.nn.grad.conv2d_input(x.shape[1:], b, g, *geometry) for b, g in zip(w, grad_y)]
    by_w = [torch.nn.grad.conv2d_weight(a, w.shape[1:], g, *geometry) for a, g in zip(x, grad_y)]
    return y, torch.stack(by_x), torch.stack(by_w)


#: taps-outer cases the fast tier runs: each geometry and each layout once (the interpreter takes
#: tens of seconds per taps-outer case); the other six are ``slow``, run in CI.
FAST_TAPS_OUTER = {(0, "channels-last"), (1, "task-expanded"), (2, "contiguous")}
KERNEL_CASES = [
    pytest.param(
        geometry,
        layout,
        channels,
        id=f"geometry{g}-{layout}-{channels}",
        marks=[]
        if channels == "few-channels" or (g, layout) in FAST_TAPS_OUTER
        else pytest.mark.slow,
    )
    for channels in CHANNELS
    for layout in LAYOUTS
    for g, geometry in enumerate(GEOMETRIES)
]


@pytest.mark.parametrize("geometry,layout,channels", KERNEL_CASES)
def test_each_kernel_is_every_tasks_conv2d_operation(geometry, layout, channels):
    x, w = _inputs(*CHANNELS[channels])
    assert (x.shape[2] >= implicit_gemm.TAPS_OUTER_FROM) == (channels == "taps-outer")
    x, w = LAYOUTS[layout](x), LAYOUTS[layout](w)
    y = implicit_gemm.convolution(x, w, geometry)
    grad_y = LAYOUTS[layout](torch.randn_like(y))
    expected_y, expected_x, expected_w = _per_task(x, w, grad_y, geometry)
    torch.testing.assert_close(y, expected_y, rtol=1e-12, atol=1e-12)
    got_x = implicit_gemm.input_gradient(grad_y, w, x.shape[1:], geometry)
    torch.testing.assert_close(got_x, expected_x, rtol=1e-12, atol=1e-12)
    got_w = implicit_gemm.weight_gradient(x, grad_y, w.shape[1:], geometry)
    torch.testing.assert_close(got_w, expected_w, rtol=1e-12, atol=1e-12)


def test_outputs_keep_the_inputs_layout():
    x, w = _inputs()
    geometry = GEOMETRIES[0]
    assert implicit_gemm.convolution(x, w, geometry).is_contiguous()
    y = implicit_gemm.convolution(_channels_last(x), w, geometry)
    assert y.stride(2) == 1  # summed channel-fastest there: equal to rounding, not bit for bit
    torch.testing.assert_close(y, implicit_gemm.convolution(x, w, geometry), rtol=1e-12, atol=1e-12)
    assert implicit_gemm.input_gradient(y, w, x.shape[1:], geometry).stride(2) == 1


@pytest.mark.parametrize("blocks", [16, 32])
def test_tiles_larger_than_the_problem_and_a_single_input_channel(monkeypatch, blocks):
    """Masks at every edge: a first layer (one input channel, nine taps per output), tiles that
    overhang every dimension, and the weight gradient's reduction split in parts."""
    tile = {"BLOCK_M": blocks, "BLOCK_N": blocks, "BLOCK_K": blocks}
    monkeypatch.setattr(implicit_gemm, "INTERPRETER_BLOCKS", tile)
    x, w = _inputs(channels=1, seed=3)
    geometry = GEOMETRIES[0]
    grad_y = torch.randn(3, 2, 4, 7, 7, dtype=torch.float64)
    expected = _per_task(x, w, grad_y, geometry)
    got = (
        implicit_gemm.convolution(x, w, geometry),
        implicit_gemm.input_gradient(grad_y, w, x.shape[1:], geometry),
        implicit_gemm.weight_gradient(x, grad_y, w.shape[1:], geometry),
    )
    for value, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(value, reference, rtol=1e-12, atol=1e-12)
    assert implicit_gemm._splits(3, 1, 2 * 7 * 7, x.device) == 2  # the reduction was split


def test_the_operators_pass_torch_library_checks():
    """Fake (meta) implementations agree with the kernels in shape, strides and dtype, so
    make_fx and torch.compile see what runs."""
    x, w = _inputs()
    geometry = [1, 1, 1, 1, 1, 1]
    grad_y = torch.randn(3, 2, 4, 7, 7, dtype=torch.float64)
    checks = ("test_schema", "test_faketensor")
    ops = torch.ops.metazoo
    torch.library.opcheck(ops.task_convolution, (x, w, geometry, "ieee"), test_utils=checks)
    torch.library.opcheck(
        ops.task_input_gradient, (grad_y, w, list(x.shape[1:]), geometry, "ieee"), test_utils=checks
    )
    torch.library.opcheck(
        ops.task_weight_gradient,
        (x, grad_y, list(w.shape[1:]), geometry, "ieee"),
        test_utils=checks,
    )


def test_fp32_products_are_tf32_where_cudnn_allows_it_else_as_asked():
    x, _ = _inputs()
    before = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True
        assert implicit_gemm._products(x.float(), "ieee") == "tf32"
        assert implicit_gemm._products(x, "tf32x3") == "ieee"  # float64: exact products always
        torch.backends.cudnn.allow_tf32 = False
        assert implicit_gemm._products(x.float(), "ieee") == "ieee"
        assert implicit_gemm._products(x.float(), "tf32x3") == "tf32x3"
    finally:
        torch.backends.cudnn.allow_tf32 = before
    assert implicit_gemm._numerics(torch.float32, "tf32x3") == {
        "ACC": tl.float32,
        "PRECISION": "tf32x3",
    }
    assert implicit_gemm._numerics(torch.float64, "ieee")["ACC"] == tl.float64


def test_unknown_fp32_products_are_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown fp32_products 'tf32x9'; choose one of \('ieee'"):
        batched_weight_gradients("triton", "tf32x9")
    with pytest.raises(ValueError, match="a choice of the 'triton' lowering"):
        batched_weight_gradients("matmul", "tf32x3")
    x, w = _inputs()  # float64 is multiplied exactly, but a wrong name is refused all the same
    with pytest.raises(ValueError, match=r"^unknown fp32_products 'tf32x9'; choose one of"):
        implicit_gemm.convolution(x, w, GEOMETRIES[0], "tf32x9")


@pytest.mark.gpu
@pytest.mark.parametrize("products", FP32_PRODUCTS)
@pytest.mark.parametrize("layout", ["contiguous", "channels-last"])
@pytest.mark.parametrize("channels", CHANNELS)
def test_on_cuda_the_autotuned_kernels_agree_with_cudnn(channels, layout, products):
    """The compiled kernels (autotuned tiles), fp32 with TF32 off, against cuDNN task by task."""
    from metazoo.engine.precision import tf32

    x, w = (LAYOUTS[layout](t.float().cuda()) for t in _inputs(*CHANNELS[channels]))
    geometry = GEOMETRIES[0]
    with tf32(False):
        y = implicit_gemm.convolution(x, w, geometry, products)
        grad_y = torch.randn_like(y)
        expected = _per_task(x, w, grad_y, geometry)
        got = (
            y,
            implicit_gemm.input_gradient(grad_y, w, x.shape[1:], geometry, products),
            implicit_gemm.weight_gradient(x, grad_y, w.shape[1:], geometry, products),
        )
    for value, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(value, reference, rtol=1e-4, atol=1e-4)


@pytest.mark.lab  # runs lab/gpu/triton_kernels.py
def test_the_kernels_compile_for_an_h100_without_spilling_in_the_hot_loop():
    """Ahead-of-time compilation for sm_90 with Triton's own ptxas: no GPU needed."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "lab" / "gpu" / "triton_kernels.py"
    done = subprocess.run(
        [sys.executable, str(script), "--dtypes", "fp32"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("| ") and "|---" not in line
    ]
    assert len(rows) == 1 + 3 * 2 * len(implicit_gemm._configs())  # header, kernels x paths x tiles
