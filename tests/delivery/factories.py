"""Rows for delivery tests and the benchmark, written straight into the state store (the way the
campaign scheduler writes the outbox)."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Connection, insert

from winback.models.campaigns import Campaign, Enrollment
from winback.models.customer import Customer
from winback.models.delivery import OutboxMessage

UTC = dt.timezone.utc
BASE_URL = "https://win.example.com"
POSTAL = "ws, 1 Example Street, 10115 Berlin, Germany"


def add_customers(conn: Connection, emails: list[str], *, basis: str = "consent", opt_out: bool = False,
                  timezone: str | None = None, now: dt.datetime | None = None) -> list[int]:
    now = now or dt.datetime(2026, 1, 1, tzinfo=UTC)
    rows = [{"source": "test", "external_id": f"x-{email}", "email": email, "name": email.split("@")[0],
             "timezone": timezone, "marketing_basis": basis, "marketing_opt_out": opt_out, "row_hash": 0,
             "first_seen_at": now, "updated_at": now} for email in emails]
    ids = []
    table = Customer.__table__
    for start in range(0, len(rows), 2000):
        ids += conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                            rows[start:start + 2000]).scalars().all()
    return ids


def add_customer(conn: Connection, email: str, **kwargs) -> int:
    return add_customers(conn, [email], **kwargs)[0]


def add_campaign(conn: Connection, key: str = "winback", title: str = "Come back", priority: int = 50) -> int:
    now = dt.datetime(2026, 1, 1, tzinfo=UTC)
    return conn.execute(insert(Campaign.__table__).returning(Campaign.__table__.c.id), {
        "key": key, "title": title, "sequence": "default", "playbook_name": "default", "playbook_version": 1,
        "status": "active", "category": "commercial", "priority": priority, "holdout_share": 0.1,
        "committed_cost_minor": 0, "created_at": now, "updated_at": now}).scalar_one()


def add_enrollment(conn: Connection, customer_id: int, campaign_id: int, *, status: str = "active",
                   enrolled_at: dt.datetime | None = None, key: str | None = None) -> int:
    enrolled_at = enrolled_at or dt.datetime(2026, 1, 10, tzinfo=UTC)
    return conn.execute(insert(Enrollment.__table__).returning(Enrollment.__table__.c.id), {
        "campaign_id": campaign_id, "customer_id": customer_id, "dedupe_key": key or f"d-{customer_id}",
        "trigger": "segment:test", "arm": "treatment", "status": status, "playbook_version": 1,
        "enrolled_at": enrolled_at, "next_step": 0}).scalar_one()


def message_row(key: str, to: str, *, customer_id: int | None = None, campaign_id: int | None = None,
                enrollment_id: int | None = None, step: int = 0, due_at: dt.datetime | None = None,
                category: str = "commercial", channel: str = "email", priority: int = 50,
                postal: str = POSTAL, exit_on: list[str] | None = None, **overrides) -> dict:
    """A compliant message row (one-click unsubscribe headers, link and postal address in both parts)."""
    token = key.replace(":", "-")
    url = f"{BASE_URL}/u/{token}"
    headers = {}
    if category == "commercial":
        headers = {"List-Unsubscribe": f"<{url}>, <mailto:unsubscribe@example.com?subject={token}>",
                   "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    payload = {"unsubscribe_url": url, "postal_address": postal}
    if exit_on is not None:
        payload["exit_on"] = exit_on
    row = {
        "idempotency_key": key, "message_id": f"<{token}.t@winback.test>", "customer_id": customer_id,
        "campaign_id": campaign_id, "enrollment_id": enrollment_id, "step": step, "channel": channel,
        "category": category, "priority": priority, "locale": "en", "to_address": to,
        "from_address": "hello@example.com", "subject": f"We miss you ({key})",
        "text_body": f"Hello,\n\ncome back!\n\nUnsubscribe: {url}\n{postal}\n",
        "html_body": f"<p>Hello,</p><p>come back!</p><p><a href=\"{url}\">Unsubscribe</a></p><p>{postal}</p>",
        "headers": json.dumps(headers), "payload": json.dumps(payload), "status": "pending",
        "due_at": due_at or dt.datetime(2026, 1, 15, 11, 0, tzinfo=UTC), "attempts": 0,
        "created_at": dt.datetime(2026, 1, 15, 10, 0, tzinfo=UTC),
    }
    for name in ("headers", "payload"):
        if name in overrides and not isinstance(overrides[name], str) and overrides[name] is not None:
            overrides[name] = json.dumps(overrides[name])
    row.update(overrides)
    return row


def insert_messages(conn: Connection, rows: list[dict]) -> list[int]:
    table = OutboxMessage.__table__
    columns = sorted(set().union(*rows))
    rows = [{c: r.get(c) for c in columns} for r in rows]
    ids: list[int] = []
    for start in range(0, len(rows), 2000):
        ids += conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                            rows[start:start + 2000]).scalars().all()
    return ids


def seed_simple(conn: Connection, n: int, *, domain: str = "example.net", due_at: dt.datetime | None = None,
                prefix: str = "m", timezone: str | None = "UTC") -> tuple[list[int], list[str]]:
    """``n`` consenting customers, one compliant commercial email each. Returns (message ids, addresses)."""
    emails = [f"{prefix}{i}@{domain}" for i in range(n)]
    customer_ids = add_customers(conn, emails, timezone=timezone)
    rows = [message_row(f"{prefix}:{i}:step:0", email, customer_id=cid, due_at=due_at)
            for i, (email, cid) in enumerate(zip(emails, customer_ids))]
    return insert_messages(conn, rows), emails
