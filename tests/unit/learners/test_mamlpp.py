"""MAML++: meta-gradient vs finite differences with every option on; schedules read the step."""

from __future__ import annotations

import pytest
import torch

from metazoo import engine
from metazoo.learners.maml import multi_step_loss_weights
from metazoo.testing import check_meta_gradient, tiny_learner

pytestmark = pytest.mark.usefixtures("float64_one_thread")


def _at_step(step: int | None):
    """The meta-objective at training ``step`` (the schedules read it)."""

    def objective(learner, batch):
        return learner.meta_loss(batch, step=step)[0]

    return objective


def _gradient(learner, batch, step: int | None) -> torch.Tensor:
    params = [p for p in learner.parameters() if p.requires_grad]
    grads = torch.autograd.grad(learner.meta_loss(batch, step=step)[0], params, allow_unused=True)
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)]
    )


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("kind", ["conv", "mlp"])
@pytest.mark.parametrize("steps", [1, 3])
def test_meta_gradient_matches_finite_differences(kind, steps):
    learner, batch = tiny_learner("mamlpp", kind, steps, msl_anneal_steps=10)
    with torch.no_grad():  # distinct per-step rates and BN weights, so a mix-up would show
        for lr in learner.inner_lrs:
            lr.mul_(torch.linspace(0.8, 1.2, lr.numel()))
        for bn in learner.step_bn:
            bn.add_(0.1 * torch.randn(bn.shape))
    assert learner.step_weights(3) is not None or steps == 1  # the multi-step loss is on
    report = check_meta_gradient(learner, batch, objective=_at_step(3))
    assert report.max_error < 1e-6, report
    if kind == "conv" and steps == 3:
        assert {"inner_lrs.0", "step_bn.0", "step_bn.1"} <= set(report.names)


def test_multi_step_loss_weights_follow_the_reference_schedule():
    torch.testing.assert_close(
        multi_step_loss_weights(5, 0.0), torch.full((5,), 0.2, dtype=torch.float64)
    )
    half = multi_step_loss_weights(5, 0.5)
    torch.testing.assert_close(half, torch.tensor([0.1, 0.1, 0.1, 0.1, 0.6], dtype=torch.float64))
    end = multi_step_loss_weights(5, 1.0)
    torch.testing.assert_close(
        end, torch.tensor([0.006] * 4 + [1 - 4 * 0.006], dtype=torch.float64)
    )


def test_multi_step_weights_follow_the_step_argument():
    learner, _ = tiny_learner("mamlpp", "conv", 3, msl_anneal_steps=4)
    for step in (0, 2, 1, 3):  # any order: nothing is counted
        torch.testing.assert_close(learner.step_weights(step), multi_step_loss_weights(3, step / 4))
    assert learner.step_weights(4) is None and learner.step_weights(100) is None  # annealed
    assert learner.step_weights(None) is None  # the end of the schedule
    learner.eval()
    assert learner.step_weights(0) is None  # evaluation: the final-step loss
    off, _ = tiny_learner("mamlpp", "conv", 3, multi_step_loss=False)
    assert off.step_weights(0) is None


def _reference_meta_params(learner) -> engine.MetaParams:
    """MAML++'s tensors in the engine's form, built from the learner's parameters by hand."""
    weights = engine.parameters_of(learner.model)
    rates = dict(zip(learner.lr_names, learner.inner_lrs, strict=True))
    lr = [{n: r[s] for n, r in rates.items()} for s in range(3)]
    bn = dict(zip(learner.bn_names, learner.step_bn, strict=True))
    overrides = [{}] + [{n: b[s - 1] for n, b in bn.items()} for s in (1, 2)]
    return engine.MetaParams(weights, lr, overrides)


def test_the_loss_is_the_weighted_sum_of_per_step_query_losses():
    learner, batch = tiny_learner("mamlpp", "conv", 3, msl_anneal_steps=4)
    loss, _ = learner.meta_loss(batch, step=2)
    loop = engine.InnerLoop(steps=3, bn_policy="per_step", adapt_names=learner.adapt_names)
    results = engine.run_tasks(
        learner.model, batch, loop, _reference_meta_params(learner), every_step=True
    )
    assert results.query_losses.shape == (3, 3)
    expected = (results.query_losses.mean(0) * multi_step_loss_weights(3, 0.5)).sum()
    torch.testing.assert_close(loss, expected)
    final = results.query_loss.mean()  # annealed, or past the schedule: the final-step loss only
    torch.testing.assert_close(learner.meta_loss(batch, step=4)[0], final)
    torch.testing.assert_close(learner.meta_loss(batch)[0], final)


def test_meta_loss_is_pure():
    """Calling ``meta_loss`` twice at the same step gives the same loss and changes no state (the
    old MAML++ counted its own calls in a ``training_step`` buffer)."""
    learner, batch = tiny_learner("mamlpp", "conv", 3, msl_anneal_steps=4)
    state = {k: v.clone() for k, v in learner.state_dict().items()}
    assert not any("training_step" in k for k in state)
    first, metrics = learner.meta_loss(batch, step=1)
    second, again = learner.meta_loss(batch, step=1)
    assert torch.equal(first, second) and metrics == again
    for key, value in learner.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert not torch.equal(first, learner.meta_loss(batch, step=3)[0])  # other weights


def test_learned_rates_are_one_scalar_per_tensor_and_step():
    learner, _ = tiny_learner("mamlpp", "conv", 3)
    assert learner.lr_names == ("0.weight", "0.bias", "5.weight", "5.bias")  # BN is per-step
    assert all(r.shape == (3,) and torch.all(r == 0.3) for r in learner.inner_lrs)
    lr = learner.meta_params().lr
    assert len(lr) == 3 and set(lr[2]) == set(learner.lr_names)
    with torch.no_grad():
        learner.inner_lrs[2][1] = 0.7
    assert float(learner.meta_params().lr[1]["5.weight"].detach()) == 0.7


def test_derivative_order_annealing_switches_to_second_order():
    learner, batch = tiny_learner("mamlpp", "conv", 3, first_order_steps=2, multi_step_loss=False)
    first, _ = tiny_learner("mamlpp", "conv", 3, first_order=True, multi_step_loss=False)
    assert [learner.inner_loop(True, s).first_order for s in (0, 1, 2, None)] == [
        True, True, False, False,
    ]  # fmt: skip
    assert learner.inner_loop(False, 0).first_order is False  # evaluation has no outer graph
    expected = _gradient(first, batch, None)
    torch.testing.assert_close(_gradient(learner, batch, 0), expected)
    torch.testing.assert_close(_gradient(learner, batch, 1), expected)
    second = _gradient(learner, batch, 2)
    assert _rel(expected, second) > 1e-3
    torch.testing.assert_close(_gradient(learner, batch, None), second)


def test_batch_norm_weights_are_per_step_and_not_adapted():
    learner, batch = tiny_learner("mamlpp", "conv", 3)
    assert learner.bn_names == ("1.weight", "1.bias")
    assert "1.weight" not in learner.adapt_names
    assert learner.step_bn[0].shape == (2, 3)
    torch.testing.assert_close(learner.step_bn[0][1], learner.model[1].weight.detach())
    state = {k: v.clone() for k, v in learner.state_dict().items()}
    task = batch.task(0)
    learner.eval()
    fast = learner.adapt(task.support_x, task.support_y, task.ways)
    torch.testing.assert_close(fast["1.weight"], learner.step_bn[0][1].detach())
    assert all(not w.requires_grad for w in fast.values())
    for key, value in learner.state_dict().items():
        assert torch.equal(value, state[key]), key
    one_step, _ = tiny_learner("mamlpp", "conv", 1)  # one step: nothing to vary per step
    assert one_step.bn_names == () and len(one_step.step_bn) == 0
