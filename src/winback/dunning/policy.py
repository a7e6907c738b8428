"""Decline-aware retry policy: pure functions of a case's history and the clock.

Three kinds of failure (``category``):

* ``hard`` - the issuer will not approve this card again (lost, stolen, pick-up, fraudulent,
  invalid number, expired, do not try again ...). Never retried: the customer is asked for a new
  card, and the next charge is made when the card changes.
* ``soft`` - the issuer may approve later (insufficient funds, try again later, processing error,
  generic decline ...). Retried on the schedule: by default 1, 3 and 7 days after the first
  failure (``[dunning] retry_days`` / ``retry_schedule``).
* ``gateway`` - the charge never reached a decision (timeouts, connection errors, rate limits,
  the provider's 5xx). Retried quickly with exponential backoff, up to ``quick_retry_limit`` times
  in a row, then the schedule takes over.

Every attempt on a card counts towards ``max_attempts_per_card`` in any 30 days (at most 10:
networks fine merchants who retry more). Unknown decline codes are treated as soft.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Sequence

# Stripe's decline codes (https://docs.stripe.com/declines/codes) grouped by what a retry can do.
HARD_DECLINES = frozenset({
    "lost_card", "stolen_card", "pickup_card", "fraudulent", "merchant_blacklist", "incorrect_number",
    "invalid_number", "invalid_account", "expired_card", "do_not_try_again", "restricted_card",
    "security_violation", "revocation_of_authorization", "revocation_of_all_authorizations",
    "stop_payment_order", "new_account_information_available", "card_not_supported", "currency_not_supported",
    "invalid_expiry_month", "invalid_expiry_year", "incorrect_cvc", "invalid_cvc", "incorrect_zip",
    "authentication_required", "card_declined_permanently", "account_closed", "no_account",
    "testmode_decline", "transaction_not_allowed", "not_permitted",
})
SOFT_DECLINES = frozenset({
    "insufficient_funds", "try_again_later", "processing_error", "generic_decline", "do_not_honor",
    "card_velocity_exceeded", "withdrawal_count_limit_exceeded", "approve_with_id", "issuer_not_available",
    "reenter_transaction", "call_issuer", "service_not_allowed", "duplicate_transaction", "no_action_taken",
    "offline_pin_required", "online_or_offline_pin_required", "pin_try_exceeded", "incorrect_pin",
    "invalid_amount", "card_declined",
})
GATEWAY_ERRORS = frozenset({"timeout", "api_connection_error", "rate_limit", "api_error", "gateway_error"})

CATEGORIES = ("hard", "soft", "gateway")
CAP_WINDOW = dt.timedelta(days=30)


def classify(decline_code: str | None) -> str:
    """``hard``, ``soft`` or ``gateway`` for a decline or error code (unknown codes: soft)."""
    code = (decline_code or "").strip().lower()
    if code in HARD_DECLINES:
        return "hard"
    if code in GATEWAY_ERRORS:
        return "gateway"
    return "soft"


@dataclass(frozen=True)
class Policy:
    """The retry rules of ``[dunning]``: see :meth:`from_settings`."""

    retry_days: tuple[float, ...] = (1.0, 3.0, 7.0)
    quick_base_seconds: float = 60.0
    quick_max_seconds: float = 3600.0
    quick_limit: int = 5
    max_per_card: int = 10
    grace_days: float = 14.0

    @classmethod
    def from_settings(cls, dunning) -> "Policy":
        return cls(retry_days=tuple(dunning.retry_offsets()), quick_base_seconds=dunning.quick_retry_base_seconds,
                   quick_max_seconds=dunning.quick_retry_max_seconds, quick_limit=dunning.quick_retry_limit,
                   max_per_card=dunning.max_attempts_per_card, grace_days=dunning.grace_days)

    def grace_until(self, first_failed_at: dt.datetime) -> dt.datetime:
        """Access ends here at the earliest; dunning gives up at the later of this and the last retry."""
        last_retry = self.retry_days[-1] if self.retry_days else 0.0
        return first_failed_at + dt.timedelta(days=max(self.grace_days, last_retry))


@dataclass(frozen=True)
class NextStep:
    """What to do after a failure: retry at ``at`` (``trigger`` schedule | quick), wait for a new card
    (``wait_for_update``), or nothing left (``at`` None: give up when the grace period ends)."""

    at: dt.datetime | None
    trigger: str | None
    retry_index: int
    quick_retries: int
    wait_for_update: bool


def after_failure(policy: Policy, *, category: str, first_failed_at: dt.datetime, now: dt.datetime,
                  retry_index: int, quick_retries: int) -> NextStep:
    """The next charge after a failure of ``category`` at ``now``.

    ``retry_index`` is how many scheduled retries were used, ``quick_retries`` how many gateway-error
    retries happened in a row. A hard decline schedules nothing: only a new card starts a charge.
    """
    if category == "hard":
        return NextStep(None, None, retry_index, 0, True)
    if category == "gateway" and quick_retries < policy.quick_limit:
        delay = min(policy.quick_base_seconds * (2 ** quick_retries), policy.quick_max_seconds)
        return NextStep(now + dt.timedelta(seconds=delay), "quick", retry_index, quick_retries + 1, False)
    for index in range(retry_index, len(policy.retry_days)):
        at = first_failed_at + dt.timedelta(days=policy.retry_days[index])
        if at > now:
            return NextStep(at, "schedule", index + 1, 0, False)
    return NextStep(None, None, len(policy.retry_days), 0, False)


def cap_allows(attempt_times: Iterable[dt.datetime], now: dt.datetime, limit: int) -> dt.datetime | None:
    """None when one more charge on the card is allowed at ``now``; otherwise the earliest time it is
    (when the oldest charge in the 30-day window falls out of it)."""
    recent = sorted(t for t in attempt_times if now - CAP_WINDOW < t <= now)
    if len(recent) < limit:
        return None
    return recent[len(recent) - limit] + CAP_WINDOW + dt.timedelta(seconds=1)


def max_in_any_window(times: Sequence[dt.datetime], window: dt.timedelta = CAP_WINDOW) -> int:
    """The largest number of ``times`` inside any half-open window of this length (for checks)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
