"""Dunning state: what the billing system told us, the failed invoices we work on, every charge we tried.

* ``billing_subscriptions``: subscriptions as the billing provider (Stripe, a Standard Webhooks
  sender, the sandbox) last described them. ``event_at`` is the creation time of the newest event
  applied to the row, so an older event arriving late never overwrites a newer state.
* ``billing_payment_methods``: cards on file (brand, last4, expiry, fingerprint). ``updated_via``
  says who changed the card last: ``customer`` (the card-update page, the provider's portal),
  ``card_updater`` (the networks' automatic updater, ``payment_method.automatically_updated``),
  ``import``.
* ``dunning_cases``: one row per invoice the provider told us about. A case with
  ``first_failed_at`` set is a failed invoice that dunning works on: ``open`` until it is
  ``recovered`` (``recovered_by`` retry | customer_update | card_updater | external), ``exhausted``
  (retries and grace period over; the subscription was canceled or paused and the customer entered
  win-back with reason involuntary) or ``closed`` (voided or written off at the provider). Workers
  claim due cases with a lease (``claimed_by``/``lease_until``) like the outbox.
* ``dunning_attempts``: every charge of a failed invoice, including the provider's own first
  attempt (``trigger`` initial). The ``idempotency_key`` is committed before the gateway is called;
  a row left ``started`` by a crashed worker is resolved by looking the invoice up, never by
  charging blindly. ``card_key`` (fingerprint or payment method) enforces the cap of attempts per
  card in any 30 days.
* ``sandbox_cards`` and ``sandbox_charges``: the built-in sandbox gateway's own books (the
  simulated issuer's cards and every charge it accepted or declined, unique per idempotency key).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from winback.models.base import Base, UTCDateTime


class BillingSubscription(Base):
    __tablename__ = "billing_subscriptions"
    __table_args__ = (UniqueConstraint("provider", "external_id", name="uq_billing_subscriptions_provider_ref"),
                      Index("ix_billing_subscriptions_customer_ref", "customer_ref"),
                      Index("ix_billing_subscriptions_payment_method", "provider", "payment_method_ref"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    external_id: Mapped[str] = mapped_column(String(255), nullable=False)
    customer_ref: Mapped[str | None] = mapped_column(String(255))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    plan_id: Mapped[str | None] = mapped_column(String(255))
    mrr_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    # active | trialing | past_due | unpaid | paused | canceled | incomplete
    current_period_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    payment_method_ref: Mapped[str | None] = mapped_column(String(255))  # the default card
    event_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class BillingPaymentMethod(Base):
    __tablename__ = "billing_payment_methods"
    __table_args__ = (UniqueConstraint("provider", "external_id", name="uq_billing_payment_methods_provider_ref"),
                      Index("ix_billing_payment_methods_customer_ref", "customer_ref"),
                      Index("ix_billing_payment_methods_exp", "exp_year", "exp_month"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    external_id: Mapped[str] = mapped_column(String(255), nullable=False)
    customer_ref: Mapped[str | None] = mapped_column(String(255))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    brand: Mapped[str | None] = mapped_column(String(32))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")  # active | detached
    updated_via: Mapped[str] = mapped_column(String(16), nullable=False, default="import")
    # import | customer | card_updater | webhook
    event_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class DunningCase(Base):
    __tablename__ = "dunning_cases"
    __table_args__ = (UniqueConstraint("provider", "invoice_ref", name="uq_dunning_cases_provider_invoice_ref"),
                      Index("ix_dunning_cases_status_next_attempt_at", "status", "next_attempt_at"),
                      Index("ix_dunning_cases_customer_ref", "customer_ref"),
                      Index("ix_dunning_cases_first_failed_at", "first_failed_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    invoice_ref: Mapped[str] = mapped_column(String(255), nullable=False)
    subscription_ref: Mapped[str | None] = mapped_column(String(255))
    customer_ref: Mapped[str | None] = mapped_column(String(255))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    currency: Mapped[str | None] = mapped_column(String(3))
    mrr_minor: Mapped[int | None] = mapped_column(BigInteger)  # the subscription's MRR when the case opened
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # open | recovered | exhausted | closed
    first_failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # null: seen paid, never failed
    first_decline_code: Mapped[str | None] = mapped_column(String(64))
    first_category: Mapped[str | None] = mapped_column(String(16))  # hard | soft | gateway
    last_decline_code: Mapped[str | None] = mapped_column(String(64))
    last_category: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # charges so far, initial included
    retry_index: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # scheduled retries used
    quick_retries: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # gateway-error retries in a row
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # null: nothing scheduled
    next_trigger: Mapped[str | None] = mapped_column(String(16))
    # what next_attempt_at does: schedule | quick | customer_update | card_updater | cap | exhaust
    needs_update: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)  # hard decline: new card
    payment_method_ref: Mapped[str | None] = mapped_column(String(255))  # the card that failed last
    grace_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    recovered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    recovered_by: Mapped[str | None] = mapped_column(String(16))  # retry | customer_update | card_updater | external
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    close_reason: Mapped[str | None] = mapped_column(String(32))  # canceled | paused | voided | uncollectible
    event_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # newest provider event applied
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class DunningAttempt(Base):
    __tablename__ = "dunning_attempts"
    __table_args__ = (Index("ix_dunning_attempts_card_key_started_at", "card_key", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dunning_cases.id", ondelete="CASCADE"), nullable=False,
                                         index=True)
    number: Mapped[int] = mapped_column(Integer, nullable=False)  # 1 = the provider's own first charge
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)
    # initial | schedule | quick | customer_update | card_updater | manual
    payment_method_ref: Mapped[str | None] = mapped_column(String(255))
    card_key: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # started | succeeded | failed | error | skipped
    decline_code: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(16))  # hard | soft | gateway
    message: Mapped[str | None] = mapped_column(Text)
    gateway_ref: Mapped[str | None] = mapped_column(String(255))  # charge / payment intent id
    worker: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class SandboxCard(Base):
    __tablename__ = "sandbox_cards"

    payment_method_ref: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_ref: Mapped[str | None] = mapped_column(String(255), index=True)
    brand: Mapped[str] = mapped_column(String(32), nullable=False)
    last4: Mapped[str] = mapped_column(String(4), nullable=False)
    exp_month: Mapped[int] = mapped_column(Integer, nullable=False)
    exp_year: Mapped[int] = mapped_column(Integer, nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    behaviour: Mapped[str] = mapped_column(String(64), nullable=False, default="ok")  # ok or a decline code
    recovers_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # a soft decline clears then
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class SandboxCharge(Base):
    __tablename__ = "sandbox_charges"
    __table_args__ = (Index("ix_sandbox_charges_invoice_ref", "invoice_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    invoice_ref: Mapped[str] = mapped_column(String(255), nullable=False)
    payment_method_ref: Mapped[str | None] = mapped_column(String(255))
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # succeeded | failed | error
    decline_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
