"""evaluate(): fixed episodes, exact scores, grad modes, provenance; compare(): the paired test."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch

import metazoo
from metazoo.evaluation import EvalResult, compare, evaluate
from metazoo.evaluation.harness import score_episode
from metazoo.testing import SyntheticBenchmark, TinyLearner


class Recording(TinyLearner):
    """Records what the harness hands it and the grad mode each call runs under."""

    def __init__(self, model, config):
        super().__init__(model, config)
        self.seen: list[torch.Tensor] = []
        self.modes: list[tuple[str, bool, bool]] = []

    def adapt(self, support_x, support_y, ways):
        self.seen.append(support_x.clone())
        self.modes.append(("adapt", torch.is_grad_enabled(), self.training))
        return super().adapt(support_x, support_y, ways)

    def predict(self, state, query_x):
        self.modes.append(("predict", torch.is_grad_enabled(), self.training))
        return super().predict(state, query_x)


def test_score_episode_exact_values():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [1.0, 0.0]])
    assert score_episode(logits, torch.tensor([0, 1, 1, 1])) == 50.0
    out = torch.tensor([[1.0], [3.0]])
    assert score_episode(out, torch.tensor([[0.0], [1.0]])) == pytest.approx(2.5)


def test_summary_is_the_formula_over_per_episode_scores(tiny, bench):
    result = evaluate(tiny, bench, episodes=30, seed=3)
    n = len(result.scores)
    mean = sum(result.scores) / n
    std = math.sqrt(sum((s - mean) ** 2 for s in result.scores) / (n - 1))
    assert n == 30 and result.episode_ids == list(range(30))
    assert result.mean == pytest.approx(mean, rel=1e-12)
    assert result.ci95 == pytest.approx(1.96 * std / math.sqrt(30), rel=1e-12)
    assert result.metric == "accuracy" and result.higher_is_better
    # 3 ways x 4 queries: every accuracy is a multiple of 100/12
    assert all(abs(s * 12 / 100 - round(s * 12 / 100)) < 1e-4 for s in result.scores)
    sampler, digest = result.protocol.pop("sampler"), result.protocol.pop("episodes_digest")
    assert result.protocol == {
        "episodes": 30, "ways": 3, "shots": 2, "queries": 4, "inner_steps": 2,
        "bn_policy": None, "dtype": "float32", "tf32": result.protocol["tf32"],
    }  # fmt: skip
    assert {
        "ways": 3,
        "shots": 2,
        "queries": 4,
        "split": "test",
        "seed": 3,
    }.items() <= sampler.items()
    assert (
        len(digest) == 32
        and evaluate(tiny, bench, episodes=30, seed=3).protocol["episodes_digest"] == digest
    )
    assert evaluate(tiny, bench, episodes=30, seed=4).protocol["episodes_digest"] != digest
    assert result.tasks_per_s > 0 and result.peak_memory_mb >= 0


def test_every_learner_sees_the_same_episodes(make_tiny, bench):
    first = Recording(make_tiny(0).model, TinyLearner.Config())
    second = Recording(make_tiny(1).model, TinyLearner.Config())
    evaluate(first, bench, episodes=5, seed=7)
    evaluate(second, bench, episodes=5, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(first.seen, second.seen))
    other_seed = Recording(make_tiny(0).model, TinyLearner.Config())
    evaluate(other_seed, bench, episodes=5, seed=8)
    assert not torch.equal(first.seen[0], other_seed.seen[0])


def test_grad_modes_and_training_flag_are_restored(make_tiny):
    learner = Recording(make_tiny(0, "regression").model, TinyLearner.Config())
    learner.train()
    with torch.no_grad():  # the caller's mode must not leak into adaptation
        result = evaluate(learner, SyntheticBenchmark(task="regression"), episodes=3)
    assert learner.modes == [("adapt", True, False), ("predict", False, False)] * 3
    assert learner.training
    assert result.metric == "mse" and not result.higher_is_better
    assert all(p.grad is None for p in learner.parameters())


class ForwardRecording(Recording):
    """A learner whose adaptation is a forward pass (prototypes only, classification)."""

    adapts_by_gradient = False


def test_forward_adaptation_runs_without_grad_and_builds_no_graph(make_tiny, bench):
    learner = ForwardRecording(make_tiny(0).model, TinyLearner.Config())
    with torch.enable_grad():  # the harness sets the mode, whatever the caller's
        evaluate(learner, bench, episodes=2)
    assert learner.modes == [("adapt", False, False), ("predict", False, False)] * 2
    learner.eval()
    with metazoo.learner.adaptation_grad_mode(learner):
        state = learner.adapt(torch.randn(6, 8), torch.arange(3).repeat(2), 3)
    assert not state.requires_grad


def test_provenance_names_code_machine_and_run(tiny, bench):
    result = evaluate(tiny, bench, episodes=2, seed=5)
    prov = result.provenance
    assert prov["torch"] == torch.__version__ and prov["metazoo"] == metazoo.__version__
    assert (
        prov["seed"] == 5 and prov["learner"] == "TinyLearner" and prov["benchmark"] == "synthetic"
    )
    assert prov["config"] == {"inner_lr": 0.1, "inner_steps": 1, "test_inner_steps": 2}
    assert set(prov["precision"]) >= {"tf32_matmul", "tf32_cudnn", "float32_matmul_precision"}
    repo = Path(metazoo.__file__).resolve().parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    if head.returncode == 0:
        assert prov["git"]["sha"] == head.stdout.strip()


def test_result_round_trips_through_json(tiny, bench):
    result = evaluate(tiny, bench, episodes=4)
    again = EvalResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    single = EvalResult.from_dict(
        json.loads(json.dumps(evaluate(tiny, bench, episodes=1).to_dict()))
    )
    assert math.isnan(single.ci95)


def _result(name: str, scores: list[float], metric: str = "accuracy", seed: int = 0) -> EvalResult:
    return EvalResult(
        name, "b", "test", seed, metric, scores, list(range(len(scores))), 0.0, 0.0, 0.0, 1.0, 1.0,
        0.0, {"ways": 5, "shots": 1, "sampler": {"ways": 5, "shots": 1}, "episodes_digest": "d"},
    )  # fmt: skip


def test_paired_comparison_hand_computation():
    # differences 1..5: mean 3, s = sqrt(2.5), t = 3 / (sqrt(2.5)/sqrt(5)) = 4.2426, df 4
    a = _result("a", [11.0, 22.0, 33.0, 44.0, 55.0])
    b = _result("b", [10.0, 20.0, 30.0, 40.0, 50.0])
    cmp = compare(a, b)
    assert cmp.mean_diff == pytest.approx(3.0)
    assert cmp.t == pytest.approx(3 / math.sqrt(0.5), rel=1e-12)
    assert cmp.ci95 == pytest.approx(2.776445 * math.sqrt(0.5), rel=1e-5)
    assert cmp.p_value == pytest.approx(0.013236, abs=1e-5)  # t table: t(4) = 4.243 -> p = 0.0132
    assert cmp.significant and cmp.better == "a"
    reverse = compare(b, a)
    assert reverse.mean_diff == pytest.approx(-3.0) and reverse.better == "a"


def test_lower_mse_is_better_and_equal_results_do_not_differ():
    low, high = _result("low", [1.0, 1.1, 0.9], "mse"), _result("high", [2.0, 2.3, 2.1], "mse")
    assert compare(low, high).better == "low"
    same = compare(low, _result("twin", [1.0, 1.1, 0.9], "mse"))
    assert same.p_value == 1.0 and same.better is None


def test_compare_refuses_results_on_different_episodes():
    with pytest.raises(ValueError, match=r"not on the same episodes \(seed differs: 0 vs 1\)"):
        compare(_result("a", [1.0, 2.0]), _result("b", [1.0, 2.0], seed=1))
    with pytest.raises(ValueError, match=r"episode_ids differs: 2 vs 3 episodes"):
        compare(_result("a", [1.0, 2.0]), _result("b", [1.0, 2.0, 3.0]))
