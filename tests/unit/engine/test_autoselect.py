"""Automatic executor choice and the memory bound of chunked vectorization."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import Tensor, nn

from metazoo.bench.speed import synthetic_episodes
from metazoo.engine import InnerLoop, MetaParams, parameters_of, run_tasks
from metazoo.engine.autoselect import ExecutorPlan, chunk_size, plan_executor, saved_tensor_bytes
from metazoo.engine.fast import FastMetaStep
from metazoo.episode import EpisodeBatch
from metazoo.learners.maml import MAML
from metazoo.models import make_backbone

GIB = 2**30


def test_cpu_never_vectorizes_whatever_the_batch():
    for tasks in (1, 4, 32, 1000):
        plan = plan_executor(tasks, "cpu", task_bytes=1, free_bytes=10 * GIB)
        assert plan == ExecutorPlan(
            "sequential", None, "cpu: vmap measured 4.5x slower than the task loop"
        )


def test_small_meta_batches_stay_sequential_on_cuda():
    plan = plan_executor(2, "cuda", task_bytes=1, free_bytes=GIB)
    assert (plan.executor, plan.chunk) == ("sequential", None)
    assert plan.reason == "meta-batch 2 < 4: the loop is faster"
    assert plan_executor(4, "cuda", task_bytes=1, free_bytes=GIB).executor == "vectorized"


def test_chunks_are_equal_and_fit_the_budget():
    # 32 tasks of 1 GiB with 12 GiB to spend: three chunks of 11, 11, 10 rather than 12, 12, 8
    assert chunk_size(32, GIB, 12 * GIB) == 11
    assert chunk_size(32, GIB, 100 * GIB) == 32
    assert chunk_size(32, GIB, GIB) == 1
    plan = plan_executor(32, "cuda", task_bytes=GIB, free_bytes=24 * GIB)
    assert (plan.executor, plan.chunk) == ("vectorized", 11)
    assert plan.reason.startswith("cuda: 3 chunk(s) of <= 11 tasks fit 50% of 24.0 GiB free")


def test_a_task_bigger_than_the_budget_falls_back_to_the_loop():
    plan = plan_executor(8, "cuda", task_bytes=3 * GIB, free_bytes=4 * GIB)
    assert plan.executor == "sequential"
    assert "more than the 2048 MiB budget" in plan.reason


def test_chunk_size_rejects_nonsense():
    with pytest.raises(ValueError, match="need tasks >= 1 and task_bytes > 0, got 0 and 5"):
        chunk_size(0, 5, 10)


@pytest.fixture(scope="module")
def omniglot_task() -> tuple[nn.Module, EpisodeBatch]:
    """The Conv-4 classifier and one Omniglot-shaped 5-way 1-shot task (15 queries per class)."""
    torch.manual_seed(0)
    model = make_backbone("conv4", (1, 28, 28), out_features=5, hidden=64)
    return model, synthetic_episodes(5, 1, 15, (1, 28, 28), 1, 1)[0]


def _one_task_loss(model: nn.Module, batch: EpisodeBatch, loop: InnerLoop) -> Tensor:
    """The meta-objective of one task as one graph, by the public executor entry point."""
    meta = MetaParams(parameters_of(model), 0.4)
    return run_tasks(model, batch, loop, meta, executor="sequential").query_loss.sum()


def test_saved_tensor_bytes_sees_the_activations_and_the_second_order_graph(omniglot_task):
    model, batch = omniglot_task
    second = saved_tensor_bytes(
        functools.partial(_one_task_loss, model, batch, InnerLoop(steps=1)), 1.0
    )
    first = saved_tensor_bytes(
        functools.partial(_one_task_loss, model, batch, InnerLoop(steps=1, first_order=True)), 1.0
    )
    # the first conv's output for the 75 query images is saved for backward: 75*64*28*28 floats
    query_activation = 75 * 64 * 28 * 28 * 4
    assert second > first > query_activation
    assert second < 50 * query_activation  # the estimate is the size of a few activations, not more


def test_paper_settings_fit_a_24_gb_card(omniglot_task):
    """Omniglot 5-way 1-shot at meta-batch 32 with the measured per-task need on a 24 GB card."""
    model, batch = omniglot_task
    per_task = saved_tensor_bytes(functools.partial(_one_task_loss, model, batch, InnerLoop(1)))
    plan = plan_executor(32, "cuda", task_bytes=per_task, free_bytes=22 * GIB)
    assert plan.executor == "vectorized"
    assert plan.chunk * per_task <= 11 * GIB


def test_fast_step_plans_by_measurement_after_its_first_call(omniglot_task):
    model, batch = omniglot_task
    learner = MAML(model, MAML.Config(inner_lr=0.4, inner_steps=1))
    fast = FastMetaStep(learner, torch.optim.SGD(learner.parameters(), lr=0.0), batch)
    assert not hasattr(fast, "plan")  # built on first use: a schedule phase may change the loop
    fast.meta_gradient(batch)
    # auto times the executors on this shape (or reads that choice from the cache): which one
    # wins is test_measured's subject, that the plan says it was measured is this one's
    assert fast.plan.executor in ("sequential", "vectorized")
    assert fast.plan.reason.startswith("measured: ")
