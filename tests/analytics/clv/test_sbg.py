"""Shifted-beta-geometric model: retention quantities and DERL valuation (FH 2007, 2010)."""

from __future__ import annotations

import numpy as np
import pytest

from winback.analytics.clv import ShiftedBetaGeometricModel

REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]


@pytest.fixture(scope="module")
def model():
    return ShiftedBetaGeometricModel().fit(np.arange(8), REGULAR)


def test_tenure_rows_give_the_same_fit_as_survivor_counts(model):
    lost = -np.diff(REGULAR)
    tenure = np.r_[np.repeat(np.arange(1, 8), lost), np.full(REGULAR[-1], 7)]
    churned = np.r_[np.ones(lost.sum(), dtype=bool), np.zeros(REGULAR[-1], dtype=bool)]
    per_customer = ShiftedBetaGeometricModel().fit_tenures(tenure, churned)
    assert per_customer.log_likelihood_ == pytest.approx(model.log_likelihood_, rel=1e-12)
    for name, value in model.params_.items():
        assert per_customer.params_[name] == pytest.approx(value, rel=1e-7)
    # cohorts given in any row order, with a second identical cohort: same parameters
    order = np.random.default_rng(0).permutation(16)
    twice = ShiftedBetaGeometricModel().fit(np.r_[np.arange(8), np.arange(8)][order], np.r_[REGULAR, REGULAR][order], cohort=np.repeat(["a", "b"], 8)[order])
    assert twice.n_customers_ == 2000
    assert twice.params_["alpha"] == pytest.approx(model.params_["alpha"], rel=1e-7)
    assert twice.standard_errors_["alpha"] == pytest.approx(model.standard_errors_["alpha"] / np.sqrt(2), rel=1e-4)


def test_retention_identities(model):
    t = np.arange(1, 40)
    S = model.survival(t)
    assert model.survival(0) == 1.0
    np.testing.assert_allclose(S, model.survival(t - 1) * model.retention_rate(t), rtol=1e-12)
    np.testing.assert_allclose(model.churn_probability(t), model.survival(t - 1) - S, rtol=1e-10)
    assert np.all(np.diff(model.retention_rate(t)) > 0)  # heterogeneity: retention rises with tenure
    a, b = model.params_["alpha"], model.params_["beta"]
    assert model.churn_probability(1) == pytest.approx(a / (a + b))
    assert model.expected_active(1000, 7) == pytest.approx(1000 * model.survival(7))


def test_expected_lifetime():
    m = ShiftedBetaGeometricModel().set_params(alpha=3.0, beta=4.0)
    t = np.arange(0, 200000)
    assert m.expected_lifetime() == pytest.approx(m.survival(t).sum(), rel=1e-6)
    assert m.expected_lifetime() == pytest.approx((3 + 4 - 1) / (3 - 1))
    assert ShiftedBetaGeometricModel().set_params(alpha=0.7, beta=1.2).expected_lifetime() == float("inf")


@pytest.mark.parametrize("d", [0.01, 0.1, 0.5])
@pytest.mark.parametrize("n", [0, 1, 5, 30])
def test_derl_and_value_lost_equal_brute_force_sums(model, n, d):
    t = np.arange(0, 20000)
    S = model.survival(t)
    # a customer with n renewals, valued just before renewal n+1: payments at renewals n+1, n+2, ...
    # the k-th of them discounted k-1 times
    k = np.arange(1, 19000)
    disc = np.exp(-np.arange(19000) * np.log1p(d))  # (1+d)^-j without overflow
    derl = np.sum(S[n + k] / S[n] * disc[k - 1])
    assert model.discounted_expected_residual_lifetime(n, d) == pytest.approx(derl, rel=1e-9)
    assert model.derl(n, d) == model.discounted_expected_residual_lifetime(n, d)
    # had she renewed at n+1: that payment now plus the expected later ones
    lost = np.sum(S[n + k] / S[n + 1] * disc[k - 1])
    assert model.value_lost(n, 1.0, d) == pytest.approx(lost, rel=1e-9)
    assert model.discounted_expected_residual_lifetime(n, d) == pytest.approx(model.retention_rate(n + 1) * lost, rel=1e-12)
    assert model.residual_value(n, 25.0, d) == pytest.approx(25.0 * derl, rel=1e-9)
    assert model.discounted_expected_lifetime(d) == pytest.approx(np.sum(S[:19000] * disc), rel=1e-9)


def test_undiscounted_valuation_has_a_closed_form():
    m = ShiftedBetaGeometricModel().set_params(alpha=3.0, beta=4.0)
    assert m.discounted_expected_lifetime(0.0) == pytest.approx(m.expected_lifetime())
    # DERL(0 | n) = (beta+n)/(alpha-1): expected remaining renewals
    for n in (0, 3, 10):
        assert m.derl(n, 0.0) == pytest.approx((4 + n) / (3 - 1))
    assert ShiftedBetaGeometricModel().set_params(alpha=0.7, beta=1.2).derl(2, 0.0) == float("inf")


def test_vectorised_valuation(model):
    n = np.array([0, 1, 2, 10])
    v = model.residual_value(n, np.array([10.0, 20.0, 30.0, 40.0]), 0.1)
    assert v.shape == (4,)
    assert v[3] == pytest.approx(40.0 * model.derl(10, 0.1))
    assert model.value_lost(n, 10.0, 0.1).shape == (4,)
    assert isinstance(model.derl(3, 0.1), float) and isinstance(model.survival(3), float)


@pytest.mark.parametrize(
    ("period", "active", "message"),
    [([0, 1, 3], [10, 8, 7], "without gaps"), ([0, 1, 2], [10, 8, 9], "non-increasing"), ([0, 1], [0, 0], "cohort size")],
)
def test_invalid_survivor_counts(period, active, message):
    with pytest.raises(ValueError, match=message):
        ShiftedBetaGeometricModel().fit(period, active)


def test_invalid_tenures():
    with pytest.raises(ValueError, match="whole periods"):
        ShiftedBetaGeometricModel().fit_tenures([0, 2], [True, False])
