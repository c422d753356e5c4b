"""Automatic executor choice and the memory bound of chunked vectorization."""

from __future__ import annotations

import functools

import pytest

from metazoo.engine import InnerLoop
from metazoo.engine.autoselect import ExecutorPlan, chunk_size, plan_executor, saved_tensor_bytes
from metazoo.engine.fast import _one_task_loss
from metazoo.perf.shapes import SHAPES, make_model, synthetic_batches

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
def omniglot_task():
    shape = SHAPES["omniglot-5w1s"].scaled(1)
    return shape, make_model(shape), synthetic_batches(shape, 1)[0]


def test_saved_tensor_bytes_sees_the_activations_and_the_second_order_graph(omniglot_task):
    shape, model, batch = omniglot_task
    second = saved_tensor_bytes(
        functools.partial(_one_task_loss, model, batch, InnerLoop(steps=1, ways=5), 0.4), 1.0
    )
    first = saved_tensor_bytes(
        functools.partial(
            _one_task_loss, model, batch, InnerLoop(steps=1, ways=5, first_order=True), 0.4
        ),
        1.0,
    )
    # the first conv's output for the 75 query images is saved for backward: 75*64*28*28 floats
    query_activation = 75 * 64 * 28 * 28 * 4
    assert second > first > query_activation
    assert second < 50 * query_activation  # the estimate is the size of a few activations, not more


def test_paper_settings_fit_a_24_gb_card(omniglot_task):
    """Omniglot 5-way 1-shot at meta-batch 32 with the measured per-task need on a 24 GB card."""
    shape, model, batch = omniglot_task
    per_task = saved_tensor_bytes(
        functools.partial(_one_task_loss, model, batch, InnerLoop(steps=1, ways=5), 0.4)
    )
    plan = plan_executor(32, "cuda", task_bytes=per_task, free_bytes=22 * GIB)
    assert plan.executor == "vectorized"
    assert plan.chunk * per_task <= 11 * GIB
