"""The one evaluation harness: fixed seeded episodes, mean ± 95% CI, paired comparisons, provenance.

>>> result = metazoo.evaluate(learner, "omniglot-5w1s", episodes=600, seed=0)
>>> print(result, metazoo.compare(result, other))

Internal: not part of metazoo's public API ("Public names" in docs/design.md).
"""

from metazoo.evaluation.compare import PairedComparison, compare
from metazoo.evaluation.harness import EvalResult, evaluate
from metazoo.evaluation.stats import mean_ci95

__all__ = ["evaluate", "compare", "EvalResult", "PairedComparison", "mean_ci95"]
