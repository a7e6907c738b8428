"""All SQL of the tracking stage (SQLAlchemy Core on the state store; SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Iterable, Sequence

from sqlalchemy import Connection, case, distinct, exists, func, insert, select, update

from winback.kit.db import insert_ignore
from winback.models.campaigns import Campaign, Coupon, CustomerEvent, Enrollment
from winback.models.customer import Customer
from winback.models.delivery import OutboxMessage
from winback.models.tracking import Conversion, ExperimentDecision, TrackingEvent

OUTBOX = OutboxMessage.__table__
EVENTS = TrackingEvent.__table__
CONVERSIONS = Conversion.__table__
CUSTOMER_EVENTS = CustomerEvent.__table__
ENROLLMENTS = Enrollment.__table__
CAMPAIGNS = Campaign.__table__
COUPONS = Coupon.__table__
CUSTOMERS = Customer.__table__
DECISIONS = ExperimentDecision.__table__

SENT_STATUSES = ("sent", "bounced")  # handed to the channel (a later bounce does not undo the send)
ATTRIBUTABLE_CHANNELS = ("email", "task")


# --- messages and events -------------------------------------------------------------------------

def message_by_key(conn: Connection, message: str) -> dict | None:
    """The outbox row whose RFC 5322 Message-ID is ``message`` (with or without angle brackets)."""
    key = (message or "").strip()
    if not key or len(key) > 255:
        return None
    candidates = [key] if key.startswith("<") else [f"<{key}>", key]
    for cand in candidates:
        row = conn.execute(select(OUTBOX).where(OUTBOX.c.message_id == cand)).first()
        if row is not None:
            return dict(row._mapping)
    return None


def insert_event(conn: Connection, row: dict) -> int | None:
    """Insert a tracking event; with an ``event_key`` a duplicate is ignored (``None``)."""
    if row.get("event_key"):
        stmt = insert_ignore_stmt(conn)
        got = conn.execute(stmt, row).first()
        return got[0] if got else None
    return conn.execute(insert(EVENTS).returning(EVENTS.c.id), row).scalar_one()


def insert_ignore_stmt(conn: Connection):
    from winback.kit.db import dialect_insert

    return dialect_insert(conn, EVENTS).on_conflict_do_nothing(index_elements=["event_key"]).returning(EVENTS.c.id)


def mark_bounced(conn: Connection, outbox_id: int, reason: str) -> bool:
    return bool(conn.execute(update(OUTBOX).where(OUTBOX.c.id == outbox_id, OUTBOX.c.status != "bounced")
                             .values(status="bounced", status_reason=reason[:1000])).rowcount)


def opt_out_customers(conn: Connection, customer_ids: Sequence[int], now: dt.datetime) -> list[int]:
    if not customer_ids:
        return []
    return list(conn.execute(update(CUSTOMERS).where(CUSTOMERS.c.id.in_(list(customer_ids)),
                                                     CUSTOMERS.c.marketing_opt_out.is_(False))
                             .values(marketing_opt_out=True, opted_out_at=now, updated_at=now)
                             .returning(CUSTOMERS.c.id)).scalars().all())


def customers_by_email(conn: Connection, address: str) -> list[int]:
    return list(conn.execute(select(CUSTOMERS.c.id).where(func.lower(CUSTOMERS.c.email) == address.lower()))
                .scalars().all())


def insert_customer_events(conn: Connection, rows: list[dict]) -> int:
    return insert_ignore(conn, CUSTOMER_EVENTS, rows, ["event_id"])


# --- conversions ---------------------------------------------------------------------------------

def pending_conversion_events(conn: Connection, types: Sequence[str], until: dt.datetime) -> list[dict]:
    """Customer events of the conversion ``types`` up to ``until`` that have no conversions row yet."""
    done = exists().where(CONVERSIONS.c.customer_event_id == CUSTOMER_EVENTS.c.id)
    q = (select(CUSTOMER_EVENTS.c.id, CUSTOMER_EVENTS.c.event_id, CUSTOMER_EVENTS.c.customer_id,
                CUSTOMER_EVENTS.c.type, CUSTOMER_EVENTS.c.occurred_at, CUSTOMER_EVENTS.c.properties)
         .where(CUSTOMER_EVENTS.c.type.in_(list(types)), CUSTOMER_EVENTS.c.customer_id.is_not(None),
                CUSTOMER_EVENTS.c.occurred_at <= until, ~done)
         .order_by(CUSTOMER_EVENTS.c.occurred_at, CUSTOMER_EVENTS.c.id))
    return [dict(r._mapping) for r in conn.execute(q)]


def sent_messages_for(conn: Connection, customer_ids: Iterable[int], since: dt.datetime,
                      until: dt.datetime) -> list[dict]:
    """Sent email/task messages to these customers with ``since <= sent_at <= until``."""
    ids = sorted(set(customer_ids))
    out: list[dict] = []
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        q = (select(OUTBOX.c.id, OUTBOX.c.customer_id, OUTBOX.c.campaign_id, OUTBOX.c.enrollment_id,
                    OUTBOX.c.step, OUTBOX.c.variant, OUTBOX.c.sent_at)
             .where(OUTBOX.c.customer_id.in_(chunk), OUTBOX.c.status == "sent",
                    OUTBOX.c.channel.in_(ATTRIBUTABLE_CHANNELS), OUTBOX.c.sent_at.is_not(None),
                    OUTBOX.c.sent_at >= since, OUTBOX.c.sent_at <= until))
        out += [dict(r._mapping) for r in conn.execute(q)]
    return out


def insert_conversions(conn: Connection, rows: list[dict]) -> set[int]:
    """Insert conversions, skipping events already converted; returns the customer event ids written."""
    from winback.kit.db import dialect_insert

    if not rows:
        return set()
    stmt = (dialect_insert(conn, CONVERSIONS).on_conflict_do_nothing(index_elements=["customer_event_id"])
            .returning(CONVERSIONS.c.customer_event_id))
    return set(conn.execute(stmt, rows).scalars().all())


# --- results -------------------------------------------------------------------------------------

def campaigns(conn: Connection, key: str | None = None) -> list[dict]:
    q = select(CAMPAIGNS.c.id, CAMPAIGNS.c.key, CAMPAIGNS.c.title, CAMPAIGNS.c.category, CAMPAIGNS.c.currency,
               CAMPAIGNS.c.holdout_share, CAMPAIGNS.c.spec).order_by(CAMPAIGNS.c.id)
    if key:
        q = q.where(CAMPAIGNS.c.key == key)
    return [dict(r._mapping) for r in conn.execute(q)]


def enrollments(conn: Connection, campaign_ids: Sequence[int]) -> list[dict]:
    q = (select(ENROLLMENTS.c.id, ENROLLMENTS.c.campaign_id, ENROLLMENTS.c.customer_id, ENROLLMENTS.c.arm,
                ENROLLMENTS.c.variants, ENROLLMENTS.c.enrolled_at)
         .where(ENROLLMENTS.c.campaign_id.in_(list(campaign_ids))))
    return [dict(r._mapping) for r in conn.execute(q)]


def conversion_events_of_enrolled(conn: Connection, types: Sequence[str], campaign_ids: Sequence[int]) -> list[dict]:
    """Conversion-type customer events of customers enrolled in these campaigns."""
    enrolled = select(ENROLLMENTS.c.customer_id).where(ENROLLMENTS.c.campaign_id.in_(list(campaign_ids)))
    q = (select(CUSTOMER_EVENTS.c.customer_id, CUSTOMER_EVENTS.c.occurred_at, CUSTOMER_EVENTS.c.properties,
                CUSTOMER_EVENTS.c.event_id)
         .where(CUSTOMER_EVENTS.c.type.in_(list(types)), CUSTOMER_EVENTS.c.customer_id.in_(enrolled)))
    return [dict(r._mapping) for r in conn.execute(q)]


def outbox_counts(conn: Connection, campaign_ids: Sequence[int]) -> list[dict]:
    """Messages per (campaign, step, channel, status, variant)."""
    q = (select(OUTBOX.c.campaign_id, OUTBOX.c.step, OUTBOX.c.channel, OUTBOX.c.status, OUTBOX.c.variant,
                func.count().label("n"))
         .where(OUTBOX.c.campaign_id.in_(list(campaign_ids)))
         .group_by(OUTBOX.c.campaign_id, OUTBOX.c.step, OUTBOX.c.channel, OUTBOX.c.status, OUTBOX.c.variant))
    return [dict(r._mapping) for r in conn.execute(q)]


def event_counts(conn: Connection, campaign_ids: Sequence[int]) -> list[dict]:
    """Distinct messages per (campaign, step, variant, kind, machine) and distinct customers."""
    q = (select(EVENTS.c.campaign_id, EVENTS.c.step, EVENTS.c.variant, EVENTS.c.kind, EVENTS.c.machine,
                func.count(distinct(EVENTS.c.message_id)).label("messages"),
                func.count(distinct(EVENTS.c.customer_id)).label("customers"))
         .where(EVENTS.c.campaign_id.in_(list(campaign_ids)))
         .group_by(EVENTS.c.campaign_id, EVENTS.c.step, EVENTS.c.variant, EVENTS.c.kind, EVENTS.c.machine))
    return [dict(r._mapping) for r in conn.execute(q)]


def human_and_machine_opens(conn: Connection, campaign_ids: Sequence[int], kind: str) -> list[dict]:
    """Per (campaign, step): messages with a human event of ``kind``, and messages with only machine ones."""
    human = func.max(case((EVENTS.c.machine.is_(False), 1), else_=0))
    per_message = (select(EVENTS.c.campaign_id, EVENTS.c.step, EVENTS.c.message_id, human.label("human"))
                   .where(EVENTS.c.campaign_id.in_(list(campaign_ids)), EVENTS.c.kind == kind)
                   .group_by(EVENTS.c.campaign_id, EVENTS.c.step, EVENTS.c.message_id).subquery())
    q = (select(per_message.c.campaign_id, per_message.c.step,
                func.sum(per_message.c.human).label("human"),
                func.sum(1 - per_message.c.human).label("machine_only"))
         .group_by(per_message.c.campaign_id, per_message.c.step))
    return [dict(r._mapping) for r in conn.execute(q)]


def attributed_conversions(conn: Connection, campaign_ids: Sequence[int]) -> list[dict]:
    q = (select(CONVERSIONS.c.campaign_id, CONVERSIONS.c.step, CONVERSIONS.c.currency,
                func.count().label("n"), func.coalesce(func.sum(CONVERSIONS.c.revenue_minor), 0).label("revenue"))
         .where(CONVERSIONS.c.campaign_id.in_(list(campaign_ids)))
         .group_by(CONVERSIONS.c.campaign_id, CONVERSIONS.c.step, CONVERSIONS.c.currency))
    return [dict(r._mapping) for r in conn.execute(q)]


def redeemed_coupons(conn: Connection, campaign_ids: Sequence[int]) -> list[dict]:
    q = (select(COUPONS.c.campaign_id, COUPONS.c.customer_id, COUPONS.c.value_minor, COUPONS.c.currency,
                COUPONS.c.redeemed_at)
         .where(COUPONS.c.campaign_id.in_(list(campaign_ids)), COUPONS.c.status == "redeemed"))
    return [dict(r._mapping) for r in conn.execute(q)]


def decisions(conn: Connection) -> dict[tuple[int, str], dict]:
    return {(r.campaign_id, r.experiment): dict(r._mapping) for r in conn.execute(select(DECISIONS))}


def save_decision(conn: Connection, row: dict) -> bool:
    from winback.kit.db import dialect_insert

    stmt = dialect_insert(conn, DECISIONS).on_conflict_do_nothing(index_elements=["campaign_id", "experiment"])
    return bool(conn.execute(stmt.returning(DECISIONS.c.id), row).first())


def json_obj(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}



def distinct_customers(conn: Connection, campaign_ids: Sequence[int], kind: str) -> dict[int, int]:
    """Distinct customers with an event of ``kind`` per campaign."""
    q = (select(EVENTS.c.campaign_id, func.count(distinct(EVENTS.c.customer_id)))
         .where(EVENTS.c.campaign_id.in_(list(campaign_ids)), EVENTS.c.kind == kind)
         .group_by(EVENTS.c.campaign_id))
    return {cid: int(n) for cid, n in conn.execute(q)}
