"""winback's plain billing event format, for billing systems other than Stripe (and the sandbox).

Sent to ``POST /webhooks/billing/standard`` and signed with Standard Webhooks
(https://www.standardwebhooks.com: headers ``webhook-id``, ``webhook-timestamp``,
``webhook-signature``). The body follows the spec's recommended envelope::

    {
      "type": "invoice.payment_failed",
      "timestamp": "2026-01-15T11:58:03Z",
      "data": {
        "invoice_id": "INV-2026-0042",
        "customer_id": "C-1001",
        "customer_email": "ana@example.com",
        "subscription_id": "S-77",
        "amount_due": 4900,
        "currency": "EUR",
        "status": "open",
        "attempt_count": 1,
        "decline_code": "insufficient_funds",
        "failure_message": "Your card has insufficient funds.",
        "payment_method_id": "PM-9",
        "card": {"brand": "visa", "last4": "4242", "exp_month": 8, "exp_year": 2027,
                 "fingerprint": "Xt5EWLLDS7FJjR1c"}
      }
    }

* ``type`` - one of the Stripe-like names of ``STANDARD_KINDS`` (the same meaning as in Stripe):
  ``invoice.payment_failed``, ``invoice.paid`` (or ``invoice.payment_succeeded``),
  ``invoice.voided``, ``invoice.marked_uncollectible``, ``charge.failed`` /
  ``payment_intent.payment_failed`` (a failed charge with its decline code),
  ``payment_method.attached`` / ``.updated`` / ``.detached`` / ``.automatically_updated``
  (the last one: the network's card updater changed the card), ``customer.updated`` (with
  ``default_payment_method_id``), ``setup_intent.succeeded`` (a card saved by the customer),
  ``customer.subscription.created|updated|deleted|paused|resumed``. Any other type is stored and
  ignored.
* ``timestamp`` - when the event happened at the billing system: ISO 8601 with a zone (or unix
  seconds). Events are applied in this order: an older event arriving late changes nothing.
* ``id`` - optional: the event id is the ``webhook-id`` header (redeliveries of one event reuse it).
* ``data`` - flat fields, all optional except the id the type is about:

  =============================  =======================================================================================
  field                          meaning
  =============================  =======================================================================================
  ``invoice_id``                 invoice events: required; failed charges: the invoice they paid
  ``customer_id``                the billing system's customer id (matches ingested customers)
  ``customer_email``             the customer's e-mail address
  ``subscription_id``            subscription events: required; invoices: the subscription billed
  ``amount_due``                 integer minor units (cents), never a decimal
  ``currency``                   ISO 4217 (``EUR``; any case)
  ``status``                     invoice: open, paid, void, uncollectible; subscription: active, past_due, canceled, ...
  ``attempt_count``              charges of the invoice so far
  ``decline_code``               the issuer's reason; Stripe's codes are understood (``insufficient_funds``, ...)
  ``failure_message``            human-readable reason
  ``charge_id``                  the failed or successful charge
  ``payment_method_id``          the card; required for ``payment_method.*`` and ``setup_intent.succeeded``
  ``card``                       ``{brand, last4, exp_month, exp_year, fingerprint}``
  ``paid_at``                    invoice paid time (ISO 8601 or unix seconds)
  ``billing_reason``             e.g. subscription_cycle, subscription_create, manual
  ``default_payment_method_id``  ``customer.updated``: required; subscriptions: their card
  ``mrr``                        subscription: monthly recurring revenue, integer minor units
  ``plan_id``                    subscription plan
  ``current_period_end``         subscription: end of the paid period (ISO 8601 or unix seconds)
  =============================  =======================================================================================

A field of the wrong type (a float amount, a non-object card, a malformed time) is rejected with
:class:`~winback.dunning.providers.BadBillingEvent` rather than guessed at.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from winback.dunning.events import BillingEvent, CardEvent, InvoiceInfo, SubscriptionInfo
from winback.dunning.providers import BadBillingEvent, from_unix
from winback.dunning.providers.stripe_events import STRIPE_KINDS
from winback.kit.clock import parse_instant

__all__ = ["STANDARD_KINDS", "parse"]

STANDARD_KINDS: dict[str, str] = dict(STRIPE_KINDS)
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_REQUIRED = {
    "invoice_payment_failed": "invoice_id", "invoice_paid": "invoice_id", "invoice_closed": "invoice_id",
    "payment_method_updated": "payment_method_id", "subscription_updated": "subscription_id",
}


class _Reader:
    """Typed reads of ``data`` that name the event and field in their errors."""

    def __init__(self, where: str, data: dict):
        self.where, self.data = where, data

    def bad(self, field: str, expected: str) -> BadBillingEvent:
        value = repr(self.data.get(field))[:60]
        return BadBillingEvent(f"{self.where}: data.{field} must be {expected} (got {value})")

    def text(self, field: str, data: dict | None = None) -> str | None:
        value = (self.data if data is None else data).get(field)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.bad(field, "a string")
        return str(value).strip() or None

    def integer(self, field: str, data: dict | None = None, *, minimum: int | None = 0) -> int | None:
        value = (self.data if data is None else data).get(field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            raise self.bad(field, "a whole number" + ("" if minimum is None else f" >= {minimum}")
                           + (" in minor units" if field in ("amount_due", "mrr") else ""))
        return value

    def currency(self) -> str | None:
        value = self.data.get("currency")
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not _CURRENCY.fullmatch(value.strip()):
            raise self.bad("currency", "a 3-letter ISO 4217 code")
        return value.strip().upper()

    def instant(self, field: str) -> dt.datetime | None:
        value = self.data.get(field)
        if value is None or value == "":
            return None
        return _instant(value, lambda: self.bad(field, "ISO 8601 with a zone or unix seconds"))

    def card(self, payment_method: str | None, customer: str | None, *, detached: bool = False) -> CardEvent | None:
        details = self.data.get("card")
        if details is not None and not isinstance(details, dict):
            raise self.bad("card", "an object {brand, last4, exp_month, exp_year, fingerprint}")
        if payment_method is None:
            return None
        details = details or {}
        exp_month = self.integer("exp_month", details, minimum=1)
        if exp_month is not None and exp_month > 12:
            raise self.bad("card", "an object whose exp_month is 1-12")
        return CardEvent(ref=payment_method, customer_ref=customer, brand=self.text("brand", details),
                         last4=self.text("last4", details), exp_month=exp_month,
                         exp_year=self.integer("exp_year", details, minimum=1),
                         fingerprint=self.text("fingerprint", details), detached=detached)


def _instant(value: Any, error) -> dt.datetime:
    if isinstance(value, int) and not isinstance(value, bool):
        found = from_unix(value)
        if found is None:
            raise error()
        return found
    if not isinstance(value, str) or len(value.strip()) <= 10:  # a bare date is not an instant
        raise error()
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise error() from None
    if parsed.tzinfo is None:
        raise error()
    return parse_instant(value)


def parse(payload: dict, *, provider: str = "standard", event_id: str | None = None) -> BillingEvent:
    """One event of the standard format (already JSON-decoded); ``provider`` is standard or sandbox."""
    body_id = payload.get("id")
    if body_id is not None and (isinstance(body_id, bool) or not isinstance(body_id, (str, int))):
        raise BadBillingEvent(f"{provider}: the event id must be a string")
    evt_id = (str(body_id).strip() if body_id is not None else "") or (event_id or "").strip()
    if not evt_id:
        raise BadBillingEvent(f"{provider}: the event has no id (send it as the webhook-id header)")
    where = f"{provider} {evt_id}"
    raw_type = payload.get("type")
    if not isinstance(raw_type, str) or not raw_type.strip():
        raise BadBillingEvent(f"{where}: the event has no type")
    raw_type = raw_type.strip()
    if payload.get("timestamp") in (None, ""):
        raise BadBillingEvent(f"{where}: the event has no timestamp (created time, ISO 8601)")
    occurred_at = _instant(payload["timestamp"], lambda: BadBillingEvent(
        f"{where}: timestamp must be ISO 8601 with a zone or unix seconds (got {repr(payload['timestamp'])[:60]})"))
    data = payload.get("data", {})
    if not isinstance(data, dict):
        raise BadBillingEvent(f"{where}: data must be a JSON object")
    base = {"provider": provider, "event_id": evt_id, "raw_type": raw_type, "occurred_at": occurred_at}
    read = _Reader(where, data)
    kind = STANDARD_KINDS.get(raw_type)
    customer = read.text("customer_id")
    if kind is None:
        return BillingEvent(kind="ignored", customer_ref=customer, **base)
    required = _REQUIRED.get(kind)
    if required and read.text(required) is None:
        raise BadBillingEvent(f"{where} ({raw_type}): data.{required} is required")
    email = read.text("customer_email")
    payment_method = read.text("payment_method_id")
    if kind in ("invoice_payment_failed", "invoice_paid", "invoice_closed", "payment_failed_detail"):
        invoice_ref = read.text("invoice_id")
        invoice = None
        if invoice_ref is not None:
            invoice = InvoiceInfo(
                ref=invoice_ref, customer_ref=customer, subscription_ref=read.text("subscription_id"),
                amount_minor=read.integer("amount_due"), currency=read.currency(), status=read.text("status"),
                attempt_count=read.integer("attempt_count"), decline_code=read.text("decline_code"),
                failure_message=read.text("failure_message"), payment_method_ref=payment_method,
                charge_ref=read.text("charge_id"), paid_at=read.instant("paid_at"),
                billing_reason=read.text("billing_reason"))
        with_card = kind == "payment_failed_detail" or data.get("card") is not None
        card = read.card(payment_method, customer) if with_card else None
        extra = {}
        if kind == "payment_failed_detail":
            extra = {k: v for k, v in (("charge", read.text("charge_id")), ("decline_code", read.text("decline_code")),
                                       ("failure_message", read.text("failure_message"))) if v}
        return BillingEvent(kind=kind, customer_ref=customer, customer_email=email, invoice=invoice, card=card,
                            extra=extra, **base)
    if kind == "payment_method_updated":
        via = "card_updater" if raw_type == "payment_method.automatically_updated" else "customer"
        card = read.card(payment_method, customer, detached=raw_type == "payment_method.detached")
        return BillingEvent(kind=kind, customer_ref=customer, customer_email=email, card=card, card_via=via, **base)
    if kind == "default_payment_method":
        method = payment_method if raw_type == "setup_intent.succeeded" else read.text("default_payment_method_id")
        method = method or payment_method or read.text("default_payment_method_id")
        if method is None or customer is None:
            field = "payment_method_id" if raw_type == "setup_intent.succeeded" else "default_payment_method_id"
            raise BadBillingEvent(f"{where} ({raw_type}): data.customer_id and data.{field} are required")
        return BillingEvent(kind=kind, customer_ref=customer, customer_email=email,
                            default_payment_method_ref=method,
                            card=read.card(method, customer) if isinstance(data.get("card"), dict) else None,
                            card_via="customer", **base)
    info = SubscriptionInfo(
        ref=read.text("subscription_id") or "", customer_ref=customer, status=read.text("status"),
        plan_id=read.text("plan_id"), mrr_minor=read.integer("mrr"), currency=read.currency(),
        current_period_end=read.instant("current_period_end"),
        default_payment_method_ref=read.text("default_payment_method_id"))
    return BillingEvent(kind=kind, customer_ref=customer, customer_email=email, subscription=info, **base)
