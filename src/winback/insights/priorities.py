"""Value tiers and the win-back priority of each lost customer (pure functions over arrays).

* ``value_tier`` ranks customers against others of the same lifecycle group (lost customers by
  the value they took with them, active ones by their expected 12-month value): ``top`` = the
  top 5%, ``high`` = the next 15% (so "high-CLV" = ``high`` or ``top`` = the top 20%, the
  brief's Pareto cut), ``mid`` = the next 40%, ``low`` = the rest. Customers without a value get none.
* **Expected recoverable value** (DOMAIN.md step 3) = ``p_return x value_after_return``, where
  ``value_after_return`` is what the customer would bring if they came back as they were: the
  value lost at churn (sBG discounted expected residual lifetime x MRR for subscriptions; the
  historical CLV formula for buyers), else 12 months of their last MRR.
* ``priority_rank`` orders lost customers by recoverable value (1 = first to contact).
* ``suggested_channel``: ``phone`` for very-high-value accounts with a phone number (the brief's
  phone interviews for key accounts, framed as learning), ``email`` when the customer may receive
  marketing email (consent or soft opt-in and not opted out), ``retargeting`` when only an
  audience upload is possible (an email address but no email permission and no opt-out),
  otherwise ``none``.
"""

from __future__ import annotations

import numpy as np

TIER_CUTS = (("top", 0.05), ("high", 0.20), ("mid", 0.60))
LOST_STATUSES = ("churned", "lost", "trial_only")
MARKETING_BASES = ("consent", "soft_opt_in")


def value_tiers(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Tier per row: rank within its group by value, descending (NaN value -> None)."""
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups, dtype=object)
    out = np.full(values.size, None, dtype=object)
    for group in {g for g in groups.tolist() if g is not None}:
        idx = np.flatnonzero((groups == group) & ~np.isnan(values))
        if idx.size == 0:
            continue
        order = idx[np.argsort(-values[idx], kind="stable")]
        share = (np.arange(order.size) + 1) / order.size
        tiers = np.full(order.size, "low", dtype=object)
        for name, cut in reversed(TIER_CUTS):
            tiers[share <= cut] = name
        out[order] = tiers
    return out


def recoverable_value(p_return: np.ndarray, lost_value: np.ndarray, mrr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value_after_return, recoverable = p_return x value_after_return), both in minor units (NaN = none)."""
    p = np.asarray(p_return, dtype=np.float64)
    lost = np.asarray(lost_value, dtype=np.float64)
    mrr = np.asarray(mrr, dtype=np.float64)
    after = np.where(np.isnan(lost) | (lost <= 0), mrr * 12.0, lost)
    after = np.where(np.isnan(after), np.nan, np.maximum(after, 0.0))
    return after, p * after


def priority_ranks(recoverable: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """1-based rank by recoverable value among eligible rows with a value (others NaN); ties keep input order."""
    rec = np.asarray(recoverable, dtype=np.float64)
    ok = np.asarray(eligible, dtype=bool) & ~np.isnan(rec)
    ranks = np.full(rec.size, np.nan)
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(-rec[idx], kind="stable")]
    ranks[order] = np.arange(1, order.size + 1)
    return ranks


def suggested_channels(eligible: np.ndarray, value_after: np.ndarray, email: list, phone: list,
                       marketing_basis: list, opted_out: list, *, phone_top_share: float = 0.01,
                       phone_min_value: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(channel per row, phone-interview flag). Very high value = the top ``phone_top_share`` of
    eligible rows by value after return (the ``ceil(share x n)`` largest values, ties included),
    or at least ``phone_min_value`` when given."""
    n = len(email)
    eligible = np.asarray(eligible, dtype=bool)
    value_after = np.asarray(value_after, dtype=np.float64)
    very_high = np.zeros(n, dtype=bool)
    vals = np.sort(value_after[eligible & ~np.isnan(value_after)])[::-1]
    if vals.size:
        top = max(int(np.ceil(phone_top_share * vals.size)), 1)
        cut = vals[top - 1] if phone_min_value is None else phone_min_value
        very_high = eligible & ~np.isnan(value_after) & (value_after >= cut) & (value_after > 0)
    channel = np.full(n, None, dtype=object)
    for i in np.flatnonzero(eligible):
        has_email = bool(email[i])
        may_email = has_email and not opted_out[i] and marketing_basis[i] in MARKETING_BASES
        if very_high[i] and phone[i]:
            channel[i] = "phone"
        elif may_email:
            channel[i] = "email"
        elif has_email and not opted_out[i]:
            channel[i] = "retargeting"
        else:
            channel[i] = "none"
    interview = very_high & np.array([bool(p) for p in phone], dtype=bool) if n else very_high
    return channel, interview
