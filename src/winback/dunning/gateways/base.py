"""The payment gateway interface every adapter implements (Stripe, the sandbox)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ChargeResult:
    """The outcome of one charge of an invoice.

    ``status``: ``succeeded``; ``failed`` (the issuer declined: ``decline_code``); ``error`` (no
    decision was reached - timeout, connection, rate limit, the provider's 5xx: ``decline_code`` is
    one of ``policy.GATEWAY_ERRORS``); ``already_paid`` (the invoice was paid before this charge, no
    money moved); ``not_payable`` (voided or written off at the provider).
    """

    status: str
    decline_code: str | None = None
    message: str | None = None
    gateway_ref: str | None = None  # charge / payment intent id


@dataclass(frozen=True)
class InvoiceState:
    """An invoice as the provider sees it now (the look-up before a late retry)."""

    invoice_ref: str
    status: str  # open | paid | void | uncollectible | draft
    amount_due_minor: int = 0
    currency: str | None = None
    paid_at: dt.datetime | None = None
    decline_code: str | None = None  # the last payment error, when the provider tells
    payment_method_ref: str | None = None  # default card the next charge would use


@dataclass(frozen=True)
class CardInfo:
    """A card on file (no full number ever reaches winback)."""

    ref: str
    customer_ref: str | None = None
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    fingerprint: str | None = None
    extra: dict = field(default_factory=dict)


class GatewayError(Exception):
    """The gateway could not be reached or answered nonsense (retried with backoff)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Gateway(Protocol):
    name: str  # the provider name stored with cases: stripe | sandbox

    def charge_invoice(self, invoice_ref: str, *, payment_method_ref: str | None, amount_minor: int,
                       currency: str, idempotency_key: str) -> ChargeResult:
        """Try to collect the invoice once; the same idempotency key never charges twice."""

    def lookup_invoice(self, invoice_ref: str) -> InvoiceState:
        """The invoice's current state at the provider (raises GatewayError when unreachable)."""

    def end_subscription(self, subscription_ref: str, *, action: str, idempotency_key: str) -> None:
        """``cancel`` or ``pause`` the subscription when dunning gives up."""

    def card_update_redirect(self, customer_ref: str, *, return_url: str, cancel_url: str) -> str | None:
        """A hosted page where the customer enters a new card (Stripe Checkout in setup mode), or
        None when winback shows its own form (the sandbox)."""

    def set_default_payment_method(self, customer_ref: str, payment_method_ref: str) -> None:
        """Make this card the one the provider charges next (invoices and subscriptions)."""
