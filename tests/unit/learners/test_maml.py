"""MAML and first-order MAML: meta-gradients vs finite differences and ``higher``; the contract."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import metazoo
from metazoo import engine
from metazoo.learners.maml import MAML
from metazoo.testing import check_learner, check_meta_gradient, tiny_batch, tiny_conv_net, tiny_mlp


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run many times faster on one thread when the CI cores are shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _setup(kind: str, steps: int, executor: str = "sequential", **config):
    torch.manual_seed(0)
    if kind == "conv":
        model, batch, lr = tiny_conv_net(), tiny_batch("classification"), 0.3
        config.setdefault("task", "classification")
    else:
        model, batch, lr = tiny_mlp(), tiny_batch("regression"), 0.02
        config.setdefault("task", "regression")
    learner = metazoo.create_learner(
        "maml", model, inner_lr=lr, inner_steps=steps, executor=executor, **config
    )
    return learner, batch


def _grads(learner, batch):
    learner.zero_grad()
    learner.meta_loss(batch)[0].backward()
    return torch.cat([p.grad.flatten() for p in learner.parameters()])


@pytest.mark.parametrize("kind", ["conv", "mlp"])
@pytest.mark.parametrize("steps", [1, 3])
def test_meta_gradient_matches_finite_differences(float64, kind, steps):
    learner, batch = _setup(kind, steps)
    report = check_meta_gradient(learner, batch)
    assert report.max_error < 1e-6, report


@pytest.mark.parametrize("kind", ["conv", "mlp"])
@pytest.mark.parametrize("steps", [1, 3])
def test_vectorized_equals_sequential(float64, kind, steps):
    seq, batch = _setup(kind, steps, "sequential")
    vec, _ = _setup(kind, steps, "vectorized", chunk_size=2)
    g_seq, g_vec = _grads(seq, batch), _grads(vec, batch)
    assert float((g_seq - g_vec).norm() / g_seq.norm()) < 1e-8


@pytest.mark.parametrize("steps", [1, 3])
def test_meta_gradient_equals_higher(float64, steps):
    learner, batch = _setup("conv", steps)
    ours = _grads(learner, batch)
    model = learner.model
    model.zero_grad()
    inner = torch.optim.SGD(model.parameters(), lr=learner.config.inner_lr)
    higher = pytest.importorskip("higher")  # the oracle extra
    total = 0.0
    for task in batch:
        with higher.innerloop_ctx(model, inner, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(steps):
                diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
            total = total + F.cross_entropy(fmodel(task.query_x), task.query_y)
    (total / len(batch)).backward()
    oracle = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert float((ours - oracle).norm() / oracle.norm()) < 1e-10


@pytest.mark.parametrize("kind", ["conv", "mlp"])
@pytest.mark.parametrize("steps", [1, 3])
def test_fomaml_gradient_is_the_query_gradient_at_the_adapted_weights(float64, kind, steps):
    learner, batch = _setup(kind, steps, first_order=True)
    ours = _grads(learner, batch)
    model, cfg = learner.model, learner.config
    expected = torch.zeros_like(ours)
    for task in batch:
        fast = learner.adapt(task.support_x, task.support_y, task.ways)
        fast = {n: w.detach().requires_grad_() for n, w in fast.items()}
        out = engine.predict(model, fast, task.query_x)
        loss = engine.task_loss(out, task.query_y, cfg.task)
        grads = torch.autograd.grad(loss, list(fast.values()))
        expected += torch.cat([g.flatten() for g in grads]) / len(batch)
    assert float((ours - expected).norm() / expected.norm()) < 1e-10
    second_order, _ = _setup(kind, steps)
    assert float((_grads(second_order, batch) - ours).norm() / ours.norm()) > 1e-3


def test_fomaml_is_registered_as_first_order():
    learner = metazoo.create_learner("fomaml", tiny_conv_net())
    assert learner.config.first_order is True
    assert metazoo.create_learner("maml", tiny_conv_net()).config.first_order is False


def test_the_family_is_one_class_with_registered_settings():
    """Each variant is MAML with the settings that name it; none keeps the removed methods."""
    expected = {
        "maml": {"first_order": False, "adapt": "all", "learned_lrs": "none"},
        "fomaml": {"first_order": True},
        "anil": {"adapt": "head"},
        "metasgd": {"learned_lrs": "per_parameter"},
        "mamlpp": {
            "inner_steps": 5, "bn_policy": "per_step", "learned_lrs": "per_step",
            "multi_step_loss": True, "per_step_bn_weights": True,
        },
    }  # fmt: skip
    for name, settings in expected.items():
        learner = metazoo.create_learner(name, tiny_conv_net())
        assert type(learner) is MAML, name
        assert {k: getattr(learner.config, k) for k in settings} == settings, name
        for gone in ("meta_backward", "learning_rates", "overrides", "training_step"):
            assert not hasattr(learner, gone), (name, gone)


def test_bad_choices_name_the_valid_ones():
    with pytest.raises(ValueError, match="learned_lrs must be one of .* got 'per_layer'"):
        metazoo.create_learner("maml", tiny_conv_net(), learned_lrs="per_layer")
    with pytest.raises(ValueError, match="executor must be one of .* got 'parallel'"):
        metazoo.create_learner("maml", tiny_conv_net(), executor="parallel")
    with pytest.raises(ValueError, match="inner_optimizer must be one of .* got 'rmsprop'"):
        metazoo.create_learner("maml", tiny_conv_net(), inner_optimizer="rmsprop")


def test_eval_mode_uses_test_steps_and_builds_no_graph(float64):
    learner, batch = _setup("conv", 1, test_inner_steps=4)
    task = batch.task(0)
    learner.eval()
    state = learner.adapt(task.support_x, task.support_y, task.ways)
    assert all(not w.requires_grad for w in state.values())
    meta = engine.MetaParams(engine.parameters_of(learner.model), 0.3)
    expected = engine.adapt(
        learner.model, task.support_x, task.support_y, engine.InnerLoop(steps=4), meta,
        outer=True, ways=task.ways,
    )  # fmt: skip
    for name, value in state.items():
        torch.testing.assert_close(value, expected[name].detach())
    with torch.no_grad():
        loss, metrics = learner.meta_loss(batch)
    assert loss.grad_fn is None and 0.0 <= metrics["accuracy"] <= 100.0


def test_adam_inner_optimizer_gradient_matches_finite_differences(float64):
    learner, batch = _setup("conv", 2, inner_optimizer="adam")
    learner.config.inner_lr = 0.02
    assert check_meta_gradient(learner, batch).max_error < 1e-6


def test_bad_input_errors():
    with pytest.raises(ValueError, match="inner_steps must be a non-negative integer, got -2"):
        metazoo.create_learner("maml", tiny_conv_net(), inner_steps=-2)
    with pytest.raises(ValueError, match="Identity has no parameters"):
        metazoo.create_learner("maml", torch.nn.Identity())
    with pytest.raises(ValueError, match="pass a model"):
        metazoo.create_learner("maml", None)
    learner = metazoo.create_learner("maml", tiny_conv_net(ways=4))
    with pytest.raises(
        ValueError, match="the episodes are 3-way: build the model with out_features=3"
    ):
        learner.meta_loss(tiny_batch())
    with pytest.raises(ValueError, match="configured for classification but got regression"):
        metazoo.create_learner("maml", tiny_mlp()).meta_loss(tiny_batch("regression"))


@pytest.mark.parametrize("name", ["maml", "fomaml"])
def test_contract(name):
    check_learner(name)


@pytest.mark.learning
def test_maml_learns_sinusoid_regression():
    """A short meta-training run lowers the 5-shot post-adaptation MSE on held-out tasks."""
    torch.manual_seed(0)
    learner = metazoo.build_learner("maml", "sinusoid", inner_lr=0.01, inner_steps=1)
    train = metazoo.make_sampler("sinusoid", "train", seed=0)
    test = metazoo.make_sampler("sinusoid", "test", seed=0).episodes(range(100))

    def test_mse() -> float:
        learner.train()
        return learner.meta_loss(test)[1]["mse"]

    before = test_mse()
    optimizer = torch.optim.Adam(learner.parameters(), lr=3e-3)
    for step in range(500):
        optimizer.zero_grad()
        learner.meta_loss(train.batch(step, 25))[0].backward()
        optimizer.step()
    after = test_mse()
    assert after < 0.5 * before, (before, after)
