"""evaluate() scores the MAML family a block of episodes at a time: the same per-episode numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metazoo import create_learner
from metazoo.evaluation import evaluate
from metazoo.evaluation.harness import EVAL_BLOCK, _run_episode
from metazoo.learner import EpisodeScorer
from metazoo.testing import SyntheticBenchmark


def _learner(name: str, task: str, features: int, executor: str = "sequential"):
    torch.manual_seed(0)
    out = 3 if task == "classification" else 1
    model = nn.Sequential(
        nn.Linear(features, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, out)
    )
    config = {"inner_steps": 2, "test_inner_steps": 3, "task": task, "inner_lr": 0.3}
    config["executor"] = executor  # per episode, adapt then predict runs the sequential loop
    return create_learner(name, model, **config).eval()


@pytest.mark.parametrize("name", ["maml", "fomaml", "anil", "metasgd", "mamlpp", "reptile"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_block_scores_equal_adapt_then_predict_per_episode(name, task):
    bench = SyntheticBenchmark(task=task, features=8, ways=3)
    sampler = bench.sampler("test", 0)
    learner = _learner(name, task, sampler.episode(0).support_x.shape[-1])
    assert isinstance(learner, EpisodeScorer)
    done = []
    result = evaluate(learner, bench, episodes=EVAL_BLOCK + 5, progress=lambda i, n: done.append(i))
    expected = [_run_episode(learner, sampler.episode(i)) for i in range(EVAL_BLOCK + 5)]
    assert result.scores == expected
    assert done == [EVAL_BLOCK, EVAL_BLOCK + 5]
    assert all(p.grad is None for p in learner.parameters())


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_block_scores_with_auto_equal_per_episode_ones_up_to_float_rounding(task):
    """``auto`` may choose the vectorized executor (measured faster): same numbers up to float32
    rounding (bit for bit where it chooses the sequential loop)."""
    bench = SyntheticBenchmark(task=task, features=8, ways=3)
    sampler = bench.sampler("test", 0)
    learner = _learner("maml", task, sampler.episode(0).support_x.shape[-1], executor="auto")
    result = evaluate(learner, bench, episodes=EVAL_BLOCK + 5)
    expected = [_run_episode(learner, sampler.episode(i)) for i in range(EVAL_BLOCK + 5)]
    assert result.scores == pytest.approx(expected, rel=1e-3, abs=1e-6)  # fp32, 3 inner steps
    assert [c["purpose"] for c in result.provenance["executors"]] == ["eval", "eval"]  # 32 + 5
