"""All SQL of the delivery stage: enqueue, claim with a lease, load the send-time context, complete.

Claiming (``claim``): one short write transaction - ``BEGIN IMMEDIATE`` on SQLite, ``FOR UPDATE
SKIP LOCKED`` on PostgreSQL - takes up to ``limit`` rows that are due (``pending`` with
``due_at <= now``) or whose lease expired (``sending`` with ``lease_until < now``: a crashed
worker's rows), ordered ``priority DESC, due_at, id``, marks them ``sending`` with
``claimed_by``/``lease_until`` and inserts one ``delivery_attempts`` row per message (its
``finished_at`` stays empty if the worker dies). Completion (``complete``) is fenced: every update
says ``WHERE id = ? AND claimed_by = ? AND status = 'sending'``, so a worker that lost its lease
cannot overwrite the outcome of the worker that took the row over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from sqlalchemy import Connection, Engine, and_, bindparam, func, insert, or_, select, update

from winback.kit.db import dialect_insert as _insert, make_engine
from winback.models.base import UTCDateTime
from winback.models.campaigns import Campaign, CustomerEvent, Enrollment
from winback.models.customer import Customer
from winback.models.delivery import DeliveryAttempt, OutboxMessage, SendCounter, Suppression
from winback.models.tracking import CustomerPreference

OUTBOX = OutboxMessage.__table__
ATTEMPTS = DeliveryAttempt.__table__
SUPPRESSIONS = Suppression.__table__
COUNTERS = SendCounter.__table__
CUSTOMERS = Customer.__table__
ENROLLMENTS = Enrollment.__table__
EVENTS = CustomerEvent.__table__
CAMPAIGNS = Campaign.__table__
PREFERENCES = CustomerPreference.__table__

FINAL_STATUSES = ("sent", "failed", "bounced", "suppressed", "canceled", "skipped")


# --- engines and transactions -------------------------------------------------------------------

def delivery_engine(url: str) -> Engine:
    """The state store's engine; on SQLite its transactions can start with ``BEGIN IMMEDIATE``
    (:func:`write_txn`; see :func:`winback.kit.db.make_engine`)."""
    return make_engine(url)


@contextlib.contextmanager
def write_txn(engine: Engine) -> Iterator[Connection]:
    """A short write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(winback_begin="IMMEDIATE")
        with conn.begin():
            yield conn


def _json_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- enqueue --------------------------------------------------------------------------------------

_ENQUEUE_COLUMNS = {c.name for c in OUTBOX.columns} - {"id"}


def enqueue(conn: Connection, rows: list[dict], now: dt.datetime | None = None) -> int:
    """Insert messages, ignoring any whose ``idempotency_key`` (or ``message_id``) exists; returns
    how many were new. ``headers``/``payload`` may be dicts. The caller commits."""
    if not rows:
        return 0
    now = now or dt.datetime.now(dt.timezone.utc)
    values = []
    for row in rows:
        unknown = set(row) - _ENQUEUE_COLUMNS
        if unknown:
            raise ValueError(f"unknown outbox columns: {sorted(unknown)}")
        item = {"status": "pending", "category": "commercial", "priority": 50, "attempts": 0,
                "created_at": now, "due_at": now}
        item.update(row)
        item["headers"] = _json_text(item.get("headers"))
        item["payload"] = _json_text(item.get("payload"))
        values.append(item)
    columns = sorted(set().union(*values))
    values = [{c: v.get(c) for c in columns} for v in values]
    stmt = _insert(conn, OUTBOX).on_conflict_do_nothing().returning(OUTBOX.c.id)
    inserted = 0
    for start in range(0, len(values), 1000):
        inserted += len(conn.execute(stmt, values[start:start + 1000]).fetchall())
    return inserted


# --- claim ----------------------------------------------------------------------------------------

def claim(engine: Engine, worker: str, now: dt.datetime, lease_seconds: float, limit: int) -> list[dict]:
    """Claim up to ``limit`` due messages for ``worker`` (see the module docstring). Each returned
    dict is the outbox row plus ``attempt_id`` (its ``delivery_attempts`` row)."""
    lease_until = now + dt.timedelta(seconds=lease_seconds)
    due = or_(and_(OUTBOX.c.status == "pending", OUTBOX.c.due_at <= now),
              and_(OUTBOX.c.status == "sending", OUTBOX.c.lease_until < now))
    # a paused campaign's queued messages wait (they go out after it is resumed)
    paused = select(Campaign.id).where(Campaign.status == "paused")
    live = or_(OUTBOX.c.campaign_id.is_(None), OUTBOX.c.campaign_id.not_in(paused))
    pick = select(OUTBOX.c.id).where(due, live).order_by(OUTBOX.c.priority.desc(), OUTBOX.c.due_at, OUTBOX.c.id) \
        .limit(limit)
    if engine.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = update(OUTBOX).where(OUTBOX.c.id.in_(pick)).values(
        status="sending", claimed_by=worker, lease_until=lease_until).returning(*OUTBOX.c)
    with write_txn(engine) as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
        if not rows:
            return []
        rows.sort(key=lambda r: (-r["priority"], r["due_at"], r["id"]))
        ids = conn.execute(
            insert(ATTEMPTS).returning(ATTEMPTS.c.id, sort_by_parameter_order=True),
            [{"message_id": r["id"], "attempt": r["attempts"] + 1, "worker": worker, "started_at": now}
             for r in rows]).scalars().all()
    for row, attempt_id in zip(rows, ids):
        row["attempt_id"] = attempt_id
    return rows


# --- the send-time context --------------------------------------------------------------------------

@dataclass
class Context:
    """What the gate needs to decide, read after the gate's locks were taken."""

    owned: set[int] = field(default_factory=set)
    customers: dict[int, dict] = field(default_factory=dict)
    suppressions: dict[str, set[str]] = field(default_factory=dict)  # address -> scopes
    enrollments: dict[int, dict] = field(default_factory=dict)
    events: dict[int, list[tuple[str, dt.datetime]]] = field(default_factory=dict)
    sent_times: dict[int, list[dt.datetime]] = field(default_factory=dict)
    competitors: dict[int, list[tuple[int, dt.datetime, int]]] = field(default_factory=dict)
    campaigns: dict[int, dict] = field(default_factory=dict)
    approved: dict[int, int] = field(default_factory=dict)  # commercial emails approved this round per customer
    preferences: dict[int, dict] = field(default_factory=dict)  # customer -> {topics_off: set, paused_until}


def load_context(conn: Connection, worker: str, rows: list[dict], addresses: Iterable[str], now: dt.datetime,
                 cap_window: dt.timedelta, exit_types: Iterable[str]) -> Context:
    ctx = Context()
    ids = [r["id"] for r in rows]
    ctx.owned = set(conn.execute(select(OUTBOX.c.id).where(
        OUTBOX.c.id.in_(ids), OUTBOX.c.claimed_by == worker, OUTBOX.c.status == "sending",
        OUTBOX.c.lease_until > now)).scalars())
    customer_ids = sorted({r["customer_id"] for r in rows if r["customer_id"] is not None})
    addresses = sorted(set(addresses))
    if addresses:
        for address, scope in conn.execute(select(SUPPRESSIONS.c.address, SUPPRESSIONS.c.scope)
                                           .where(SUPPRESSIONS.c.address.in_(addresses))):
            ctx.suppressions.setdefault(address, set()).add(scope)
    if customer_ids:
        for r in conn.execute(select(CUSTOMERS.c.id, CUSTOMERS.c.email, CUSTOMERS.c.timezone,
                                     CUSTOMERS.c.marketing_basis, CUSTOMERS.c.marketing_opt_out)
                              .where(CUSTOMERS.c.id.in_(customer_ids))):
            ctx.customers[r.id] = dict(r._mapping)
        for cid, topics_off, paused_until in conn.execute(select(
                PREFERENCES.c.customer_id, PREFERENCES.c.topics_off, PREFERENCES.c.paused_until).where(
                PREFERENCES.c.customer_id.in_(customer_ids))):
            ctx.preferences[cid] = {"topics_off": _topics(topics_off), "paused_until": paused_until}
        commercial_email = and_(OUTBOX.c.customer_id.in_(customer_ids), OUTBOX.c.category == "commercial",
                                OUTBOX.c.channel == "email")
        for cid, sent_at in conn.execute(select(OUTBOX.c.customer_id, OUTBOX.c.sent_at).where(
                commercial_email, OUTBOX.c.status == "sent", OUTBOX.c.sent_at > now - cap_window)):
            ctx.sent_times.setdefault(cid, []).append(sent_at)
        for cid, prio, due, mid in conn.execute(select(
                OUTBOX.c.customer_id, OUTBOX.c.priority, OUTBOX.c.due_at, OUTBOX.c.id).where(
                commercial_email, OUTBOX.c.status.in_(("pending", "sending")), OUTBOX.c.due_at <= now)):
            ctx.competitors.setdefault(cid, []).append((prio, due, mid))
        exit_types = sorted(set(exit_types))
        if exit_types:
            for cid, etype, occurred in conn.execute(select(
                    EVENTS.c.customer_id, EVENTS.c.type, EVENTS.c.occurred_at).where(
                    EVENTS.c.customer_id.in_(customer_ids), EVENTS.c.type.in_(exit_types))):
                ctx.events.setdefault(cid, []).append((etype, occurred))
    enrollment_ids = sorted({r["enrollment_id"] for r in rows if r["enrollment_id"] is not None})
    if enrollment_ids:
        for r in conn.execute(select(ENROLLMENTS.c.id, ENROLLMENTS.c.status, ENROLLMENTS.c.enrolled_at,
                                     ENROLLMENTS.c.exit_reason).where(ENROLLMENTS.c.id.in_(enrollment_ids))):
            ctx.enrollments[r.id] = dict(r._mapping)
    campaign_ids = sorted({r["campaign_id"] for r in rows if r["campaign_id"] is not None})
    if campaign_ids:
        for r in conn.execute(select(CAMPAIGNS.c.id, CAMPAIGNS.c.key, CAMPAIGNS.c.title)
                              .where(CAMPAIGNS.c.id.in_(campaign_ids))):
            ctx.campaigns[r.id] = dict(r._mapping)
    return ctx


def _topics(value: str | None) -> set[str]:
    """``customer_preferences.topics_off`` (a JSON list) as a set; junk counts as nothing turned off."""
    try:
        topics = json.loads(value) if value else []
    except ValueError:
        return set()
    return {t for t in topics if isinstance(t, str)} if isinstance(topics, list) else set()


# --- completion -----------------------------------------------------------------------------------

@dataclass
class Result:
    """The outcome of one claimed message."""

    row: dict
    outcome: str  # sent | retry | bounced | failed | suppressed | canceled | deferred
    status: str  # the new outbox status
    reason: str | None = None
    due_at: dt.datetime | None = None  # for pending (retry / deferred)
    code: int | None = None
    handed_off: bool = False  # counts as an attempt
    suppress: tuple[str, str, str] | None = None  # (address, reason, scope) to add
    exit_reason: str | None = None  # the enrollment exits with this reason


_UPDATE_OUTBOX = update(OUTBOX).where(
    OUTBOX.c.id == bindparam("b_id"), OUTBOX.c.claimed_by == bindparam("b_worker"),
    OUTBOX.c.status == "sending",
).values(
    status=bindparam("b_status"),
    status_reason=bindparam("b_reason"),
    due_at=func.coalesce(bindparam("b_due", type_=UTCDateTime()), OUTBOX.c.due_at),
    sent_at=func.coalesce(bindparam("b_sent", type_=UTCDateTime()), OUTBOX.c.sent_at),
    attempts=OUTBOX.c.attempts + bindparam("b_inc"),
    last_code=func.coalesce(bindparam("b_code"), OUTBOX.c.last_code),
    last_error=bindparam("b_error"),
    claimed_by=None,
    lease_until=None,
)

_UPDATE_ATTEMPT = update(ATTEMPTS).where(ATTEMPTS.c.id == bindparam("b_id")).values(
    finished_at=bindparam("b_finished", type_=UTCDateTime()), outcome=bindparam("b_outcome"),
    code=bindparam("b_code"), detail=bindparam("b_detail"))


def complete(conn: Connection, worker: str, results: list[Result], now: dt.datetime) -> None:
    """Record every outcome (fenced), attempts, bounce suppressions and enrollment exits."""
    if not results:
        return
    conn.execute(_UPDATE_OUTBOX, [{
        "b_id": r.row["id"], "b_worker": worker, "b_status": r.status, "b_reason": r.reason,
        "b_due": r.due_at if r.status == "pending" else None,
        "b_sent": now if r.status == "sent" else None,
        "b_inc": 1 if r.handed_off else 0, "b_code": r.code,
        "b_error": r.reason if r.outcome in ("retry", "bounced", "failed") else None,
    } for r in results])
    conn.execute(_UPDATE_ATTEMPT, [{
        "b_id": r.row["attempt_id"], "b_finished": now, "b_outcome": r.outcome, "b_code": r.code,
        "b_detail": (r.reason or "")[:2000] or None,
    } for r in results if r.row.get("attempt_id") is not None])
    bounces = [r for r in results if r.suppress]
    if bounces:
        conn.execute(_insert(conn, SUPPRESSIONS).on_conflict_do_nothing(), [{
            "address": r.suppress[0], "reason": r.suppress[1], "scope": r.suppress[2],
            "customer_id": r.row.get("customer_id"), "source": "smtp", "detail": (r.reason or "")[:2000],
            "created_at": now} for r in bounces])
    exits = {r.row["enrollment_id"]: r.exit_reason for r in results
             if r.exit_reason and r.row.get("enrollment_id") is not None}
    for enrollment_id, reason in sorted(exits.items()):
        conn.execute(update(ENROLLMENTS).where(ENROLLMENTS.c.id == enrollment_id,
                                               ENROLLMENTS.c.status.in_(("active", "completed")))
                     .values(status="exited", exit_reason=reason, finished_at=now))
        conn.execute(update(OUTBOX).where(OUTBOX.c.enrollment_id == enrollment_id, OUTBOX.c.status == "pending")
                     .values(status="canceled", status_reason=f"enrollment exited: {reason}"))


# --- warm-up counters -------------------------------------------------------------------------------

def reserve(engine: Engine, scope: str, window_start: dt.datetime, schedule: list[int], wanted: int) -> int:
    """Atomically take up to ``wanted`` units of a day's warm-up allowance for ``scope``.

    The scope's first counter row marks its day 1; the allowance of day *n* is
    ``schedule[n-1]`` (the last value holds after). Returns how many were granted.
    """
    from winback.delivery.policy import warmup_allowance

    with write_txn(engine) as conn:
        conn.execute(_insert(conn, COUNTERS).on_conflict_do_nothing(),
                     {"scope": scope, "window_start": window_start, "used": 0})
        first = conn.execute(select(func.min(COUNTERS.c.window_start)).where(COUNTERS.c.scope == scope)).scalar_one()
        if isinstance(first, str):  # SQLite may hand back the stored text of an aggregate
            first = dt.datetime.fromisoformat(first)
        day_number = (window_start.date() - first.date()).days + 1
        allowance = warmup_allowance(schedule, day_number)
        query = select(COUNTERS.c.used).where(COUNTERS.c.scope == scope, COUNTERS.c.window_start == window_start)
        if engine.dialect.name == "postgresql":
            query = query.with_for_update()
        used = conn.execute(query).scalar_one()
        granted = max(0, min(wanted, allowance - used))
        if granted:
            conn.execute(update(COUNTERS).where(COUNTERS.c.scope == scope, COUNTERS.c.window_start == window_start)
                         .values(used=COUNTERS.c.used + granted))
    return granted


def release(engine: Engine, scope: str, window_start: dt.datetime, count: int) -> None:
    """Give back reserved units that were not used (the hand-off did not happen)."""
    if count <= 0:
        return
    with write_txn(engine) as conn:
        conn.execute(update(COUNTERS).where(COUNTERS.c.scope == scope, COUNTERS.c.window_start == window_start)
                     .values(used=func.max(COUNTERS.c.used - count, 0) if engine.dialect.name == "sqlite"
                             else func.greatest(COUNTERS.c.used - count, 0)))


# --- queue overview -------------------------------------------------------------------------------

def queue_counts(conn: Connection) -> dict[str, int]:
    return {status: n for status, n in conn.execute(
        select(OUTBOX.c.status, func.count()).group_by(OUTBOX.c.status))}


def has_claimable(conn: Connection, now: dt.datetime) -> bool:
    return conn.execute(select(OUTBOX.c.id).where(or_(
        and_(OUTBOX.c.status == "pending", OUTBOX.c.due_at <= now),
        and_(OUTBOX.c.status == "sending", OUTBOX.c.lease_until < now))).limit(1)).first() is not None


__all__ = ["Context", "Result", "claim", "complete", "delivery_engine", "enqueue", "has_claimable", "load_context",
           "queue_counts", "release", "reserve", "write_txn"]
