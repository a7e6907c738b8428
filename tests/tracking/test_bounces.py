"""Bounces and complaints: DSN/ARF mail as real servers write it, provider webhooks, idempotent intake."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.tracking.conftest import T0, add_customers, sent_message
from winback.models.campaigns import CustomerEvent
from winback.models.customer import Customer
from winback.models.delivery import OutboxMessage, Suppression
from winback.models.tracking import TrackingEvent
from winback.tracking.bounces import ReportError, ingest_mailbox, ingest_reports, parse_provider, parse_report

FIXTURES = Path(__file__).parent / "fixtures"


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_postfix_hard_bounce():
    (r,) = parse_report(read("postfix_dsn_hard.eml"))
    assert (r["kind"], r["hard"], r["recipient"], r["status"], r["message_id"]) == \
        ("bounce", True, "gone@example.net", "5.1.1", "<enr-1-step-0.t@winback.test>")
    assert "User unknown" in r["diagnostic"] and r["event_id"].startswith("dsn:<20260112100312")


def test_delayed_is_soft_and_gmail_dsn_with_the_original_message():
    (soft,) = parse_report(read("postfix_dsn_delayed.eml"))
    assert soft["hard"] is False and soft["status"] == "4.4.1" and soft["action"] == "delayed"
    (hard,) = parse_report(read("gmail_dsn_hard.eml"))
    assert hard["hard"] and hard["recipient"] == "former.customer@example.com"
    assert hard["message_id"] == "<enr-3-step-1.t@winback.test>"


def test_arf_complaints():
    (y,) = parse_report(read("yahoo_arf_abuse.eml"))
    assert (y["kind"], y["recipient"], y["message_id"], y["feedback_type"]) == \
        ("complaint", "annoyed@yahoo.com", "<enr-4-step-0.t@winback.test>", "abuse")
    (g,) = parse_report(read("gmail_arf_redacted.eml"))
    assert g["kind"] == "complaint" and g["message_id"] == "<enr-5-step-0.t@winback.test>"


@pytest.mark.parametrize("name, reason", [
    ("out_of_office.eml", "not a delivery or feedback report (text/plain)"),
    ("truncated_dsn.eml", "delivery report without a message/delivery-status part"),
    ("garbage.eml", "not a delivery or feedback report (text/plain)"),
])
def test_hostile_mail(name, reason):
    with pytest.raises(ReportError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_report(read(name))
    with pytest.raises(ReportError, match="empty message"):
        parse_report(b"  \n")


SES_BOUNCE = {
    "Type": "Notification", "MessageId": "8f1d3d2c-7f3b-5c63-9a3e-0b4d6c1f6a11",
    "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-feedback",
    "Message": json.dumps({
        "notificationType": "Bounce",
        "bounce": {"feedbackId": "0102018cfb6a1f5e-4b2c-4f7a-9d8e-000000", "bounceType": "Permanent",
                   "bounceSubType": "General", "timestamp": "2026-01-12T10:03:12.000Z",
                   "reportingMTA": "dsn; a8-30.smtp-out.amazonses.com",
                   "bouncedRecipients": [{"emailAddress": "gone@example.net", "action": "failed",
                                          "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
        "mail": {"timestamp": "2026-01-12T10:03:09.000Z", "source": "hello@example.com",
                 "messageId": "0102018cfb6a1c2d-ses-id", "destination": ["gone@example.net"],
                 "headers": [{"name": "Message-ID", "value": "<enr-1-step-0.t@winback.test>"}],
                 "commonHeaders": {"from": ["hello@example.com"], "to": ["gone@example.net"],
                                   "messageId": "<enr-1-step-0.t@winback.test>", "subject": "We miss you"}}}),
    "Timestamp": "2026-01-12T10:03:13.000Z", "SignatureVersion": "1",
}
SES_COMPLAINT = {"notificationType": "Complaint",
                 "complaint": {"feedbackId": "0102018cfb-complaint-1", "complaintFeedbackType": "abuse",
                               "complainedRecipients": [{"emailAddress": "annoyed@yahoo.com"}]},
                 "mail": {"messageId": "ses-2", "commonHeaders": {"messageId": "<enr-4-step-0.t@winback.test>"}}}


def test_provider_payloads_normalise():
    (b,) = parse_provider("ses", SES_BOUNCE)
    assert (b["kind"], b["hard"], b["recipient"], b["message_id"], b["provider"]) == \
        ("bounce", True, "gone@example.net", "<enr-1-step-0.t@winback.test>", "ses")
    transient = json.loads(SES_BOUNCE["Message"])
    transient["bounce"]["bounceType"] = "Transient"
    assert parse_provider("ses", transient)[0]["hard"] is False
    (c,) = parse_provider("ses", json.dumps(SES_COMPLAINT))
    assert c["kind"] == "complaint" and c["feedback_type"] == "abuse"
    assert parse_provider("ses", {"notificationType": "Delivery", "mail": {}}) == []

    sg = parse_provider("sendgrid", json.loads((FIXTURES / "sendgrid_events.json").read_text()))
    assert [(r["kind"], r["hard"]) for r in sg] == [("bounce", True), ("bounce", False), ("complaint", True),
                                                   ("bounce", True)]
    assert sg[0]["event_id"] == sg[3]["event_id"]  # the webhook retried: same event id
    dropped = parse_provider("sendgrid", [{"email": "x@example.com", "event": "dropped", "sg_event_id": "d1",
                                           "reason": "Bounced Address"}])
    assert dropped[0]["hard"] is True

    pm = parse_provider("postmark", {"RecordType": "Bounce", "ID": 4323372036854775807, "Type": "HardBounce",
                                     "TypeCode": 1, "Name": "Hard bounce", "MessageID": "883953f4-6105-42a2",
                                     "Description": "The server was unable to deliver your message",
                                     "Details": "smtp;550 5.1.1 The email account does not exist.",
                                     "Email": "gone@example.net", "BouncedAt": "2026-01-12T10:03:12Z",
                                     "Headers": [{"Name": "Message-ID", "Value": "<enr-1-step-0.t@winback.test>"}]})
    assert pm[0]["hard"] and pm[0]["message_id"] == "<enr-1-step-0.t@winback.test>"
    soft = parse_provider("postmark", {"RecordType": "Bounce", "ID": 2, "Type": "SoftBounce", "Email": "a@b.co"})
    assert soft[0]["hard"] is False
    spam = parse_provider("postmark", {"RecordType": "SpamComplaint", "ID": 3, "Email": "annoyed@yahoo.com"})
    assert spam[0]["kind"] == "complaint" and spam[0]["message_id"] is None

    mg = parse_provider("mailgun", {"signature": {"token": "t", "timestamp": "1", "signature": "s"},
                                    "event-data": {"event": "failed", "severity": "permanent", "id": "G9Bn5sl1TC",
                                                   "recipient": "gone@example.net",
                                                   "message": {"headers": {
                                                       "message-id": "enr-1-step-0.t@winback.test"}},
                                                   "delivery-status": {"code": 550, "description": "No such user"}}})
    assert mg[0]["hard"] and mg[0]["message_id"] == "<enr-1-step-0.t@winback.test>" and mg[0]["status"] == "550"
    temp = parse_provider("mailgun", {"event-data": {"event": "failed", "severity": "temporary", "id": "x",
                                                     "recipient": "a@b.co"}})
    assert temp[0]["hard"] is False
    assert parse_provider("mailgun", {"event-data": {"event": "complained", "id": "y",
                                                     "recipient": "a@b.co"}})[0]["kind"] == "complaint"


@pytest.mark.parametrize("provider, payload, reason", [
    ("ses", "{not json", "ses: the body is not JSON"),
    ("ses", {"notificationType": "Bounce"}, "ses: unexpected payload"),
    ("sendgrid", ["just a string"], "sendgrid: every event must be a JSON object"),
    ("postmark", {"RecordType": "Bounce"}, "postmark: unexpected payload"),
    ("mailgun", [], "mailgun: expected a JSON object"),
    ("sparkpost", {}, "unknown provider 'sparkpost'"),
])
def test_hostile_payloads(provider, payload, reason):
    with pytest.raises(ReportError, match=reason):
        parse_provider(provider, payload)


@pytest.fixture
def outbox(engine):
    addresses = ["gone@example.net", "slow@example.org", "former.customer@example.com", "annoyed@yahoo.com",
                 "quiet@example.com"]
    with engine.begin() as conn:
        ids = add_customers(conn, addresses)
        for i, (cid, addr) in enumerate(zip(ids, addresses), start=1):
            sent_message(conn, f"enr:{i}:step:{1 if i == 3 else 0}", cid, addr, None, None, sent_at=T0)
    return dict(zip(addresses, ids))


def _state(engine) -> dict:
    with engine.connect() as conn:
        return {
            "suppressions": sorted((r.address, r.reason, r.scope) for r in
                                   conn.execute(select(Suppression.__table__))),
            "bounced": sorted(r.to_address for r in conn.execute(select(OutboxMessage.__table__))
                              if r.status == "bounced"),
            "opted_out": sorted(r.email for r in conn.execute(select(Customer.__table__)) if r.marketing_opt_out),
            "events": sorted((r.kind, r.source) for r in conn.execute(select(TrackingEvent.__table__))),
            "complained": [r.customer_id for r in conn.execute(select(CustomerEvent.__table__))
                           if r.type == "complained"],
        }


def test_ingest_reports_applies_once(workspace, engine, outbox):
    records = parse_provider("ses", SES_BOUNCE) + parse_provider("ses", SES_COMPLAINT) + \
        parse_provider("sendgrid", json.loads((FIXTURES / "sendgrid_events.json").read_text()))
    first = ingest_reports(workspace, records, source="provider:test", now=T0, engine=engine)
    assert first["records"] == 6 and first["hard_bounces"] == 1 and first["complaints"] == 1
    assert first["soft_bounces"] == 1 and first["duplicates"] == 3  # SES and SendGrid reported the same ones
    assert first["errors"] == [] and first["messages_bounced"] == 1
    state = _state(engine)
    assert state["suppressions"] == [("annoyed@yahoo.com", "complaint", "all"), ("gone@example.net", "hard_bounce",
                                                                                  "all")]
    assert state["bounced"] == ["gone@example.net"] and state["opted_out"] == ["annoyed@yahoo.com"]
    assert state["events"] == [("bounce", "provider:test"), ("complaint", "provider:test")]
    assert state["complained"] == [outbox["annoyed@yahoo.com"]]
    again = ingest_reports(workspace, records, source="provider:test", now=T0, engine=engine)
    assert again["duplicates"] == 5 and again["hard_bounces"] == 0 and _state(engine) == state


def test_bad_records_are_reported_not_raised(workspace, engine, outbox):
    r = ingest_reports(workspace, [{"kind": "bounce", "hard": True, "recipient": "not an address",
                                    "message_id": None, "event_id": "x1"},
                                   {"kind": "whatever", "event_id": "x2"},
                                   {"kind": "bounce", "hard": True, "recipient": "new@example.com",
                                    "message_id": "<unknown@nowhere>", "event_id": "x3"}],
                       source="provider:test", now=T0, engine=engine)
    assert len(r["errors"]) == 2 and "no usable recipient address" in r["errors"][0]["error"]
    assert r["hard_bounces"] == 1 and r["unmatched"] == 1  # suppressed even without a known message


def test_mailbox_moves_processed_files_and_reports_bad_ones(workspace, engine, outbox, tmp_path):
    box = tmp_path / "bounces"
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True)
    for f in FIXTURES.glob("*.eml"):
        shutil.copy(f, box / "new" / f"1768212192.M1P2.host,S={f.stat().st_size}:{f.stem}")
    first = ingest_mailbox(workspace, box, now=T0, engine=engine)
    assert first["files"] == 8 and first["processed_files"] == 5
    assert sorted(s["file"].rsplit(":", 1)[1] for s in first["skipped"]) == ["garbage", "out_of_office",
                                                                              "truncated_dsn"]
    assert first["hard_bounces"] == 2 and first["complaints"] == 2 and first["soft_bounces"] == 1
    assert sorted(p.name.rsplit(":", 1)[1] for p in (box / "processed").iterdir()) == [
        "gmail_arf_redacted", "gmail_dsn_hard", "postfix_dsn_delayed", "postfix_dsn_hard", "yahoo_arf_abuse"]
    state = _state(engine)
    assert state["bounced"] == ["former.customer@example.com", "gone@example.net"]
    assert state["opted_out"] == ["annoyed@yahoo.com", "quiet@example.com"]  # the redacted report: by Message-ID
    assert ("dsn" in {s for _k, s in state["events"]}) and ("arf" in {s for _k, s in state["events"]})
    second = ingest_mailbox(workspace, box, now=T0, engine=engine)
    assert second["files"] == 3 and second["processed_files"] == 0 and _state(engine) == state
    # the same reports again (e.g. copied back by hand): nothing changes
    again = ingest_mailbox(workspace, box / "processed", now=T0, engine=engine)
    assert again["duplicates"] == 4 and _state(engine) == state  # the delayed (soft) one is never recorded
