"""4xx and 5xx replies from a real server: retries with backoff, giving up, bounces suppress."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from tests.delivery.conftest import drain, smtp_settings
from tests.delivery.factories import add_customers, insert_messages, message_row
from tests.delivery.smtp_server import Recorder, SmtpServer
from winback.models.delivery import DeliveryAttempt, OutboxMessage, Suppression

OUTBOX = OutboxMessage.__table__
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def rows(engine):
    with engine.connect() as conn:
        return {r.idempotency_key: r for r in conn.execute(select(OUTBOX))}


def test_4xx_retries_with_backoff_then_succeeds_or_gives_up_and_5xx_bounces(workspace, engine, clock):
    recorder = Recorder(rcpt_replies={
        "later@example.net": ["451 4.7.1 greylisted", "452 4.2.2 mailbox full", "250 OK"],
        "never@example.net": ["421 4.3.0 try again"],
        "gone@example.net": ["550 5.1.1 no such user"],
    })
    with engine.begin() as conn:
        ids = add_customers(conn, ["later@example.net", "never@example.net", "gone@example.net", "ok@example.net"])
        insert_messages(conn, [
            message_row("later", "later@example.net", customer_id=ids[0]),
            message_row("never", "never@example.net", customer_id=ids[1]),
            message_row("gone", "gone@example.net", customer_id=ids[2]),
            message_row("ok", "ok@example.net", customer_id=ids[3]),
        ])
    with SmtpServer(recorder) as server:
        settings = smtp_settings(workspace, server, max_attempts=3, retry_base_seconds=60, retry_max_seconds=3600)
        drain(settings, clock)
        got = rows(engine)
        assert got["ok"].status == "sent" and got["gone"].status == "bounced" and got["gone"].last_code == 550
        for key in ("later", "never"):
            assert got[key].status == "pending" and got[key].attempts == 1 and got[key].last_code in (451, 421)
            assert NOW + dt.timedelta(seconds=30) <= got[key].due_at <= NOW + dt.timedelta(seconds=60)
        first_due = max(got["later"].due_at, got["never"].due_at)
        clock.advance(seconds=(first_due - NOW).total_seconds() + 1)
        drain(settings, clock)
        got = rows(engine)
        assert got["later"].attempts == 2 and got["later"].last_code == 452
        # second delay: between 60 and 120 s after the second attempt
        assert clock.now() + dt.timedelta(seconds=60) <= got["later"].due_at <= clock.now() + dt.timedelta(seconds=120)
        clock.advance(seconds=121)
        drain(settings, clock)
        got = rows(engine)
        assert got["later"].status == "sent" and got["later"].attempts == 3
        assert got["never"].status == "failed" and got["never"].attempts == 3
        assert "gave up after 3 attempts" in got["never"].status_reason
        # a new message to the bounced address is suppressed without touching the server
        with engine.begin() as conn:
            insert_messages(conn, [message_row("gone-again", "gone@example.net", customer_id=ids[2],
                                               due_at=clock.now())])
        clock.advance(days=1)
        drain(settings, clock)
        assert rows(engine)["gone-again"].status == "suppressed"
        assert rows(engine)["gone"].status == "bounced"  # never retried
    with engine.connect() as conn:
        supp = conn.execute(select(Suppression.__table__)).all()
        attempts = conn.execute(select(DeliveryAttempt.__table__.c.outcome, DeliveryAttempt.__table__.c.code)
                                .join(OUTBOX, OUTBOX.c.id == DeliveryAttempt.__table__.c.message_id)
                                .where(OUTBOX.c.idempotency_key == "later")
                                .order_by(DeliveryAttempt.__table__.c.id)).all()
    assert [(s.address, s.reason, s.scope, s.source) for s in supp] == [
        ("gone@example.net", "hard_bounce", "all", "smtp")]
    assert [tuple(a) for a in attempts] == [("retry", 451), ("retry", 452), ("sent", 250)]
    rcpts = [a for a, _ in recorder.rcpt_log]
    assert rcpts.count("gone@example.net") == 1 and rcpts.count("never@example.net") == 3
    assert [r.rcpt[0] for r in recorder.received].count("later@example.net") == 1


def test_connection_refused_is_retried(workspace, engine, clock):
    with engine.begin() as conn:
        cid = add_customers(conn, ["x@example.net"])[0]
        insert_messages(conn, [message_row("x", "x@example.net", customer_id=cid)])
    server = SmtpServer()  # not started: nothing listens on its port
    drain(smtp_settings(workspace, server, smtp_timeout_seconds=2.0), clock)
    row = rows(engine)["x"]
    assert row.status == "pending" and row.attempts == 1 and row.last_code is None
    assert "no reply" in row.last_error
