"""The suppression list: check, add, remove, list - and ``unsubscribe``, the call the web app makes.

Addresses are stored normalised (trimmed, lower-case). Scopes: ``all`` blocks every message
(hard bounces, complaints, manual blocks); ``commercial`` blocks marketing only (an unsubscribe:
receipts and other transactional mail still go out). Reasons: unsubscribed, hard_bounce,
complaint, objected, no_lawful_basis, manual.

**No message after an unsubscribe committed.** :func:`unsubscribe` takes the address's lock
*exclusively* (see :mod:`winback.delivery.locks`), writes the suppression, the customers' opt-out
and an ``unsubscribed`` customer event, commits, and only then releases the lock. A worker takes
the same lock *shared* before it reads suppressions and opt-outs for a batch and keeps it until
the SMTP server has answered its DATA command. So, for any message and any unsubscribe of its
address, one of two orders holds:

1. the worker got the lock first: the unsubscribe waits, its commit happens after the server
   already received the message - a message received *before* the commit, which is allowed;
2. the unsubscribe got the lock first: the worker's read happens after the commit (the worker's
   snapshot starts after it acquired the lock) and sees the suppression - nothing is sent.

There is no third order, because the check and the hand-off are both inside the worker's hold.
A worker whose lease expired while waiting re-checks ownership after taking the locks.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, or_, select, update

from winback.delivery.locks import unsubscribe_lock
from winback.delivery.outbox import CUSTOMERS, EVENTS, SUPPRESSIONS
from winback.delivery.policy import address_problem, normalize_address
from winback.kit.db import dialect_insert as _insert
from winback.kit.errors import WinbackError

REASONS = ("unsubscribed", "hard_bounce", "complaint", "objected", "no_lawful_basis", "manual")
SCOPES = ("all", "commercial")


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.timezone.utc)


def _checked(address: str) -> str:
    normal = normalize_address(address)
    problem = address_problem(normal)
    if problem:
        raise WinbackError(problem)
    return normal


def check(conn: Connection, address: str, category: str = "commercial") -> str | None:
    """The reason ``address`` may not receive a message of ``category`` now (``None``: it may)."""
    normal = normalize_address(address)
    rows = conn.execute(select(SUPPRESSIONS.c.scope, SUPPRESSIONS.c.reason)
                        .where(SUPPRESSIONS.c.address == normal)).all()
    for scope, reason in sorted(rows):
        if scope == "all" or (scope == "commercial" and category == "commercial"):
            return f"{reason} ({scope})"
    return None


def add(conn: Connection, address: str, reason: str, *, scope: str = "all", source: str = "manual",
        customer_id: int | None = None, detail: str | None = None, now: dt.datetime | None = None) -> bool:
    """Suppress an address; ``False`` when it already was (same scope). The caller commits."""
    if reason not in REASONS:
        raise WinbackError(f"unknown suppression reason {reason!r} (use one of: {', '.join(REASONS)})")
    if scope not in SCOPES:
        raise WinbackError(f"unknown suppression scope {scope!r} (use all or commercial)")
    normal = _checked(address)
    stmt = _insert(conn, SUPPRESSIONS).on_conflict_do_nothing().returning(SUPPRESSIONS.c.id)
    return conn.execute(stmt, {"address": normal, "scope": scope, "reason": reason, "customer_id": customer_id,
                               "source": source, "detail": detail, "created_at": _now(now)}).first() is not None


def remove(conn: Connection, address: str, scope: str | None = None) -> int:
    """Lift suppressions of an address (one scope or all); returns how many were removed."""
    normal = normalize_address(address)
    stmt = delete(SUPPRESSIONS).where(SUPPRESSIONS.c.address == normal)
    if scope:
        stmt = stmt.where(SUPPRESSIONS.c.scope == scope)
    return conn.execute(stmt).rowcount or 0


def list_suppressions(conn: Connection, address: str | None = None, limit: int | None = None) -> list[dict]:
    query = select(SUPPRESSIONS).order_by(SUPPRESSIONS.c.created_at.desc(), SUPPRESSIONS.c.id.desc())
    if address:
        query = query.where(SUPPRESSIONS.c.address == normalize_address(address))
    if limit:
        query = query.limit(limit)
    return [dict(r._mapping) for r in conn.execute(query)]


@dataclass(frozen=True)
class UnsubscribeResult:
    address: str
    newly_suppressed: bool
    customer_ids: list[int]
    committed_at: dt.datetime


def unsubscribe(target: Engine | Connection, address: str, *, customer_id: int | None = None,
                source: str = "one-click", scope: str = "commercial", now: dt.datetime | None = None,
                detail: str | None = None) -> UnsubscribeResult:
    """Unsubscribe ``address`` (and ``customer_id``): suppression, opt-out, ``unsubscribed`` event.

    It owns its transaction and **commits** (also when given a Connection, which must not be
    inside a transaction of the caller's): the lock that fences workers must be held until the
    commit. Safe to call twice (the second call changes nothing but returns the same customers).
    """
    normal = _checked(address)
    if scope not in SCOPES:
        raise WinbackError(f"unknown suppression scope {scope!r} (use all or commercial)")
    engine = target if isinstance(target, Engine) else target.engine
    if isinstance(target, Engine):
        with engine.connect() as conn:
            return _unsubscribe(engine, conn, normal, customer_id, source, scope, now, detail)
    if target.in_transaction():
        target.commit()  # start from a clean transaction so our reads follow our lock
    return _unsubscribe(engine, target, normal, customer_id, source, scope, now, detail)


def _unsubscribe(engine: Engine, conn: Connection, address: str, customer_id: int | None, source: str, scope: str,
                 now: dt.datetime | None, detail: str | None) -> UnsubscribeResult:
    now = _now(now)
    lock_addresses = {address}
    if customer_id is not None:
        email = conn.execute(select(CUSTOMERS.c.email).where(CUSTOMERS.c.id == customer_id)).scalar()
        conn.rollback()
        if email and not address_problem(email):
            lock_addresses.add(normalize_address(email))
    with unsubscribe_lock(engine, conn, sorted(lock_addresses)):
        try:
            new = False
            for addr in sorted(lock_addresses):
                row = conn.execute(_insert(conn, SUPPRESSIONS).on_conflict_do_nothing().returning(SUPPRESSIONS.c.id),
                                   {"address": addr, "scope": scope, "reason": "unsubscribed",
                                    "customer_id": customer_id, "source": source, "detail": detail,
                                    "created_at": now}).first()
                new = new or (row is not None and addr == address)
            match = CUSTOMERS.c.email.in_(sorted(lock_addresses))
            if customer_id is not None:
                match = or_(match, CUSTOMERS.c.id == customer_id)
            changed = conn.execute(update(CUSTOMERS).where(match, CUSTOMERS.c.marketing_opt_out.is_(False))
                                   .values(marketing_opt_out=True, opted_out_at=now, updated_at=now)
                                   .returning(CUSTOMERS.c.id)).scalars().all()
            if changed:
                conn.execute(insert(EVENTS), [{
                    "event_id": f"unsubscribed:{cid}:{now.isoformat()}", "customer_id": cid, "type": "unsubscribed",
                    "occurred_at": now, "received_at": now, "source": "worker" if source == "smtp" else "api",
                    "properties": json.dumps({"address": address, "source": source, "scope": scope}),
                } for cid in sorted(changed)])
            ids = conn.execute(select(CUSTOMERS.c.id).where(match)).scalars().all()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    return UnsubscribeResult(address, new, sorted(ids), now)
