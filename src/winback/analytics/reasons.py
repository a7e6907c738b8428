"""Churn reasons from stated data: cancellation codes mapped to canonical categories.

Canonical categories (DOMAIN.md, "Churn analysis"): ``price``, ``missing_feature``,
``usability``, ``support``, ``competitor``, ``involuntary`` (payment failure), plus ``other``
and ``unknown`` (nothing stated).

:data:`CANCEL_CODE_REASONS` maps the cancellation feedback codes of Stripe
(``subscription.cancellation_details.feedback``) and winback's own ``payment_failed`` to those
categories. A code that is not in the map counts as ``other``; no code at all is ``unknown``.
Later stages refine reasons with survey answers and text classification; this table is the
plain first step, and a user can pass their own mapping wherever one is taken.

A churn is **involuntary** when its code is ``payment_failed`` or the subscription's last
charged invoice before it ended failed (see :func:`winback.analytics.metrics.paid_spells`);
an involuntary churn's reason is ``involuntary`` whatever code was stated, because the failed
payment is what ended it.
"""

from __future__ import annotations

PRICE = "price"
MISSING_FEATURE = "missing_feature"
USABILITY = "usability"
SUPPORT = "support"
COMPETITOR = "competitor"
OTHER = "other"
INVOLUNTARY = "involuntary"
UNKNOWN = "unknown"

#: Canonical reasons, in the order reports list them.
REASONS = (PRICE, MISSING_FEATURE, USABILITY, SUPPORT, COMPETITOR, OTHER, INVOLUNTARY, UNKNOWN)

#: Stripe cancellation feedback codes (plus ``payment_failed``) -> canonical reason.
CANCEL_CODE_REASONS: dict[str, str] = {
    "too_expensive": PRICE,
    "missing_features": MISSING_FEATURE,
    "too_complex": USABILITY,
    "customer_service": SUPPORT,
    "switched_service": COMPETITOR,
    "unused": OTHER,
    "low_quality": OTHER,
    "other": OTHER,
    "payment_failed": INVOLUNTARY,
}

#: The stated code that marks a churn as involuntary by itself.
PAYMENT_FAILED_CODE = "payment_failed"


def reason_for_code(code: str | None, mapping: dict[str, str] | None = None) -> str:
    """The canonical reason for one cancellation code (None -> ``unknown``, unmapped -> ``other``)."""
    if code is None:
        return UNKNOWN
    return (CANCEL_CODE_REASONS if mapping is None else mapping).get(code, OTHER)
