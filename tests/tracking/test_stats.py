"""Experiment statistics against SciPy and published worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from winback.tracking.stats import (holdout_lift, mean_diff_ci, prob_best, rate_diff_ci, roi, srm_check,
                                    two_proportion_test, wilson_ci)

# Newcombe RG (1998) "Interval estimation for the difference between independent proportions:
# comparison of eleven methods", Statistics in Medicine 17:873-890, Table II, method 10 (score
# interval, no continuity correction), reported to 4 decimals. Example (a) is 56/70 - 48/80:
# difference 0.2000 (not 0.1333), interval 0.0524 to 0.3339.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize("counts, expected", NEWCOMBE_TABLE_II)
def test_newcombe_method_10_reproduces_table_ii(counts, expected):
    lo, hi = rate_diff_ci(*counts, confidence=0.95)
    assert (round(lo, 4), round(hi, 4)) == expected


def test_wilson_interval_matches_scipy():
    for x, n in ((0, 10), (3, 10), (81, 263), (263, 263)):
        ci = stats.binomtest(x, n).proportion_ci(0.95, method="wilson")
        assert wilson_ci(x, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_two_proportion_z_aspirin_example():
    # Physicians' Health Study (Agresti, An Introduction to Categorical Data Analysis, 2nd ed., sec. 2.2):
    # myocardial infarction 189/11034 on placebo vs 104/11037 on aspirin; difference 0.0077.
    r = two_proportion_test(189, 11034, 104, 11037)
    p1, p2 = 189 / 11034, 104 / 11037
    pooled = 293 / 22071
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / 11034 + 1 / 11037))  # by hand
    assert r["z"] == pytest.approx(z) and round(r["diff"], 4) == 0.0077 and round(z, 2) == 5.00
    chi2, p, _dof, _exp = stats.chi2_contingency([[189, 11034 - 189], [104, 11037 - 104]], correction=False)
    assert r["z"] ** 2 == pytest.approx(chi2) and r["p_value"] == pytest.approx(p)
    assert r["ci"][0] < 0.0077 < r["ci"][1] and r["ci"][0] > 0
    same = two_proportion_test(0, 10, 0, 10)
    assert same["z"] == 0.0 and same["p_value"] == 1.0


def test_prob_best_exact_for_two_and_monte_carlo_for_more():
    exact = prob_best([10, 20], [100, 100])
    rng = np.random.default_rng(7)
    a, b = rng.beta(11, 91, 400_000), rng.beta(21, 81, 400_000)
    assert exact[1] == pytest.approx((b > a).mean(), abs=0.003) and sum(exact) == pytest.approx(1)
    assert prob_best([20, 10], [100, 100]) == pytest.approx(exact[::-1])
    assert prob_best([5, 5], [50, 50]) == pytest.approx([0.5, 0.5])
    three = prob_best([10, 20, 15], [100, 100, 100], draws=100_000, seed=1)
    assert three == prob_best([10, 20, 15], [100, 100, 100], draws=100_000, seed=1)  # fixed seed
    assert sum(three) == pytest.approx(1) and max(three) == three[1]
    big = prob_best([3000, 3100], [50_000, 50_000])  # large counts stay finite
    assert 0.9 < big[1] < 1.0


def test_srm_against_scipy():
    r = srm_check([5200, 4800], [0.5, 0.5])
    chi2, p = stats.chisquare([5200, 4800], [5000, 5000])
    assert r["chi2"] == pytest.approx(chi2) and r["p_value"] == pytest.approx(p) and r["mismatch"]
    assert not srm_check([502, 498, 1000], [1, 1, 2])["mismatch"]
    assert srm_check([0, 0], [0.5, 0.5]) == {"chi2": 0.0, "p_value": 1.0, "mismatch": False}


def test_welch_interval_matches_scipy():
    rng = np.random.default_rng(3)
    t, h = rng.lognormal(3, 1, 300), rng.lognormal(2.8, 1.2, 80)
    ci = stats.ttest_ind(t, h, equal_var=False).confidence_interval(0.9)
    assert mean_diff_ci(t, h, 0.9) == pytest.approx((ci.low, ci.high))
    assert mean_diff_ci([1.0], [2.0, 3.0]) is None
    assert mean_diff_ci([0, 0, 0], [0, 0]) == (0.0, 0.0)


def test_roi():
    assert roi(10_000, 2_000, 500) == pytest.approx(3.0)
    assert roi(1_000, 2_000, 500) == pytest.approx(-0.6)
    assert roi(1_000, 0, 0) is None


def test_bad_counts_are_rejected():
    with pytest.raises(ValueError):
        rate_diff_ci(11, 10, 0, 10)
    with pytest.raises(ValueError):
        prob_best([-1, 2], [10, 10])
    assert rate_diff_ci(1, 10, 0, 0) is None


def test_holdout_lift_interval_covers_the_true_effect_about_95_percent():
    """200 simulated campaigns with a known effect: the rate and revenue intervals cover it ~95% of the time."""
    p_t, p_h, n_t, n_h = 0.12, 0.08, 1500, 400
    mean_rev = 5000.0  # revenue of a conversion ~ lognormal with this mean (minor units)
    sigma = 0.6
    mu = math.log(mean_rev) - sigma ** 2 / 2
    true_rate = p_t - p_h
    true_incremental = (p_t - p_h) * mean_rev * n_t
    covered_rate = covered_rev = 0
    seeds = 200
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        conv_t, conv_h = rng.random(n_t) < p_t, rng.random(n_h) < p_h
        rev_t = np.where(conv_t, rng.lognormal(mu, sigma, n_t), 0.0)
        rev_h = np.where(conv_h, rng.lognormal(mu, sigma, n_h), 0.0)
        lift = holdout_lift(int(conv_t.sum()), rev_t, int(conv_h.sum()), rev_h, 0.95)["lift"]
        lo, hi = lift["rate_ci"]
        covered_rate += lo <= true_rate <= hi
        rlo, rhi = lift["incremental_revenue_ci_minor"]
        covered_rev += rlo <= true_incremental <= rhi
    assert 0.91 <= covered_rate / seeds <= 0.98
    assert 0.91 <= covered_rev / seeds <= 0.98
