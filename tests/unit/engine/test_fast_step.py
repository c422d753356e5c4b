"""The fast engine step (metazoo.engine.fast) and its CUDA-graph runner, on the CPU in float64."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import metazoo.experimental.lowerings  # noqa: F401  (the matmul and triton lowerings)
from metazoo import create_learner
from metazoo.engine import (
    InnerLoop,
    MetaParams,
    accumulate_meta_gradient,
    parameters_of,
    run_tasks,
    task_scores,
)
from metazoo.engine.compiled import compiled_meta_gradient
from metazoo.engine.cudagraph import GraphedMetaStep, static_copy
from metazoo.engine.fast import FastMetaStep, FastOptions
from metazoo.testing import synthetic_batch, tiny_batch, tiny_conv_net

WAYS = 3


def _double(batch):
    return type(batch)(
        batch.support_x.double(),
        batch.support_y,
        batch.query_x.double(),
        batch.query_y,
        batch.ways,
    )


def _conv(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return tiny_conv_net().double()


def _meta(model: nn.Module, lr: float) -> MetaParams:
    return MetaParams(parameters_of(model), lr)


def _maml(model: nn.Module, lr: float, steps: int = 1, **config) -> nn.Module:
    """The MAML learner around ``model`` (its parameters are the model's)."""
    return create_learner("maml", model, inner_lr=lr, inner_steps=steps, **config)


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.flatten() for t in tensors])


def _grads(model, fn) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    fn()
    grads = _flat([p.grad for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    return grads


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def batch():
    return _double(tiny_batch("classification", tasks=3, seed=1))


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("executor,chunk", [("sequential", None), ("vectorized", 2)])
def test_meta_gradient_matches_engine_reference(batch, steps, executor, chunk):
    model, loop = _conv(), InnerLoop(steps=steps)
    reference = _grads(
        model,
        lambda: (
            run_tasks(model, batch, loop, _meta(model, 0.1), executor="sequential")
            .query_loss.mean()
            .backward()
        ),
    )
    fast = _grads(
        model,
        lambda: accumulate_meta_gradient(
            model, batch, loop, _meta(model, 0.1), executor=executor, chunk_size=chunk
        ),
    )
    assert _rel(fast, reference) < 1e-8


@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
def test_meta_gradient_matches_central_finite_differences(executor):
    """Directional derivatives of the meta-objective along random directions, BatchNorm included."""
    torch.manual_seed(0)
    model = tiny_conv_net().double()
    batch = _double(tiny_batch("classification", tasks=4))
    loop = InnerLoop(steps=2)

    def loss_of() -> torch.Tensor:
        meta = _meta(model, 0.3)
        results = accumulate_meta_gradient(
            model, batch, loop, meta, executor=executor, chunk_size=3
        )
        return results.query_loss.mean()

    gradient = _grads(model, loss_of)
    params = list(model.parameters())
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        direction = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]

        def loss_at(eps: float, direction=direction) -> float:
            with torch.no_grad():
                for p, v in zip(params, direction):
                    p.add_(v, alpha=eps)
            value = float(loss_of())
            with torch.no_grad():
                for p, v in zip(params, direction):
                    p.sub_(v, alpha=eps)
            model.zero_grad(set_to_none=True)
            return value

        numeric = (loss_at(1e-6) - loss_at(-1e-6)) / 2e-6
        analytic = float(gradient @ _flat(direction))
        assert numeric == pytest.approx(analytic, rel=1e-6, abs=1e-9)


def test_task_scores_executors_agree_with_engine(batch):
    model = _conv()
    loop = InnerLoop(steps=3)
    meta = _meta(model, 0.4)
    reference = run_tasks(model, batch, loop, meta, outer=False, executor="sequential").metric
    for executor in ("sequential", "vectorized"):
        metric = task_scores(model, batch, loop, meta, executor=executor, chunk_size=2)
        assert torch.equal(metric, reference)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("options", [FastOptions(compile=True), FastOptions(cuda_graph=True)])
def test_running_statistics_policy_is_refused_by_compiled_and_graphed_steps(batch, options):
    learner = _maml(_conv(), 0.1, bn_policy="running")
    step = FastMetaStep(learner, torch.optim.SGD(learner.parameters(), lr=0.1), batch, options)
    with pytest.raises(ValueError, match="supports bn_policy 'transductive' and 'per_step'"):
        step(batch)  # refused when the step is built, before any compile or capture


def _adam_step_by_hand(model, batch, loop):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    results = run_tasks(model, batch, loop, _meta(model, 0.1), executor="sequential")
    results.query_loss.mean().backward()
    optimizer.step()
    return _flat([p.detach() for p in model.parameters()])


def test_fast_step_updates_like_a_plain_adam_step_and_meta_gradient_is_pure(batch):
    expected = _adam_step_by_hand(_conv(), batch, InnerLoop(steps=1))
    model = _conv()
    learner = _maml(model, 0.1)
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-2)
    step = FastMetaStep(learner, optimizer, batch, FastOptions(executor="auto"))
    assert not step.graph  # no CUDA graph on a CPU
    before = _flat([p.detach().clone() for p in model.parameters()])
    step.meta_gradient(batch)  # must leave weights and Adam's state as they were
    assert step.plan.reason.startswith("measured")  # auto timed the executors on a copy ...
    assert torch.equal(_flat([p.detach() for p in model.parameters()]), before)  # ... only
    loss = step(batch)
    assert loss.dim() == 0 and not loss.requires_grad
    assert _rel(_flat([p.detach() for p in model.parameters()]) - before, expected - before) < 1e-8


def test_graphed_step_refuses_a_non_capturable_optimizer(batch):
    model = _conv()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="capturable=True"):
        GraphedMetaStep(
            lambda b: torch.zeros(()), model.parameters(), optimizer, batch, capture=True
        )


def test_graphed_step_needs_the_captured_shapes(batch):
    model = _conv()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    loop = InnerLoop(steps=1)
    runner = GraphedMetaStep(
        lambda b: accumulate_meta_gradient(model, b, loop, _meta(model, 0.1)).query_loss.mean(),
        model.parameters(),
        optimizer,
        batch,
    )
    smaller = batch.split(2)[0]
    with pytest.raises(
        ValueError, match=r"static shapes: got \(2, 6, 1, 6, 6\), captured \(3, 6, 1, 6, 6\)"
    ):
        runner(smaller)


def test_channels_last_buffers_hold_the_same_values():
    rgb = synthetic_batch("classification", tasks=2)
    rgb = type(rgb)(
        rgb.support_x.expand(-1, -1, 3, -1, -1),
        rgb.support_y,
        rgb.query_x.expand(-1, -1, 3, -1, -1),
        rgb.query_y,
        rgb.ways,
    )
    static = static_copy(rgb, channels_last=True)
    assert torch.equal(static.query_x, rgb.query_x)
    task = static.query_x[1]  # (N*Q, 3, 28, 28), laid out NHWC
    assert task.is_contiguous(memory_format=torch.channels_last)
    assert not task.is_contiguous()
    assert static.support_y.data_ptr() != rgb.support_y.data_ptr()


def test_fast_step_leaves_the_callers_model_object_in_use(batch):
    """The step trains the model it was given (never a copy), as learners require."""
    model = _conv()
    twin = copy.deepcopy(model)
    learner = _maml(model, 0.1)
    FastMetaStep(learner, torch.optim.SGD(learner.parameters(), lr=0.1), batch)(batch)
    moved = [not torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters())]
    assert any(moved)


@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
def test_running_buffers_are_ignored_as_the_transductive_policy_says(batch, executor):
    """A model built with running statistics, in eval mode, still normalises with batch statistics."""
    torch.manual_seed(0)
    tracked = tiny_conv_net(track_running_stats=True).double().eval()
    torch.manual_seed(0)
    plain = tiny_conv_net(track_running_stats=False).double()
    loop = InnerLoop(steps=2)
    before = {k: v.clone() for k, v in tracked.state_dict().items()}
    got = _grads(
        tracked,
        lambda: accumulate_meta_gradient(
            tracked, batch, loop, _meta(tracked, 0.1), executor=executor
        ),
    )
    expected = _grads(
        plain, lambda: accumulate_meta_gradient(plain, batch, loop, _meta(plain, 0.1))
    )
    assert _rel(got, expected) < 1e-10
    assert all(torch.equal(v, tracked.state_dict()[k]) for k, v in before.items())


@pytest.mark.compile
@pytest.mark.parametrize(
    "first_order,lowering,adapt",
    [
        (False, None, None),
        (True, None, None),
        (False, "grouped", None),
        (False, "matmul", None),
        pytest.param(False, "triton", None, marks=pytest.mark.triton),
        (False, "matmul", ("5.weight", "5.bias")),  # ANIL: the convolution's weights shared
    ],
)
def test_compiled_meta_gradient_matches_the_sequential_executor(
    batch, first_order, lowering, adapt
):
    """torch.compile of grad(vmap(inner loop)): same float64 meta-gradient, BatchNorm included,
    chunked (3 tasks as 2 + 1 compiled calls) and accumulated into .grad; also with batched
    weight gradients, and with all per-task convolutions as batched products or Triton kernels
    (traced with make_fx, then compiled)."""
    model = _conv()
    learner = _maml(model, 0.3, steps=2)
    loop = InnerLoop(steps=2, first_order=first_order, adapt_names=adapt).bound_to(
        parameters_of(model)
    )
    meta = _meta(model, 0.3)
    reference = _grads(model, lambda: accumulate_meta_gradient(model, batch, loop, meta))
    compiled = compiled_meta_gradient(learner, loop, len(batch), WAYS, chunk=2, lowering=lowering)
    got = _grads(model, lambda: compiled(batch))
    assert _rel(got, reference) < 1e-9
    loss, accuracy = compiled(batch).tolist()  # the step's mean query loss and accuracy
    expected = run_tasks(model, batch, loop, meta, executor="sequential")
    assert loss == pytest.approx(float(expected.query_loss.mean().detach()), rel=1e-12)
    assert accuracy == pytest.approx(float(expected.metric.mean()), rel=1e-12)


@pytest.mark.compile
def test_compiled_fast_step_updates_like_a_plain_adam_step(batch):
    expected = _adam_step_by_hand(_conv(), batch, InnerLoop(steps=1))
    model = _conv()
    learner = _maml(model, 0.1)
    before = _flat([p.detach().clone() for p in model.parameters()])
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-2)
    step = FastMetaStep(learner, optimizer, batch, FastOptions(compile=True))
    step(batch)
    assert _rel(_flat([p.detach() for p in model.parameters()]) - before, expected - before) < 1e-8


def test_fast_options_say_what_each_lowering_needs():
    with pytest.raises(ValueError, match=r"^batched_weight_gradients=True needs compile=True$"):
        FastOptions(batched_weight_gradients=True)
    with pytest.raises(
        ValueError, match=r"^matmul_convolutions=True needs batched_weight_gradients=True$"
    ):
        FastOptions(compile=True, matmul_convolutions=True)
    with pytest.raises(
        ValueError, match=r"^triton_convolutions=True needs batched_weight_gradients=True$"
    ):
        FastOptions(compile=True, triton_convolutions=True)
    with pytest.raises(ValueError, match="does not autocast: leave autocast=None"):
        FastOptions(
            compile=True,
            batched_weight_gradients=True,
            triton_convolutions=True,
            autocast=torch.bfloat16,
        )
    with pytest.raises(
        ValueError,
        match=r"^fp32_products='tf32x3' is a choice of the 'triton' lowering$",
    ):
        FastOptions(compile=True, batched_weight_gradients=True, triton_fp32_products="tf32x3")
    with pytest.raises(
        ValueError, match=r"^unknown fp32_products 'fp16'; choose one of \('ieee', 'tf32x3'\)$"
    ):
        FastOptions(triton_fp32_products="fp16")
    with pytest.raises(ValueError, match="two ways to run the same convolutions; set one"):
        FastOptions(
            compile=True,
            batched_weight_gradients=True,
            matmul_convolutions=True,
            triton_convolutions=True,
        )
    lowerings = {
        (False, False, False): None,
        (True, False, False): "grouped",
        (True, True, False): "matmul",
        (True, False, True): "triton",
    }
    for (batched, matmul, triton), lowering in lowerings.items():
        options = FastOptions(
            compile=True,
            batched_weight_gradients=batched,
            matmul_convolutions=matmul,
            triton_convolutions=triton,
        )
        assert options.lowering == lowering


def test_triton_convolutions_need_a_cuda_device(batch):
    learner = _maml(_conv(), 0.1)
    options = FastOptions(compile=True, batched_weight_gradients=True, triton_convolutions=True)
    optimizer = torch.optim.Adam(learner.parameters())
    with pytest.raises(ValueError, match=r"runs Triton kernels on a CUDA device.*leave it off"):
        FastMetaStep(learner, optimizer, batch, options)


def test_compiled_meta_gradient_accepts_meta_learned_learning_rates(batch):
    """Meta-SGD's per-parameter rates are trainable tensors of the program (no compile here:
    tests/unit/engine/test_fast_step_family.py compiles MAML++'s learned rates)."""
    learner = create_learner("metasgd", _conv(), inner_lr=0.1, inner_steps=1).double()
    loop = learner.inner_loop(True).bound_to(parameters_of(learner.model))
    accumulate = compiled_meta_gradient(learner, loop, len(batch), WAYS)
    with pytest.raises(ValueError, match="pass step_weights exactly when the program was built"):
        accumulate(batch, torch.ones(1, dtype=torch.float64))  # refused before compiling
    # one learned rate per parameter (conv, BatchNorm, linear: weight and bias), each trained
    rates = [p for n, p in learner.named_parameters() if n.startswith("inner_lrs.")]
    assert len(rates) == len(learner.lr_names) == 6
    assert all(r.requires_grad for r in rates)


class _RecordsCudnnBenchmark(torch.nn.Module):
    """A linear classifier that notes the cuDNN benchmark flag at every forward pass."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(36, WAYS).double()
        self.seen: list[bool] = []

    def forward(self, x):
        self.seen.append(torch.backends.cudnn.benchmark)
        return self.linear(x.flatten(1))


def test_cudnn_benchmark_is_on_during_the_step_only(batch):
    model = _RecordsCudnnBenchmark()
    before = torch.backends.cudnn.benchmark
    learner = _maml(model, 0.1)
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
    FastMetaStep(learner, optimizer, batch, FastOptions(cudnn_benchmark=True))(batch)
    assert model.seen and all(model.seen)
    assert torch.backends.cudnn.benchmark == before
