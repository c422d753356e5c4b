"""Paired comparison of two learners evaluated on the same episodes.

Per-episode differences ``d_i = a_i - b_i`` remove the episode difficulty both learners share, so a
paired test detects differences that two overlapping confidence intervals hide. The test is
Student's paired t-test (two-sided); the interval on the mean difference uses the t quantile with
``n - 1`` degrees of freedom (for n >= 30 it is within 2% of the 1.96 the harness uses).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from metazoo.evaluation.episodes import episode_mismatch
from metazoo.evaluation.harness import EvalResult
from metazoo.evaluation.stats import sample_std, t_quantile, t_sf_two_sided

__all__ = ["PairedComparison", "compare"]


@dataclass(frozen=True)
class PairedComparison:
    """``a`` against ``b`` on the same episodes.

    Attributes:
        a: learner name of the first result.
        b: learner name of the second result.
        metric: ``accuracy`` or ``mse``.
        n: number of paired episodes.
        mean_diff: mean of ``a - b`` per episode.
        ci95: half-width of the 95% interval on ``mean_diff`` (t quantile, ``n - 1`` dof).
        t: the paired t statistic (NaN when every difference is the same, with no spread).
        p_value: two-sided p-value of the paired t-test.
        alpha: the significance level used for :attr:`significant` (0.05).
    """

    a: str
    b: str
    metric: str
    n: int
    mean_diff: float
    ci95: float
    t: float
    p_value: float
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        """True when the two learners differ at level ``alpha``."""
        return self.p_value < self.alpha

    @property
    def better(self) -> str | None:
        """The name of the significantly better learner, or None when they do not differ."""
        if not self.significant:
            return None
        a_higher = self.mean_diff > 0
        return self.a if a_higher == (self.metric != "mse") else self.b

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant, "better": self.better}

    def __str__(self) -> str:
        verdict = f"{self.better} is better" if self.better else "no significant difference"
        return (
            f"{self.a} - {self.b}: {self.metric} {self.mean_diff:+.3f} ± {self.ci95:.3f} "
            f"(paired t = {self.t:.2f}, p = {self.p_value:.3g}, n = {self.n}): {verdict}"
        )


def _check_paired(a: EvalResult, b: EvalResult) -> None:
    for what in ("benchmark", "split", "seed", "metric", "episode_ids"):
        if getattr(a, what) != getattr(b, what):
            shown = (
                f"{len(a.episode_ids)} vs {len(b.episode_ids)} episodes"
                if what == "episode_ids"
                else f"{getattr(a, what)!r} vs {getattr(b, what)!r}"
            )
            raise ValueError(
                f"compare: the results are not on the same episodes ({what} differs: {shown}); "
                "evaluate both learners with the same benchmark, split, seed and episodes"
            )
    mismatch = episode_mismatch(a.protocol, b.protocol)
    if mismatch is not None:
        raise ValueError(
            f"compare: {a.learner} and {b.learner} were not evaluated on the same episodes "
            f"({mismatch}); evaluate both with the same benchmark options, split, seed and "
            "episodes"
        )


def compare(a: EvalResult, b: EvalResult, alpha: float = 0.05) -> PairedComparison:
    """Paired t-test of ``a`` against ``b`` over their shared episodes.

    Raises:
        ValueError: when the results are not on the same episodes (benchmark, split, seed, episode
            ids, any sampler or dataset option, or the episodes' contents differ), naming what
            differs.
    """
    _check_paired(a, b)
    diffs = [x - y for x, y in zip(a.scores, b.scores)]
    n = len(diffs)
    mean = math.fsum(diffs) / n
    std = sample_std(diffs)
    if n < 2:
        t, p, half = math.nan, math.nan, math.nan
    elif std == 0.0:
        # identical differences: no spread, so either exactly equal (p = 1) or certainly different
        t, p, half = math.nan, (1.0 if mean == 0.0 else 0.0), 0.0
    else:
        t = mean / (std / math.sqrt(n))
        p = t_sf_two_sided(t, n - 1)
        half = t_quantile(1 - alpha / 2, n - 1) * std / math.sqrt(n)
    return PairedComparison(a.learner, b.learner, a.metric, n, mean, half, t, p, alpha)
