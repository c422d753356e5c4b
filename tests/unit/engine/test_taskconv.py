"""Batched per-task weight gradients (metazoo.engine.taskconv): F.conv2d's values and derivatives,
in float64."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from metazoo.engine.taskconv import batched_weight_gradients, task_weight_gradient

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


@pytest.mark.parametrize("settings", SETTINGS)
def test_outside_vmap_it_is_conv2d_to_second_order(settings):
    x, w, b = (t[0].requires_grad_() for t in _inputs())

    def conv(x, w, b):
        with batched_weight_gradients():
            return F.conv2d(x, w, b, **settings)

    torch.testing.assert_close(conv(x, w, b), F.conv2d(x, w, b, **settings), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(conv, (x, w, b))
    assert torch.autograd.gradgradcheck(conv, (x, w, b))


@pytest.mark.parametrize("settings", SETTINGS)
def test_task_weight_gradient_is_each_tasks_conv2d_weight_gradient(settings):
    x, w, _ = _inputs()
    y = torch.stack([F.conv2d(a, b, **settings) for a, b in zip(x, w, strict=True)])
    grad_y = torch.randn_like(y)
    pairs = {k: _pair(v) for k, v in settings.items()}
    got = task_weight_gradient(
        x, grad_y, w.shape[1:], (pairs["stride"], pairs["padding"], pairs["dilation"])
    )
    expected = torch.stack(
        [
            torch.nn.grad.conv2d_weight(a, w.shape[1:], g, **settings)
            for a, g in zip(x, grad_y, strict=True)
        ]
    )
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


@pytest.mark.parametrize("settings", SETTINGS)
def test_per_task_weights_under_vmap_match_one_conv2d_per_task(settings):
    x, w, b = _inputs()

    def conv(x, w, b):
        with batched_weight_gradients():
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


def _maml_meta_gradient(weights, x, y, batched: bool):
    """Second-order MAML, one inner step, of a two-convolution net; tasks under vmap."""

    def task(p, images, labels):
        with batched_weight_gradients() if batched else contextlib.nullcontext():
            support = lambda q: F.cross_entropy(_net(q, images[:4]), labels[:4])  # noqa: E731
            grads = torch.func.grad(support)(p)
            adapted = {k: p[k] - 0.4 * grads[k] for k in p}
            return F.cross_entropy(_net(adapted, images[4:]), labels[4:])

    meta_loss = lambda p: torch.func.vmap(task, in_dims=(None, 0, 0))(p, x, y).sum()  # noqa: E731
    return torch.func.grad(meta_loss)(weights)


def test_second_order_maml_through_batched_weight_gradients_is_exact():
    gen = torch.Generator().manual_seed(1)
    weights = {
        "w1": torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64),
        "b1": torch.randn(4, generator=gen, dtype=torch.float64),
        "w2": torch.randn(5, 4, 3, 3, generator=gen, dtype=torch.float64),
        "head": torch.randn(5 * 9, 3, generator=gen, dtype=torch.float64) / 5,
    }
    x = torch.randn(3, 10, 3, 7, 7, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (3, 10), generator=gen)
    got = _maml_meta_gradient(weights, x, y, batched=True)
    expected = _maml_meta_gradient(weights, x, y, batched=False)
    for name in weights:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12)
        assert expected[name].abs().max() > 1e-6, f"{name}: a zero gradient proves nothing"


def test_grouped_and_same_padding_convolutions_are_left_to_pytorch():
    x, w, _ = _inputs()
    grouped = torch.randn(6, 1, 3, 3, dtype=torch.float64)
    with batched_weight_gradients():
        got_grouped = F.conv2d(x[0], grouped, groups=3)
        got_same = F.conv2d(x[0], w[0], padding="same")
    assert torch.equal(got_grouped, F.conv2d(x[0], grouped, groups=3))
    assert torch.equal(got_same, F.conv2d(x[0], w[0], padding="same"))


def _grouped_weight_gradients(batched: bool) -> int:
    """How many grouped convolution weight gradients the traced MAML meta-gradient runs."""
    from torch.fx.experimental.proxy_tensor import make_fx

    gen = torch.Generator().manual_seed(2)
    weights = {
        "w1": torch.randn(4, 3, 3, 3, generator=gen),
        "b1": torch.randn(4, generator=gen),
        "w2": torch.randn(5, 4, 3, 3, generator=gen),
        "head": torch.randn(5 * 9, 3, generator=gen),
    }
    x, y = torch.randn(3, 10, 3, 7, 7, generator=gen), torch.randint(0, 3, (3, 10), generator=gen)
    trace = make_fx(lambda w, x, y: _maml_meta_gradient(w, x, y, batched), tracing_mode="fake")
    graph = trace(weights, x, y)
    backward = torch.ops.aten.convolution_backward.default
    return sum(
        1
        for node in graph.graph.nodes
        if node.target is backward and node.args[-1][1] and node.args[-2] > 1
    )


def test_per_task_weight_gradients_leave_grouped_convolutions():
    assert _grouped_weight_gradients(batched=False) > 0  # what plain vmap runs
    assert _grouped_weight_gradients(batched=True) == 0
