"""The delivery engine's state: the outbox, its attempts, suppressions, phone tasks, counters.

* ``outbox_messages``: one row per message to send, created by the campaign scheduler with an
  ``idempotency_key`` (enrollment and step): inserting it twice is a no-op. Workers claim due
  rows (``status='pending' AND due_at <= now``; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), mark
  them ``sending`` with a lease, hand them to the channel and record the outcome. A crashed
  worker's lease expires and another worker takes the row again; the ``Message-ID`` is derived
  from the idempotency key, so a duplicate that slipped through the SMTP hand-off window is
  recognisable. Statuses: pending, sending, sent, failed (gave up), bounced (5xx),
  suppressed (the address or customer may not receive it at send time), canceled (the
  enrollment exited), skipped (policy: e.g. frequency cap with ``drop``).
* ``delivery_attempts``: every hand-off attempt and its outcome (SMTP code and reply).
* ``suppressions``: addresses that must not receive messages (unsubscribed, hard_bounce,
  complaint, objected, no_lawful_basis, manual); ``scope`` ``all`` or ``commercial``.
* ``call_tasks``: phone-call tasks for the customer-success team (the ``task`` channel).
* ``send_counters``: atomic counters per scope and window (domain warm-up per day, rate limits).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from winback.models.base import Base, UTCDateTime


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_status_due_at", "status", "due_at"),
        Index("ix_outbox_messages_customer_id_sent_at", "customer_id", "sent_at"),
        Index("ix_outbox_messages_enrollment_id", "enrollment_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    message_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)  # RFC 5322 Message-ID
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    step: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)  # email | task | webhook | audience
    category: Mapped[str] = mapped_column(String(16), nullable=False, default="commercial")  # or transactional
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=50)
    variant: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    to_address: Mapped[str | None] = mapped_column(String(320))
    from_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[str | None] = mapped_column(Text)  # JSON object of extra headers
    payload: Mapped[str | None] = mapped_column(Text)  # JSON: webhook body, task details, links
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    status_reason: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)  # next time it may be tried
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_messages.id", ondelete="CASCADE"), nullable=False,
                                            index=True)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    worker: Mapped[str] = mapped_column(String(128), nullable=False)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))  # sent | retry | bounced | failed | suppressed | deferred
    code: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)


class Suppression(Base):
    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("address", "scope", name="uq_suppressions_address_scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(320), nullable=False)  # lower-cased email address
    scope: Mapped[str] = mapped_column(String(16), nullable=False, default="all")  # all | commercial
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(64), nullable=False)  # smtp | one-click | link | import | cli ...
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class CallTask(Base):
    __tablename__ = "call_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_messages.id", ondelete="SET NULL"),
                                                  unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(Text, nullable=False)
    body: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")  # open | done | canceled
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(Text)


class SendCounter(Base):
    __tablename__ = "send_counters"

    scope: Mapped[str] = mapped_column(String(255), primary_key=True)  # e.g. warmup:example.com
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime(), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
