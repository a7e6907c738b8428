"""Ground truth: the true probability that a lost customer returns under each win-back offer.

The response model is deliberately simple and documented so analytics can be scored against it:

    p(offer) = clip((base[reason] + lift[reason, offer]) * value_factor * recency_factor, 0.001, 0.95)

* ``base`` is the natural return rate with no offer (``p_return_none``);
* ``lift`` follows the playbook in DOMAIN.md: price churners answer discounts and lower tiers,
  missing-feature churners a feature announcement (only once the feature has shipped),
  usability churners an expert session or extended trial, support churners an expert session or
  account credit, involuntary churners a simple payment update;
* ``value_factor`` makes higher-value, longer-tenured, more engaged customers somewhat likelier
  to return; ``recency_factor`` decays with the time since they left.
"""

from __future__ import annotations

import numpy as np

OFFERS: tuple[str, ...] = (
    "none", "discount", "lower_tier", "annual_incentive", "pause", "extended_trial", "expert_session",
    "account_credit", "feature_announcement", "payment_update",
)
# reason codes: 0 = no reason (not churned), then these in order
REASONS: tuple[str, ...] = ("price", "missing_feature", "usability", "support", "competitor", "other", "involuntary")
R_PRICE, R_FEATURE, R_USABILITY, R_SUPPORT, R_COMPETITOR, R_OTHER, R_INVOLUNTARY = range(1, 8)


def reason_name(codes: np.ndarray) -> list[str | None]:
    names = (None,) + REASONS
    return [names[c] for c in codes]


_O = {name: i for i, name in enumerate(OFFERS)}


def _table(rows: dict[str, dict[str, float]]) -> np.ndarray:
    t = np.zeros((len(REASONS) + 1, len(OFFERS)))
    for reason, lifts in rows.items():
        r = REASONS.index(reason) + 1
        for offer, value in lifts.items():
            t[r, _O[offer]] = value
    return t


SAAS_BASE = np.array([0.0, 0.040, 0.040, 0.030, 0.025, 0.020, 0.035, 0.100])
SAAS_LIFT = _table({
    "price": {"discount": 0.22, "lower_tier": 0.18, "annual_incentive": 0.12, "pause": 0.06, "extended_trial": 0.03,
              "expert_session": 0.02, "account_credit": 0.08, "feature_announcement": 0.02},
    "missing_feature": {"discount": 0.03, "annual_incentive": 0.01, "pause": 0.03, "extended_trial": 0.06,
                        "expert_session": 0.04, "account_credit": 0.03, "feature_announcement": 0.03},
    "usability": {"discount": 0.04, "lower_tier": 0.03, "pause": 0.02, "extended_trial": 0.14,
                  "expert_session": 0.18, "account_credit": 0.03, "feature_announcement": 0.08},
    "support": {"discount": 0.05, "lower_tier": 0.01, "annual_incentive": 0.01, "pause": 0.02, "extended_trial": 0.04,
                "expert_session": 0.22, "account_credit": 0.12, "feature_announcement": 0.03},
    "competitor": {"discount": 0.08, "lower_tier": 0.04, "annual_incentive": 0.05, "pause": 0.01,
                   "extended_trial": 0.06, "expert_session": 0.05, "account_credit": 0.04,
                   "feature_announcement": 0.10},
    "other": {"discount": 0.05, "lower_tier": 0.04, "annual_incentive": 0.02, "pause": 0.14, "extended_trial": 0.03,
              "expert_session": 0.03, "account_credit": 0.04, "feature_announcement": 0.03},
    "involuntary": {"discount": 0.06, "lower_tier": 0.03, "annual_incentive": 0.02, "pause": 0.04,
                    "extended_trial": 0.02, "expert_session": 0.01, "account_credit": 0.07,
                    "feature_announcement": 0.01, "payment_update": 0.45},
})
SHIPPED_FEATURE_LIFT = 0.38  # missing-feature churners once their feature is released

SHOP_BASE = np.array([0.0, 0.040, 0.040, 0.030, 0.030, 0.020, 0.030, 0.0])
SHOP_LIFT = _table({
    "price": {"discount": 0.18, "account_credit": 0.10, "lower_tier": 0.02, "feature_announcement": 0.03,
              "expert_session": 0.01},
    "missing_feature": {"discount": 0.06, "account_credit": 0.05, "feature_announcement": 0.20},
    "usability": {"discount": 0.07, "account_credit": 0.04, "feature_announcement": 0.10, "expert_session": 0.04},
    "support": {"discount": 0.08, "account_credit": 0.14, "expert_session": 0.12, "feature_announcement": 0.02},
    "competitor": {"discount": 0.10, "account_credit": 0.08, "feature_announcement": 0.05},
    "other": {"discount": 0.06, "account_credit": 0.04, "feature_announcement": 0.02, "pause": 0.01},
})


def _finish(p: np.ndarray) -> dict[str, np.ndarray]:
    p = np.clip(p, 0.001, 0.95)
    p = np.round(p, 4)
    return {f"p_return_{offer}": p[:, i] for i, offer in enumerate(OFFERS)}


def saas_p_return(reason: np.ndarray, tier: np.ndarray, tenure_months: np.ndarray, engagement: np.ndarray,
                  months_since: np.ndarray, feature_shipped: np.ndarray, hard_decline: np.ndarray,
                  trial_only: np.ndarray) -> dict[str, np.ndarray]:
    """Return probabilities (rows x offers) for lost SaaS customers with a known reason code (1-7)."""
    reason = np.asarray(reason, dtype=np.int64)
    base = SAAS_BASE[reason][:, None]
    lift = SAAS_LIFT[reason].copy()
    lift[:, _O["lower_tier"]] = np.where(tier > 0, lift[:, _O["lower_tier"]], lift[:, _O["lower_tier"]] * 0.2)
    lift[:, _O["feature_announcement"]] = np.where((reason == R_FEATURE) & feature_shipped, SHIPPED_FEATURE_LIFT,
                                                   lift[:, _O["feature_announcement"]])
    lift[:, _O["payment_update"]] = np.where(hard_decline, lift[:, _O["payment_update"]] * 0.75,
                                             lift[:, _O["payment_update"]])
    lift[:, _O["extended_trial"]] += np.where(trial_only, 0.10, 0.0)
    lift[:, _O["none"]] = 0.0
    value = 0.8 + 0.12 * tier + 0.15 * np.minimum(tenure_months, 24) / 24 + 0.25 * engagement
    recency = 0.35 + 0.65 * np.exp(-np.maximum(months_since, 0) / 18.0)
    return _finish((base + lift) * (value * recency)[:, None])


def prospect_p_return(declined: np.ndarray, months_since: np.ndarray) -> dict[str, np.ndarray]:
    """Prospects who abandoned a checkout (email given) or whose card was declined at checkout."""
    abandoned = np.array([0.06, 0.18, 0.06, 0.03, 0.0, 0.14, 0.08, 0.05, 0.02, 0.02])
    refused = np.array([0.08, 0.08, 0.03, 0.02, 0.0, 0.05, 0.02, 0.04, 0.01, 0.35])
    p = np.where(np.asarray(declined)[:, None], refused[None, :], abandoned[None, :])
    p = p.copy()
    p[:, 1:] += p[:, :1]
    recency = 0.3 + 0.7 * np.exp(-np.maximum(months_since, 0) / 6.0)
    return _finish(p * recency[:, None])


def shop_p_return(reason: np.ndarray, persona: np.ndarray, dead: np.ndarray, rate_per_week: np.ndarray,
                  spend_pct: np.ndarray, months_since: np.ndarray, declined: np.ndarray,
                  personas: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Probability of a purchase within 90 days of the offer, for every shop customer."""
    n = len(reason)
    reason = np.asarray(reason, dtype=np.int64)
    p = np.zeros((n, len(OFFERS)))
    # dropped-out buyers: base + reason lifts, value and recency factors
    value = 0.85 + 0.3 * spend_pct
    recency = 0.35 + 0.65 * np.exp(-np.maximum(months_since, 0) / 12.0)
    dead_p = (SHOP_BASE[reason][:, None] + SHOP_LIFT[reason]) * (value * recency)[:, None]
    dead_p[:, 0] = SHOP_BASE[reason] * value * recency
    # alive buyers: the no-offer probability is the model's own P(purchase within 13 weeks)
    natural = 1.0 - np.exp(-rate_per_week * 13.0)
    alive_lift = np.zeros((n, len(OFFERS)))
    alive_lift[:, _O["discount"]] = 0.10
    alive_lift[:, _O["account_credit"]] = 0.06
    alive_lift[:, _O["feature_announcement"]] = 0.03
    alive_lift[:, _O["expert_session"]] = 0.01
    high_aov = persona == personas.index("one_time_high_aov")
    alive_lift[:, _O["discount"]] = np.where(high_aov, 0.04, alive_lift[:, _O["discount"]])
    alive_lift[:, _O["expert_session"]] = np.where(high_aov, 0.12, alive_lift[:, _O["expert_session"]])
    alive_p = 1.0 - (1.0 - natural[:, None]) * (1.0 - alive_lift)
    buyer = np.isin(persona, [personas.index(x) for x in ("one_time_low_aov", "one_time_high_aov", "repeat_buyer")])
    p = np.where((buyer & dead)[:, None], dead_p, p)
    p = np.where((buyer & ~dead)[:, None], alive_p, p)
    # non-transacting personas
    table = {
        "bouncer": [0.01, 0.03, 0.0, 0.0, 0.0, 0.0, 0.0, 0.02, 0.02, 0.0],
        "passive_browser": [0.03, 0.07, 0.0, 0.0, 0.0, 0.0, 0.01, 0.04, 0.05, 0.0],
        "cart_abandoner": [0.08, 0.24, 0.0, 0.0, 0.0, 0.0, 0.02, 0.10, 0.04, 0.03],
    }
    recency_np = 0.3 + 0.7 * np.exp(-np.maximum(months_since, 0) / 6.0)
    for name, row in table.items():
        row = np.array(row)
        row[1:] += row[0]
        mask = persona == personas.index(name)
        rows = np.where(declined[:, None] & (name == "cart_abandoner"),
                        np.where(np.arange(len(OFFERS)) == _O["payment_update"], 0.38, row)[None, :], row[None, :])
        p = np.where(mask[:, None], rows * recency_np[:, None], p)
    return _finish(p)
