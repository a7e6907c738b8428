"""Quiet hours, send weekdays, delays, the frequency cap (priority, two workers), warm-up with two
workers, the rate limit - with an injected clock and a real SMTP server."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import random
import threading

from sqlalchemy import select

from tests.delivery.conftest import drain, smtp_settings
from tests.delivery.factories import add_customer, add_customers, insert_messages, message_row, seed_simple
from winback.delivery.worker import Worker
from winback.models.delivery import OutboxMessage, SendCounter

OUTBOX = OutboxMessage.__table__
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # a Thursday


def rows(engine):
    with engine.connect() as conn:
        return {r.idempotency_key: r for r in conn.execute(select(OUTBOX))}


def run_concurrently(settings, clock, count=2):
    errors = []

    def target(i):
        try:
            asyncio.run(Worker(settings, clock=clock, worker_id=f"w{i}").run(until_idle=True))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_quiet_hours_in_the_customers_zone_and_transactional_exempt(workspace, engine, clock, smtp):
    with engine.begin() as conn:
        tokyo = add_customer(conn, "tokyo@example.net", timezone="Asia/Tokyo")  # 21:00 local now
        berlin = add_customer(conn, "berlin@example.net", timezone="Europe/Berlin")  # 13:00 local
        nozone = add_customer(conn, "nozone@example.net")  # default zone
        insert_messages(conn, [
            message_row("tokyo-c", "tokyo@example.net", customer_id=tokyo),
            message_row("tokyo-t", "tokyo@example.net", customer_id=tokyo, category="transactional"),
            message_row("berlin-c", "berlin@example.net", customer_id=berlin),
            message_row("nozone-c", "nozone@example.net", customer_id=nozone),
        ])
    settings = smtp_settings(workspace, smtp, default_timezone="America/Los_Angeles")  # 04:00 there
    drain(settings, clock)
    got = rows(engine)
    assert got["tokyo-c"].status == "pending" and got["tokyo-c"].due_at == dt.datetime(2026, 1, 15, 23, tzinfo=UTC)
    assert "Asia/Tokyo" in got["tokyo-c"].status_reason
    assert got["tokyo-t"].status == "sent" and got["berlin-c"].status == "sent"
    assert got["nozone-c"].due_at == dt.datetime(2026, 1, 15, 16, tzinfo=UTC)  # 08:00 in Los Angeles
    clock.advance(hours=11)  # 23:00Z = 08:00 in Tokyo
    drain(settings, clock)
    got = rows(engine)
    assert got["tokyo-c"].status == "sent" and got["nozone-c"].status == "sent"
    assert sorted(r.rcpt[0] for r in smtp.received) == ["berlin@example.net", "nozone@example.net",
                                                        "tokyo@example.net", "tokyo@example.net"]


def test_send_weekdays_and_delays(workspace, engine, clock, smtp):
    with engine.begin() as conn:
        cid = add_customer(conn, "w@example.net", timezone="Europe/Berlin")
        later = add_customer(conn, "later@example.net", timezone="Europe/Berlin")
        insert_messages(conn, [message_row("w", "w@example.net", customer_id=cid),
                               message_row("later", "later@example.net", customer_id=later,
                                           due_at=NOW + dt.timedelta(days=3))])
    settings = smtp_settings(workspace, smtp, send_weekdays="sat,sun")
    drain(settings, clock)
    got = rows(engine)
    # Thursday: deferred to Saturday 08:00 Berlin = 07:00Z; the delayed one is not even claimed
    assert got["w"].due_at == dt.datetime(2026, 1, 17, 7, tzinfo=UTC) and got["w"].status == "pending"
    assert got["later"].status == "pending" and got["later"].attempts == 0 and smtp.received == []
    clock.advance(days=2, hours=-4)  # Saturday 08:00Z
    drain(settings, clock)
    assert rows(engine)["w"].status == "sent" and rows(engine)["later"].status == "pending"
    clock.advance(days=1, hours=5)  # Sunday 13:00Z, past the delay (Sunday 12:00Z)
    drain(settings, clock)
    assert rows(engine)["later"].status == "sent"


def test_frequency_cap_defers_until_the_window_frees_and_priority_wins(workspace, engine, clock, smtp):
    with engine.begin() as conn:
        cid = add_customer(conn, "c@example.net")
        insert_messages(conn, [
            message_row("low", "c@example.net", customer_id=cid, priority=10),
            message_row("high", "c@example.net", customer_id=cid, priority=90,
                        due_at=NOW - dt.timedelta(minutes=1)),  # due later than "low"
            message_row("mid", "c@example.net", customer_id=cid, priority=50),
            message_row("receipt", "c@example.net", customer_id=cid, category="transactional"),
        ])
    settings = smtp_settings(workspace, smtp, frequency_cap_messages=1, frequency_cap_days=7)
    drain(settings, clock)
    got = rows(engine)
    assert got["high"].status == "sent" and got["receipt"].status == "sent"  # transactional: no cap
    for key in ("low", "mid"):
        assert got[key].status == "pending" and got[key].due_at == NOW + dt.timedelta(days=7)
        assert "frequency cap" in got[key].status_reason
    clock.advance(days=7, seconds=1)
    drain(settings, clock)
    got = rows(engine)
    assert got["mid"].status == "sent" and got["low"].status == "pending"  # one slot per window, mid first


def test_lower_priority_does_not_take_a_slot_held_by_a_higher_one(workspace, engine, clock, smtp):
    with engine.begin() as conn:
        cid = add_customer(conn, "p@example.net")
        insert_messages(conn, [
            # another worker is sending the high-priority message right now
            message_row("high", "p@example.net", customer_id=cid, priority=90, status="sending",
                        claimed_by="other", lease_until=NOW + dt.timedelta(minutes=5)),
            message_row("low", "p@example.net", customer_id=cid, priority=10),
        ])
    settings = smtp_settings(workspace, smtp, frequency_cap_messages=1)
    drain(settings, clock)
    got = rows(engine)
    assert got["low"].status == "pending" and "higher-priority" in got["low"].status_reason
    assert got["low"].due_at > NOW and smtp.received == []


def test_cap_holds_with_two_concurrent_workers(workspace, engine, clock, smtp):
    rng = random.Random(3)
    customers = 40
    with engine.begin() as conn:
        ids = add_customers(conn, [f"c{i}@example.net" for i in range(customers)])
        messages = []
        for i, cid in enumerate(ids):
            for step, prio in enumerate(rng.sample([10, 20, 30, 40, 50], 5)):
                messages.append(message_row(f"c{i}:s{step}", f"c{i}@example.net", customer_id=cid, priority=prio,
                                            step=step))
        rng.shuffle(messages)
        insert_messages(conn, messages)
    settings = smtp_settings(workspace, smtp, frequency_cap_messages=2, batch_size=7)
    run_concurrently(settings, clock)
    clock.advance(minutes=2)  # contention deferrals come back and meet the full cap
    run_concurrently(settings, clock)
    sent = collections.defaultdict(list)
    for key, row in rows(engine).items():
        if row.status == "sent":
            sent[row.customer_id].append(row.priority)
        else:
            assert row.status == "pending" and row.due_at == NOW + dt.timedelta(days=7), (key, row.status_reason)
    assert {cid: sorted(p) for cid, p in sent.items()} == {cid: [40, 50] for cid in ids}
    assert len(smtp.received) == 2 * customers


def test_warmup_allowance_holds_with_two_workers(workspace, engine, clock, smtp):
    with engine.begin() as conn:
        seed_simple(conn, 100)
    settings = smtp_settings(workspace, smtp, warmup=True, warmup_schedule=[25, 60], batch_size=10)
    run_concurrently(settings, clock)
    got = rows(engine)
    statuses = collections.Counter(r.status for r in got.values())
    assert statuses == {"sent": 25, "pending": 75}
    midnight = dt.datetime(2026, 1, 16, tzinfo=UTC)
    assert {r.due_at for r in got.values() if r.status == "pending"} == {midnight}
    with engine.connect() as conn:
        used = conn.execute(select(SendCounter.__table__.c.used)).scalars().all()
    assert used == [25]
    clock.advance(days=1)  # day 2 of the domain: 60 more
    run_concurrently(settings, clock)
    statuses = collections.Counter(r.status for r in rows(engine).values())
    assert statuses == {"sent": 85, "pending": 15}
    assert len(smtp.received) == 85


def test_rate_limit_spaces_sends(workspace, engine, clock, smtp):
    with engine.begin() as conn:
        seed_simple(conn, 12)
    drain(smtp_settings(workspace, smtp, rate_per_second=20.0), clock)
    times = sorted(r.at for r in smtp.received)
    assert len(times) == 12
    # 1 token in the bucket, then 20 per second: 11 intervals of >= 50 ms (minus scheduler slack)
    assert times[-1] - times[0] >= 11 / 20 * 0.9
