"""The functional API (adapt_weights): a learn2learn-style loop gives the MAML learner's numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import metazoo
from metazoo.engine.adapt_api import FastModel, adapt_weights
from metazoo.engine.executors import InnerLoopDivergence
from metazoo.testing.gradcheck import tiny_batch, tiny_conv_net


@pytest.fixture
def float64():
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


def _own_loop_gradient(learner, batch, **options) -> list[torch.Tensor]:
    """The meta-gradient of a learn2learn-style loop over the tasks of ``batch``."""
    params = list(learner.parameters())
    total = 0.0
    for t in range(len(batch)):
        sx, sy, qx, qy = batch.task_tensors(t)

        def adaptation_loss(f: FastModel, sx=sx, sy=sy) -> torch.Tensor:
            return F.cross_entropy(f(sx), sy)

        fast = adapt_weights(learner.model, adaptation_loss, **options)
        total = total + F.cross_entropy(fast(qx), qy) / len(batch)
    grads = torch.autograd.grad(total, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _learner_gradient(learner, batch) -> list[torch.Tensor]:
    params = list(learner.parameters())
    grads = torch.autograd.grad(learner.meta_loss(batch)[0], params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _max_difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("running_stats", [False, True])
def test_own_loop_gives_the_maml_meta_gradient(float64, steps, running_stats):
    torch.manual_seed(0)
    model = tiny_conv_net(track_running_stats=running_stats)
    learner = metazoo.create_learner("maml", model, inner_lr=0.3, inner_steps=steps)
    batch = tiny_batch("classification", tasks=1)
    expected = _learner_gradient(learner, batch)
    got = _own_loop_gradient(learner, batch, steps=steps, lr=0.3)
    assert max(float(g.abs().max()) for g in expected) > 1e-3  # a real gradient, not zeros
    assert _max_difference(got, expected) < 1e-10


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("fomaml", {"first_order": True}),
        ("maml", {"optimizer": "adam"}),
        ("anil", {"adapt_names": ["5.weight", "5.bias"]}),
    ],
)
def test_own_loop_matches_the_variants(float64, name, options):
    torch.manual_seed(0)
    config = {"inner_optimizer": "adam"} if options.get("optimizer") == "adam" else {}
    learner = metazoo.create_learner(name, tiny_conv_net(), inner_lr=0.3, inner_steps=2, **config)
    batch = tiny_batch("classification", tasks=2)
    got = _own_loop_gradient(learner, batch, steps=2, lr=0.3, **options)
    assert _max_difference(got, _learner_gradient(learner, batch)) < 1e-10


def test_learned_per_parameter_rates_get_their_gradient(float64):
    torch.manual_seed(0)
    learner = metazoo.create_learner("metasgd", tiny_conv_net(), inner_lr=0.3, inner_steps=2)
    batch = tiny_batch("classification", tasks=1)
    rates = dict(zip(learner.lr_names, learner.inner_lrs))
    got = _own_loop_gradient(learner, batch, steps=2, lr=rates)
    expected = _learner_gradient(learner, batch)
    rate_grads = expected[-len(rates) :]
    assert max(float(g.abs().max()) for g in rate_grads) > 1e-4
    assert _max_difference(got, expected) < 1e-10


def test_model_is_left_as_it_was(float64):
    torch.manual_seed(0)
    model = tiny_conv_net(track_running_stats=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sx, sy, _, _ = tiny_batch("classification", tasks=1).task_tensors(0)
    fast = adapt_weights(model, lambda f: F.cross_entropy(f(sx), sy), steps=2, lr=0.3)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert fast.losses.shape == (2,)
    assert float(fast.losses[1]) < float(fast.losses[0])  # the adaptation loss went down


def test_zero_steps_return_the_parameters():
    model = tiny_conv_net()
    fast = adapt_weights(model, lambda f: f.weights["5.bias"].sum(), steps=0)
    assert all(fast.weights[n] is p for n, p in model.named_parameters())


def test_errors_say_what_to_do():
    model = tiny_conv_net().requires_grad_(False)
    x = torch.randn(4, 1, 6, 6)
    with pytest.raises(ValueError, match=r"no weight can adapt: .* call requires_grad_\(True\)"):
        adapt_weights(model, lambda f: f(x).sum())
    model.requires_grad_(True)
    with pytest.raises(InnerLoopDivergence, match="non-finite adaptation loss .* at inner step 0"):
        adapt_weights(model, lambda f: f(x).sum() * float("nan"))
    with pytest.raises(ValueError, match="inner_optimizer must be one of"):
        adapt_weights(model, lambda f: f(x).sum(), optimizer="rmsprop")
    with torch.no_grad(), pytest.raises(RuntimeError, match=r"wrap the call in torch.enable_grad"):
        adapt_weights(model, lambda f: f(x).sum())


def test_fast_model_is_exported():
    assert metazoo.adapt_weights is adapt_weights
    assert metazoo.FastModel is FastModel


def test_the_docs_higher_loop_and_its_translation_agree(float64):
    """docs/coming-from-learn2learn-or-higher.md: higher's innerloop_ctx and adapt_weights."""
    import higher

    torch.manual_seed(0)
    model = tiny_conv_net(track_running_stats=True)
    batch = tiny_batch("classification", tasks=2)
    inner_opt = torch.optim.SGD(model.parameters(), lr=0.3)
    for task in batch:
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, opt):
            for _ in range(3):
                opt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
            F.cross_entropy(fmodel(task.query_x), task.query_y).backward()
    theirs = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for task in batch:

        def adaptation_loss(f: FastModel, task=task) -> torch.Tensor:
            return F.cross_entropy(f(task.support_x), task.support_y)

        fast = metazoo.adapt_weights(model, adaptation_loss, steps=3, lr=0.3)
        F.cross_entropy(fast(task.query_x), task.query_y).backward()
    ours = [p.grad for p in model.parameters()]
    assert _max_difference(ours, theirs) < 1e-10
