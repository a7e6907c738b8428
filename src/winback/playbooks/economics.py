"""Offer economics: is an incentive worth its cost for this customer? (pure, no I/O)

For an offer ``o`` and a customer with churn reason ``r`` (DOMAIN.md step 8: keep offers
economically sustainable)::

    p_base         = the customer's P(return) from the profile (``customer_scores.p_return``), else
                     the prior P_RETURN_PRIOR[r] (natural return rates of lost subscribers: about 10%
                     for failed payments, 3-4% for voluntary churn)
    p_with_offer   = min(0.95, p_base + lift[r])         (lift['default'] when r is absent, else 0;
                     never below 0, and never below p_base when p_base is already above 0.95)
    value          = value after return (customer_scores.value_after_return_minor), else 12 x MRR
    expected cost  = what the offer costs us, counted only when the customer returns (x p_with_offer)
    expected gain  = round(p_with_offer x value) - expected cost
    incremental    = expected gain - expected gain with no offer (round(p_base x value))

Expected cost by offer kind (MRR = the customer's monthly revenue; when unknown, value / 12):

==================  ==========================================================================
percent_off         percent x MRR x months x p
annual_incentive    (free_months x MRR + percent x 12 x MRR) x p
extended_trial      days / 30 x MRR of the trial plan x p; the higher tier is assumed to cost
                    HIGHER_TIER_FACTOR (1.5) x the current MRR - the real price is not known here
account_credit      amount x p
lower_tier          the lower tier is assumed to cost LOWER_TIER_SHARE (60%) of the current plan,
                    so the revenue forgone over the value horizon is 40% of the value after
                    return: 0.4 x value x p
pause               PAUSE_COST_SHARE (10%) of MRR per paused month x p (revenue delayed, and some
                    paused customers never resume)
expert_session,     cost_minor x p (accepted only by those who engage)
free_shipping
none,               0
payment_update
==================  ==========================================================================

Every kind also adds its ``cost_minor`` x p (the fixed cost to us when accepted), once.

Money stays integer minor units: costs and gains are rounded half-to-even to whole minor units.
Fixed amounts in an offer (``amount_minor``, ``cost_minor``) are in the playbook's currency, so
such offers are not made to customers paying in another currency (there is no exchange rate here);
percentage offers scale with the customer's own MRR and work in any currency.
"""

from __future__ import annotations

from dataclasses import dataclass

from winback.kit.money import Money
from winback.playbooks.facts import CustomerFacts
from winback.playbooks.spec import Offer

P_CAP = 0.95
P_RETURN_PRIOR: dict[str, float] = {"involuntary": 0.10, "price": 0.04, "missing_feature": 0.04,
                                    "usability": 0.03, "support": 0.025, "competitor": 0.02, "other": 0.035,
                                    "unknown": 0.03}
P_RETURN_PRIOR_DEFAULT = 0.03
HIGHER_TIER_FACTOR = 1.5
LOWER_TIER_SHARE = 0.6
PAUSE_COST_SHARE = 0.10
VALUE_MONTHS_WITHOUT_PROFILE = 12
FIXED_AMOUNT_KINDS = ("account_credit",)


@dataclass(frozen=True)
class Baseline:
    """The customer without any incentive."""

    p_base: float
    p_from_profile: bool  # False: the prior was used
    value_after_return_minor: int
    value_known: bool
    monthly_minor: int | None  # MRR, or value / 12 when the MRR is unknown
    currency: str
    expected_gain_minor: int  # p_base x value


@dataclass(frozen=True)
class OfferEconomics:
    offer_key: str
    kind: str
    lift: float
    p_with_offer: float
    cost_minor: int  # expected cost (already x p_with_offer)
    expected_value_minor: int  # p_with_offer x value
    expected_gain_minor: int  # expected value - expected cost
    incremental_gain_minor: int  # over no offer
    priceable: bool  # False when a term needs the MRR and neither MRR nor value is known
    currency_problem: str | None  # set when a fixed amount is in another currency than the customer's


def format_minor(amount_minor: int, currency: str) -> str:
    """``$1,240.00`` (English display); falls back to ``1240 minor units XXX`` for unknown currencies."""
    try:
        return Money(int(amount_minor), currency).format("en")
    except Exception:  # an unknown currency code: still say something useful
        return f"{amount_minor} minor units {currency}"


def _round(x: float) -> int:
    return int(round(x))  # Python rounds half to even


def baseline(facts: CustomerFacts, playbook_currency: str) -> Baseline:
    from_profile = facts.p_return is not None
    p = float(facts.p_return) if from_profile else P_RETURN_PRIOR.get(facts.reason_key, P_RETURN_PRIOR_DEFAULT)
    p = min(max(p, 0.0), 1.0)
    if facts.value_after_return_minor is not None:
        value, known = max(int(facts.value_after_return_minor), 0), True
    elif facts.mrr_minor is not None:
        value, known = max(int(facts.mrr_minor), 0) * VALUE_MONTHS_WITHOUT_PROFILE, True
    else:
        value, known = 0, False
    if facts.mrr_minor is not None:
        monthly: int | None = max(int(facts.mrr_minor), 0)
    elif known:
        monthly = _round(value / VALUE_MONTHS_WITHOUT_PROFILE)
    else:
        monthly = None
    currency = (facts.currency or playbook_currency).upper()
    return Baseline(p, from_profile, value, known, monthly, currency, _round(p * value))


def lift_for(offer: Offer, reason: str) -> float:
    if reason in offer.lift:
        return float(offer.lift[reason])
    return float(offer.lift.get("default", 0.0))


def p_with_offer(p_base: float, lift: float) -> float:
    cap = max(P_CAP, p_base)
    return min(cap, max(0.0, p_base + lift))


def has_fixed_amount(offer: Offer) -> bool:
    return offer.kind in FIXED_AMOUNT_KINDS or offer.cost_minor > 0


def expected_cost(offer: Offer, base: Baseline, p: float) -> tuple[int, bool]:
    """(expected cost in minor units, priceable) - see the module docstring for the formulas."""
    monthly = base.monthly_minor
    kind = offer.kind
    needs_mrr = kind in ("percent_off", "annual_incentive", "extended_trial", "pause")
    if needs_mrr and monthly is None:
        return 0, False
    m = float(monthly or 0)
    if kind == "percent_off":
        raw = (offer.percent or 0) / 100.0 * m * (offer.months or 1)
    elif kind == "annual_incentive":
        raw = (offer.free_months or 0) * m + (offer.percent or 0) / 100.0 * 12 * m
    elif kind == "extended_trial":
        tier_mrr = m * (HIGHER_TIER_FACTOR if offer.higher_tier else 1.0)
        raw = (offer.days or 0) / 30.0 * tier_mrr
    elif kind == "account_credit":
        raw = float(offer.amount_minor or 0)
    elif kind == "lower_tier":
        raw = (1.0 - LOWER_TIER_SHARE) * base.value_after_return_minor
    elif kind == "pause":
        raw = PAUSE_COST_SHARE * m * (offer.months or 1)
    else:  # none, payment_update, expert_session, free_shipping: only the fixed cost below
        raw = 0.0
    raw += offer.cost_minor
    return _round(raw * p), True


def evaluate(offer_key: str, offer: Offer, facts: CustomerFacts, base: Baseline,
             playbook_currency: str) -> OfferEconomics:
    lift = lift_for(offer, facts.reason_key)
    p = p_with_offer(base.p_base, lift)
    cost, priceable = expected_cost(offer, base, p)
    value = _round(p * base.value_after_return_minor)
    gain = value - cost
    problem = None
    if has_fixed_amount(offer) and base.currency != playbook_currency.upper():
        problem = (f"its fixed amounts are in {playbook_currency.upper()} and the customer pays in "
                   f"{base.currency}")
    return OfferEconomics(offer_key, offer.kind, lift, p, cost, value, gain, gain - base.expected_gain_minor,
                          priceable, problem)


def customer_value_minor(offer: Offer, facts: CustomerFacts, playbook_currency: str) -> int:
    """What the offer is worth to the customer if used in full (to compare two coupons), minor units."""
    base = baseline(facts, playbook_currency)
    m = float(base.monthly_minor or 0)
    kind = offer.kind
    if kind == "percent_off":
        raw = (offer.percent or 0) / 100.0 * m * (offer.months or 1)
    elif kind == "annual_incentive":
        raw = (offer.free_months or 0) * m + (offer.percent or 0) / 100.0 * 12 * m
    elif kind == "extended_trial":
        raw = (offer.days or 0) / 30.0 * m * (HIGHER_TIER_FACTOR if offer.higher_tier else 1.0)
    elif kind == "account_credit":
        raw = float(offer.amount_minor or 0)
    elif kind == "lower_tier":
        raw = (1.0 - LOWER_TIER_SHARE) * m * VALUE_MONTHS_WITHOUT_PROFILE
    elif kind in ("expert_session", "free_shipping"):
        raw = float(offer.cost_minor)
    else:
        raw = 0.0
    return max(_round(raw), 0)
