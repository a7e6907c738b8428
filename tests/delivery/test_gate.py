"""Send-time checks: suppression scopes, opt-out, lawful basis, enrollment state, exit events,
RFC 8058 compliance, hostile input - all against a real SMTP server."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from tests.delivery.conftest import drain, smtp_settings
from tests.delivery.factories import (add_campaign, add_customer, add_enrollment, insert_messages, message_row)
from winback.delivery import suppression
from winback.models.campaigns import CustomerEvent, Enrollment
from winback.models.delivery import OutboxMessage

OUTBOX = OutboxMessage.__table__
UTC = dt.timezone.utc


def statuses(engine) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        return {r.idempotency_key: (r.status, r.status_reason) for r in conn.execute(
            select(OUTBOX.c.idempotency_key, OUTBOX.c.status, OUTBOX.c.status_reason))}


def received_to(smtp) -> list[str]:
    return sorted(r.rcpt[0] for r in smtp.received)


def test_suppression_scopes_consent_and_category(workspace, engine, clock, smtp):
    with engine.begin() as conn:
        ok = add_customer(conn, "ok@example.net")
        blocked_all = add_customer(conn, "all@example.net")
        blocked_com = add_customer(conn, "com@example.net")
        out = add_customer(conn, "out@example.net", opt_out=True)
        none = add_customer(conn, "none@example.net", basis="none")
        soft = add_customer(conn, "soft@example.net", basis="soft_opt_in")
        suppression.add(conn, "ALL@example.net", "complaint", scope="all")
        suppression.add(conn, "com@example.net", "unsubscribed", scope="commercial")
        insert_messages(conn, [
            message_row("ok", "ok@example.net", customer_id=ok),
            message_row("all-c", "all@example.net", customer_id=blocked_all),
            message_row("all-t", "all@example.net", customer_id=blocked_all, category="transactional"),
            message_row("com-c", "com@example.net", customer_id=blocked_com),
            message_row("com-t", "com@example.net", customer_id=blocked_com, category="transactional"),
            message_row("out-c", "out@example.net", customer_id=out),
            message_row("out-t", "out@example.net", customer_id=out, category="transactional"),
            message_row("none-c", "none@example.net", customer_id=none),
            message_row("soft-c", "soft@example.net", customer_id=soft),
            message_row("anon-c", "anon@example.net"),
        ])
    summary = drain(smtp_settings(workspace, smtp), clock)
    got = statuses(engine)
    assert {k: v[0] for k, v in got.items()} == {
        "ok": "sent", "all-c": "suppressed", "all-t": "suppressed", "com-c": "suppressed", "com-t": "sent",
        "out-c": "suppressed", "out-t": "sent", "none-c": "suppressed", "soft-c": "sent", "anon-c": "suppressed"}
    assert "opted out" in got["out-c"][1] and "marketing_basis=none" in got["none-c"][1]
    assert "(all)" in got["all-t"][1] and "no customer record" in got["anon-c"][1]
    assert received_to(smtp) == ["com@example.net", "ok@example.net", "out@example.net", "soft@example.net"]
    assert summary.sent == 4 and summary.suppressed == 6


def test_inactive_enrollment_cancels_and_exit_event_exits(workspace, engine, clock, smtp):
    enrolled = dt.datetime(2026, 1, 10, tzinfo=UTC)
    with engine.begin() as conn:
        camp = add_campaign(conn)
        a, b, c = (add_customer(conn, f"{x}@example.net") for x in "abc")
        done = add_enrollment(conn, a, camp, status="exited")
        live = add_enrollment(conn, b, camp, enrolled_at=enrolled)
        old_event = add_enrollment(conn, c, camp, enrolled_at=enrolled)
        exit_on = ["returned", "purchased", "unsubscribed"]
        insert_messages(conn, [
            message_row("a0", "a@example.net", customer_id=a, campaign_id=camp, enrollment_id=done, exit_on=exit_on),
            message_row("b0", "b@example.net", customer_id=b, campaign_id=camp, enrollment_id=live, exit_on=exit_on),
            message_row("b1", "b@example.net", customer_id=b, campaign_id=camp, enrollment_id=live, step=1,
                        exit_on=exit_on, due_at=dt.datetime(2026, 1, 20, tzinfo=UTC)),
            message_row("c0", "c@example.net", customer_id=c, campaign_id=camp, enrollment_id=old_event,
                        exit_on=exit_on),
        ])
        events = CustomerEvent.__table__
        conn.execute(events.insert(), [
            {"event_id": "e1", "customer_id": b, "type": "purchased", "occurred_at": enrolled + dt.timedelta(days=2),
             "received_at": enrolled, "source": "api"},
            # before the enrollment: does not end it
            {"event_id": "e2", "customer_id": c, "type": "returned", "occurred_at": enrolled - dt.timedelta(days=1),
             "received_at": enrolled, "source": "api"},
            # a type the sequence does not exit on
            {"event_id": "e3", "customer_id": c, "type": "login", "occurred_at": enrolled + dt.timedelta(days=1),
             "received_at": enrolled, "source": "api"},
        ])
    drain(smtp_settings(workspace, smtp), clock)
    got = statuses(engine)
    assert got["a0"][0] == "canceled" and "exited" in got["a0"][1]
    assert got["b0"][0] == "canceled" and "purchased" in got["b0"][1]
    assert got["b1"] == ("canceled", "enrollment exited: purchased")  # the later step, not yet due, too
    assert got["c0"][0] == "sent"
    with engine.connect() as conn:
        row = conn.execute(select(Enrollment.__table__).where(Enrollment.__table__.c.id == live)).one()
    assert (row.status, row.exit_reason) == ("exited", "purchased") and row.finished_at is not None
    assert received_to(smtp) == ["c@example.net"]


def test_non_compliant_commercial_email_is_refused(workspace, engine, clock, smtp):
    with engine.begin() as conn:
        cid = add_customer(conn, "x@example.net")
        base = message_row("k", "x@example.net", customer_id=cid)
        url = json.loads(base["payload"])["unsubscribe_url"]
        rows = [
            message_row("no-header", "x@example.net", customer_id=cid, headers={}),
            message_row("no-post", "x@example.net", customer_id=cid, headers={"List-Unsubscribe": f"<{url}>"}),
            message_row("no-link-html", "x@example.net", customer_id=cid, html_body="<p>Hi</p><p>ws, 1 Example "
                        "Street, 10115 Berlin, Germany</p>"),
            message_row("no-postal-text", "x@example.net", customer_id=cid,
                        text_body="Hi https://win.example.com/u/no-postal-text"),
            message_row("transactional-plain", "x@example.net", customer_id=cid, category="transactional",
                        headers={}, text_body="Your receipt", html_body=None),
        ]
        insert_messages(conn, rows)
    drain(smtp_settings(workspace, smtp), clock)
    got = statuses(engine)
    assert got["no-header"][0] == "failed" and "List-Unsubscribe header" in got["no-header"][1]
    assert got["no-post"][0] == "failed" and "List-Unsubscribe-Post" in got["no-post"][1]
    assert got["no-link-html"][0] == "failed" and "html part lacks the visible unsubscribe link" in \
        got["no-link-html"][1]
    assert got["no-postal-text"][0] == "failed" and "postal address" in got["no-postal-text"][1]
    assert got["transactional-plain"][0] == "sent"
    assert len(smtp.received) == 1


def test_hostile_input_is_refused_and_nothing_half_written(workspace, engine, clock, smtp, tmp_path):
    with engine.begin() as conn:
        cid = add_customer(conn, "v@example.net")
        insert_messages(conn, [
            message_row("subj", "v@example.net", customer_id=cid, subject="Hi\r\nBcc: evil@example.org"),
            message_row("to", "v@example.net\r\nBcc: evil@example.org", customer_id=cid),
            message_row("bad-addr", "not an address", customer_id=cid),
            message_row("hdr-inject", "v@example.net", customer_id=cid, headers={
                "List-Unsubscribe": "<https://win.example.com/u/x>\r\nBcc: evil@example.org",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}),
            message_row("hdr-protected", "v@example.net", customer_id=cid, headers={
                "List-Unsubscribe": "<https://win.example.com/u/hdr-protected>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "Bcc": "evil@example.org"}),
            message_row("hdr-json", "v@example.net", customer_id=cid, headers="[not json"),
            message_row("msgid", "v@example.net", customer_id=cid, message_id="<a\r\nb@x>"),
            message_row("channel", "v@example.net", customer_id=cid, channel="pigeon"),
        ])
    # the maildir channel too: no file may appear for a refused message
    summary = drain(workspace, clock)
    got = statuses(engine)
    assert all(status == "failed" for status, _ in got.values()), got
    assert "Subject contains CR/LF" in got["subj"][1]
    assert "control characters" in got["to"][1]
    assert "invalid recipient address" in got["bad-addr"][1]
    assert "List-Unsubscribe contains CR/LF" in got["hdr-inject"][1]
    assert "Bcc may not be set" in got["hdr-protected"][1]
    assert "not valid JSON" in got["hdr-json"][1]
    assert "Message-ID" in got["msgid"][1]
    assert "unknown channel" in got["channel"][1]
    maildir = workspace.workspace / workspace.delivery.maildir
    assert [p for sub in ("new", "cur", "tmp") for p in (maildir / sub).glob("*")] == []
    assert summary.failed == 8 and smtp.received == []
