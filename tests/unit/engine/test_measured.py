"""executor='auto' by measurement (metazoo.engine.measured): the fastest candidate, cached, and
never a change to what is computed."""

from __future__ import annotations

import json

import pytest
import torch

from metazoo import create_learner
from metazoo.engine import measured, task_scores
from metazoo.engine.fast import FastMetaStep, FastOptions
from metazoo.engine.measured import candidates, choice_key, choices_made, choices_mark
from metazoo.testing import tiny_batch, tiny_conv_net

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    """Each test measures anew, with its own disk cache."""
    monkeypatch.setenv("METAZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(measured, "_MEMORY", {})
    return tmp_path / "cache" / measured.CACHE_FOLDER


@pytest.fixture
def fixed_times(monkeypatch):
    """Runs take the seconds given per candidate, not the clock's."""
    seconds = {"sequential": 0.030, "vectorized/4": 0.010, "vectorized/2": 0.020}
    calls = []

    def timed(run, candidate, device):
        calls.append(measured.label(candidate))
        return seconds[measured.label(candidate)], run(*candidate)

    monkeypatch.setattr(measured, "_timed", timed)
    return calls


def test_candidates_are_sequential_then_vectorized_whole_and_halved():
    assert candidates(25) == [("sequential", None), ("vectorized", 25), ("vectorized", 13)]
    assert candidates(8, chunk=3) == [("sequential", None), ("vectorized", 3), ("vectorized", 2)]
    assert candidates(3) == [("sequential", None), ("vectorized", 3), ("vectorized", 2)]
    assert candidates(2) == [("sequential", None), ("vectorized", 2)]
    assert candidates(1) == [("sequential", None)]
    assert candidates(25, vectorizable=False) == [("sequential", None)]


def test_the_fastest_is_chosen_recorded_and_cached_on_disk(fixed_times, fresh_cache):
    key = choice_key("train", CPU, torch.float32, shapes=(4, 5))
    mark = choices_mark()
    choice, output = measured.choose_executor(
        key, "train", candidates(4), lambda e, c: f"{e}/{c}", CPU
    )
    assert (choice.executor, choice.chunk, choice.cached) == ("vectorized", 4, False)
    assert choice.timings_ms == {"sequential": 30.0, "vectorized/4": 10.0, "vectorized/2": 20.0}
    assert output == "vectorized/4"  # the chosen candidate's own result, no run repeated
    # a warm-up and two timed runs each: none is more than twice as slow as the best before it
    assert fixed_times == ["sequential"] * 3 + ["vectorized/4"] * 3 + ["vectorized/2"] * 3
    assert json.loads((fresh_cache / f"{key}.json").read_text())["executor"] == "vectorized"
    assert [c.key for c in choices_made(mark)] == [key]

    measured._MEMORY.clear()  # a new process: the disk answers, nothing is timed
    again, output = measured.choose_executor(key, "train", candidates(4), None, CPU)
    assert (again.executor, again.chunk, again.cached, output) == ("vectorized", 4, True, None)
    assert len(fixed_times) == 9


def test_a_slow_candidate_is_given_up_after_one_timed_run_with_its_smaller_chunks(monkeypatch):
    seconds = {"sequential": 0.010, "vectorized/4": 0.050, "vectorized/2": 0.009}
    calls = []

    def timed(run, candidate, device):
        calls.append(measured.label(candidate))
        return seconds[measured.label(candidate)], None

    monkeypatch.setattr(measured, "_timed", timed)
    key = choice_key("eval", CPU, torch.float32, shapes=(4,))
    choice, _ = measured.choose_executor(key, "eval", candidates(4), None, CPU)
    assert calls == ["sequential"] * 3 + ["vectorized/4"] * 2  # a warm-up, one timed run
    assert (choice.executor, choice.chunk) == ("sequential", None)
    assert choice.timings_ms == {"sequential": 10.0, "vectorized/4": 50.0}


def test_random_numbers_consumed_while_measuring_are_restored():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    key = choice_key("eval", CPU, torch.float32, shapes=("rng",))
    choice, output = measured.choose_executor(
        key, "eval", candidates(4), lambda e, c: torch.rand(2), CPU
    )
    assert output is None  # runs that draw random numbers are not a forced run's: run again
    assert torch.equal(torch.rand(4), expected)


def test_the_key_names_shapes_dtype_and_threads():
    base = choice_key("train", CPU, torch.float32, batch=[(25, 10, 1)])
    assert base == choice_key("train", CPU, torch.float32, batch=[(25, 10, 1)])
    assert base != choice_key("train", CPU, torch.float64, batch=[(25, 10, 1)])
    assert base != choice_key("train", CPU, torch.float32, batch=[(8, 10, 1)])
    assert base != choice_key("eval", CPU, torch.float32, batch=[(25, 10, 1)])
    previous = torch.get_num_threads()
    torch.set_num_threads(previous + 1)
    try:
        assert base != choice_key("train", CPU, torch.float32, batch=[(25, 10, 1)])
    finally:
        torch.set_num_threads(previous)


def _trained(executor: str, chunk: int | None, steps: int = 3):
    torch.manual_seed(0)
    model = tiny_conv_net().double()
    learner = create_learner("maml", model, inner_lr=0.1, executor=executor, chunk_size=chunk)
    batch = tiny_batch("classification", tasks=4, seed=1).float_as(torch.float64)
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-2)
    fast = FastMetaStep(learner, optimizer, batch, FastOptions(executor=executor, chunk=chunk))
    losses = [float(fast(batch, i)) for i in range(steps)]
    return learner, fast.plan, losses, torch.rand(3)


@pytest.mark.parametrize("order", [0, 1, 2])
def test_a_run_with_auto_equals_a_run_forced_to_its_choice(monkeypatch, order):
    """Whichever candidate wins (each in turn), training with ``auto`` gives the forced run's
    weights, losses and random numbers, bit for bit."""
    winner = measured.label(candidates(4)[order])
    monkeypatch.setattr(
        measured,
        "_timed",
        lambda run, c, device: (0.001 if measured.label(c) == winner else 0.003, run(*c)),
    )
    auto, plan, auto_losses, auto_rng = _trained("auto", None)
    assert measured.label((plan.executor, plan.chunk)) == winner
    forced, _, forced_losses, forced_rng = _trained(plan.executor, plan.chunk)
    assert auto_losses == forced_losses
    for a, b in zip(auto.parameters(), forced.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(auto_rng, forced_rng)


def test_evaluation_with_auto_scores_like_the_forced_choice(fixed_times):
    torch.manual_seed(0)
    model = tiny_conv_net().double()
    learner = create_learner("maml", model, inner_lr=0.1).eval()
    batch = tiny_batch("classification", tasks=4, seed=2).float_as(torch.float64)
    loop, meta = learner.inner_loop(False), learner.meta_params()
    mark = choices_mark()
    auto = task_scores(model, batch, loop, meta, executor="auto")
    (choice,) = choices_made(mark)
    assert (choice.purpose, choice.executor, choice.chunk) == ("eval", "vectorized", 4)
    forced = task_scores(model, batch, loop, meta, executor="vectorized", chunk_size=4)
    assert torch.equal(auto, forced)
