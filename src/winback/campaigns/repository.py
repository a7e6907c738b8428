"""All SQL of the campaigns stage on the state store (SQLAlchemy Core; SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Iterable, Sequence

from sqlalchemy import Connection, and_, func, select, update

from winback.kit.db import insert_ignore
from winback.models.campaigns import Campaign, CustomerEvent, Enrollment, PlaybookVersion
from winback.models.customer import Customer
from winback.models.delivery import OutboxMessage
from winback.models.scores import CustomerScore
from winback.models.segments import Segment, SegmentMembership
from winback.models.tracking import ExperimentDecision

CUSTOMERS = Customer.__table__
SCORES = CustomerScore.__table__
EVENTS = CustomerEvent.__table__
ENROLLMENTS = Enrollment.__table__
CAMPAIGNS = Campaign.__table__
OUTBOX = OutboxMessage.__table__
VERSIONS = PlaybookVersion.__table__

CHUNK = 5_000

FACT_COLUMNS = (
    CUSTOMERS.c.id, CUSTOMERS.c.source, CUSTOMERS.c.external_id, CUSTOMERS.c.email, CUSTOMERS.c.name,
    CUSTOMERS.c.company, CUSTOMERS.c.phone, CUSTOMERS.c.locale, CUSTOMERS.c.timezone, CUSTOMERS.c.country,
    CUSTOMERS.c.plan_id, CUSTOMERS.c.created_at, CUSTOMERS.c.marketing_basis, CUSTOMERS.c.marketing_opt_out,
    SCORES.c.status, SCORES.c.churned_at, SCORES.c.churn_reason.label("reason"), SCORES.c.value_tier,
    SCORES.c.persona, SCORES.c.p_return, SCORES.c.value_after_return_minor, SCORES.c.mrr_minor, SCORES.c.currency,
    SCORES.c.tenure_days, SCORES.c.suggested_channel, SCORES.c.requested_features, SCORES.c.recency_days,
    SCORES.c.frequency, SCORES.c.priority_rank, SCORES.c.lost_value_minor, SCORES.c.expected_clv_12m_minor,
    SCORES.c.reason_confidence,
)


def customer_rows(conn: Connection, *, statuses: Sequence[str] | None = None,
                  ids: Iterable[int] | None = None) -> list[dict]:
    """Customers joined with their scores (customers without scores have null score columns)."""
    query = select(*FACT_COLUMNS).select_from(CUSTOMERS.outerjoin(SCORES, SCORES.c.customer_id == CUSTOMERS.c.id))
    if statuses is not None:
        query = query.where(SCORES.c.status.in_(list(statuses)))
    if ids is None:
        return [dict(r) for r in conn.execute(query.order_by(CUSTOMERS.c.id)).mappings()]
    out: list[dict] = []
    id_list = sorted(set(ids))
    for start in range(0, len(id_list), CHUNK):
        part = id_list[start:start + CHUNK]
        out += [dict(r) for r in conn.execute(query.where(CUSTOMERS.c.id.in_(part))).mappings()]
    return out


def segments_by_customer(conn: Connection, ids: Iterable[int] | None = None) -> dict[int, set[str]]:
    query = select(SegmentMembership.customer_id, Segment.name).join(Segment,
                                                                   Segment.id == SegmentMembership.segment_id)
    found: dict[int, set[str]] = defaultdict(set)
    if ids is None:
        for cid, name in conn.execute(query):
            found[cid].add(name)
        return found
    id_list = sorted(set(ids))
    for start in range(0, len(id_list), CHUNK):
        for cid, name in conn.execute(query.where(SegmentMembership.customer_id.in_(id_list[start:start + CHUNK]))):
            found[cid].add(name)
    return found


def segment_members(conn: Connection, name: str) -> list[tuple[int, dt.datetime]]:
    query = select(SegmentMembership.customer_id, SegmentMembership.entered_at).join(
        Segment, Segment.id == SegmentMembership.segment_id).where(Segment.name == name)
    return [(r[0], r[1]) for r in conn.execute(query)]


def customer_ids_by_key(conn: Connection) -> dict[tuple[str, str], int]:
    return {(r[0], r[1]): r[2] for r in conn.execute(select(CUSTOMERS.c.source, CUSTOMERS.c.external_id,
                                                            CUSTOMERS.c.id))}


def requested_features(conn: Connection) -> dict[tuple[str, str], list[str]]:
    rows = conn.execute(select(CUSTOMERS.c.source, CUSTOMERS.c.external_id, SCORES.c.requested_features)
                        .join(SCORES, SCORES.c.customer_id == CUSTOMERS.c.id)
                        .where(SCORES.c.requested_features.is_not(None)))
    out: dict[tuple[str, str], list[str]] = {}
    for source, ext, text in rows:
        try:
            features = json.loads(text) if text else []
        except ValueError:
            continue
        if features:
            out[(source, ext)] = list(features)
    return out


def insert_events(conn: Connection, rows: list[dict]) -> int:
    return insert_ignore(conn, EVENTS, rows, ["event_id"])


def recent_events(conn: Connection, event_type: str, since: dt.datetime, until: dt.datetime) -> list[dict]:
    query = select(EVENTS).where(EVENTS.c.type == event_type, EVENTS.c.occurred_at >= since,
                                 EVENTS.c.occurred_at <= until, EVENTS.c.customer_id.is_not(None)
                                 ).order_by(EVENTS.c.occurred_at, EVENTS.c.id)
    return [dict(r) for r in conn.execute(query).mappings()]


def exit_events(conn: Connection, customer_ids: Sequence[int], types: Sequence[str]) -> dict[int, list[tuple]]:
    """customer id -> [(type, occurred_at)] for the given event types."""
    out: dict[int, list[tuple]] = defaultdict(list)
    if not customer_ids or not types:
        return out
    ids = sorted(set(customer_ids))
    for start in range(0, len(ids), CHUNK):
        query = select(EVENTS.c.customer_id, EVENTS.c.type, EVENTS.c.occurred_at).where(
            EVENTS.c.customer_id.in_(ids[start:start + CHUNK]), EVENTS.c.type.in_(list(types)))
        for cid, kind, at in conn.execute(query):
            out[cid].append((kind, at))
    return out


def campaigns_by_key(conn: Connection) -> dict[str, dict]:
    return {r["key"]: dict(r) for r in conn.execute(select(CAMPAIGNS)).mappings()}


def rolled_out_winners(conn: Connection) -> dict[tuple[int, str], str]:
    """``(campaign id, experiment) -> winner`` of experiments whose winner was rolled out
    (``experiment_decisions``, written by :mod:`winback.tracking.rollout` or a user)."""
    t = ExperimentDecision.__table__
    return {(cid, exp): winner for cid, exp, winner in
            conn.execute(select(t.c.campaign_id, t.c.experiment, t.c.winner))}


def existing_enrollments(conn: Connection, campaign_id: int) -> tuple[set[str], set[int]]:
    """(dedupe keys used, customers with an active or held-out enrollment) of one campaign."""
    keys: set[str] = set()
    live: set[int] = set()
    rows = conn.execute(select(ENROLLMENTS.c.dedupe_key, ENROLLMENTS.c.customer_id, ENROLLMENTS.c.status,
                               ENROLLMENTS.c.finished_at).where(ENROLLMENTS.c.campaign_id == campaign_id))
    for key, cid, status, _finished in rows:
        keys.add(key)
        if status in ("active", "held_out"):
            live.add(cid)
    return keys, live


def last_finished(conn: Connection, campaign_id: int) -> dict[int, dt.datetime]:
    rows = conn.execute(select(ENROLLMENTS.c.customer_id, func.max(func.coalesce(ENROLLMENTS.c.finished_at,
                                                                                  ENROLLMENTS.c.enrolled_at)))
                        .where(ENROLLMENTS.c.campaign_id == campaign_id).group_by(ENROLLMENTS.c.customer_id))
    return {cid: at for cid, at in rows}


def offer_counts(conn: Connection) -> dict[tuple[int, str], int]:
    rows = conn.execute(select(ENROLLMENTS.c.campaign_id, ENROLLMENTS.c.offer_key, func.count())
                        .where(ENROLLMENTS.c.arm == "treatment", ENROLLMENTS.c.offer_key.is_not(None))
                        .group_by(ENROLLMENTS.c.campaign_id, ENROLLMENTS.c.offer_key))
    return {(cid, key): n for cid, key, n in rows}


def insert_enrollments(conn: Connection, rows: list[dict]) -> int:
    return insert_ignore(conn, ENROLLMENTS, rows, ["campaign_id", "dedupe_key"])


def add_committed_cost(conn: Connection, campaign_id: int, amount_minor: int) -> None:
    if amount_minor:
        conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id).values(
            committed_cost_minor=CAMPAIGNS.c.committed_cost_minor + int(amount_minor)))


def due_enrollments(conn: Connection, now: dt.datetime, limit: int, campaign_ids: Sequence[int] | None = None,
                    exclude: set[int] | None = None) -> list[dict]:
    query = select(ENROLLMENTS).where(ENROLLMENTS.c.status == "active", ENROLLMENTS.c.next_due_at <= now,
                                      # a paused (or archived) campaign schedules no further steps
                                      ENROLLMENTS.c.campaign_id.in_(select(CAMPAIGNS.c.id).where(
                                          CAMPAIGNS.c.status == "active")))
    if exclude:
        query = query.where(ENROLLMENTS.c.id.not_in(sorted(exclude)))
    if campaign_ids is not None:
        query = query.where(ENROLLMENTS.c.campaign_id.in_(list(campaign_ids)))
    return [dict(r) for r in conn.execute(query.order_by(ENROLLMENTS.c.next_due_at, ENROLLMENTS.c.id)
                                          .limit(limit)).mappings()]


def advance_enrollment(conn: Connection, enrollment_id: int, expected_step: int, values: dict) -> bool:
    """Move an enrollment on, only if nobody else did (optimistic: the step we read is still current)."""
    result = conn.execute(update(ENROLLMENTS).where(and_(ENROLLMENTS.c.id == enrollment_id,
                                                         ENROLLMENTS.c.next_step == expected_step,
                                                         ENROLLMENTS.c.status == "active")).values(**values))
    return result.rowcount == 1


def move_enrollments(conn: Connection, moves: list[dict]) -> None:
    """Apply scheduler moves in one executemany: each only if the enrollment is still active at the step
    the scheduler read (another scheduler that got there first wins; its messages are the same)."""
    if not moves:
        return
    from sqlalchemy import bindparam

    stmt = update(ENROLLMENTS).where(ENROLLMENTS.c.id == bindparam("b_id"),
                                     ENROLLMENTS.c.next_step == bindparam("b_step"),
                                     ENROLLMENTS.c.status == "active").values(
        next_step=bindparam("next_step"), status=bindparam("status"), exit_reason=bindparam("exit_reason"),
        finished_at=bindparam("finished_at"), next_due_at=bindparam("next_due_at"),
        coupon_id=func.coalesce(bindparam("coupon_id", type_=ENROLLMENTS.c.coupon_id.type), ENROLLMENTS.c.coupon_id))
    conn.execute(stmt, moves)


def insert_outbox(conn: Connection, rows: list[dict]) -> int:
    return insert_ignore(conn, OUTBOX, rows, ["idempotency_key"])


def playbook_content(conn: Connection, name: str, version: int) -> str | None:
    return conn.execute(select(VERSIONS.c.content).where(VERSIONS.c.name == name, VERSIONS.c.version == version)
                        ).scalar_one_or_none()


def enrollment_summary(conn: Connection) -> list[dict]:
    rows = conn.execute(select(CAMPAIGNS.c.key, ENROLLMENTS.c.arm, ENROLLMENTS.c.status, func.count())
                        .join(CAMPAIGNS, CAMPAIGNS.c.id == ENROLLMENTS.c.campaign_id)
                        .group_by(CAMPAIGNS.c.key, ENROLLMENTS.c.arm, ENROLLMENTS.c.status))
    return [{"campaign": k, "arm": a, "status": s, "count": n} for k, a, s, n in rows]


def outbox_summary(conn: Connection) -> list[dict]:
    rows = conn.execute(select(CAMPAIGNS.c.key, OUTBOX.c.channel, OUTBOX.c.status, func.count())
                        .select_from(OUTBOX.outerjoin(CAMPAIGNS, CAMPAIGNS.c.id == OUTBOX.c.campaign_id))
                        .group_by(CAMPAIGNS.c.key, OUTBOX.c.channel, OUTBOX.c.status))
    return [{"campaign": k, "channel": c, "status": s, "count": n} for k, c, s, n in rows]
