"""Offer economics: each kind's expected cost and gain equals a hand computation."""

from __future__ import annotations

import pytest

from tests.playbooks.conftest import facts
from winback.playbooks import economics as econ
from winback.playbooks.spec import Offer

# the base customer: p_return 0.12, value after return 124,000, MRR 5,000 (USD minor units), reason price


def offer(**kw) -> Offer:
    return Offer.model_validate({"title": "x", **kw})


def ev(o: Offer, customer=None, currency="USD") -> econ.OfferEconomics:
    customer = customer or facts()
    base = econ.baseline(customer, currency)
    return econ.evaluate("k", o, customer, base, currency)


def test_baseline_and_percent_off_by_hand():
    base = econ.baseline(facts(), "USD")
    assert base.expected_gain_minor == round(0.12 * 124_000) == 14_880
    e = ev(offer(kind="percent_off", percent=50, months=3, lift={"price": 0.26}))
    assert e.p_with_offer == pytest.approx(0.38)
    assert e.cost_minor == round(0.5 * 5_000 * 3 * 0.38) == 2_850
    assert e.expected_gain_minor == round(0.38 * 124_000) - 2_850 == 44_270
    assert e.incremental_gain_minor == 44_270 - 14_880


@pytest.mark.parametrize("kw, lift, cost", [
    (dict(kind="annual_incentive", free_months=2), 0.12, 2 * 5_000 * 0.24),
    (dict(kind="annual_incentive", percent=10), 0.12, 0.10 * 12 * 5_000 * 0.24),
    (dict(kind="extended_trial", days=30, higher_tier=True), 0.06, 30 / 30 * 1.5 * 5_000 * 0.18),
    (dict(kind="extended_trial", days=15), 0.06, 15 / 30 * 5_000 * 0.18),
    (dict(kind="account_credit", amount_minor=2_000), 0.07, 2_000 * 0.19),
    (dict(kind="expert_session", cost_minor=15_000), 0.02, 15_000 * 0.14),
    (dict(kind="free_shipping", cost_minor=800), 0.05, 800 * 0.17),
    (dict(kind="lower_tier"), 0.16, 0.4 * 124_000 * 0.28),
    (dict(kind="pause", months=3), 0.05, 0.1 * 5_000 * 3 * 0.17),
    (dict(kind="payment_update"), 0.40, 0),
    (dict(kind="none"), 0.0, 0),
])
def test_cost_formulas(kw, lift, cost):
    e = ev(offer(**kw, lift={"price": lift}))
    p = min(0.95, 0.12 + lift)
    assert e.p_with_offer == pytest.approx(p)
    assert e.cost_minor == round(cost)
    assert e.expected_gain_minor == round(p * 124_000) - round(cost)


def test_lift_default_cap_and_missing_reason():
    assert ev(offer(kind="none", lift={"default": 0.05})).p_with_offer == pytest.approx(0.17)
    assert ev(offer(kind="none", lift={"support": 0.3})).p_with_offer == pytest.approx(0.12)  # no price lift: 0
    assert ev(offer(kind="none", lift={"price": 0.9})).p_with_offer == 0.95
    assert ev(offer(kind="none", lift={"price": -0.5})).p_with_offer == 0.0


def test_priors_when_profile_is_missing():
    base = econ.baseline(facts(p_return=None, reason="involuntary", value_after_return_minor=None), "USD")
    assert base.p_base == econ.P_RETURN_PRIOR["involuntary"] and not base.p_from_profile
    assert base.value_after_return_minor == 12 * 5_000 and base.value_known
    base = econ.baseline(facts(value_after_return_minor=None, mrr_minor=None), "USD")
    assert not base.value_known and base.monthly_minor is None
    assert not ev(offer(kind="percent_off", percent=10, months=1), facts(value_after_return_minor=None,
                                                                          mrr_minor=None)).priceable
    # MRR unknown but value known: MRR estimated as value / 12
    e = ev(offer(kind="percent_off", percent=10, months=1, lift={"price": 0.1}), facts(mrr_minor=None))
    assert e.cost_minor == round(0.1 * (124_000 / 12) * 0.22)


def test_fixed_amounts_in_another_currency_are_flagged():
    jpy = facts(currency="JPY", value_after_return_minor=50_000, mrr_minor=3_000)
    credit = offer(kind="account_credit", amount_minor=2_000)
    assert "in USD and the customer pays in JPY" in ev(credit, jpy).currency_problem
    assert "USD" in ev(offer(kind="expert_session", cost_minor=1), jpy).currency_problem
    assert ev(offer(kind="percent_off", percent=25, months=3), jpy).currency_problem is None
    assert ev(offer(kind="account_credit", amount_minor=2_000), facts(currency=None)).currency_problem is None


def test_customer_value():
    f = facts()
    assert econ.customer_value_minor(offer(kind="percent_off", percent=50, months=3), f, "USD") == 7_500
    assert econ.customer_value_minor(offer(kind="percent_off", percent=25, months=3), f, "USD") == 3_750
    assert econ.customer_value_minor(offer(kind="account_credit", amount_minor=2_000), f, "USD") == 2_000
    assert econ.customer_value_minor(offer(kind="annual_incentive", free_months=2), f, "USD") == 10_000
    assert econ.format_minor(124_000, "USD") == "$1,240.00"
