"""The plain step by default (issue 25): a MAML-family step on a CPU builds no graph object, its
meta-gradient is a hand-written task loop's, the fast step is opted into through one
``TrainConfig.fast``, and neither the engine nor the trainer imports the experimental package."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metazoo
from metazoo.engine import autoselect, cudagraph, fast, plain
from metazoo.engine.fast import FastOptions
from metazoo.runs.settings import check_block
from metazoo.testing import SyntheticBenchmark
from metazoo.testing.gradcheck import tiny_batch, tiny_conv_net
from metazoo.training import TrainConfig, train
from metazoo.training.step import build_train_step

BENCH = SyntheticBenchmark(features=8, ways=3)


@pytest.fixture
def no_graph_objects(monkeypatch):
    """Every graph object and memory rule of the fast step, replaced by one that refuses."""

    def refuse(name):
        def call(*args, **kwargs):
            raise AssertionError(f"{name} was called")

        return call

    monkeypatch.setattr(fast.FastMetaStep, "__init__", refuse("FastMetaStep"))
    monkeypatch.setattr(cudagraph.GraphedMetaStep, "__init__", refuse("GraphedMetaStep"))
    monkeypatch.setattr(cudagraph, "static_copy", refuse("static_copy"))
    for module in (autoselect, plain):
        for name in ("plan_executor", "saved_tensor_bytes", "free_memory_bytes"):
            monkeypatch.setattr(module, name, refuse(name))


def _maml(name: str, **config) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    return metazoo.create_learner(name, model, inner_lr=0.3, inner_steps=2, **config)


@pytest.mark.parametrize(
    ("name", "executor"), [("maml", "sequential"), ("mamlpp", "vectorized"), ("metasgd", "auto")]
)
def test_a_maml_family_cpu_step_builds_no_graph_object(no_graph_objects, name, executor):
    learner = _maml(name, executor=executor)
    weights = (learner.model[0].weight, learner.model[3].weight)
    before = [w.detach().clone() for w in weights]
    result = train(learner, BENCH, TrainConfig(steps=3, val_every=0, log_every=1), quiet=True)
    assert result.final_step == 3 and len(result.history) == 3
    assert all(not torch.equal(a, b) for a, b in zip(before, weights))  # trained
    with pytest.raises(AssertionError, match="^FastMetaStep was called$"):  # the spy works
        train(_maml(name), BENCH, TrainConfig(steps=1, val_every=0, fast=True), quiet=True)


def _task_loop(model: nn.Module, batch, lr: float, steps: int, first_order: bool):
    """The meta-gradient and mean query loss of MAML written out: per task, ``steps`` SGD steps
    by ``torch.autograd.grad`` (``create_graph`` unless first order), the query loss; the mean."""
    params = dict(model.named_parameters())
    total = 0.0
    for t in range(len(batch)):
        support_x, support_y, query_x, query_y = batch.task_tensors(t)
        weights = dict(params)
        for _ in range(steps):
            logits = torch.func.functional_call(model, weights, (support_x,))
            grads = torch.autograd.grad(
                F.cross_entropy(logits, support_y), list(weights.values()),
                create_graph=not first_order,
            )  # fmt: skip
            weights = {n: w - lr * g for (n, w), g in zip(weights.items(), grads)}
        logits = torch.func.functional_call(model, weights, (query_x,))
        total = total + F.cross_entropy(logits, query_y)
    loss = total / len(batch)
    return torch.autograd.grad(loss, list(params.values())), float(loss.detach())


def _no_failure(batch, loss):
    return AssertionError(f"non-finite loss {loss}")


@pytest.mark.parametrize("name", ["maml", "fomaml"])
@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
def test_the_plain_step_gives_a_task_loops_meta_gradient(no_graph_objects, name, executor):
    torch.manual_seed(0)
    model = tiny_conv_net().double()
    learner = metazoo.create_learner(name, model, inner_lr=0.3, inner_steps=2, executor=executor)
    batch = tiny_batch("classification", tasks=3).float_as(torch.float64)
    frozen = torch.optim.SGD(learner.parameters(), lr=0.0)  # the step leaves .grad
    step = build_train_step(learner, frozen, batch, TrainConfig(), len(batch), _no_failure)
    metrics = step(batch, 0)
    expected, loss = _task_loop(model, batch, 0.3, 2, first_order=name == "fomaml")
    assert float(metrics["loss"]) == pytest.approx(loss, rel=1e-12)
    assert max(float(g.abs().max()) for g in expected) > 1e-3  # a real gradient, not zeros
    for param, want in zip(model.parameters(), expected):
        torch.testing.assert_close(param.grad, want, rtol=1e-10, atol=1e-12)


def test_the_fast_step_has_one_home_for_its_options():
    assert TrainConfig().fast is None and TrainConfig(fast=False).fast is None
    assert TrainConfig(fast=True).fast == FastOptions()
    assert TrainConfig(fast={"compile": True}).fast == FastOptions(compile=True)
    with pytest.raises(ValueError, match=r"^TrainConfig.fast: unknown option\(s\) \['jit'\]"):
        TrainConfig(fast={"jit": True})
    with pytest.raises(ValueError, match=r"sets \['executor'\], which the trainer fills: set exe"):
        TrainConfig(fast=FastOptions(executor="vectorized"))
    with pytest.raises(ValueError, match="^batched_weight_gradients=True needs compile=True$"):
        TrainConfig(fast={"batched_weight_gradients": True})
    with pytest.raises(ValueError, match="^matmul_convolutions=True needs batched_weight_grad"):
        TrainConfig(fast={"compile": True, "matmul_convolutions": True})


def test_former_fast_step_fields_still_resolve_and_say_the_new_spelling():
    with pytest.warns(FutureWarning, match="is an option of the opt-in fast step") as caught:
        run = metazoo.resolve_run("maml", "sinusoid", overrides=["fast_step=true", "compile=true"])
    assert [str(w.message).split("'")[1] for w in caught] == ["fast_step", "compile"]
    assert str(caught[1].message).endswith(
        "write fast={compile: true} (Python: TrainConfig(fast=FastOptions(compile=True)))"
    )
    assert run.train_config().fast == FastOptions(compile=True)
    run = metazoo.resolve_run("maml", "sinusoid", overrides=["fast={cudnn_benchmark: true}"])
    assert run.train_config().fast == FastOptions(cudnn_benchmark=True)
    with pytest.warns(FutureWarning, match=r"^suite.yaml.train: training setting 'fast_step' is"):
        block = check_block({"train": {"fast_step": True, "lr": 0.01}}, "suite.yaml")
    assert block["train"] == {"lr": 0.01, "fast": {}}
    with pytest.warns(FutureWarning, match="write fast=true"):
        assert check_block({"train": {"fast_step": False}}, "x")["train"] == {}


def test_the_engine_and_the_trainer_import_no_experimental_module():
    code = """
import importlib, pkgutil, sys
import metazoo.engine as engine, metazoo.training
for module in pkgutil.iter_modules(engine.__path__, "metazoo.engine."):
    importlib.import_module(module.name)
print(sorted(m for m in sys.modules if m.startswith("metazoo.experimental")))
from metazoo.engine.fast import FastOptions
try:
    FastOptions(compile=True, batched_weight_gradients=True)
except ValueError as error:
    print(error)
metazoo.training.TrainConfig(fast={"compile": True, "batched_weight_gradients": True})
print("metazoo.experimental.taskconv" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imported, refused, opted_in = done.stdout.strip().splitlines()
    assert imported == "[]"
    assert refused.startswith("the per-task convolution lowerings (batched_weight_gradients, ")
    assert refused.endswith(
        "are experimental: `import metazoo.experimental.taskconv` first "
        "(`import metazoo.experimental.lowerings` for matmul and triton)"
    )
    assert opted_in == "True"  # TrainConfig imports them when its options ask for them
