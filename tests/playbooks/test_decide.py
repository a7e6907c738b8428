"""``decide``: the brief's reason -> strategy table, tiers, economics, rules, exclusion, budgets, caps,
currency, explanations - and a property test of the choice."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.playbooks.conftest import facts
from winback.kit.errors import WinbackError
from winback.playbooks.budgets import BudgetState, CampaignBudget
from winback.playbooks.decide import decide
from winback.playbooks.spec import REASONS, builtin_playbook_path, parse_playbook

DEFAULT_DATA = yaml.safe_load(builtin_playbook_path().read_text(encoding="utf-8"))


def playbook_with(**changes):
    data = json.loads(json.dumps(DEFAULT_DATA))
    for key, value in changes.items():
        data[key] = value
    return parse_playbook(data)


@pytest.mark.parametrize("reason, strategy, campaign, offer", [
    ("price", "price", "winback_price", "percent_25_3m"),
    ("missing_feature", "missing_feature", "winback_feature", "extended_trial_30d"),
    ("support", "support", "winback_support", "expert_session"),
    ("competitor", "competitor", "winback_competitor", "percent_25_3m"),
    ("usability", "usability", "winback_usability", "expert_session"),
    ("involuntary", "involuntary", "winback_involuntary", "payment_update"),
    ("other", "other", "winback_general", "pause_3m"),
    (None, "unknown", "winback_general", "pause_3m"),
])
def test_each_reason_gets_its_strategy(default_playbook, reason, strategy, campaign, offer):
    d = decide(default_playbook, facts(reason=reason), BudgetState.from_playbook(default_playbook))
    assert (d.strategy_key, d.campaign_key, d.offer_key, d.excluded) == (strategy, campaign, offer, False)
    assert d.reason == (reason or "unknown")
    assert f"Strategy: {default_playbook.strategies[strategy].title}." in d.explanation


def test_reason_without_strategy_uses_unknown():
    data = json.loads(json.dumps(DEFAULT_DATA))
    del data["strategies"]["other"]
    d = decide(parse_playbook(data), facts(reason="other"))
    assert d.strategy_key == "unknown" and "no strategy for other" in d.explanation_text


@pytest.mark.parametrize("tier, expected", [
    ("top", ["annual_incentive", "percent_25_3m", "lower_tier"]),
    ("high", ["percent_25_3m", "annual_incentive", "lower_tier"]),
    ("mid", ["percent_25_3m", "lower_tier"]),
    ("low", ["lower_tier", "small_incentive_10"]),
    (None, ["percent_25_3m", "lower_tier"]),
])
def test_candidates_depend_on_value_tier(default_playbook, tier, expected):
    # p_return below the deep-discount rule's 0.08 so the tier list is used
    d = decide(default_playbook, facts(value_tier=tier, p_return=0.05))
    assert [c.offer for c in d.candidates] == expected
    assert d.rules_applied == ()


def test_numbers_equal_a_hand_computation(default_playbook):
    """Price, top tier, P(return) 0.12, value $1,240, MRR $50: rule price_high_value_deeper_discount applies."""
    d = decide(default_playbook, facts(value_tier="top", reason_confidence=0.8))
    assert d.rules_applied == ("price_high_value_deeper_discount",)
    by = {c.offer: c for c in d.candidates}
    # percent_50_3m: p = 0.12 + 0.26; cost = 50% x 5,000 x 3 months x 0.38
    assert by["percent_50_3m"].cost_minor == 2_850
    assert by["percent_50_3m"].expected_gain_minor == 47_120 - 2_850
    # annual_incentive: p = 0.24; cost = 2 free months x 5,000 x 0.24
    assert (by["annual_incentive"].cost_minor, by["annual_incentive"].expected_gain_minor) == (2_400, 29_760 - 2_400)
    # percent_25_3m: p = 0.32; cost = 25% x 5,000 x 3 x 0.32
    assert (by["percent_25_3m"].cost_minor, by["percent_25_3m"].expected_gain_minor) == (1_200, 39_680 - 1_200)
    assert d.offer_key == "percent_50_3m" and d.offer_cost_minor == 2_850 and d.expected_gain_minor == 44_270
    assert d.baseline_gain_minor == 14_880 and d.incremental_gain_minor == 44_270 - 14_880
    assert d.p_base == 0.12 and d.p_with_offer == pytest.approx(0.38)
    text = d.explanation_text
    assert "Reason: price (confidence 0.80 from the profile)." in text
    assert "Rule price_high_value_deeper_discount applied" in text
    assert ("Offer percent_50_3m: P(return) 12% -> 38%, value after return $1,240.00, expected cost $28.50, "
            "expected gain $442.70 - the best of 3 candidates (annual_incentive $273.60; percent_25_3m $384.80)"
            in text)
    payload = json.loads(json.dumps(d.as_dict()))
    assert payload["offer_key"] == "percent_50_3m" and len(payload["candidates"]) == 3
    assert payload["candidates"][0]["rejected_because"] is None


def test_rules_apply_in_order_first_match_per_field():
    rules = [
        {"name": "first_campaign", "when": {"reason": "price"}, "campaign": "winback_general"},
        {"name": "first_offers", "when": {"value_tier": "mid"}, "offers": ["lower_tier"]},
        {"name": "shadowed_offers", "when": {"reason": "price"}, "offers": ["percent_50_3m"],
         "campaign": "exit_survey"},
        {"name": "strategy_switch", "when": {"country": "US"}, "strategy": "other"},
    ]
    d = decide(playbook_with(rules=rules), facts())
    assert d.rules_applied == ("first_campaign", "first_offers", "strategy_switch")
    assert d.campaign_key == "winback_general"
    assert [c.offer for c in d.candidates] == ["lower_tier"]
    assert d.strategy_key == "other"
    # without the offers rule, the switched strategy's list is used
    d = decide(playbook_with(rules=[rules[3]]), facts())
    assert d.strategy_key == "other" and d.campaign_key == "winback_general"
    assert [c.offer for c in d.candidates] == ["pause_3m", "percent_25_3m"]


def test_enterprise_rule_shadows_later_offers_rule(default_playbook):
    d = decide(default_playbook, facts(reason="usability", value_tier="top", persona="one_time_high_aov"))
    assert d.rules_applied == ("enterprise_gets_trial_and_expert",)
    assert [c.offer for c in d.candidates] == ["extended_trial_30d", "expert_session"]


def test_exclusion_stops_and_commits_nothing(default_playbook):
    budgets = BudgetState.from_playbook(default_playbook)
    d = decide(default_playbook, facts(suggested_channel="none", value_tier="top"), budgets)
    assert d.excluded and d.offer_key is None and d.offer_cost_minor == 0 and d.candidates == ()
    assert d.rules_applied[-1] == "no_way_to_reach"
    assert "Excluded by rule no_way_to_reach (no email permission" in d.explanation_text
    budgets.commit(d)
    assert budgets.get("winback_price").committed_minor == 0 and not budgets.get("winback_price").offer_counts


def test_budget_exhaustion_switches_to_cheaper_offer_then_none(default_playbook):
    top = facts(value_tier="top")
    state = BudgetState.from_playbook(default_playbook, committed={"winback_price": 10_000_000 - 2_000})
    d = decide(default_playbook, top, state)
    assert d.offer_key == "percent_25_3m" and d.offer_cost_minor == 1_200
    by = {c.offer: c for c in d.candidates}
    assert not by["percent_50_3m"].admissible and "exceeds what remains" in by["percent_50_3m"].rejected_because
    assert "$20.00" in by["percent_50_3m"].rejected_because
    state.commit(d)
    assert state.remaining("winback_price") == 800
    d = decide(default_playbook, top, state)
    assert d.offer_key is None and all(not c.admissible for c in d.candidates)
    assert "No incentive: all 3 candidates were rejected" in d.explanation_text


def test_sequential_commits_never_exceed_budget(default_playbook):
    budget = 100_000
    state = BudgetState({"winback_price": CampaignBudget(budget, "USD")})
    chosen = Counter()
    for i in range(200):
        d = decide(default_playbook, facts(customer_id=i, value_tier="top"), state)
        state.commit(d)
        chosen[d.offer_key] += 1
    assert state.get("winback_price").committed_minor <= budget
    assert chosen["percent_50_3m"] == 35 and chosen[None] > 0  # 35 x 2,850 = 99,750


def test_max_per_campaign(default_playbook):
    state = BudgetState.from_playbook(default_playbook, counts={"winback_price": {"percent_50_3m": 2000}})
    d = decide(default_playbook, facts(value_tier="top"), state)
    assert d.offer_key == "percent_25_3m"
    assert "cap of 2000 per campaign is reached" in {c.offer: c for c in d.candidates}["percent_50_3m"].rejected_because
    state = BudgetState.from_playbook(default_playbook, counts={"winback_price": {"percent_50_3m": 1999}})
    assert decide(default_playbook, facts(value_tier="top"), state).offer_key == "percent_50_3m"


def test_min_p_return():
    rules = [{"name": "deep", "when": {"reason": "price"}, "offers": ["percent_50_3m", "percent_25_3m"]}]
    pb = playbook_with(rules=rules)
    d = decide(pb, facts(p_return=0.07))
    assert d.offer_key == "percent_25_3m"
    assert "at least 0.08; the customer's is 0.07" in d.candidates[0].rejected_because
    d = decide(pb, facts(p_return=None))
    assert not d.candidates[0].admissible and "unknown" in d.candidates[0].rejected_because
    assert decide(pb, facts(p_return=0.08)).offer_key == "percent_50_3m"


def test_fixed_amount_offers_not_made_in_another_currency(default_playbook):
    jpy = facts(reason="support", value_tier="mid", currency="JPY", value_after_return_minor=200_000, mrr_minor=8_000)
    d = decide(default_playbook, jpy)
    assert d.offer_key is None and d.currency == "JPY"
    assert all("in USD and the customer pays in JPY" in c.rejected_because for c in d.candidates)
    usd = decide(default_playbook, facts(reason="support", value_tier="mid"))
    assert usd.offer_key == "expert_session"


def test_percentage_cost_in_another_currency_than_the_budget(default_playbook):
    state = BudgetState.from_playbook(default_playbook)
    assert decide(default_playbook, facts(currency="EUR", value_tier="mid")).offer_key == "percent_25_3m"  # no budget
    d = decide(default_playbook, facts(currency="EUR", value_tier="mid"), state)
    assert d.offer_key is None
    assert "the winback_price budget is in USD" in d.candidates[0].rejected_because
    # no budget on winback_competitor: the percentage offer is fine in EUR
    assert decide(default_playbook, facts(currency="EUR", reason="competitor"), state).offer_key == "percent_25_3m"


def test_no_incentive_when_no_offer_beats_none(default_playbook):
    d = decide(default_playbook, facts(reason="support", value_tier="low", value_after_return_minor=1_000,
                                       mrr_minor=100))
    assert d.offer_key is None and d.expected_gain_minor == d.baseline_gain_minor == 120
    assert all(c.admissible and c.expected_gain_minor < 120 for c in d.candidates)
    assert ("No incentive: none of the 2 admissible candidates beats no incentive on expected gain (the best, "
            "account_credit_20, would give -$2.30). P(return) 12%, value after return $10.00, expected gain "
            "without an offer $1.20." in d.explanation_text)


def test_free_offer_with_unknown_value_still_chosen(default_playbook):
    d = decide(default_playbook, facts(reason="involuntary", value_after_return_minor=None, mrr_minor=None))
    assert d.offer_key == "payment_update" and d.expected_gain_minor == 0
    assert "value after return is unknown" in d.explanation_text


def test_campaign_mode(default_playbook):
    shopper = facts(reason=None, status="active", persona="repeat_buyer", value_after_return_minor=30_000,
                    p_return=0.2, mrr_minor=None)
    d = decide(default_playbook, shopper, campaign_key="abandoned_checkout")
    assert d.mode == "campaign" and d.campaign_key == "abandoned_checkout" and d.strategy_key is None
    assert [c.offer for c in d.candidates] == ["none", "free_shipping"]
    assert d.offer_key == "free_shipping"  # 0.25 x 30,000 - 800 x 0.25 = 7,300 > 0.2 x 30,000
    assert d.expected_gain_minor == 7_500 - 200
    high_aov = decide(default_playbook, facts(**{**shopper.__dict__, "persona": "one_time_high_aov"}),
                      campaign_key="abandoned_checkout")
    assert [c.offer for c in high_aov.candidates] == ["none"] and high_aov.offer_key is None
    assert high_aov.rules_applied == ("high_aov_buyers_want_service",)
    with pytest.raises(WinbackError, match="unknown campaign"):
        decide(default_playbook, shopper, campaign_key="nope")


def test_campaign_rule_naming_the_campaign_replaces_offers():
    rules = [{"name": "vip_checkout", "when": {"segment": "vip"}, "campaign": "abandoned_checkout",
              "offers": ["small_incentive_10"]}]
    pb = playbook_with(rules=rules)
    d = decide(pb, facts(segments=frozenset({"vip"})), campaign_key="abandoned_checkout")
    assert [c.offer for c in d.candidates] == ["small_incentive_10"] and d.rules_applied == ("vip_checkout",)
    d = decide(pb, facts(), campaign_key="abandoned_checkout")
    assert [c.offer for c in d.candidates] == ["none", "free_shipping"]


# ------------------------------------------------------------------------------------------ property

tiers = st.sampled_from(["top", "high", "mid", "low", None])
facts_strategy = st.builds(
    lambda reason, tier, p, value, mrr, currency, channel, persona: facts(
        reason=reason, value_tier=tier, p_return=p, value_after_return_minor=value, mrr_minor=mrr, currency=currency,
        suggested_channel=channel, persona=persona),
    st.sampled_from(list(REASONS) + [None]), tiers, st.one_of(st.none(), st.floats(0, 1)),
    st.one_of(st.none(), st.integers(0, 5_000_000)), st.one_of(st.none(), st.integers(0, 500_000)),
    st.sampled_from(["USD", "USD", "JPY", None]), st.sampled_from(["email", "phone", "retargeting"]),
    st.sampled_from([None, "one_time_high_aov", "repeat_buyer"]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(customers=st.lists(facts_strategy, min_size=1, max_size=8), budget=st.integers(0, 20_000),
       cap=st.integers(0, 3), campaign=st.sampled_from([None, None, "abandoned_checkout", "inactive_regulars"]))
def test_choice_is_the_best_admissible_and_within_budget(default_playbook, customers, budget, cap, campaign):
    state = BudgetState({k: CampaignBudget(budget, "USD") for k in default_playbook.campaigns})
    state.get("winback_price").offer_counts["percent_50_3m"] = 2000 - cap
    for f in customers:
        before = state.remaining(campaign or decide(default_playbook, f).campaign_key)
        d = decide(default_playbook, f, state, campaign_key=campaign)
        admissible = [c for c in d.candidates if c.admissible]
        if d.offer_key is not None:
            chosen = next(c for c in d.candidates if c.offer == d.offer_key)
            assert chosen.admissible
            assert chosen.expected_gain_minor == max(c.expected_gain_minor for c in admissible)
            assert d.expected_gain_minor >= d.baseline_gain_minor
            assert d.offer_cost_minor <= before or d.offer_cost_minor == 0
        else:
            assert all(c.expected_gain_minor <= d.baseline_gain_minor for c in admissible)
            assert d.offer_cost_minor == 0
        state.commit(d)
        json.dumps(d.as_dict())
    for key, b in state.campaigns.items():
        assert b.committed_minor <= budget, key
    assert state.get("winback_price").offer_counts["percent_50_3m"] <= 2000


def test_experiment_offer_override_and_commit(default_playbook):
    state = BudgetState.from_playbook(default_playbook)
    d = decide(default_playbook, facts(), state, offer_override="lower_tier", commit=True)
    assert d.offer_key == d.offer == "lower_tier" and d.campaign == "winback_price" and d.strategy == "price"
    assert "Experiment: the variant's offer lower_tier replaces percent_25_3m" in d.explanation_text
    assert state.get("winback_price").offer_counts["lower_tier"] == 1
    assert state.get("winback_price").committed_minor == d.offer_cost_minor == round(0.4 * 124_000 * 0.28)
    # an inadmissible variant offer is not made
    capped = BudgetState.from_playbook(default_playbook, counts={"winback_price": {"percent_50_3m": 2000}})
    d = decide(default_playbook, facts(), capped, offer_override="percent_50_3m")
    assert d.offer_key == "percent_25_3m" and "cannot be made (its cap of 2000" in d.explanation_text
    # an override to the no-incentive offer
    d = decide(default_playbook, facts(), offer_override="none")
    assert d.offer_key is None and d.offer_cost_minor == 0
    excluded = decide(default_playbook, facts(suggested_channel="none"), state, commit=True)
    assert excluded.exclusion == "rule no_way_to_reach" and state.get("winback_price").offer_counts.total() == 1


def test_set_campaign(default_playbook):
    state = BudgetState()
    state.set_campaign("winback_price", budget_minor=3_000, committed_minor=1_000, offer_counts={"percent_50_3m": 1})
    assert state.remaining("winback_price") == 2_000 and state.count("winback_price", "percent_50_3m") == 1
    d = decide(default_playbook, facts(value_tier="top"), state)
    assert d.offer_key == "percent_25_3m"  # percent_50_3m's 2,850 exceeds the 2,000 left
