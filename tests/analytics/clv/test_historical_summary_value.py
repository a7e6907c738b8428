"""The historical CLV formula, the RFM summary helper and the discounted CLV function."""

from __future__ import annotations

import numpy as np
import pytest

from winback.analytics.clv import (
    BetaGeoModel,
    GammaGammaModel,
    ParetoNBDModel,
    customer_lifetime_value,
    historical_clv,
    historical_clv_from_churn_rate,
    lifespan_from_churn_rate,
    periods_per_month_for,
    summary_from_transactions,
)

# ------------------------------------------------------------------ historical formula


def test_historical_clv_is_value_times_frequency_times_lifespan():
    assert historical_clv(50.0, 2.0, 3.0) == 300.0
    assert historical_clv(50.0, 2.0, 3.0, margin=0.25) == 75.0
    got = historical_clv(np.array([10.0, 20.0]), np.array([1.0, 0.5]), 12)
    np.testing.assert_allclose(got, [120.0, 120.0])
    assert lifespan_from_churn_rate(0.05) == pytest.approx(20.0)
    np.testing.assert_allclose(historical_clv_from_churn_rate([30.0, 30.0], 1.0, [0.1, 0.5]), [300.0, 60.0])


@pytest.mark.parametrize("churn", [0.0, -0.1, 1.5, np.nan])
def test_churn_rate_must_be_a_probability(churn):
    with pytest.raises(ValueError, match="churn_rate"):
        lifespan_from_churn_rate(churn)


def test_historical_rejects_negative_frequency():
    with pytest.raises(ValueError):
        historical_clv(10.0, -1.0, 2.0)


# ------------------------------------------------------------------ summary_from_transactions


def test_summary_by_day():
    ids = ["b", "a", "a", "a", "a", "b", "c"]
    dates = ["2024-01-10", "2024-01-01T08:00", "2024-01-01T20:00", "2024-01-05", "2024-01-31", "2024-01-10", "2024-02-02"]
    amounts = [5.0, 10.0, 20.0, 7.0, 100.0, 6.0, 1.0]
    s = summary_from_transactions(ids, dates, amounts, "2024-01-31T12:00", time_unit="day")
    np.testing.assert_array_equal(s.customer_id, ["a", "b"])  # c bought after the end
    # a: days 1 (twice), 5, 31 (after the end? no: the end is Jan 31) -> 2 repeat days
    np.testing.assert_array_equal(s.frequency, [2.0, 0.0])
    np.testing.assert_array_equal(s.recency, [30.0, 0.0])
    np.testing.assert_array_equal(s.T, [30.0, 21.0])
    np.testing.assert_allclose(s.monetary_value, [(7.0 + 100.0) / 2, 0.0])  # the first day (10+20) excluded
    assert len(s) == 2


def test_summary_by_week_uses_monday_to_sunday_weeks():
    # 2024-01-07 is a Sunday, 2024-01-08 a Monday
    ids = [1, 1, 1, 2, 2]
    dates = np.array(["2024-01-01", "2024-01-07", "2024-01-08", "2024-01-07", "2024-01-08"], dtype="datetime64[D]")
    s = summary_from_transactions(ids, dates, [1.0, 2.0, 4.0, 8.0, 16.0], np.datetime64("2024-01-21"), time_unit="week")
    np.testing.assert_array_equal(s.frequency, [1.0, 1.0])  # Jan 1 and 7 share a week
    np.testing.assert_array_equal(s.recency, [1.0, 1.0])
    np.testing.assert_array_equal(s.T, [2.0, 2.0])
    np.testing.assert_allclose(s.monetary_value, [4.0, 16.0])


def test_summary_without_amounts_and_default_end():
    s = summary_from_transactions([3, 3, 4], np.array(["2024-03-01", "2024-03-04", "2024-03-02"], dtype="datetime64[D]"))
    assert s.monetary_value is None
    np.testing.assert_array_equal(s.T, [3.0, 2.0])  # the end defaults to the last date


def test_summary_errors():
    with pytest.raises(ValueError, match="time_unit"):
        summary_from_transactions([1], ["2024-01-01"], None, "2024-02-01", time_unit="month")
    with pytest.raises(ValueError, match="same length"):
        summary_from_transactions([1, 2], ["2024-01-01"], None, "2024-02-01")
    with pytest.raises(ValueError, match="missing"):
        summary_from_transactions([1], np.array(["NaT"], dtype="datetime64[D]"), None, "2024-02-01")


def test_summary_of_a_simulated_log_is_vectorised_and_consistent():
    rng = np.random.default_rng(3)
    n = 200_000
    ids = rng.integers(0, 20_000, n)
    dates = np.datetime64("2023-01-01") + rng.integers(0, 365, n).astype("timedelta64[D]")
    amounts = rng.gamma(2.0, 10.0, n)
    s = summary_from_transactions(ids, dates, amounts, np.datetime64("2023-12-31"))
    assert len(s) == np.unique(ids).shape[0]
    assert np.all(s.recency <= s.T) and np.all(s.frequency >= 0) and np.all((s.frequency == 0) == (s.monetary_value == 0))
    # spot-check one customer by hand
    cid = s.customer_id[17]
    mine = dates[ids == cid]
    days = np.unique(mine)
    assert s.frequency[17] == days.shape[0] - 1
    assert s.recency[17] == (days[-1] - days[0]).astype(int)


# ------------------------------------------------------------------ customer_lifetime_value


@pytest.fixture(scope="module")
def bg():
    return BetaGeoModel().set_params(r=0.243, alpha=4.414, a=0.793, b=2.426)


def test_undiscounted_clv_is_expected_purchases_times_value(bg):
    x, tx, T = np.array([0.0, 2, 10]), np.array([0.0, 20, 38]), np.array([39.0, 39, 39])
    value = np.array([10.0, 20.0, 30.0])
    got = customer_lifetime_value(bg, x, tx, T, value, horizon_months=12, discount_rate_monthly=0.0)
    np.testing.assert_allclose(got, bg.expected_purchases(12 * 4.345, x, tx, T) * value, rtol=1e-12)
    assert np.all(customer_lifetime_value(bg, x, tx, T, value, horizon_months=12, discount_rate_monthly=0.02) < got)
    np.testing.assert_array_equal(customer_lifetime_value(bg, x, tx, T, value, horizon_months=0), 0.0)
    assert isinstance(customer_lifetime_value(bg, 2, 20, 39, 10.0), float)


def test_month_lengths_follow_lifetimes():
    assert periods_per_month_for(7) == 4.345
    assert periods_per_month_for(1) == 30.0
    assert periods_per_month_for(30) == 1.0
    assert periods_per_month_for(14) == pytest.approx(30 / 14)


def test_clv_with_any_transaction_model_and_explicit_month_length(bg):
    class Plain:  # only the public method: the generic path
        def expected_purchases(self, t, f, r, T):
            return bg.expected_purchases(t, f, r, T)

    x, tx, T = np.array([0.0, 2, 10, 2]), np.array([0.0, 20, 38, 20]), np.array([39.0, 39, 39, 39])
    fast = customer_lifetime_value(bg, x, tx, T, 10.0, periods_per_month=4.0)
    slow = customer_lifetime_value(Plain(), x, tx, T, 10.0, periods_per_month=4.0)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    assert fast[1] == fast[3]
    pn = ParetoNBDModel().set_params(r=0.55, alpha=10.58, s=0.61, beta=11.67)
    gg = GammaGammaModel().set_params(p=6.25, q=3.74, gamma=15.44)
    clv = gg.customer_lifetime_value(pn, x, tx, T, np.array([0.0, 30.0, 12.0, 30.0]))
    assert np.all(clv > 0) and clv[0] < clv[1]
    assert gg.expected_average_value(0, 0.0) == pytest.approx(gg.population_mean_value())
