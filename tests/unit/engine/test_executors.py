"""Executors: sequential and vectorized agree, gradients match finite differences, bad input fails clearly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metazoo import engine
from metazoo.engine.gradcheck import tiny_batch, tiny_conv_net, tiny_mlp
from metazoo.episode import EpisodeBatch


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _net_and_batch(kind: str):
    torch.manual_seed(0)
    if kind == "conv":
        return tiny_conv_net(), tiny_batch("classification", tasks=5), "classification", 0.3
    return tiny_mlp(), tiny_batch("regression", tasks=5), "regression", 0.02


def _meta_grad(model, batch, loop, lr, **kwargs):
    model.zero_grad()
    results = engine.adapt_and_query(model, batch, loop, lr, **kwargs)
    results.query_loss.mean().backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    return results, grads


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("kind", ["conv", "mlp"])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("first_order", [False, True])
def test_vectorized_equals_sequential(kind, steps, optimizer, first_order):
    model, batch, task, lr = _net_and_batch(kind)
    lr = lr if optimizer == "sgd" else 0.01
    loop = engine.InnerLoop(
        steps=steps, task=task, ways=batch.ways, optimizer=optimizer, first_order=first_order
    )
    seq, g_seq = _meta_grad(model, batch, loop, lr, executor="sequential")
    vec, g_vec = _meta_grad(model, batch, loop, lr, executor="vectorized", chunk_size=2)
    torch.testing.assert_close(vec.query_loss, seq.query_loss, rtol=1e-10, atol=0)
    torch.testing.assert_close(vec.metric, seq.metric, rtol=1e-10, atol=0)
    torch.testing.assert_close(vec.support_losses, seq.support_losses, rtol=1e-10, atol=0)
    assert _rel(g_vec, g_seq) < 1e-8


@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_meta_gradient_matches_finite_differences(executor, optimizer):
    model, batch, _, _ = _net_and_batch("conv")
    loop = engine.InnerLoop(steps=2, ways=3, optimizer=optimizer)
    lr = 0.3 if optimizer == "sgd" else 0.02

    class Objective(nn.Module):  # gradcheck perturbs a module's parameters
        def __init__(self):
            super().__init__()
            self.model = model

        def meta_loss(self, b):
            return engine.adapt_and_query(
                self.model, b, loop, lr, executor=executor
            ).query_loss.mean(), {}

    report = engine.gradcheck.check_meta_gradient(Objective(), batch)
    assert report.max_error < 1e-6, report


def test_per_parameter_and_per_step_learning_rates_receive_gradients():
    model, batch, _, _ = _net_and_batch("conv")
    names = [n for n, _ in model.named_parameters()]
    per_param = {
        n: torch.full_like(p, 0.2, requires_grad=True) for n, p in model.named_parameters()
    }
    per_step = [
        {n: torch.tensor(0.1 + 0.1 * s, requires_grad=True) for n in names} for s in range(2)
    ]
    loop = engine.InnerLoop(steps=2, ways=3)
    for lr in (per_param, per_step):
        loss = engine.adapt_and_query(
            model, batch, loop, lr, executor="vectorized"
        ).query_loss.mean()
        leaves = list(lr.values()) if isinstance(lr, dict) else [t for d in lr for t in d.values()]
        grads = torch.autograd.grad(loss, leaves)
        assert all(g.abs().sum() > 0 for g in grads)


def test_chunked_backward_equals_one_backward():
    model, batch, _, lr = _net_and_batch("conv")
    loop = engine.InnerLoop(steps=2, ways=3)
    _, full = _meta_grad(model, batch, loop, lr, executor="vectorized")
    model.zero_grad()
    results = engine.adapt_and_query(
        model, batch, loop, lr, executor="vectorized", chunk_size=2, backward_scale=1 / len(batch)
    )
    assert results.query_loss.grad_fn is None
    chunked = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert _rel(chunked, full) < 1e-12


def test_return_weights_gives_each_tasks_adapted_weights():
    model, batch, _, lr = _net_and_batch("conv")
    loop = engine.InnerLoop(steps=2, ways=3, first_order=True)
    results = engine.adapt_and_query(
        model, batch, loop, lr, executor="vectorized", return_weights=True
    )
    single = engine.adapt(model, batch.support_x[3], batch.support_y[3], loop, lr)
    for name, value in single.items():
        torch.testing.assert_close(results.fast_weights[name][3], value, rtol=1e-10, atol=1e-12)


def test_zero_steps_is_the_unadapted_model():
    model, batch, _, lr = _net_and_batch("conv")
    results = engine.adapt_and_query(model, batch, engine.InnerLoop(steps=0, ways=3), lr)
    expected = torch.stack(
        [
            nn.functional.cross_entropy(model(batch.query_x[t]), batch.query_y[t])
            for t in range(len(batch))
        ]
    )
    torch.testing.assert_close(results.query_loss, expected)


def test_eval_adaptation_builds_no_graph_to_the_outer_weights():
    model, batch, _, lr = _net_and_batch("conv")
    lrs = {n: torch.tensor(0.2, requires_grad=True) for n, _ in model.named_parameters()}
    loop = engine.InnerLoop(steps=2, ways=3, track_outer=False)
    fast = engine.adapt(model, batch.support_x[0], batch.support_y[0], loop, lrs)
    assert all(not w.requires_grad for w in fast.values())
    reference = engine.adapt(
        model, batch.support_x[0], batch.support_y[0], engine.InnerLoop(steps=2, ways=3), 0.2
    )
    for name in fast:
        torch.testing.assert_close(fast[name], reference[name].detach())


def test_auto_executor_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert engine.resolve_executor("auto", cpu, 32, "transductive", True) == "sequential"
    assert engine.resolve_executor("auto", cuda, 3, "transductive", True) == "sequential"
    assert engine.resolve_executor("auto", cuda, 4, "transductive", True) == "vectorized"
    assert engine.resolve_executor("auto", cuda, 32, "running", True) == "sequential"
    assert engine.resolve_executor("vectorized", cpu, 2, "transductive", True) == "vectorized"
    with pytest.raises(ValueError, match="executor must be one of"):
        engine.resolve_executor("parallel", cpu, 2, "transductive", True)


def test_negative_steps_are_rejected():
    with pytest.raises(ValueError, match="inner_steps must be a non-negative integer, got -1"):
        engine.InnerLoop(steps=-1)


def test_chunk_size_must_be_positive():
    model, batch, _, lr = _net_and_batch("conv")
    with pytest.raises(
        ValueError, match="chunk_size must be a positive number of tasks or None, got 0"
    ):
        engine.adapt_and_query(model, batch, engine.InnerLoop(steps=1, ways=3), lr, chunk_size=0)


def test_model_without_parameters_is_rejected():
    with pytest.raises(ValueError, match="ReLU has no parameters"):
        engine.adapt_and_query(nn.ReLU(), tiny_batch(), engine.InnerLoop(steps=1), 0.1)


def test_output_width_must_match_ways():
    model = tiny_conv_net(ways=5)
    with pytest.raises(
        ValueError, match=r"the episodes are 3-way: build the model with out_features=3"
    ):
        engine.adapt_and_query(model, tiny_batch(), engine.InnerLoop(steps=1, ways=3), 0.1)


@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
def test_nan_in_the_inner_loop_names_the_step_and_task(executor):
    model, batch, _, _ = _net_and_batch("mlp")
    support_x = batch.support_x.clone()
    support_x[2, 0, 0] = float("nan")
    bad = EpisodeBatch(support_x, batch.support_y, batch.query_x, batch.query_y)
    loop = engine.InnerLoop(steps=3, task="regression")
    with pytest.raises(
        engine.InnerLoopDivergence, match=r"at inner step 0 of 3, task 2 of the meta-batch"
    ):
        engine.adapt_and_query(model, bad, loop, 0.01, executor=executor, chunk_size=2)
    # a step size that overflows the weights: the loss is finite at step 0, infinite at step 1
    with pytest.raises(
        engine.InnerLoopDivergence, match=r"at inner step 1 of 3, task 0 of the meta-batch"
    ):
        engine.adapt_and_query(model, batch, loop, 1e300, executor=executor, chunk_size=2)


def test_nan_in_the_query_loss_names_the_task():
    model, batch, _, _ = _net_and_batch("mlp")
    query_x = batch.query_x.clone()
    query_x[1, 0, 0] = float("nan")
    bad = EpisodeBatch(batch.support_x, batch.support_y, query_x, batch.query_y)
    with pytest.raises(engine.InnerLoopDivergence, match="query loss after 1 inner steps, task 1"):
        engine.adapt_and_query(model, bad, engine.InnerLoop(steps=1, task="regression"), 0.01)
