"""Provider bounce/complaint webhooks (``/webhooks/email/{provider}``) over HTTP, on both backends."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.tracking.conftest import T0, add_customers, sent_message
from winback.models.delivery import Suppression
from winback.models.tracking import WebhookEvent
from winback.web.app import create_app
from winback.web.auth import create_api_key

SENDGRID = (Path(__file__).resolve().parents[1] / "tracking" / "fixtures" / "sendgrid_events.json").read_bytes()


@pytest.fixture
def setup(workspace):
    app = create_app(workspace)
    engine = app.state.engine
    addresses = ["gone@example.net", "slow@example.org", "former.customer@example.com", "annoyed@yahoo.com"]
    with engine.begin() as conn:
        ids = add_customers(conn, addresses)
        for i, (cid, addr) in enumerate(zip(ids, addresses), start=1):
            sent_message(conn, f"enr:{i}:step:{1 if i == 3 else 0}", cid, addr, None, None, sent_at=T0)
    now = workspace.clock().now()
    keys = {role: create_api_key(engine, role, role, now=now)["key"] for role in ("viewer", "marketer")}
    with TestClient(app) as client:
        yield client, engine, keys
    engine.dispose()


def _state(engine):
    with engine.connect() as conn:
        return (sorted((r.address, r.reason) for r in conn.execute(select(Suppression.__table__))),
                [(r.provider, r.status) for r in conn.execute(select(WebhookEvent.__table__))])


def test_sendgrid_webhook_with_basic_auth_suppresses_once(setup):
    client, engine, keys = setup
    basic = "Basic " + base64.b64encode(f"winback:{keys['marketer']}".encode()).decode()
    r = client.post("/webhooks/email/sendgrid", content=SENDGRID, headers={"Authorization": basic,
                                                                           "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["duplicate"] is False and body["hard_bounces"] == 1 and body["complaints"] == 1
    suppressions, events = _state(engine)
    assert ("gone@example.net", "hard_bounce") in suppressions and ("annoyed@yahoo.com", "complaint") in suppressions
    assert ("slow@example.org", "hard_bounce") not in suppressions  # 4.7.0 is a soft bounce
    assert events == [("sendgrid", "processed")]
    again = client.post("/webhooks/email/sendgrid", content=SENDGRID, headers={"Authorization": basic})
    assert again.json()["duplicate"] is True and _state(engine) == (suppressions, events)


def test_webhook_auth_roles_and_bad_bodies(setup):
    client, engine, keys = setup
    assert client.post("/webhooks/email/sendgrid", content=SENDGRID).status_code == 401
    assert client.post("/webhooks/email/sendgrid", content=SENDGRID,
                       headers={"Authorization": "Basic !!notbase64"}).status_code == 401
    assert client.post("/webhooks/email/sendgrid", content=SENDGRID,
                       headers={"X-API-Key": keys["viewer"]}).status_code == 403
    auth = {"Authorization": f"Bearer {keys['marketer']}"}
    assert client.post("/webhooks/email/nosuch", content=SENDGRID, headers=auth).status_code == 404
    r = client.post("/webhooks/email/postmark", content=b"\xff\xfe not json", headers=auth)
    assert r.status_code == 422 and "not JSON" in r.json()["detail"]
    r = client.post("/webhooks/email/ses", content=json.dumps({"Type": "Notification", "Message": "[]"}),
                    headers=auth)
    assert r.status_code == 422
    assert client.post("/webhooks/email/mailgun", content=b"x" * (1024 * 1024 + 1), headers=auth).status_code == 413
    suppressions, events = _state(engine)
    assert suppressions == [] and ("ses", "failed") in events


def test_sns_subscription_confirmation_is_stored_not_fetched(setup):
    client, engine, keys = setup
    body = {"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"}
    r = client.post("/webhooks/email/ses", json=body, headers={"X-API-Key": keys["marketer"]})
    assert r.status_code == 200 and r.json()["subscribe_url"].endswith("Token=abc")
    assert _state(engine)[1] == [("ses", "ignored")]
