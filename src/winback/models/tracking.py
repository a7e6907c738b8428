"""What recipients did and what it was worth: tracking events, conversions, surveys, preferences.

* ``tracking_events``: one row per open, click, unsubscribe, preference change, survey answer,
  bounce or complaint tied to a message (``message_id`` = the outbox row). ``machine`` flags
  opens and clicks that a mail client or link scanner made, not a person (Apple Mail Privacy
  Protection prefetch, security scanners): they are counted apart and never drive a decision.
  ``source`` says where the event came from (``web``, ``dsn``, ``provider:<name>``,
  ``simulation`` for the demo's simulated recipients).
* ``conversions``: a conversion fact (reactivation, resubscription, purchase, recovered payment,
  coupon redemption - a ``customer_events`` row) attributed to the last message the customer
  received within the attribution window (``message_id`` null: unattributed). Idempotent by
  ``customer_event_id``.
* ``survey_responses``: answers to the exit survey pages; one per customer, survey and message.
* ``customer_preferences``: the preference centre - topics a customer turned off and a pause.
  The delivery engine reads it at send time.
* ``experiment_decisions``: an A/B/n experiment whose winner was rolled out (new enrollments
  get the winner).
* ``webhook_events``: raw inbound webhooks (bounce/complaint providers, billing), stored before
  the 2xx answer and processed afterwards; unique per provider and event id.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from winback.models.base import Base, UTCDateTime


class TrackingEvent(Base):
    __tablename__ = "tracking_events"
    __table_args__ = (
        Index("ix_tracking_events_message_id_kind", "message_id", "kind"),
        Index("ix_tracking_events_campaign_id_kind", "campaign_id", "kind"),
        Index("ix_tracking_events_customer_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_key: Mapped[str | None] = mapped_column(String(255), unique=True)  # idempotency (imports, simulation)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # open | click | unsubscribe | preferences | survey | bounce | complaint
    message_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_messages.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    step: Mapped[int | None] = mapped_column(Integer)
    variant: Mapped[str | None] = mapped_column(String(128))
    machine: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    machine_reason: Mapped[str | None] = mapped_column(String(64))  # apple-mpp | scanner | prefetch-timing ...
    link: Mapped[str | None] = mapped_column(String(64))  # the link's name (cta, booking ...)
    target: Mapped[str | None] = mapped_column(Text)  # the click's destination
    user_agent: Mapped[str | None] = mapped_column(Text)
    ip_prefix: Mapped[str | None] = mapped_column(String(64))  # /24 (IPv4) or /48 (IPv6): not the full address
    source: Mapped[str] = mapped_column(String(64), nullable=False, default="web")
    detail: Mapped[str | None] = mapped_column(Text)  # JSON
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class Conversion(Base):
    __tablename__ = "conversions"
    __table_args__ = (
        Index("ix_conversions_campaign_id", "campaign_id"),
        Index("ix_conversions_customer_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_event_id: Mapped[int] = mapped_column(ForeignKey("customer_events.id", ondelete="CASCADE"),
                                                   nullable=False, unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(64), nullable=False)  # returned | purchased | payment_recovered ...
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    revenue_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    currency: Mapped[str | None] = mapped_column(String(3))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_messages.id", ondelete="SET NULL"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id", ondelete="SET NULL"))
    step: Mapped[int | None] = mapped_column(Integer)
    variant: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(32), nullable=False, default="last_touch")
    attributed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class SurveyResponse(Base):
    __tablename__ = "survey_responses"
    __table_args__ = (UniqueConstraint("customer_id", "survey", "message", name="uq_survey_responses_customer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    survey: Mapped[str] = mapped_column(String(32), nullable=False)  # exit ...
    message: Mapped[str] = mapped_column(String(255), nullable=False)  # the Message-ID the link came in
    locale: Mapped[str | None] = mapped_column(String(35))
    reason: Mapped[str | None] = mapped_column(String(32))  # the churn reason category chosen
    answers: Mapped[str] = mapped_column(Text, nullable=False)  # JSON {question: answer}
    comment: Mapped[str | None] = mapped_column(Text)  # free text
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class CustomerPreference(Base):
    __tablename__ = "customer_preferences"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    topics_off: Mapped[str | None] = mapped_column(Text)  # JSON list of topic keys the customer turned off
    paused_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class ExperimentDecision(Base):
    __tablename__ = "experiment_decisions"
    __table_args__ = (UniqueConstraint("campaign_id", "experiment", name="uq_experiment_decisions_campaign"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    experiment: Mapped[str] = mapped_column(String(64), nullable=False)
    winner: Mapped[str] = mapped_column(String(64), nullable=False)
    stats: Mapped[str | None] = mapped_column(Text)  # JSON: the numbers the decision was made on
    decided_by: Mapped[str] = mapped_column(String(64), nullable=False)  # auto | user email
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class WebhookEvent(Base):
    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_webhook_events_provider_event_id"),
                      Index("ix_webhook_events_status", "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)  # stripe | standard | ses | sendgrid ...
    event_id: Mapped[str] = mapped_column(String(255), nullable=False)
    type: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text, nullable=False)  # the raw body as received
    headers: Mapped[str | None] = mapped_column(Text)  # JSON of the relevant headers
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="received")
    # received | processed | ignored | failed
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
