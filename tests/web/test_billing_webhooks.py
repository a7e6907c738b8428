"""Billing webhooks over HTTP (``/webhooks/billing/stripe`` and ``/standard``), on both backends:
headers built with the stripe SDK's and the standardwebhooks library's own signing helpers."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from winback.dunning.providers import parse_event
from winback.kit.clock import FixedClock
from winback.models.tracking import WebhookEvent
from winback.web.app import create_app

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # tests/conftest.py TEST_NOW
T = int(NOW.timestamp())
SECRET = "whsec_test_5f0c1b2a9e8d7c6b5a4f3e2d1c0b9a8f"
ROLLED = "whsec_test_new_0a1b2c3d4e5f60718293a4b5c6d7"
STD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-32byt").decode()
STRIPE_BODY = (Path(__file__).resolve().parents[1] / "dunning" / "data" / "stripe"
               / "invoice.payment_failed.json").read_bytes()
STD_BODY = json.dumps({"type": "invoice.payment_failed", "timestamp": "2026-01-15T11:58:03Z",
                       "data": {"invoice_id": "INV-42", "customer_id": "C-1001", "amount_due": 4900,
                                "currency": "EUR", "decline_code": "insufficient_funds"}}).encode()


def _settings(workspace, **dunning):
    return workspace.model_copy(update={"dunning": workspace.dunning.model_copy(update=dunning)})


@pytest.fixture
def billing(workspace):
    """(client, engine, clock) with both kinds of secret configured; the clock can be moved."""
    clock = FixedClock(NOW)
    app = create_app(_settings(workspace, stripe_webhook_secrets=[SECRET, ROLLED],
                               standard_webhook_secrets=[STD_SECRET]), clock=clock)
    with TestClient(app) as client:
        yield client, app.state.engine, clock
    app.state.engine.dispose()


def stripe_post(client, body: bytes = STRIPE_BODY, secret: str = SECRET, timestamp: int = T, header=None):
    header = header or stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=timestamp)
    return client.post("/webhooks/billing/stripe", content=body,
                       headers={"Stripe-Signature": header, "Content-Type": "application/json"})


def std_headers(body: bytes = STD_BODY, msg_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", at: dt.datetime = NOW,
                secret: str = STD_SECRET) -> dict:
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, at, body), "content-type": "application/json"}


def rows(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(WebhookEvent.__table__).order_by(WebhookEvent.id)))


def test_stripe_event_is_stored_raw_once_and_replays_answer_duplicate(billing):
    client, engine, _ = billing
    r = stripe_post(client)
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True, "duplicate": False, "event_id": "evt_1QdZrKLkdIwHu7ixqDn4Hv2a"}
    [row] = rows(engine)
    assert (row.provider, row.event_id, row.type, row.status) == ("stripe", "evt_1QdZrKLkdIwHu7ixqDn4Hv2a",
                                                                  "invoice.payment_failed", "received")
    assert row.payload == STRIPE_BODY.decode()  # byte for byte what Stripe signed
    assert row.received_at.replace(tzinfo=UTC) == NOW and row.processed_at is None and row.error is None
    headers = json.loads(row.headers)
    assert headers["stripe-signature"].startswith(f"t={T},v1=") and headers["content-type"] == "application/json"
    # not processed in the request: the worker parses what was stored
    assert parse_event("stripe", row.payload).invoice.ref == "in_1QdZqOLkdIwHu7ixR3mGZ2bP"
    # Stripe redelivers the same event (same id), signed again later: stored once
    again = stripe_post(client, timestamp=T + 60)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert [(r.provider, r.event_id) for r in rows(engine)] == [("stripe", "evt_1QdZrKLkdIwHu7ixqDn4Hv2a")]
    assert json.loads(rows(engine)[0].headers) == headers  # the first delivery is kept


def test_stripe_rolled_secret_and_several_v1_values(billing):
    client, engine, _ = billing
    body = STRIPE_BODY.replace(b"evt_1QdZrKLkdIwHu7ixqDn4Hv2a", b"evt_rolled")
    assert stripe_post(client, body, secret=ROLLED).json()["duplicate"] is False
    signed = stripe.WebhookSignature.generate_signature_header(body.decode().replace("rolled", "both"), SECRET,
                                                               timestamp=T)
    header = f"t={T},v1={'0' * 64},{signed.split(',')[1]}"
    assert stripe_post(client, body.replace(b"rolled", b"both"), header=header).status_code == 200
    assert {r.event_id for r in rows(engine)} == {"evt_rolled", "evt_both"}


@pytest.mark.parametrize("case, expected", [
    ("tampered", "no matching signature"), ("wrong_secret", "no matching signature"),
    ("stale", "timestamp outside tolerance"), ("future", "timestamp outside tolerance"),
    ("malformed", "malformed Stripe-Signature"), ("missing", "missing Stripe-Signature"),
])
def test_stripe_bad_signatures_are_refused_and_nothing_is_stored(billing, case, expected):
    client, engine, _ = billing
    if case == "tampered":
        header = stripe.WebhookSignature.generate_signature_header(STRIPE_BODY.decode(), SECRET, timestamp=T)
        r = stripe_post(client, STRIPE_BODY.replace(b'"amount_due": 4900', b'"amount_due": 1'), header=header)
    elif case == "wrong_secret":
        r = stripe_post(client, secret="whsec_someone_else")
    elif case == "stale":
        r = stripe_post(client, timestamp=T - 301)
    elif case == "future":
        r = stripe_post(client, timestamp=T + 301)
    elif case == "malformed":
        r = stripe_post(client, header="v1=abc")
    else:
        r = client.post("/webhooks/billing/stripe", content=STRIPE_BODY)
    assert r.status_code == 400 and expected in r.json()["detail"]
    assert rows(engine) == []


def test_stripe_tolerance_edge_follows_the_app_clock(billing):
    client, engine, clock = billing
    assert stripe_post(client, timestamp=T - 300).status_code == 200  # exactly 300 s old: accepted
    clock.advance(seconds=1)
    body = STRIPE_BODY.replace(b"evt_1QdZrKLkdIwHu7ixqDn4Hv2a", b"evt_edge")
    r = stripe_post(client, body, timestamp=T - 300)  # now 301 s old
    assert r.status_code == 400 and "outside tolerance" in r.json()["detail"]
    assert [r.event_id for r in rows(engine)] == ["evt_1QdZrKLkdIwHu7ixqDn4Hv2a"]


def test_stripe_signed_but_not_an_event(billing):
    client, engine, _ = billing
    for body, expected in ((b"not json", "not JSON"), (b"[1]", "not a JSON object"),
                           (b'{"type": "invoice.paid"}', "event id is missing"),
                           (json.dumps({"id": "evt_" + "x" * 300, "type": "a"}).encode(), "longer than 255"),
                           (b'{"id": "evt_1"}', "has no type")):
        r = stripe_post(client, body)
        assert r.status_code == 400 and expected in r.json()["detail"], (body, r.text)
    assert rows(engine) == []


def test_oversized_bodies_get_413(billing):
    client, engine, _ = billing
    big = b'{"id": "evt_big", "type": "x", "pad": "' + b"x" * (1024 * 1024) + b'"}'
    assert stripe_post(client, big).status_code == 413
    assert client.post("/webhooks/billing/standard", content=big, headers=std_headers(big)).status_code == 413

    def chunks():  # streamed without a Content-Length: still cut off at 1 MiB
        for _ in range(5):
            yield b"x" * (300 * 1024)

    header = stripe.WebhookSignature.generate_signature_header("x", SECRET, timestamp=T)
    r = client.post("/webhooks/billing/stripe", content=chunks(), headers={"Stripe-Signature": header})
    assert r.status_code == 413
    assert rows(engine) == []


def test_no_secret_configured_is_a_503_with_the_setting_to_set(workspace):
    app = create_app(workspace, clock=FixedClock(NOW))
    with TestClient(app) as client:
        r = stripe_post(client)
        assert r.status_code == 503 and "stripe_webhook_secrets" in r.json()["detail"]
        r = client.post("/webhooks/billing/standard", content=STD_BODY, headers=std_headers())
        assert r.status_code == 503 and "standard_webhook_secrets" in r.json()["detail"]
        # an unsigned request is refused whatever is configured
        assert client.post("/webhooks/billing/stripe", content=STRIPE_BODY).status_code == 400
        assert rows(app.state.engine) == []
    app.state.engine.dispose()


def test_standard_webhook_is_stored_under_its_webhook_id(billing):
    client, engine, _ = billing
    r = client.post("/webhooks/billing/standard", content=STD_BODY, headers=std_headers())
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True, "duplicate": False, "event_id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"}
    [row] = rows(engine)
    assert (row.provider, row.event_id, row.type, row.status) == ("standard", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
                                                                  "invoice.payment_failed", "received")
    assert row.payload == STD_BODY.decode()
    assert set(json.loads(row.headers)) == {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type",
                                            "user-agent"}
    event = parse_event("standard", row.payload, event_id=row.event_id)
    assert (event.event_id, event.invoice.decline_code) == ("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "insufficient_funds")
    # a retry of the same message (same webhook-id, new timestamp and signature): duplicate
    later = std_headers(at=NOW + dt.timedelta(seconds=30))
    assert client.post("/webhooks/billing/standard", content=STD_BODY, headers=later).json()["duplicate"] is True
    assert len(rows(engine)) == 1


def test_standard_bad_requests(billing):
    client, engine, _ = billing
    cases = [
        (STD_BODY + b" ", std_headers(), 400, "no matching signature"),
        (STD_BODY, std_headers(secret="whsec_" + base64.b64encode(b"x" * 24).decode()), 400, "no matching signature"),
        (STD_BODY, std_headers(at=NOW - dt.timedelta(seconds=301)), 400, "outside tolerance"),
        (STD_BODY, std_headers(at=NOW + dt.timedelta(seconds=301)), 400, "outside tolerance"),
        (STD_BODY, {k: v for k, v in std_headers().items() if k != "webhook-id"}, 400, "missing webhook-id"),
        (STD_BODY, {"content-type": "application/json"}, 400, "missing webhook-signature"),
        (STD_BODY, {**std_headers(), "webhook-timestamp": "noon"}, 400, "malformed webhook-timestamp"),
        (b"[]", std_headers(b"[]"), 400, "not a JSON object"),
        (b'{"data": {}}', std_headers(b'{"data": {}}'), 400, "has no type"),
        (STD_BODY, std_headers(msg_id="m" * 256), 400, "longer than 255"),
    ]
    for body, headers, status, expected in cases:
        r = client.post("/webhooks/billing/standard", content=body, headers=headers)
        assert r.status_code == status and expected in r.json()["detail"], (headers, r.text)
    assert rows(engine) == []


def test_the_same_id_from_two_providers_is_two_events(billing):
    client, engine, _ = billing
    body = json.dumps({"type": "invoice.paid", "timestamp": "2026-01-15T11:00:00Z",
                       "data": {"invoice_id": "in_1"}}).encode()
    assert client.post("/webhooks/billing/standard", content=body,
                       headers=std_headers(body, msg_id="evt_1QdZrKLkdIwHu7ixqDn4Hv2a")).status_code == 200
    assert stripe_post(client).json()["duplicate"] is False
    assert sorted(r.provider for r in rows(engine)) == ["standard", "stripe"]


def test_endpoints_are_in_the_openapi_schema(billing):
    client, _, _ = billing
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/webhooks/billing/stripe", "/webhooks/billing/standard"} <= set(paths)
    assert set(paths["/webhooks/billing/stripe"]["post"]["responses"]) >= {"200", "400", "413", "503"}
