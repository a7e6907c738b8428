"""Recording opens, clicks and other events against outbox rows."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from tests.tracking.conftest import T0, add_campaign, add_customers, add_enrollments, sent_message
from winback.models.tracking import TrackingEvent
from winback.tracking.service import message_by_key, record_click, record_event, record_open

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
          "Safari/537.36")
EVENTS = TrackingEvent.__table__


@pytest.fixture
def message(engine):
    with engine.begin() as conn:
        (cid,) = add_customers(conn, ["ann@example.com"])
        camp = add_campaign(conn, "winback_price")
        (enr,) = add_enrollments(conn, camp, [cid], variants={"subject_reminder": "b"})
        mid, key = sent_message(conn, "enr:1:step:1", cid, "ann@example.com", camp, enr, step=1,
                                variant="subject_reminder=b")
    return {"id": mid, "key": key, "customer_id": cid, "campaign_id": camp, "enrollment_id": enr}


def test_open_by_a_person_copies_the_message_context(workspace, engine, message):
    got = record_open(engine, workspace, message=message["key"], user_agent=CHROME, ip="198.51.100.23",
                      now=T0 + dt.timedelta(hours=2))
    assert got["kind"] == "open" and got["machine"] is False and got["message"] == message["key"]
    with engine.connect() as conn:
        row = conn.execute(select(EVENTS)).one()._mapping
    assert (row["message_id"], row["customer_id"], row["campaign_id"], row["enrollment_id"], row["step"],
            row["variant"]) == (message["id"], message["customer_id"], message["campaign_id"],
                                message["enrollment_id"], 1, "subject_reminder=b")
    assert row["ip_prefix"] == "198.51.100.0/24" and "198.51.100.23" not in str(dict(row))
    assert row["source"] == "web"


def test_machine_open_and_click(workspace, engine, message):
    mpp = record_open(engine, workspace, message=message["key"], user_agent="Mozilla/5.0", ip="17.58.1.2",
                      now=T0 + dt.timedelta(seconds=40))
    assert (mpp["machine"], mpp["machine_reason"]) == (True, "apple-mpp")
    fast = record_click(engine, workspace, message=message["key"].strip("<>"), link="cta",
                        target="https://example.com/pricing", user_agent=CHROME, ip="2001:db8:1:2::9",
                        now=T0 + dt.timedelta(seconds=1))
    assert (fast["machine"], fast["machine_reason"], fast["link"]) == (True, "prefetch-timing", "cta")
    assert fast["ip_prefix"] == "2001:db8:1::/48"
    human = record_click(engine, workspace, message=message["key"], link="cta", target="https://example.com/x",
                         user_agent=CHROME, ip=None, now=T0 + dt.timedelta(minutes=5))
    assert human["machine"] is False and human["target"] == "https://example.com/x"


@pytest.mark.parametrize("key", ["<nope@example.com>", "", "x" * 400, "' OR 1=1 --"])
def test_unknown_message_writes_nothing(workspace, engine, message, key):
    assert record_open(engine, workspace, message=key, user_agent=CHROME, ip="1.2.3.4", now=T0) is None
    assert record_click(engine, workspace, message=key, link="cta", target="https://x", user_agent=CHROME,
                        ip="1.2.3.4", now=T0) is None
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(EVENTS)).scalar() == 0


def test_record_event_generic_and_idempotent_by_key(engine, message):
    with engine.begin() as conn:
        row = message_by_key(conn, message["key"])
        assert row["id"] == message["id"] and row["to_address"] == "ann@example.com"
        first = record_event(conn, kind="unsubscribe", outbox_row=row, customer_id=None, source="web", now=T0,
                             detail={"scope": "commercial"}, event_key="unsub:1")
        again = record_event(conn, kind="unsubscribe", outbox_row=row, customer_id=None, source="web", now=T0,
                             event_key="unsub:1")
        loose = record_event(conn, kind="survey", outbox_row=None, customer_id=message["customer_id"],
                             source="web", now=T0)
        with pytest.raises(ValueError):
            record_event(conn, kind="explode", outbox_row=None, customer_id=None, source="web", now=T0)
    assert first["customer_id"] == message["customer_id"] and first["detail"] == '{"scope": "commercial"}'
    assert again is None and loose["message_id"] is None and loose["campaign_id"] is None
