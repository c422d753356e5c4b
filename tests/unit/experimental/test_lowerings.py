"""The experimental lowerings (metazoo.experimental.lowerings): each task's conv2d and its
gradients through ``matmul`` and ``triton``, exact to second order in float64 against plain
``vmap``, and the operations a traced MAML program runs through each."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from metazoo.experimental.lowerings import task_convolution, task_input_gradient
from metazoo.experimental.taskconv import LOWERINGS, Settings, batched_weight_gradients

#: The experimental lowerings; the Triton one needs the triton package (``triton`` marker).
EXPERIMENTAL = ["matmul", pytest.param("triton", marks=pytest.mark.triton)]
SETTINGS = [
    {"stride": 1, "padding": 1, "dilation": 1},
    {"stride": 2, "padding": 0, "dilation": 1},
    {"stride": (1, 2), "padding": (2, 1), "dilation": 2},
]


def _inputs(tasks: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tasks, 2, 3, 7, 7, generator=gen, dtype=torch.float64)
    w = torch.randn(tasks, 4, 3, 3, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(tasks, 4, generator=gen, dtype=torch.float64)
    return x, w, b


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def test_importing_registers_both_and_needs_no_triton():
    assert {"grouped", "matmul", "triton"} <= set(LOWERINGS)
    assert LOWERINGS["triton"].fp32_products == ("ieee", "tf32x3")
    assert LOWERINGS["matmul"].fp32_products == ("ieee",)
    code = (
        "import sys, metazoo.experimental.lowerings;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'triton'"
        " or m.endswith('implicit_gemm')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_triton_lowering_without_triton_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "metazoo.experimental.implicit_gemm", None)  # as if absent
    x, w, _ = _inputs()
    with pytest.raises(ImportError, match=r"^the 'triton' lowering needs the triton package: "):
        LOWERINGS["triton"].convolution(x, w, Settings((1, 1), (1, 1), (1, 1), "triton"))


@pytest.mark.parametrize("settings", SETTINGS)
def test_batched_products_are_each_tasks_conv2d_and_its_input_gradient(settings):
    x, w, _ = _inputs()
    geometry = Settings(*(_pair(settings[k]) for k in ("stride", "padding", "dilation")))
    y = torch.stack([F.conv2d(a, b, **settings) for a, b in zip(x, w, strict=True)])
    torch.testing.assert_close(task_convolution(x, w, geometry), y, rtol=1e-12, atol=1e-12)
    grad_y = torch.randn_like(y)
    by_x = [
        torch.nn.grad.conv2d_input(x.shape[1:], b, g, **settings)
        for b, g in zip(w, grad_y, strict=True)
    ]
    got = task_input_gradient(grad_y, w, x.shape[1:], geometry)
    torch.testing.assert_close(got, torch.stack(by_x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lowering", EXPERIMENTAL)
@pytest.mark.parametrize("settings", SETTINGS)
def test_per_task_weights_under_vmap_match_one_conv2d_per_task(settings, lowering):
    x, w, b = _inputs()

    def conv(x, w, b):
        with batched_weight_gradients(lowering):
            return F.conv2d(x, w, b, **settings)

    got = torch.func.vmap(conv)(x, w, b)
    expected = torch.stack([F.conv2d(*task, **settings) for task in zip(x, w, b, strict=True)])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    shared = torch.func.vmap(conv, in_dims=(0, None, None))(x, w[0], b[0])
    torch.testing.assert_close(
        shared, F.conv2d(x.flatten(0, 1), w[0], b[0], **settings).unflatten(0, x.shape[:2])
    )


def _net(p, images):
    h = F.conv2d(images, p["w1"], p["b1"], padding=1).relu()
    h = F.conv2d(h, p["w2"], None, stride=2)
    return h.flatten(1) @ p["head"]


def _maml_meta_gradient(weights, x, y, lowering: str | None):
    """Second-order MAML, one inner step, of a two-convolution net; tasks under vmap, with
    plain ``vmap`` (``lowering=None``) or a registered lowering (as in test_taskconv.py)."""
    batched = batched_weight_gradients(lowering or "grouped")

    def task(p, images, labels):
        with batched if lowering else contextlib.nullcontext():
            support = lambda q: F.cross_entropy(_net(q, images[:4]), labels[:4])  # noqa: E731
            grads = torch.func.grad(support)(p)
            adapted = {k: p[k] - 0.4 * grads[k] for k in p}
            return F.cross_entropy(_net(adapted, images[4:]), labels[4:])

    meta_loss = lambda p: torch.func.vmap(task, in_dims=(None, 0, 0))(p, x, y).sum()  # noqa: E731
    return torch.func.grad(meta_loss)(weights)


def _weights(gen: torch.Generator, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {
        "w1": torch.randn(4, 3, 3, 3, generator=gen, dtype=dtype),
        "b1": torch.randn(4, generator=gen, dtype=dtype),
        "w2": torch.randn(5, 4, 3, 3, generator=gen, dtype=dtype),
        "head": torch.randn(5 * 9, 3, generator=gen, dtype=dtype) / 5,
    }


@pytest.mark.parametrize("lowering", EXPERIMENTAL)
def test_second_order_maml_through_the_lowering_is_exact(lowering):
    gen = torch.Generator().manual_seed(1)
    weights = _weights(gen, torch.float64)
    x = torch.randn(3, 10, 3, 7, 7, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (3, 10), generator=gen)
    got = _maml_meta_gradient(weights, x, y, lowering)
    expected = _maml_meta_gradient(weights, x, y, None)
    for name in weights:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12)
        assert expected[name].abs().max() > 1e-6, f"{name}: a zero gradient proves nothing"


def _traced_operations(lowering: str) -> tuple[int, set[str]]:
    """How many grouped convolutions (any direction) the traced MAML meta-gradient runs, and
    which of metazoo's own operators it calls."""
    from torch.fx.experimental.proxy_tensor import make_fx

    gen = torch.Generator().manual_seed(2)
    weights = _weights(gen, torch.float32)
    x, y = torch.randn(3, 10, 3, 7, 7, generator=gen), torch.randint(0, 3, (3, 10), generator=gen)
    trace = make_fx(lambda w, x, y: _maml_meta_gradient(w, x, y, lowering), tracing_mode="fake")
    nodes = list(trace(weights, x, y).graph.nodes)
    forward, backward = (
        torch.ops.aten.convolution.default,
        torch.ops.aten.convolution_backward.default,
    )
    groups = {forward: lambda a: a[8], backward: lambda a: a[-2]}  # the ops' signatures
    grouped = [n for n in nodes if n.target in groups and groups[n.target](n.args) > 1]
    ours = {n.target.name() for n in nodes if str(n.target).startswith("metazoo.")}
    return len(grouped), ours


def test_the_matmul_lowering_leaves_no_grouped_convolution():
    assert _traced_operations("matmul") == (0, set())


@pytest.mark.triton
def test_the_triton_lowering_runs_its_three_operators_and_no_grouped_convolution():
    kernels = {f"metazoo::task_{op}" for op in ("convolution", "input_gradient", "weight_gradient")}
    assert _traced_operations("triton") == (0, kernels)
