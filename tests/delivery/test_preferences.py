"""The preference centre at send time: a pause defers commercial messages until it ends (nothing is
lost), a topic turned off suppresses that topic's messages; transactional messages ignore both."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import insert, select

from tests.delivery.conftest import drain
from tests.delivery.factories import BASE_URL, POSTAL, add_customer, insert_messages, message_row
from winback.kit.clock import FixedClock
from winback.models.delivery import OutboxMessage
from winback.models.tracking import CustomerPreference

OUTBOX = OutboxMessage.__table__
UTC = dt.timezone.utc


def _row(key: str, to: str, customer_id: int, topic: str | None, **kwargs) -> dict:
    payload = {"unsubscribe_url": f"{BASE_URL}/u/{key}", "postal_address": POSTAL}
    if topic:
        payload["topic"] = topic
    return message_row(key, to, customer_id=customer_id, payload=payload, **kwargs)


def _prefs(conn, customer_id: int, topics_off=(), paused_until=None) -> None:
    conn.execute(insert(CustomerPreference.__table__), {
        "customer_id": customer_id, "topics_off": json.dumps(list(topics_off)), "paused_until": paused_until,
        "updated_at": dt.datetime(2026, 1, 14, tzinfo=UTC)})


def _outbox(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {r.idempotency_key: dict(r._mapping) for r in conn.execute(select(OUTBOX))}


def test_a_pause_defers_commercial_messages_until_it_ends(workspace, engine, clock):
    until = clock.now() + dt.timedelta(days=30)
    with engine.begin() as conn:
        paused = add_customer(conn, "paused@example.net", timezone="UTC")
        over = add_customer(conn, "over@example.net", timezone="UTC")
        _prefs(conn, paused, paused_until=until)
        _prefs(conn, over, paused_until=clock.now() - dt.timedelta(days=1))  # a pause that has ended
        insert_messages(conn, [
            _row("p-c", "paused@example.net", paused, "offers"),
            _row("p-t", "paused@example.net", paused, None, category="transactional"),
            _row("o-c", "over@example.net", over, "offers"),
        ])
    drain(workspace, clock)
    rows = _outbox(engine)
    assert rows["p-c"]["status"] == "pending" and rows["p-c"]["due_at"] == until
    assert "paused marketing until" in rows["p-c"]["status_reason"]
    assert rows["p-t"]["status"] == "sent" and rows["o-c"]["status"] == "sent"

    # when the pause is over the message goes out (it was deferred, not dropped)
    later = FixedClock(until + dt.timedelta(hours=1))
    drain(workspace, later)
    assert _outbox(engine)["p-c"]["status"] == "sent"


def test_a_topic_turned_off_suppresses_its_messages_only(workspace, engine, clock):
    with engine.begin() as conn:
        cid = add_customer(conn, "picky@example.net", timezone="UTC")
        _prefs(conn, cid, topics_off=["offers", "surveys"])
        insert_messages(conn, [
            _row("offer", "picky@example.net", cid, "offers"),
            _row("survey", "picky@example.net", cid, "surveys", priority=40),
            _row("update", "picky@example.net", cid, "product_updates", priority=30),
            _row("receipt", "picky@example.net", cid, "offers", category="transactional"),
        ])
    drain(workspace, clock)
    rows = _outbox(engine)
    assert rows["offer"]["status"] == "suppressed"
    assert rows["offer"]["status_reason"] == "the customer turned off topic offers"
    assert rows["survey"]["status"] == "suppressed"
    assert rows["update"]["status"] == "sent"
    assert rows["receipt"]["status"] == "sent"  # transactional: topics do not apply
