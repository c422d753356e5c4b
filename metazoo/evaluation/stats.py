"""Statistics for few-shot results: mean ± 95% CI over episodes and Student's t for paired tests.

The t distribution is computed here (regularised incomplete beta by Lentz's continued fraction) so
that metazoo does not depend on SciPy; the unit tests check it against SciPy where installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["mean_ci95", "sample_std", "t_sf_two_sided", "t_quantile", "Z95"]

#: The normal 97.5% quantile: the harness reports ci95 = Z95 * std / sqrt(n), the field's convention.
Z95 = 1.96


def sample_std(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1); NaN for fewer than two values."""
    n = len(values)
    if n < 2:
        return math.nan
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def mean_ci95(values: Sequence[float]) -> tuple[float, float, float]:
    """``(mean, ci95, std)`` with ``ci95 = 1.96 * std / sqrt(n)`` and ``std`` the sample std (ddof=1).

    Raises:
        ValueError: for an empty sequence.
    """
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci95 needs at least one value; evaluate on episodes >= 1")
    std = sample_std(values)
    return math.fsum(values) / n, Z95 * std / math.sqrt(n), std


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def _regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function, for ``0 <= x <= 1``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_sf_two_sided(t: float, df: float) -> float:
    """Two-sided tail probability ``P(|T| >= |t|)`` of Student's t with ``df`` degrees of freedom."""
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    return _regularized_beta(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (``0.5 < p < 1``) of Student's t, by bisection on :func:`t_sf_two_sided`."""
    if not 0.5 < p < 1.0:
        raise ValueError(f"t_quantile takes 0.5 < p < 1, got {p}")
    tail = 2.0 * (1.0 - p)
    low, high = 0.0, 1.0
    while t_sf_two_sided(high, df) > tail:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        low, high = (mid, high) if t_sf_two_sided(mid, df) > tail else (low, mid)
    return (low + high) / 2.0
