"""BatchNorm policies: plain-ops statistics equal the native op, and the policy is what runs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metazoo import engine
from metazoo.testing import tiny_batch, tiny_conv_net


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_plain_batch_norm_equals_native_in_both_modes():
    torch.manual_seed(0)
    x = torch.randn(5, 3, 4, 4)
    w, b = torch.randn(3), torch.randn(3)
    rm, rv = torch.randn(3), torch.rand(3) + 0.5
    native_train = F.batch_norm(x, None, None, w, b, training=True, eps=1e-5)
    native_eval = F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-5)
    torch.testing.assert_close(
        engine.batch_norm_plain(x, w, b, 1e-5), native_train, rtol=0, atol=1e-12
    )
    torch.testing.assert_close(
        engine.batch_norm_plain(x, w, b, 1e-5, rm, rv), native_eval, rtol=0, atol=1e-12
    )


def test_transductive_policy_uses_batch_statistics_and_leaves_running_buffers_alone():
    torch.manual_seed(0)
    model = tiny_conv_net(track_running_stats=True).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 1, 6, 6) * 3 + 2
    out = engine.predict(model, dict(model.named_parameters()), x, "transductive")
    expected = model.train()(x)  # train mode: batch statistics (and it updates the buffers)
    torch.testing.assert_close(out, expected)
    model.load_state_dict(before)
    engine.predict(model, dict(model.named_parameters()), x, "transductive")
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_running_policy_uses_running_statistics_in_eval_mode():
    torch.manual_seed(0)
    model = tiny_conv_net(track_running_stats=True)
    model[1].running_mean.fill_(0.7)
    model[1].running_var.fill_(2.0)
    model.eval()
    x = torch.randn(4, 1, 6, 6)
    out = engine.predict(model, dict(model.named_parameters()), x, "running")
    torch.testing.assert_close(out, model(x))
    batch_stats = engine.predict(model, dict(model.named_parameters()), x, "transductive")
    assert not torch.allclose(out, batch_stats)


def _meta(model: nn.Module, lr: float) -> engine.MetaParams:
    return engine.MetaParams(engine.parameters_of(model), lr)


def test_running_policy_refuses_vectorized_training_with_a_clear_error():
    model = tiny_conv_net(track_running_stats=True).train()
    loop = engine.InnerLoop(steps=1, bn_policy="running")
    with pytest.raises(RuntimeError, match="use executor='sequential'"):
        engine.run_tasks(model, tiny_batch(), loop, _meta(model, 0.1), executor="vectorized")


def test_running_policy_sequential_training_updates_the_models_buffers():
    model = tiny_conv_net(track_running_stats=True).train()
    loop = engine.InnerLoop(steps=1, bn_policy="running")
    engine.run_tasks(model, tiny_batch(), loop, _meta(model, 0.1), executor="auto")
    assert int(model[1].num_batches_tracked) == 3 * 2  # 3 tasks: one support, one query pass
    assert not torch.equal(model[1].running_mean, torch.zeros(3))


def test_unknown_policy_is_rejected():
    with pytest.raises(ValueError, match="bn_policy must be one of"):
        engine.InnerLoop(steps=1, bn_policy="batch")


def test_the_mode_reroutes_batch_norm_of_any_module():
    calls = []

    class Counting(engine.BatchNormMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is F.batch_norm:
                calls.append(func)
            return super().__torch_function__(func, types, args, kwargs)

    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 2))
    with Counting("transductive"):
        model(torch.randn(5, 4))
    assert len(calls) == 1


def _per_step_overrides(model: nn.Module, steps: int) -> list[dict[str, torch.Tensor]]:
    """Distinct BatchNorm affine weights for inner steps 1.. (step 0 uses the model's own)."""
    g = torch.Generator().manual_seed(1)
    bn = model[1]
    return [{}] + [
        {
            "1.weight": (bn.weight.detach() + 0.2 * torch.randn(3, generator=g)).requires_grad_(),
            "1.bias": (0.2 * torch.randn(3, generator=g)).requires_grad_(),
        }
        for _ in range(1, steps)
    ]


def test_per_step_overrides_agree_between_executors_and_receive_gradients():
    torch.manual_seed(0)
    model, batch = tiny_conv_net(), tiny_batch(tasks=4)
    overrides = _per_step_overrides(model, 3)
    names = [n for n, _ in model.named_parameters() if not n.startswith("1.")]
    loop = engine.InnerLoop(steps=3, bn_policy="per_step", adapt_names=tuple(names))
    meta = engine.MetaParams(engine.parameters_of(model), 0.3, overrides)
    leaves = [*model.parameters(), *(t for o in overrides for t in o.values())]
    grads, losses = [], []
    for executor in ("sequential", "vectorized"):
        results = engine.run_tasks(
            model, batch, loop, meta, every_step=True, executor=executor, chunk_size=3
        )
        losses.append(results.query_losses)
        grads.append(torch.autograd.grad(results.query_losses.mean(), leaves))
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-10, atol=0)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-8, atol=1e-12)
    assert all(float(g.abs().sum()) > 0 for g in grads[0][-4:])  # every override is used
    plain = engine.run_tasks(model, batch, loop, engine.MetaParams(meta.weights, 0.3))
    assert not torch.allclose(plain.query_loss, losses[0][:, -1])
