"""Batched per-task weight gradients (metazoo.experimental.taskconv): F.conv2d's values and
derivatives, in float64, through the built-in ``grouped`` lowering; and the registry of
lowerings. The ``matmul`` and ``triton`` lowerings are tested beside this file."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from metazoo.experimental import taskconv
from metazoo.experimental.taskconv import (
    LOWERINGS,
    Lowering,
    Settings,
    batched_weight_gradients,
    check_lowering,
    register_lowering,
    task_weight_gradient,
)

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
def test_the_batched_weight_gradient_is_each_tasks_conv2d_weight_gradient(settings):
    x, w, _ = _inputs()
    geometry = Settings(*(_pair(settings[k]) for k in ("stride", "padding", "dilation")))
    grad_y = torch.randn_like(torch.stack([F.conv2d(a, b, **settings) for a, b in zip(x, w)]))
    by_w = [
        torch.nn.grad.conv2d_weight(a, w.shape[1:], g, **settings)
        for a, g in zip(x, grad_y, strict=True)
    ]
    got = task_weight_gradient(x, grad_y, w.shape[1:], geometry)
    torch.testing.assert_close(got, torch.stack(by_w), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("settings", SETTINGS)
def test_per_task_weights_under_vmap_match_one_conv2d_per_task(settings):
    x, w, b = _inputs()

    def conv(x, w, b):
        with batched_weight_gradients("grouped"):
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
    plain ``vmap`` (``lowering=None``) or a registered lowering."""
    batched = batched_weight_gradients(lowering or "grouped")

    def task(p, images, labels):
        with batched if lowering else contextlib.nullcontext():
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
    got = _maml_meta_gradient(weights, x, y, "grouped")
    expected = _maml_meta_gradient(weights, x, y, None)
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


def _grouped_convolutions(lowering: str | None) -> tuple[int, int, set[str]]:
    """How many grouped convolutions (forward or input gradient) and grouped weight gradients the
    traced MAML meta-gradient runs, and which of metazoo's own operators it calls."""
    from torch.fx.experimental.proxy_tensor import make_fx

    gen = torch.Generator().manual_seed(2)
    weights = {
        "w1": torch.randn(4, 3, 3, 3, generator=gen),
        "b1": torch.randn(4, generator=gen),
        "w2": torch.randn(5, 4, 3, 3, generator=gen),
        "head": torch.randn(5 * 9, 3, generator=gen),
    }
    x, y = torch.randn(3, 10, 3, 7, 7, generator=gen), torch.randint(0, 3, (3, 10), generator=gen)
    trace = make_fx(lambda w, x, y: _maml_meta_gradient(w, x, y, lowering), tracing_mode="fake")
    nodes = trace(weights, x, y).graph.nodes
    forward, backward = (
        torch.ops.aten.convolution.default,
        torch.ops.aten.convolution_backward.default,
    )
    groups = {forward: lambda a: a[8], backward: lambda a: a[-2]}  # the ops' signatures
    grouped = [n for n in nodes if n.target in groups and groups[n.target](n.args) > 1]
    weight_gradients = [n for n in grouped if n.target is backward and n.args[-1][1]]
    ours = {n.target.name() for n in nodes if str(n.target).startswith("metazoo.")}
    return len(grouped) - len(weight_gradients), len(weight_gradients), ours


def test_batched_weight_gradients_leave_no_grouped_weight_gradient():
    plain, batched = (_grouped_convolutions(lowering) for lowering in (None, "grouped"))
    assert plain[0] > 0 and plain[1] > 0 and not plain[2]  # what vmap runs
    assert batched[0] > 0 and batched[1] == 0 and not batched[2]


@pytest.fixture
def registry():
    """The registry as the engine alone leaves it (``grouped`` only), restored afterwards."""
    saved = dict(taskconv._REGISTRY)
    taskconv._REGISTRY.clear()
    taskconv._REGISTRY["grouped"] = saved["grouped"]
    yield taskconv._REGISTRY
    taskconv._REGISTRY.clear()
    taskconv._REGISTRY.update(saved)


def test_experimental_lowerings_not_imported_say_what_to_do(registry):
    with pytest.raises(
        ValueError,
        match=r"^the 'matmul' lowering is experimental: "
        r"`import metazoo\.experimental\.lowerings` first$",
    ):
        batched_weight_gradients("matmul")
    with pytest.raises(
        ValueError,
        match=r"^the 'triton' lowering is experimental: `pip install 'metazoo\[kernels\]'` "
        r"\(Triton, Linux\) and `import metazoo\.experimental\.lowerings` first$",
    ):
        check_lowering("triton", "tf32x3")
    with pytest.raises(
        ValueError,
        match=r"^fp32_products='tf32x3' is a choice of the experimental 'triton' lowering: "
        r"`pip install",
    ):
        check_lowering("grouped", "tf32x3")
    with pytest.raises(ValueError, match=r"^unknown lowering 'fft'; choose one of \('grouped',\)$"):
        batched_weight_gradients("fft")


def test_fp32_products_are_checked_against_the_lowering(registry):
    with pytest.raises(
        ValueError, match=r"^unknown fp32_products 'fp16'; choose one of \('ieee', 'tf32x3'\)$"
    ):
        check_lowering(None, "fp16")
    ops = registry["grouped"][:3]
    register_lowering("three", Lowering(*ops, fp32_products=("ieee", "tf32x3")))
    check_lowering("three", "tf32x3")
    with pytest.raises(ValueError, match=r"^fp32_products='tf32x3' is a choice of the 'three' "):
        check_lowering(None, "tf32x3")
    with pytest.raises(ValueError, match=r"must include 'ieee' and come from \('ieee', 'tf32x3'\)"):
        register_lowering("odd", Lowering(*ops, fp32_products=("tf32",)))


def test_a_registered_lowering_runs_under_vmap_and_a_name_is_taken_once(registry):
    calls = []

    def convolution(x, w, settings):
        calls.append(settings)
        return registry["grouped"].convolution(x, w, settings)

    mine = Lowering(convolution, *registry["grouped"][1:])
    register_lowering("mine", mine)
    register_lowering("mine", mine)  # the same again (a module imported twice) is fine
    assert tuple(LOWERINGS) == ("grouped", "mine")
    with pytest.raises(ValueError, match=r"^a lowering named 'mine' is already registered"):
        register_lowering("mine", Lowering(*registry["grouped"][:3]))
    x, w, b = _inputs()

    def conv(x, w):
        with batched_weight_gradients("mine"):
            return F.conv2d(x, w, padding=1)

    got = torch.func.vmap(conv)(x, w)
    torch.testing.assert_close(got, torch.stack([F.conv2d(a, c, padding=1) for a, c in zip(x, w)]))
    assert calls == [Settings((1, 1), (1, 1), (1, 1), "mine", "ieee")]
