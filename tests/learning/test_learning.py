"""Learning tests: every classification learner learns on real data in a short CPU budget.

The MAML family (maml, fomaml, anil, metasgd, mamlpp, reptile) runs at the inner-loop settings
``build_learner`` takes from its card for Omniglot 5-way 1-shot, so a wrong paper default fails
here: with ANIL at the sinusoid step size 0.01, or Reptile tested with SGD at 0.001 and its 5
training steps, both stayed near chance (20.9% and 26.7% on these episodes).

Omniglot 5-way 1-shot (chance: 20%): meta-train for the fixed step budget in
``tests/learning/protocol.py`` (about 10-90 CPU-seconds each on one thread; Conv-4 with 32
filters, 5 queries per class, Adam), then evaluate on 100 fixed episodes of the held-out *test*
classes. Each threshold's margin over chance is stated beside its protocol; the thresholds sit 9-20
points under the accuracies recorded by ``lab/records/record_learning.py`` (in
``benchmarks/results/learning-<learner>-cpu.json``). CNP on sinusoid 10-shot must reach a test MSE
under a quarter of the targets' mean square on the same episodes (the MSE of predicting 0).
"""

from __future__ import annotations

import pytest

from metazoo import make_sampler
from tests.learning.protocol import PROTOCOLS, run_protocol

needs_omniglot = pytest.mark.usefixtures("omniglot_data")  # skips, or fails in CI, without it
CLASSIFICATION = [key for key, p in PROTOCOLS.items() if p.benchmark == "omniglot-5w1s"]


@pytest.mark.learning
@needs_omniglot
@pytest.mark.parametrize("key", CLASSIFICATION)
def test_learner_beats_chance_by_far_on_held_out_omniglot_classes(key: str) -> None:
    protocol = PROTOCOLS[key]
    record = run_protocol(protocol)
    result = record["result"]
    assert result["split"] == "test" and result["metric"] == "accuracy"
    assert len(result["scores"]) == protocol.eval_episodes
    assert result["mean"] > protocol.threshold, (
        f"{key}: {result['mean']:.1f}% ± {result['ci95']:.1f} on held-out classes after "
        f"{protocol.steps} steps; expected > {protocol.threshold}% (chance 20%)"
    )


@pytest.mark.learning
def test_cnp_regresses_sinusoids_far_below_the_prior_variance() -> None:
    protocol = PROTOCOLS["cnp-sinusoid"]
    record = run_protocol(protocol)
    sampler = make_sampler("sinusoid", "test", seed=0, **protocol.eval_overrides)
    episodes = [sampler.episode(i) for i in range(protocol.eval_episodes)]
    assert all(e.support_x.shape[0] == 10 for e in episodes)  # 10-shot
    mean_square = sum(float(e.query_y.pow(2).mean()) for e in episodes) / len(episodes)
    mse = record["result"]["mean"]
    assert mse < protocol.threshold * mean_square, (
        f"cnp: test MSE {mse:.3f} after {protocol.steps} steps; expected below "
        f"{protocol.threshold} x {mean_square:.3f} (the MSE of predicting zero)"
    )
