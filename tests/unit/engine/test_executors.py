"""Executors: sequential and vectorized agree, gradients match finite differences, bad input fails clearly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metazoo import engine
from metazoo.episode import EpisodeBatch
from metazoo.testing import check_meta_gradient, tiny_batch, tiny_conv_net, tiny_mlp


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


def _meta(model, lr, overrides=None) -> engine.MetaParams:
    return engine.MetaParams(engine.parameters_of(model), lr, overrides)


def _run(model, batch, loop, lr, **kwargs) -> engine.TaskResults:
    return engine.run_tasks(model, batch, loop, _meta(model, lr), **kwargs)


def _checked_run(model, batch, loop, lr, **kwargs) -> engine.TaskResults:
    """``run_tasks`` then the divergence check, as ``meta_objective`` does."""
    results = _run(model, batch, loop, lr, **kwargs)
    engine.raise_if_diverged(results, loop.steps)
    return results


def _flat_grad(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def _meta_grad(model, batch, loop, lr, **kwargs):
    model.zero_grad()
    results = _run(model, batch, loop, lr, **kwargs)
    results.query_loss.mean().backward()
    return results, _flat_grad(model)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("kind", ["conv", "mlp"])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("first_order", [False, True])
def test_vectorized_equals_sequential(kind, steps, optimizer, first_order):
    model, batch, task, lr = _net_and_batch(kind)
    lr = lr if optimizer == "sgd" else 0.01
    loop = engine.InnerLoop(steps=steps, task=task, optimizer=optimizer, first_order=first_order)
    seq, g_seq = _meta_grad(model, batch, loop, lr, executor="sequential")
    vec, g_vec = _meta_grad(model, batch, loop, lr, executor="vectorized", chunk_size=2)
    torch.testing.assert_close(vec.query_loss, seq.query_loss, rtol=1e-10, atol=0)
    torch.testing.assert_close(vec.metric, seq.metric, rtol=1e-10, atol=0)
    torch.testing.assert_close(vec.support_losses, seq.support_losses, rtol=1e-10, atol=0)
    assert _rel(g_vec, g_seq) < 1e-8


@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
def test_every_step_keeps_each_steps_query_loss_and_the_last_is_the_plain_one(executor):
    model, batch, _, lr = _net_and_batch("conv")
    loop = engine.InnerLoop(steps=3)
    every = _run(model, batch, loop, lr, every_step=True, executor=executor, chunk_size=2)
    last = _run(model, batch, loop, lr, executor=executor, chunk_size=2)
    assert every.query_losses.shape == (5, 3) and last.query_losses.shape == (5, 1)
    assert every.support_losses.shape == (5, 3)
    torch.testing.assert_close(every.query_loss, last.query_loss, rtol=1e-12, atol=0)
    # step s's query loss is the plain loss of an s-step inner loop
    one = _run(model, batch, engine.InnerLoop(steps=1), lr, executor=executor)
    torch.testing.assert_close(every.query_losses[:, 0], one.query_loss, rtol=1e-12, atol=0)


@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_meta_gradient_matches_finite_differences(executor, optimizer):
    model, batch, _, _ = _net_and_batch("conv")
    loop = engine.InnerLoop(steps=2, optimizer=optimizer)
    lr = 0.3 if optimizer == "sgd" else 0.02

    class Objective(nn.Module):  # gradcheck perturbs a module's parameters
        def __init__(self):
            super().__init__()
            self.model = model

        def meta_loss(self, b):
            return _run(self.model, b, loop, lr, executor=executor).query_loss.mean(), {}

    report = check_meta_gradient(Objective(), batch)
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
    loop = engine.InnerLoop(steps=2)
    for lr in (per_param, per_step):
        loss = _run(model, batch, loop, lr, executor="vectorized").query_loss.mean()
        leaves = list(lr.values()) if isinstance(lr, dict) else [t for d in lr for t in d.values()]
        grads = torch.autograd.grad(loss, leaves)
        assert all(g.abs().sum() > 0 for g in grads)


def test_chunked_backward_equals_one_backward():
    model, batch, _, lr = _net_and_batch("conv")
    loop = engine.InnerLoop(steps=2)
    full_results, full = _meta_grad(model, batch, loop, lr, executor="vectorized")
    model.zero_grad()
    results = engine.accumulate_meta_gradient(
        model, batch, loop, _meta(model, lr), executor="vectorized", chunk_size=2
    )
    assert results.query_loss.grad_fn is None and results.fast_weights is None
    torch.testing.assert_close(results.query_loss, full_results.query_loss.detach())
    assert _rel(_flat_grad(model), full) < 1e-12
    model.zero_grad()  # scale multiplies the gradient; the sequential executor goes task by task
    engine.accumulate_meta_gradient(
        model, batch, loop, _meta(model, lr), executor="sequential", scale=0.5
    )
    assert _rel(_flat_grad(model), 0.5 * full) < 1e-8


def test_backward_in_chunks_holds_one_chunk_at_a_time():
    model, batch, _, lr = _net_and_batch("conv")
    loop = engine.InnerLoop(steps=1)
    sizes = []

    def run(chunk: EpisodeBatch) -> engine.TaskResults:
        sizes.append(len(chunk))
        return _run(model, chunk, loop, lr, executor="sequential")

    model.zero_grad()
    results = engine.backward_in_chunks(run, batch, 2, lambda r: r.query_loss.sum() / len(batch))
    assert sizes == [2, 2, 1] and results.query_losses.shape == (5, 1)
    _, full = _meta_grad(model, batch, loop, lr, executor="sequential")
    model.zero_grad()
    engine.backward_in_chunks(run, batch, 2, lambda r: r.query_loss.sum() / len(batch))
    assert _rel(_flat_grad(model), full) < 1e-12


def test_run_tasks_gives_each_tasks_adapted_weights():
    model, batch, _, lr = _net_and_batch("conv")
    loop = engine.InnerLoop(steps=2, first_order=True)
    results = _run(model, batch, loop, lr, executor="vectorized")
    single = engine.adapt(
        model, batch.support_x[3], batch.support_y[3], loop, _meta(model, lr), outer=True,
        ways=batch.ways,
    )  # fmt: skip
    assert set(results.fast_weights) == set(single)
    for name, value in single.items():
        torch.testing.assert_close(results.fast_weights[name][3], value, rtol=1e-10, atol=1e-12)


def test_zero_steps_is_the_unadapted_model():
    model, batch, _, lr = _net_and_batch("conv")
    results = _run(model, batch, engine.InnerLoop(steps=0), lr)
    expected = torch.stack(
        [
            nn.functional.cross_entropy(model(batch.query_x[t]), batch.query_y[t])
            for t in range(len(batch))
        ]
    )
    torch.testing.assert_close(results.query_loss, expected)
    assert results.support_losses.shape == (5, 0)


def test_eval_adaptation_builds_no_graph_to_the_outer_weights():
    model, batch, _, _ = _net_and_batch("conv")
    lrs = {n: torch.tensor(0.2, requires_grad=True) for n, _ in model.named_parameters()}
    loop = engine.InnerLoop(steps=2)
    sx, sy = batch.support_x[0], batch.support_y[0]
    fast = engine.adapt(model, sx, sy, loop, _meta(model, lrs), outer=False, ways=batch.ways)
    assert all(not w.requires_grad for w in fast.values())
    reference = engine.adapt(model, sx, sy, loop, _meta(model, 0.2), outer=True, ways=batch.ways)
    assert all(w.requires_grad for w in reference.values())
    for name in fast:
        torch.testing.assert_close(fast[name], reference[name].detach())
    results = _run(model, batch, loop, lrs, outer=False)
    outer = [*model.parameters(), *lrs.values()]
    reached = torch.autograd.grad(results.query_loss.sum(), outer, allow_unused=True)
    assert all(g is None for g in reached)


def test_frozen_parameters_stay_out_of_the_inner_loop():
    model, batch, _, lr = _net_and_batch("conv")
    model[0].weight.requires_grad_(False)
    loop = engine.InnerLoop(steps=2)
    assert loop.bound_to(engine.parameters_of(model)).adapt_names == (
        "0.bias", "1.weight", "1.bias", "5.weight", "5.bias",
    )  # fmt: skip
    results = _run(model, batch, loop, lr)
    assert torch.equal(results.fast_weights["0.weight"][2], model[0].weight)
    assert not torch.equal(results.fast_weights["5.weight"][2], model[5].weight)


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
        _run(model, batch, engine.InnerLoop(steps=1), lr, chunk_size=0)


def test_model_without_parameters_is_rejected():
    with pytest.raises(ValueError, match="ReLU has no parameters"):
        engine.parameters_of(nn.ReLU())


def test_output_width_must_match_ways():
    model = tiny_conv_net(ways=5)
    with pytest.raises(
        ValueError, match=r"the episodes are 3-way: build the model with out_features=3"
    ):
        _run(model, tiny_batch(), engine.InnerLoop(steps=1), 0.1)


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
        _checked_run(model, bad, loop, 0.01, executor=executor, chunk_size=2)
    # a step size that overflows the weights: the loss is finite at step 0, infinite at step 1
    with pytest.raises(
        engine.InnerLoopDivergence, match=r"at inner step 1 of 3, task 0 of the meta-batch"
    ):
        _checked_run(model, batch, loop, 1e300, executor=executor, chunk_size=2)
    # the learner-level objective runs the same check
    with pytest.raises(engine.InnerLoopDivergence, match=r"at inner step 0 of 3, task 2 of"):
        engine.meta_objective(model, bad, loop, _meta(model, 0.01), executor=executor)


def test_nan_in_the_query_loss_names_the_task():
    model, batch, _, _ = _net_and_batch("mlp")
    query_x = batch.query_x.clone()
    query_x[1, 0, 0] = float("nan")
    bad = EpisodeBatch(batch.support_x, batch.support_y, query_x, batch.query_y)
    loop = engine.InnerLoop(steps=1, task="regression")
    with pytest.raises(engine.InnerLoopDivergence, match="query loss after 1 inner steps, task 1"):
        _checked_run(model, bad, loop, 0.01)
    _run(model, bad, loop, 0.01)  # the executors themselves never read values back


def test_adapt_names_a_diverging_support_step():
    model, batch, _, _ = _net_and_batch("mlp")
    support_x = batch.support_x[0].clone()
    support_x[0, 0] = float("nan")
    loop = engine.InnerLoop(steps=2, task="regression")
    with pytest.raises(engine.InnerLoopDivergence, match=r"at inner step 0 of 2, task 0"):
        engine.adapt(
            model, support_x, batch.support_y[0], loop, _meta(model, 0.01), outer=False, ways=None
        )
