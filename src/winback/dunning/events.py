"""Billing events in one shape, whatever system sent them (Stripe, Standard Webhooks, the sandbox).

The webhook endpoints store the raw body first; the worker parses it with
:func:`winback.dunning.providers.parse_event` into a :class:`BillingEvent` and
:mod:`winback.dunning.service` applies it. ``occurred_at`` is the provider's creation time of the
event: state rows remember the newest one applied, so an older event arriving late changes nothing.

Kinds (``kind``):

* ``invoice_payment_failed`` - a charge of ``invoice`` failed (``invoice.decline_code``).
* ``invoice_paid`` - the invoice was paid (by our retry, the customer, or anything else).
* ``invoice_closed`` - voided or marked uncollectible at the provider (``invoice.status``).
* ``payment_failed_detail`` - a charge or payment intent failed: carries the decline code of an
  invoice whose ``invoice_payment_failed`` event may not (Stripe's ``charge.failed``,
  ``payment_intent.payment_failed``).
* ``payment_method_updated`` - a card was added or changed; ``card_via`` is ``customer`` or
  ``card_updater`` (``payment_method.automatically_updated``).
* ``default_payment_method`` - the customer's default card changed (``customer.updated``).
* ``subscription_updated`` - a subscription was created, changed, paused or deleted.
* ``ignored`` - anything else (stored, marked ignored).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

KINDS = ("invoice_payment_failed", "invoice_paid", "invoice_closed", "payment_failed_detail",
         "payment_method_updated", "default_payment_method", "subscription_updated", "ignored")


@dataclass(frozen=True)
class InvoiceInfo:
    ref: str
    customer_ref: str | None = None
    subscription_ref: str | None = None
    amount_minor: int | None = None  # amount due
    currency: str | None = None  # upper case ISO 4217
    status: str | None = None  # open | paid | void | uncollectible | draft
    attempt_count: int | None = None
    decline_code: str | None = None
    failure_message: str | None = None
    payment_method_ref: str | None = None
    charge_ref: str | None = None
    paid_at: dt.datetime | None = None
    billing_reason: str | None = None


@dataclass(frozen=True)
class CardEvent:
    ref: str
    customer_ref: str | None = None
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    fingerprint: str | None = None
    detached: bool = False


@dataclass(frozen=True)
class SubscriptionInfo:
    ref: str
    customer_ref: str | None = None
    status: str | None = None
    plan_id: str | None = None
    mrr_minor: int | None = None
    currency: str | None = None
    current_period_end: dt.datetime | None = None
    default_payment_method_ref: str | None = None


@dataclass(frozen=True)
class BillingEvent:
    provider: str  # stripe | standard | sandbox
    event_id: str
    kind: str  # one of KINDS
    raw_type: str  # the provider's own event type, e.g. invoice.payment_failed
    occurred_at: dt.datetime
    customer_ref: str | None = None
    customer_email: str | None = None
    invoice: InvoiceInfo | None = None
    card: CardEvent | None = None
    card_via: str | None = None  # customer | card_updater
    subscription: SubscriptionInfo | None = None
    default_payment_method_ref: str | None = None
    extra: dict = field(default_factory=dict)
