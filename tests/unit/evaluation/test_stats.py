"""The CI formula and the t distribution, against hand computations and SciPy."""

from __future__ import annotations

import math

import pytest

from metazoo.evaluation.stats import mean_ci95, sample_std, t_quantile, t_sf_two_sided


def test_mean_ci95_matches_hand_computation():
    # scores 50, 60, 70, 80: mean 65; squared deviations 225+25+25+225 = 500; s^2 = 500/3
    mean, ci95, std = mean_ci95([50.0, 60.0, 70.0, 80.0])
    assert mean == 65.0
    assert std == pytest.approx(math.sqrt(500 / 3), rel=1e-12)
    assert ci95 == pytest.approx(1.96 * 12.909944487358056 / 2, rel=1e-12)  # = 12.6517...
    assert ci95 == pytest.approx(12.651745597610895, rel=1e-12)


def test_single_value_has_no_interval_and_empty_is_an_error():
    mean, ci95, std = mean_ci95([3.0])
    assert mean == 3.0 and math.isnan(ci95) and math.isnan(std)
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci95([])


def test_sample_std_uses_n_minus_one():
    assert sample_std([1.0, 3.0]) == pytest.approx(math.sqrt(2.0))


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [(2.228, 10, 0.05), (2.776, 4, 0.05), (12.706, 1, 0.05), (2.576, 1e6, 0.01)],
)
def test_t_tail_matches_printed_tables(t, df, p):
    assert t_sf_two_sided(t, df) == pytest.approx(p, abs=2e-4)


def test_t_quantile_inverts_the_tail():
    assert t_quantile(0.975, 10) == pytest.approx(2.2281, abs=1e-4)
    assert t_quantile(0.975, 599) == pytest.approx(1.9639, abs=1e-4)
    with pytest.raises(ValueError, match="0.5 < p < 1"):
        t_quantile(0.2, 3)


def test_t_distribution_matches_scipy():
    from scipy import stats  # in the dev extra, so this runs in CI and never skips

    for t in (0.01, 0.7, 1.5, 3.0, 8.0):
        for df in (1, 2, 5, 29, 599):
            assert t_sf_two_sided(t, df) == pytest.approx(
                2 * stats.t.sf(t, df), rel=1e-9, abs=1e-15
            )
    assert t_quantile(0.995, 7) == pytest.approx(stats.t.ppf(0.995, 7), rel=1e-9)
