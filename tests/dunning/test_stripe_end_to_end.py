"""The whole Stripe path: signed webhooks (built with the stripe SDK's own helper) reach
``/webhooks/billing/stripe``, the worker applies them, and retries go through the official SDK to
a fake of Stripe's API. Replays, out-of-order delivery and a worker crash never charge twice."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.dunning.fake_stripe import DEFAULT_API_KEY, FakeStripe
from winback.dunning.gateways.stripe_gateway import StripeGateway
from winback.dunning.retries import Retrier
from winback.dunning.service import process_webhooks, run_due
from winback.models.dunning import DunningAttempt, DunningCase
from winback.models.tracking import WebhookEvent
from winback.web.app import create_app

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SECRET = "whsec_e2e_0123456789abcdef"
CASES = DunningCase.__table__
ATTEMPTS = DunningAttempt.__table__


class Clock:
    def __init__(self):
        self.t = NOW

    def now(self):
        return self.t


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def stack(workspace):
    with FakeStripe() as fake:
        settings = workspace.model_copy(update={"dunning": workspace.dunning.model_copy(update=dict(
            gateway="stripe", stripe_api_key=DEFAULT_API_KEY, stripe_api_base=fake.url, timeout_seconds=5,
            stripe_webhook_secrets=[SECRET], notices=False))})
        clock = Clock()
        app = create_app(settings, clock=clock)
        with TestClient(app) as client:
            gateway = StripeGateway.from_settings(settings)
            yield dict(fake=fake, settings=settings, client=client, engine=app.state.engine, clock=clock,
                       gateway=gateway)
        app.state.engine.dispose()


def event(event_id: str, type_: str, created: dt.datetime, obj: dict) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "api_version": "2024-06-20", "type": type_,
                       "created": int(created.timestamp()), "livemode": False, "data": {"object": obj}}).encode()


def invoice_obj(inv: dict, status: str, *, decline: str | None = None) -> dict:
    obj = {"id": inv["id"], "object": "invoice", "customer": inv["customer"], "subscription": inv.get("subscription"),
           "amount_due": inv["amount_due"], "currency": inv["currency"], "status": status, "attempt_count": 1,
           "billing_reason": "subscription_cycle", "status_transitions": {"paid_at": None}}
    if decline:
        obj["last_finalization_error"] = {"type": "card_error", "code": "card_declined", "decline_code": decline}
    return obj


def post(s, body: bytes, *, at: dt.datetime | None = None):
    ts = int((at or s["clock"].now()).timestamp())
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, timestamp=ts)
    return s["client"].post("/webhooks/billing/stripe", content=body,
                            headers={"Stripe-Signature": header, "Content-Type": "application/json"})


def work(s, at: dt.datetime, worker: str = "w"):
    s["clock"].t = at
    process_webhooks(s["settings"], engine=s["engine"], now=at)
    return run_due(s["settings"], engine=s["engine"], gateway=s["gateway"], clock=s["clock"], worker=worker)


def case(s, ref: str) -> dict:
    with s["engine"].connect() as conn:
        return dict(conn.execute(select(CASES).where(CASES.c.invoice_ref == ref)).mappings().one())


def setup_invoice(fake: FakeStripe) -> dict:
    customer = fake.add_customer(default_payment_method="pm_card_on_file")
    sub = fake.add_subscription(customer=customer["id"])
    return fake.add_invoice(customer=customer["id"], subscription=sub["id"], amount_due=4900, currency="eur")


def test_failed_invoice_is_retried_through_the_sdk_and_recovered_once_despite_replays(stack):
    s, fake = stack, stack["fake"]
    inv = setup_invoice(fake)
    body = event("evt_fail_1", "invoice.payment_failed", NOW, invoice_obj(inv, "open", decline="insufficient_funds"))
    for _ in range(3):  # Stripe redelivers
        assert post(s, body).status_code == 200
    with s["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(WebhookEvent.__table__)).scalar_one() == 1
    fake.script(inv["id"], "insufficient_funds", "paid")
    work(s, NOW + dt.timedelta(hours=1))
    assert case(s, inv["id"])["first_category"] == "soft"
    work(s, NOW + dt.timedelta(days=1))
    assert fake.charges[inv["id"]] == 0 and case(s, inv["id"])["status"] == "open"
    # Stripe echoes our failed retry; the replay of the original event arrives again as well
    post(s, event("evt_fail_2", "invoice.payment_failed", NOW + dt.timedelta(days=1, seconds=3),
                  invoice_obj(inv, "open", decline="insufficient_funds")), at=NOW + dt.timedelta(days=1))
    post(s, body, at=NOW + dt.timedelta(days=1))
    work(s, NOW + dt.timedelta(days=3))
    c = case(s, inv["id"])
    assert c["status"] == "recovered" and c["recovered_by"] == "retry"
    assert fake.charges[inv["id"]] == 1
    # every request carried a distinct, persisted idempotency key
    keys = [r.idempotency_key for r in fake.requests_to("POST", f"/v1/invoices/{inv['id']}/pay")]
    with s["engine"].connect() as conn:
        stored = conn.execute(select(ATTEMPTS.c.idempotency_key).where(ATTEMPTS.c.trigger == "schedule")
                              .order_by(ATTEMPTS.c.number)).scalars().all()
    assert keys == stored and len(set(keys)) == 2
    # the paid webhook arriving afterwards changes nothing
    paid = invoice_obj(inv, "paid")
    post(s, event("evt_paid", "invoice.paid", NOW + dt.timedelta(days=3, seconds=5), paid),
         at=NOW + dt.timedelta(days=3))
    work(s, NOW + dt.timedelta(days=3, minutes=1))
    assert case(s, inv["id"])["recovered_by"] == "retry" and fake.charges[inv["id"]] == 1


def test_crash_between_charge_and_record_is_replayed_with_the_same_key(stack, monkeypatch):
    s, fake = stack, stack["fake"]
    inv = setup_invoice(fake)
    post(s, event("evt_f", "invoice.payment_failed", NOW, invoice_obj(inv, "open", decline="try_again_later")))
    process_webhooks(s["settings"], engine=s["engine"], now=NOW)
    monkeypatch.setattr(Retrier, "_record", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        work(s, NOW + dt.timedelta(days=1), worker="dies")
    monkeypatch.undo()
    assert fake.charges[inv["id"]] == 1  # Stripe took the money; we never heard
    work(s, NOW + dt.timedelta(days=1, minutes=5), worker="w2")
    c = case(s, inv["id"])
    assert c["status"] == "recovered" and fake.charges[inv["id"]] == 1
    pays = fake.requests_to("POST", f"/v1/invoices/{inv['id']}/pay")
    assert len(pays) == 2 and pays[0].idempotency_key == pays[1].idempotency_key


def test_out_of_order_and_tampered_webhooks(stack):
    s, fake = stack, stack["fake"]
    inv = setup_invoice(fake)
    paid = event("evt_paid", "invoice.paid", NOW + dt.timedelta(minutes=10), invoice_obj(inv, "paid"))
    failed = event("evt_fail", "invoice.payment_failed", NOW, invoice_obj(inv, "open", decline="expired_card"))
    assert post(s, paid).status_code == 200
    assert post(s, failed).status_code == 200
    tampered = failed.replace(b"expired_card", b"insufficient_funds")
    header = stripe.WebhookSignature.generate_signature_header(failed.decode(), SECRET, timestamp=int(NOW.timestamp()))
    r = s["client"].post("/webhooks/billing/stripe", content=tampered, headers={"Stripe-Signature": header})
    assert r.status_code == 400
    stale = post(s, event("evt_old", "invoice.payment_failed", NOW, invoice_obj(inv, "open")),
                 at=NOW - dt.timedelta(seconds=301))
    assert stale.status_code == 400
    work(s, NOW + dt.timedelta(days=10))
    c = case(s, inv["id"])
    assert c["status"] == "recovered" and c["first_decline_code"] == "expired_card"
    assert fake.requests_to("POST", f"/v1/invoices/{inv['id']}/pay") == []
