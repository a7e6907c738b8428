"""Playbooks, campaigns, enrollments, coupons and customer events (the win-back plan's state).

* ``playbook_versions``: every saved version of a playbook (YAML text, content hash); exactly
  one version per name is ``active``. Campaigns record the version that enrolled a customer.
* ``campaigns``: one row per campaign key of the active playbook (title, sequence, priority,
  holdout share, budget and the expected offer cost committed so far).
* ``enrollments``: a customer in a campaign, once per ``dedupe_key`` (e.g. one churn, one
  abandoned checkout). ``arm`` is ``treatment`` or ``holdout`` (deterministic by hash);
  ``variants`` the A/B/n assignment per experiment; ``decision`` the JSON explanation of why
  this strategy and offer; ``next_step``/``next_due_at`` drive the scheduler.
* ``coupons``: unique single-use codes with expiry; a customer keeps at most one ``active``
  coupon - a new one replaces it only when it is worth more (``replaced_by_id``).
* ``customer_events``: facts the campaigns react to in near-real time (returned, purchased,
  unsubscribed, checkout abandoned, payment failed, release shipped ...), idempotent by
  ``event_id``. ``winback plan`` copies them from the history; the web API adds live ones.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from winback.models.base import Base, UTCDateTime


class PlaybookVersion(Base):
    __tablename__ = "playbook_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_playbook_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    origin: Mapped[str] = mapped_column(String(16), nullable=False)  # builtin | workspace
    content: Mapped[str] = mapped_column(Text, nullable=False)  # the YAML as written
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    sequence: Mapped[str] = mapped_column(String(64), nullable=False)
    playbook_name: Mapped[str] = mapped_column(String(64), nullable=False)
    playbook_version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")  # active | paused | archived
    category: Mapped[str] = mapped_column(String(16), nullable=False, default="commercial")  # or transactional
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=50)  # higher wins a frequency cap
    holdout_share: Mapped[float] = mapped_column(Float, nullable=False, default=0.10)
    budget_minor: Mapped[int | None] = mapped_column(BigInteger)  # expected offer cost allowed (null: none set)
    currency: Mapped[str | None] = mapped_column(String(3))
    committed_cost_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    spec: Mapped[str | None] = mapped_column(Text)  # JSON: the campaign's definition in that playbook version
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("campaign_id", "dedupe_key", name="uq_enrollments_campaign_id_dedupe_key"),
        Index("ix_enrollments_customer_id", "customer_id"),
        Index("ix_enrollments_status_next_due_at", "status", "next_due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    dedupe_key: Mapped[str] = mapped_column(String(255), nullable=False)  # one enrollment per churn / checkout ...
    trigger: Mapped[str] = mapped_column(String(128), nullable=False)  # segment:NAME | event:TYPE | inactivity
    arm: Mapped[str] = mapped_column(String(16), nullable=False)  # treatment | holdout
    variants: Mapped[str | None] = mapped_column(Text)  # JSON {experiment key: variant key}
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # active | completed | exited | held_out
    exit_reason: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    strategy: Mapped[str | None] = mapped_column(String(64))
    offer_key: Mapped[str | None] = mapped_column(String(64))
    offer_cost_minor: Mapped[int | None] = mapped_column(BigInteger)  # expected cost committed to the budget
    expected_gain_minor: Mapped[int | None] = mapped_column(BigInteger)
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id", ondelete="SET NULL"))
    decision: Mapped[str | None] = mapped_column(Text)  # JSON: why this campaign, strategy and offer
    context: Mapped[str | None] = mapped_column(Text)  # JSON: merge data captured at enrollment
    playbook_version: Mapped[int] = mapped_column(Integer, nullable=False)
    enrolled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    next_step: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class Coupon(Base):
    __tablename__ = "coupons"
    __table_args__ = (Index("ix_coupons_customer_id_status", "customer_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    offer_key: Mapped[str] = mapped_column(String(64), nullable=False)
    offer_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    terms: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: percent, months, amount ...
    value_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)  # worth to the customer, for comparison
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # active | replaced | redeemed | expired | void
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    redeemed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id", ondelete="SET NULL"))


class CustomerEvent(Base):
    __tablename__ = "customer_events"
    __table_args__ = (Index("ix_customer_events_customer_id_type", "customer_id", "type"),
                      Index("ix_customer_events_type_occurred_at", "type", "occurred_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)  # idempotency
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    source: Mapped[str] = mapped_column(String(64), nullable=False)  # history | api | webhook | worker
    properties: Mapped[str | None] = mapped_column(Text)  # JSON object
