"""The retry policy end to end on the state store (SQLite and PostgreSQL) with an injected clock and
the sandbox gateway: hard declines are never retried, soft ones follow the schedule, gateway
errors back off quickly, crashes and lost answers never charge twice, and exhausted cases end the
subscription and enter win-back."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from tests.dunning.flow_helpers import ATTEMPTS, T0, World, with_dunning
from winback.dunning.events import CardEvent
from winback.dunning.retries import Retrier, claim_due
from winback.models.campaigns import CustomerEvent
from winback.models.dunning import BillingSubscription

DAY = dt.timedelta(days=1)
EVENTS = CustomerEvent.__table__
SUBS = BillingSubscription.__table__


@pytest.fixture
def world(workspace):
    w = World(with_dunning(workspace, notices=False))
    yield w
    w.dispose()


def our_attempts(world, invoice):
    return [a for a in world.attempts(invoice) if a["trigger"] not in ("initial", "external")]


def test_hard_decline_is_never_retried_and_ends_in_winback(world):
    who = world.customer(card_behaviour="expired_card")
    assert world.fail(who, "in_1", "expired_card") == "applied"
    case = world.case("in_1")
    assert case["first_category"] == "hard" and case["needs_update"] is True
    for days in (1, 2, 3, 5, 7, 10, 13):
        world.run(T0 + days * DAY)
    assert our_attempts(world, "in_1") == []
    assert [c for c in world.gateway.calls if c[0] == "charge"] == []
    assert world.case("in_1")["status"] == "open"
    world.run(T0 + 14 * DAY + dt.timedelta(minutes=1))  # grace over
    case = world.case("in_1")
    assert case["status"] == "exhausted" and case["close_reason"] == "canceled"
    assert ("cancel", who["subscription"]) in world.gateway.calls
    assert world.one(select(SUBS).where(SUBS.c.external_id == who["subscription"]))["status"] == "canceled"
    ended = world.one(select(EVENTS).where(EVENTS.c.type == "dunning_exhausted"))
    assert ended["customer_id"] == who["customer_id"]
    assert json.loads(ended["properties"])["reason"] == "involuntary"
    assert world.charges("in_1") == 0


def test_soft_decline_follows_the_schedule_and_recovers_by_retry(world):
    who = world.customer(card_behaviour="insufficient_funds", recovers_at=T0 + 5 * DAY)
    world.fail(who, "in_1", "insufficient_funds")
    case = world.case("in_1")
    assert case["first_category"] == "soft" and case["next_attempt_at"] == T0 + DAY
    world.run(T0 + 12 * dt.timedelta(hours=1))
    assert our_attempts(world, "in_1") == []  # not due yet
    world.run(T0 + DAY)
    world.run(T0 + 3 * DAY)
    assert [a["status"] for a in our_attempts(world, "in_1")] == ["failed", "failed"]
    assert world.case("in_1")["next_attempt_at"] == T0 + 7 * DAY
    world.run(T0 + 7 * DAY)
    attempts = our_attempts(world, "in_1")
    assert [a["started_at"] for a in attempts] == [T0 + DAY, T0 + 3 * DAY, T0 + 7 * DAY]
    assert attempts[-1]["status"] == "succeeded"
    case = world.case("in_1")
    assert case["status"] == "recovered" and case["recovered_by"] == "retry"
    assert world.charges("in_1", "succeeded") == 1
    recovered = world.one(select(EVENTS).where(EVENTS.c.type == "payment_recovered"))
    assert json.loads(recovered["properties"])["revenue_minor"] == 4900


def test_eight_tries_in_two_weeks_preset(workspace):
    w = World(with_dunning(workspace, notices=False, retry_schedule="eight_in_two_weeks"))
    try:
        who = w.customer(card_behaviour="insufficient_funds")
        w.fail(who, "in_1", "insufficient_funds")
        for hours in range(0, 16 * 24, 6):
            w.run(T0 + dt.timedelta(hours=hours))
        attempts = our_attempts(w, "in_1")
        assert len(attempts) == 8
        assert attempts[-1]["started_at"] - T0 <= 14 * DAY
        assert w.case("in_1")["status"] == "exhausted"
    finally:
        w.dispose()


def test_gateway_errors_back_off_quickly_then_rejoin_the_schedule(world):
    who = world.customer(card_behaviour="insufficient_funds")
    world.fail(who, "in_1", "insufficient_funds")
    world.gateway.inject("in_1", "timeout", "api_error", "rate_limit")
    world.run(T0 + DAY)
    case = world.case("in_1")
    assert case["next_trigger"] == "quick" and case["next_attempt_at"] == T0 + DAY + dt.timedelta(seconds=60)
    world.run(T0 + DAY + dt.timedelta(seconds=60))
    assert world.case("in_1")["next_attempt_at"] == T0 + DAY + dt.timedelta(seconds=60 + 120)
    world.run(T0 + DAY + dt.timedelta(seconds=180))
    world.run(T0 + DAY + dt.timedelta(seconds=180 + 240))  # reaches the issuer: declined, soft
    attempts = our_attempts(world, "in_1")
    # a timeout and a 429 leave the attempt in flight: asked again with the same key; a 500 is answered
    assert [(a["category"], a["status"]) for a in attempts] == [("gateway", "error"), ("soft", "failed")]
    assert attempts[0]["idempotency_key"] != attempts[1]["idempotency_key"]
    assert len([c for c in world.gateway.calls if c[0] == "charge"]) == 4
    case = world.case("in_1")
    assert case["next_trigger"] == "schedule" and case["next_attempt_at"] == T0 + 3 * DAY


def test_a_new_card_is_charged_at_once_and_counts_as_customer_update(world):
    from winback.dunning.service import update_card

    who = world.customer(card_behaviour="stolen_card")
    world.fail(who, "in_1", "stolen_card")
    world.clock.at(T0 + 2 * DAY)
    card = world.gateway.add_card(who["ref"], number="4242 4242 4242 4242", exp_month=4, exp_year=2031, cvc="123")
    result = update_card(world.settings, engine=world.engine, provider="sandbox", customer_ref=who["ref"], card=card,
                         gateway=world.gateway, clock=world.clock)
    assert [c["status"] for c in result["charges"]] == ["succeeded"]
    case = world.case("in_1")
    assert case["status"] == "recovered" and case["recovered_by"] == "customer_update"
    assert world.one(select(SUBS).where(SUBS.c.external_id == who["subscription"]))["payment_method_ref"] == card.ref
    assert world.charges("in_1", "succeeded") == 1
    updated = world.one(select(EVENTS).where(EVENTS.c.type == "card_updated"))
    assert updated["customer_id"] == who["customer_id"] and json.loads(updated["properties"])["via"] == "customer"


def test_card_updater_renewal_retries_and_is_credited(world):
    who = world.customer(card_behaviour="expired_card", exp=(12, 2025))
    world.fail(who, "in_1", "expired_card")
    world.clock.at(T0 + 3 * DAY)
    # the network's updater: same payment method, new expiry (the issuer now approves it)
    world.gateway.register_card(who["card"], customer_ref=who["ref"], brand="visa", last4="4242", exp_month=12,
                                exp_year=2029, behaviour="ok")
    assert world.event("payment_method_updated", card=CardEvent(ref=who["card"], customer_ref=who["ref"], brand="visa",
                                                                last4="4242", exp_month=12, exp_year=2029),
                       card_via="card_updater") == "applied"
    assert world.case("in_1")["next_attempt_at"] == T0 + 3 * DAY
    world.run(T0 + 3 * DAY)
    case = world.case("in_1")
    assert case["status"] == "recovered" and case["recovered_by"] == "card_updater"


def test_worker_crash_after_the_charge_never_charges_twice(world, monkeypatch):
    who = world.customer(card_behaviour="insufficient_funds", recovers_at=T0 + 12 * dt.timedelta(hours=1))
    world.fail(who, "in_1", "insufficient_funds")
    world.clock.at(T0 + DAY)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("the worker died after the gateway call")

    monkeypatch.setattr(Retrier, "_record", crash)
    with pytest.raises(KeyboardInterrupt):
        world.run(T0 + DAY, worker="dead")
    monkeypatch.undo()
    assert world.charges("in_1", "succeeded") == 1  # the money moved; the answer was lost
    assert [a["status"] for a in our_attempts(world, "in_1")] == ["started"]
    assert world.run(T0 + DAY + dt.timedelta(seconds=30), worker="w2") == {}  # the dead worker's lease holds
    world.run(T0 + DAY + dt.timedelta(minutes=5), worker="w2")
    case = world.case("in_1")
    assert case["status"] == "recovered" and case["recovered_by"] == "retry"
    assert world.charges("in_1", "succeeded") == 1
    assert [a["status"] for a in our_attempts(world, "in_1")] == ["succeeded"]


def test_stale_in_flight_attempt_is_looked_up_not_replayed(world, monkeypatch):
    who = world.customer(card_behaviour="insufficient_funds")
    world.fail(who, "in_1", "insufficient_funds")
    monkeypatch.setattr(Retrier, "_record", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        world.run(T0 + DAY, worker="dead")
    monkeypatch.undo()
    calls = len(world.gateway.calls)
    world.run(T0 + 3 * DAY, worker="w2")  # 48 h later: the key may be forgotten -> look up first
    assert world.gateway.calls[calls][0] == "lookup"
    statuses = [a["status"] for a in our_attempts(world, "in_1")]
    assert statuses[0] == "error" and statuses[1] == "failed"


def test_lost_answer_after_charge_is_caught_by_the_provider_not_charged_again(world):
    who = world.customer(card_behaviour="ok")
    world.fail(who, "in_1", "processing_error")
    world.gateway.inject("in_1", "timeout_after_charge")
    world.run(T0 + DAY)
    assert world.case("in_1")["status"] == "open"
    world.run(T0 + DAY + dt.timedelta(seconds=60))
    case = world.case("in_1")
    assert case["status"] == "recovered"
    assert world.charges("in_1", "succeeded") == 1


def test_paid_elsewhere_is_found_by_the_late_lookup(world):
    from winback.dunning.gateways.sandbox import CHARGES

    who = world.customer(card_behaviour="insufficient_funds")
    world.fail(who, "in_1", "insufficient_funds")
    world.run(T0 + DAY)
    with world.engine.begin() as conn:  # the customer paid in the provider's portal; its webhook is lost
        conn.execute(CHARGES.insert().values(idempotency_key="portal-1", invoice_ref="in_1", amount_minor=4900,
                                             currency="USD", status="succeeded", created_at=T0 + 2 * DAY))
    charges_before = [c for c in world.gateway.calls if c[0] == "charge"]
    world.run(T0 + 3 * DAY)
    assert [c for c in world.gateway.calls if c[0] == "charge"] == charges_before
    case = world.case("in_1")
    assert case["status"] == "recovered" and case["recovered_by"] == "external"
    assert world.charges("in_1", "succeeded") == 1


def test_duplicate_and_out_of_order_events_reach_the_right_state(world):
    who = world.customer()
    assert world.fail(who, "in_1", "insufficient_funds", event_id="evt_a") == "applied"
    world.fail(who, "in_1", "insufficient_funds", event_id="evt_a")  # replayed delivery
    assert len(world.attempts("in_1")) == 1
    # paid before the failure it follows (out of order)
    assert world.paid(who, "in_2", at=T0 + dt.timedelta(hours=2)) == "applied"
    assert world.fail(who, "in_2", "insufficient_funds", at=T0 + dt.timedelta(hours=1)) == "applied"
    case = world.case("in_2")
    assert case["status"] == "recovered" and case["first_failed_at"] == T0 + dt.timedelta(hours=1)
    assert case["first_decline_code"] == "insufficient_funds"
    # a failure after payment never reopens
    world.paid(who, "in_1", at=T0 + DAY)
    assert world.fail(who, "in_1", "generic_decline", at=T0 + dt.timedelta(hours=3)) == "stale"
    assert world.case("in_1")["status"] == "recovered"
    # an older subscription state arriving late changes nothing
    from winback.dunning.events import SubscriptionInfo

    sub = SubscriptionInfo(ref=who["subscription"], customer_ref=who["ref"], status="active", mrr_minor=9900)
    assert world.event("subscription_updated", at=T0 + 5 * DAY, subscription=sub) == "applied"
    old = SubscriptionInfo(ref=who["subscription"], customer_ref=who["ref"], status="past_due", mrr_minor=4900)
    assert world.event("subscription_updated", at=T0 + 4 * DAY, subscription=old) == "stale"
    row = world.one(select(SUBS).where(SUBS.c.external_id == who["subscription"]))
    assert (row["status"], row["mrr_minor"]) == ("active", 9900)


def test_our_own_retry_echoed_by_webhook_is_not_counted_twice(world):
    who = world.customer(card_behaviour="insufficient_funds")
    world.fail(who, "in_1", "insufficient_funds")
    world.run(T0 + DAY)
    ours = our_attempts(world, "in_1")[0]
    world.fail(who, "in_1", "insufficient_funds", at=T0 + DAY + dt.timedelta(seconds=2), charge=ours["gateway_ref"])
    assert len(world.attempts("in_1")) == 2  # the initial one and ours


def test_the_per_card_cap_defers_charges(world):
    world = World(with_dunning(world.settings, max_attempts_per_card=3, notices=False), clock=world.clock)
    people = [world.customer(f"cus_{i}", f"p{i}@example.com", card=f"pm_{i}", fingerprint="same-card",
                             card_behaviour="insufficient_funds") for i in range(3)]
    for i, who in enumerate(people):
        world.fail(who, f"in_{i}", "insufficient_funds")
    world.run(T0 + DAY)  # 3 initial attempts on the same card already: everything waits
    assert all(our_attempts(world, f"in_{i}") == [] for i in range(3))
    case = world.case("in_0")
    assert case["next_attempt_at"] > T0 + 30 * DAY - dt.timedelta(minutes=1)
    world.dispose()


def test_two_workers_never_work_the_same_case(world):
    who = world.customer(card_behaviour="insufficient_funds")
    world.fail(who, "in_1", "insufficient_funds")
    now = T0 + DAY
    a = claim_due(world.engine, "a", now, 60, 10)
    b = claim_due(world.engine, "b", now, 60, 10)
    assert [c["invoice_ref"] for c in a] == ["in_1"] and b == []
    assert claim_due(world.engine, "b", now + dt.timedelta(seconds=61), 60, 10)[0]["claimed_by"] == "b"


def test_a_failure_without_decline_code_is_looked_up_before_any_charge(world):
    """Stripe's newer invoice events carry no decline code: the provider is asked before charging, and
    a hard decline found there is never retried."""
    from winback.dunning.gateways.sandbox import CHARGES

    who = world.customer(card_behaviour="lost_card")
    with world.engine.begin() as conn:  # the provider's own first charge, declined lost_card
        conn.execute(CHARGES.insert().values(idempotency_key="provider-1", invoice_ref="in_1", amount_minor=4900,
                                             currency="USD", status="failed", decline_code="lost_card",
                                             payment_method_ref=who["card"], created_at=T0))
    world.fail(who, "in_1", None)
    assert world.case("in_1")["first_category"] == "soft"  # unknown until asked
    world.run(T0 + DAY)
    case = world.case("in_1")
    assert (case["first_decline_code"], case["first_category"], case["needs_update"]) == ("lost_card", "hard", True)
    assert [c for c in world.gateway.calls if c[0] == "charge"] == []
    world.run(T0 + 3 * DAY)
    world.run(T0 + 7 * DAY)
    assert our_attempts(world, "in_1") == []


def test_exhaustion_looks_the_invoice_up_first(world):
    """Paid on the provider's hosted page with the webhook lost: at the end of grace the look-up finds it
    paid, and the subscription is not canceled."""
    from winback.dunning.gateways.sandbox import CHARGES

    who = world.customer(card_behaviour="stolen_card")
    world.fail(who, "in_1", "stolen_card")
    with world.engine.begin() as conn:
        conn.execute(CHARGES.insert().values(idempotency_key="hosted-page", invoice_ref="in_1", amount_minor=4900,
                                             currency="USD", status="succeeded", created_at=T0 + 5 * DAY))
    world.run(T0 + 15 * DAY)
    case = world.case("in_1")
    assert (case["status"], case["recovered_by"]) == ("recovered", "external")
    assert not [c for c in world.gateway.calls if c[0] == "cancel"]
    assert world.one(select(SUBS).where(SUBS.c.external_id == who["subscription"]))["status"] == "active"


def test_cases_of_another_billing_system_are_tracked_not_charged(world):
    """A Standard Webhooks sender charges its own invoices: the sandbox (or Stripe) gateway never does."""
    from winback.dunning.events import InvoiceInfo

    world.customer()
    world.event("invoice_payment_failed", customer_ref="cus_1", invoice=InvoiceInfo(
        ref="INV-42", customer_ref="cus_1", amount_minor=4900, currency="EUR", decline_code="insufficient_funds"))
    with world.engine.begin() as conn:  # the event came from the standard provider
        from winback.models.dunning import DunningCase

        conn.execute(DunningCase.__table__.update().values(provider="standard"))
    for days in (1, 3, 7, 15):
        world.run(T0 + days * DAY)
    assert world.gateway.calls == []
    assert world.case("INV-42")["status"] == "open"


def test_a_webhook_that_lost_a_race_is_applied_again(world, monkeypatch):
    """Two workers creating the same case at once: the loser's unique-key conflict puts the event back."""
    from sqlalchemy.exc import IntegrityError

    from winback.dunning import service
    from winback.models.tracking import WebhookEvent

    world.customer()
    service.store_sandbox_event(world.engine, {"id": "evt_race", "type": "invoice.payment_failed",
                                               "timestamp": T0.isoformat(), "data": {
                                                   "invoice_id": "in_race", "customer_id": "cus_1",
                                                   "amount_due": 900, "currency": "USD",
                                                   "decline_code": "insufficient_funds"}}, now=T0)
    real, calls = service.apply_event, []

    def racing(conn, settings, ev, now):
        calls.append(ev.event_id)
        if len(calls) == 1:
            raise IntegrityError("INSERT INTO dunning_cases", {}, Exception("duplicate key"))
        return real(conn, settings, ev, now)

    monkeypatch.setattr(service, "apply_event", racing)
    assert service.process_webhooks(world.settings, engine=world.engine, now=T0)["retried"] == 1
    assert service.process_webhooks(world.settings, engine=world.engine, now=T0)["applied"] == 1
    row = world.one(select(WebhookEvent.__table__).where(WebhookEvent.__table__.c.event_id == "evt_race"))
    assert row["status"] == "processed" and world.case("in_race")["status"] == "open"
