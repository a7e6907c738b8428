"""Plan -> schedule -> worker -> a real SMTP server (aiosmtpd): the localised four-email sequence
arrives with correct headers, each email in its step's order and with the decided offer."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import re
from collections import defaultdict

from sqlalchemy import select

from tests.delivery.conftest import configure
from tests.delivery.smtp_server import Recorder, SmtpServer
from winback.campaigns.planner import plan
from winback.delivery.worker import Worker
from winback.kit.clock import FixedClock
from winback.kit.db import make_engine
from winback.models.campaigns import Coupon, Enrollment
from winback.models.customer import Customer
from winback.models.delivery import OutboxMessage
from winback.playbooks.spec import builtin_playbook_path, load_playbook_file

UTC = dt.timezone.utc
START = dt.datetime(2025, 12, 31, 10, 0, tzinfo=UTC)
EMAIL_STEPS = [i for i, s in enumerate(load_playbook_file(builtin_playbook_path()).sequences["winback_four_step"].steps)
               if s.channel == "email"]
SCRIPTS = {"ja": re.compile(r"[\u3040-\u30ff]"), "ko": re.compile(r"[\uac00-\ud7af]"),
           "uk": re.compile(r"[\u0400-\u04ff]"), "zh": re.compile(r"[\u4e00-\u9fff]")}


def _drain_days(settings, days: int, clock: FixedClock) -> None:
    for _ in range(days):
        asyncio.run(Worker(settings, clock=clock).run(until_idle=True))
        clock.advance(hours=6)


def test_a_localised_sequence_goes_through_a_real_smtp_server(fresh):
    plan(fresh, campaigns=["winback_price", "winback_general", "winback_usability", "winback_support"],
         schedule=False)
    with SmtpServer(Recorder()) as server:
        settings = configure(fresh, email_channel="smtp", smtp_host="127.0.0.1", smtp_port=server.port,
                             frequency_cap_messages=10, quiet_hours_start=0, quiet_hours_end=0)
        clock = FixedClock(START)
        _drain_days(settings, 4 * 25, clock)  # 25 days in 6-hour rounds: every step of the sequence is due
        received = list(server.received)
    engine = make_engine(fresh.resolved_state_url)
    with engine.connect() as conn:
        sent = {r.message_id: r for r in conn.execute(select(
            OutboxMessage.message_id, OutboxMessage.enrollment_id, OutboxMessage.step, OutboxMessage.status,
            OutboxMessage.locale, OutboxMessage.to_address).where(OutboxMessage.channel == "email"))}
        enrollments = {r.id: r for r in conn.execute(select(Enrollment.id, Enrollment.offer_key, Enrollment.coupon_id,
                                                            Enrollment.status, Enrollment.customer_id))}
        coupons = {r.id: r.code for r in conn.execute(select(Coupon.id, Coupon.code))}
        customers = {r.id: r for r in conn.execute(select(Customer.id, Customer.email, Customer.locale))}
    engine.dispose()
    assert received, "nothing reached the SMTP server"
    ids = [r.message_id for r in received]
    assert len(ids) == len(set(ids))  # no duplicates without a crash
    assert {sent[i].status for i in ids} == {"sent"}
    assert all(m.status in ("sent", "canceled", "suppressed") for m in sent.values())
    by_enrollment: dict[int, list] = defaultdict(list)
    scripts_seen = set()
    for r in received:
        msg = email.message_from_bytes(r.content, policy=email.policy.default)
        row = sent[r.message_id]
        by_enrollment[row.enrollment_id].append(row.step)
        # RFC 8058 one-click unsubscribe and the visible link + postal address in both parts
        unsub = msg["List-Unsubscribe"]
        assert unsub and unsub.startswith("<" + fresh.sender.base_url + "/u/")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = unsub.strip("<>").split(">")[0]
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert url in text and url.replace("&", "&amp;") in html or url in html
        assert fresh.sender.postal_address in text
        assert r.rcpt == [row.to_address]
        # the customer's language
        lang = (customers[enrollments[row.enrollment_id].customer_id].locale or "en")[:2]
        if lang in SCRIPTS:
            assert SCRIPTS[lang].search(str(msg["Subject"]) + text), (lang, msg["Subject"])
            scripts_seen.add(lang)
        # the incentive step carries the coupon code issued for this enrollment
        enr = enrollments[row.enrollment_id]
        if row.step == EMAIL_STEPS[2] and enr.coupon_id:  # the incentive email
            assert coupons[enr.coupon_id] in text
    assert len(scripts_seen) >= 3
    # every sequence arrived in step order, and a completed treatment got all four emails
    full = 0
    for enrollment_id, steps in by_enrollment.items():
        assert steps == sorted(steps)
        if enrollments[enrollment_id].status == "completed" and len(steps) == 4:
            full += 1
            assert steps == EMAIL_STEPS
    assert full > 10


def test_preview_renders_what_would_be_sent(fresh):
    from winback.campaigns.service import preview

    plan(fresh, campaigns=["winback_price"], schedule=False)
    engine = make_engine(fresh.resolved_state_url)
    with engine.connect() as conn:
        row = conn.execute(select(Customer.external_id, Customer.locale, Enrollment.offer_key).join(
            Enrollment, Enrollment.customer_id == Customer.id).where(Enrollment.arm == "treatment",
                                                                   Enrollment.offer_key.is_not(None))).first()
    engine.dispose()
    p = preview(fresh, "winback_price", row.external_id, step="incentive")
    assert p["subject"] and p["to"] and "enrollment" in p["source"]
    assert fresh.sender.postal_address in p["text"]
    assert "WB-PREVIEW" in p["text"] or row.offer_key in ("lower_tier",)
    ja = preview(fresh, "winback_price", row.external_id, step="reminder", locale="ja")
    assert ja["locale"] == "ja" and SCRIPTS["ja"].search(ja["subject"] + ja["text"])
    assert json.dumps(p["decision"])  # the explanation travels with the preview
