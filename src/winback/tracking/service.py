"""Recording what recipients did: opens, clicks and the other events tied to a message.

The web app verifies a signed token (it carries the message's RFC 5322 Message-ID) and calls
:func:`record_open` / :func:`record_click`; other intake (unsubscribe pages, the preference
centre, surveys, bounces) writes through :func:`record_event` inside its own transaction.

Privacy: the client's address is reduced to its /24 (IPv4) or /48 (IPv6) network before it is
stored; user agents are kept (truncated) because they are what tells a person from a proxy.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Connection, Engine

from winback.kit.db import write_transaction
from winback.tracking import repository as repo
from winback.tracking.machine import classify_click, classify_open, ip_prefix

KINDS = ("open", "click", "unsubscribe", "preferences", "survey", "bounce", "complaint")
MAX_UA = 512


def message_by_key(conn: Connection, message: str) -> dict | None:
    """The outbox row (as a dict) whose Message-ID is ``message``; ``None`` when unknown."""
    return repo.message_by_key(conn, message)


def _now(now: dt.datetime | None) -> dt.datetime:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)


def record_event(conn: Connection, *, kind: str, outbox_row: dict | None, customer_id: int | None, source: str,
                 now: dt.datetime, detail: Any = None, machine: bool = False, machine_reason: str | None = None,
                 link: str | None = None, target: str | None = None, user_agent: str | None = None,
                 ip: str | None = None, event_key: str | None = None) -> dict | None:
    """Write one ``tracking_events`` row (the caller's transaction); campaign, enrollment, step and
    variant are copied from ``outbox_row``. Returns the row written (with ``id``), or ``None``
    when ``event_key`` was already recorded (idempotent intake)."""
    if kind not in KINDS:
        raise ValueError(f"unknown tracking event kind {kind!r} (use one of: {', '.join(KINDS)})")
    o = outbox_row or {}
    if customer_id is None:
        customer_id = o.get("customer_id")
    row = {
        "event_key": event_key, "kind": kind, "message_id": o.get("id"), "customer_id": customer_id,
        "campaign_id": o.get("campaign_id"), "enrollment_id": o.get("enrollment_id"), "step": o.get("step"),
        "variant": o.get("variant"), "machine": bool(machine), "machine_reason": machine_reason if machine else None,
        "link": (link or None) and str(link)[:64], "target": target,
        "user_agent": (user_agent or None) and str(user_agent)[:MAX_UA], "ip_prefix": ip_prefix(ip),
        "source": source, "detail": None if detail is None else (detail if isinstance(detail, str)
                                                                  else json.dumps(detail, default=str)),
        "occurred_at": _now(now),
    }
    new_id = repo.insert_event(conn, row)
    if new_id is None:
        return None
    return {"id": new_id, **row}


def _seconds_since(row: dict, now: dt.datetime) -> float | None:
    sent = row.get("sent_at")
    return None if sent is None else (now - sent).total_seconds()


def _record(engine: Engine, settings, kind: str, message: str, user_agent: str | None, ip: str | None,
            now: dt.datetime | None, link: str | None = None, target: str | None = None,
            source: str = "web") -> dict | None:
    now = _now(now)
    classify = classify_open if kind == "open" else classify_click
    with write_transaction(engine) as conn:
        row = repo.message_by_key(conn, message)
        if row is None:
            return None
        machine, reason = classify(user_agent, ip, seconds_since_sent=_seconds_since(row, now),
                                   settings_tracking=settings.tracking)
        written = record_event(conn, kind=kind, outbox_row=row, customer_id=row.get("customer_id"), source=source,
                               now=now, machine=machine, machine_reason=reason, link=link, target=target,
                               user_agent=user_agent, ip=ip)
    return {**written, "message": row["message_id"]} if written else None


def record_open(engine: Engine, settings, *, message: str, user_agent: str | None, ip: str | None,
                now: dt.datetime | None = None) -> dict | None:
    """Record a tracking-pixel fetch; ``None`` (nothing written) when the message is unknown."""
    return _record(engine, settings, "open", message, user_agent, ip, now)


def record_click(engine: Engine, settings, *, message: str, link: str | None, target: str | None,
                 user_agent: str | None, ip: str | None, now: dt.datetime | None = None) -> dict | None:
    """Record a followed link (the redirect's MAC was checked by the caller); ``None`` when unknown."""
    return _record(engine, settings, "click", message, user_agent, ip, now, link=link, target=target)
