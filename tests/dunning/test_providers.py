"""Billing webhook bodies -> BillingEvent: realistic Stripe events (tests/dunning/data/stripe, shaped
like Stripe's documented event objects, pre-basil and basil) and winback's standard format."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from pathlib import Path

import pytest

from winback.dunning.events import KINDS, BillingEvent, CardEvent, InvoiceInfo, SubscriptionInfo
from winback.dunning.providers import BadBillingEvent, parse_event
from winback.dunning.providers.stripe_events import STRIPE_KINDS, monthly_amount
from winback.kit.errors import WinbackError

UTC = dt.timezone.utc
DATA = Path(__file__).with_name("data") / "stripe"


def at(unix: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix, UTC)


def stripe_event(name: str) -> BillingEvent:
    return parse_event("stripe", (DATA / f"{name}.json").read_bytes())


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


# --- Stripe: every fixture, every field -----------------------------------------------------------

def test_invoice_payment_failed():
    event = stripe_event("invoice.payment_failed")
    assert event == BillingEvent(
        provider="stripe", event_id="evt_1QdZrKLkdIwHu7ixqDn4Hv2a", kind="invoice_payment_failed",
        raw_type="invoice.payment_failed", occurred_at=at(1768381260), customer_ref="cus_RVx2Zq8mJ3kT1a",
        customer_email="ana.lima@example.com",
        invoice=InvoiceInfo(ref="in_1QdZqOLkdIwHu7ixR3mGZ2bP", customer_ref="cus_RVx2Zq8mJ3kT1a",
                            subscription_ref="sub_1PzL4bLkdIwHu7ixC2dVq9Wn", amount_minor=4900, currency="EUR",
                            status="open", attempt_count=1, decline_code=None, failure_message=None,
                            payment_method_ref=None, charge_ref="ch_3QdZqPLkdIwHu7ix0vN2sWq1", paid_at=None,
                            billing_reason="subscription_cycle"),
        extra={"livemode": False, "api_version": "2024-06-20", "payment_intent": "pi_3QdZqPLkdIwHu7ix0kJ5xY7n",
               "next_payment_attempt": at(1768554000)})
    assert event.occurred_at == dt.datetime(2026, 1, 14, 9, 1, tzinfo=UTC)


def test_invoice_payment_failed_basil_shape():
    """2025-03-31.basil: subscription under parent, no charge/payment_intent, expanded customer,
    payments list; the decline code comes from last_finalization_error."""
    event = stripe_event("invoice.payment_failed.basil")
    assert event.kind == "invoice_payment_failed" and event.customer_ref == "cus_SxA9bQ2wE4rT6y"
    assert event.customer_email == "ops@northwind.example"
    assert event.invoice == InvoiceInfo(
        ref="in_1RbCcYLkdIwHu7ixW7yZ0aBc", customer_ref="cus_SxA9bQ2wE4rT6y",
        subscription_ref="sub_1RbCaZLkdIwHu7ixQ1wE2rT3", amount_minor=19900, currency="USD", status="open",
        attempt_count=3, decline_code="do_not_honor", failure_message="Your card was declined.",
        payment_method_ref="pm_1RbCaaLkdIwHu7ixDefault01", charge_ref=None, paid_at=None,
        billing_reason="subscription_cycle")
    assert event.extra == {"livemode": True, "api_version": "2025-03-31.basil",
                           "payment_intent": "pi_3RbCcZLkdIwHu7ix1aB2cD3e"}


def test_invoice_payment_failed_with_expanded_charge_or_payment_intent():
    event = load("invoice.payment_failed")
    charge = load("charge.failed")["data"]["object"]
    event["data"]["object"]["charge"] = charge
    parsed = parse_event("stripe", json.dumps(event))
    assert parsed.invoice.decline_code == "insufficient_funds"
    assert parsed.invoice.failure_message == "Your card has insufficient funds."
    assert parsed.invoice.charge_ref == "ch_3QdZqPLkdIwHu7ix0vN2sWq1"
    assert parsed.invoice.payment_method_ref == "pm_1PzL3xLkdIwHu7ixVb8NcM4k"
    event = load("invoice.payment_failed")
    event["data"]["object"]["payment_intent"] = load("payment_intent.payment_failed")["data"]["object"]
    parsed = parse_event("stripe", json.dumps(event))
    assert (parsed.invoice.decline_code, parsed.invoice.failure_message) == ("expired_card", "Your card has expired.")
    assert parsed.extra["payment_intent"] == "pi_3QdZqPLkdIwHu7ix0kJ5xY7n"


def test_invoice_paid_and_payment_succeeded():
    event = stripe_event("invoice.paid")
    assert (event.kind, event.event_id, event.occurred_at) == ("invoice_paid", "evt_1QdbH2LkdIwHu7ixkPq8Lm3N",
                                                                at(1768557660))
    assert event.invoice == InvoiceInfo(
        ref="in_1QdZqOLkdIwHu7ixR3mGZ2bP", customer_ref="cus_RVx2Zq8mJ3kT1a",
        subscription_ref="sub_1PzL4bLkdIwHu7ixC2dVq9Wn", amount_minor=4900, currency="EUR", status="paid",
        attempt_count=2, charge_ref="ch_3QdbH0LkdIwHu7ix1cR5tY8u", paid_at=dt.datetime(2026, 1, 16, 10, tzinfo=UTC),
        billing_reason="subscription_cycle")
    body = load("invoice.paid")
    body["type"] = "invoice.payment_succeeded"
    assert parse_event("stripe", json.dumps(body)).kind == "invoice_paid"


@pytest.mark.parametrize("stripe_type, status", [("invoice.voided", "void"),
                                                 ("invoice.marked_uncollectible", "uncollectible")])
def test_invoice_closed(stripe_type, status):
    body = load("invoice.payment_failed")
    body["type"] = stripe_type
    body["data"]["object"]["status"] = status
    event = parse_event("stripe", json.dumps(body))
    assert (event.kind, event.raw_type, event.invoice.status) == ("invoice_closed", stripe_type, status)


def test_charge_failed_decline_from_outcome():
    event = stripe_event("charge.failed")
    card = CardEvent(ref="pm_1PzL3xLkdIwHu7ixVb8NcM4k", customer_ref="cus_RVx2Zq8mJ3kT1a", brand="visa",
                     last4="9995", exp_month=2, exp_year=2026, fingerprint="Xt5EWLLDS7FJjR1c")
    assert event == BillingEvent(
        provider="stripe", event_id="evt_3QdZqPLkdIwHu7ix0aF1bG2c", kind="payment_failed_detail",
        raw_type="charge.failed", occurred_at=at(1768381259), customer_ref="cus_RVx2Zq8mJ3kT1a",
        customer_email="ana.lima@example.com",
        invoice=InvoiceInfo(ref="in_1QdZqOLkdIwHu7ixR3mGZ2bP", customer_ref="cus_RVx2Zq8mJ3kT1a",
                            amount_minor=4900, currency="EUR", decline_code="insufficient_funds",
                            failure_message="Your card has insufficient funds.",
                            payment_method_ref="pm_1PzL3xLkdIwHu7ixVb8NcM4k",
                            charge_ref="ch_3QdZqPLkdIwHu7ix0vN2sWq1"),
        card=card,
        extra={"livemode": False, "api_version": "2024-06-20", "charge": "ch_3QdZqPLkdIwHu7ix0vN2sWq1",
               "payment_intent": "pi_3QdZqPLkdIwHu7ix0kJ5xY7n", "decline_code": "insufficient_funds",
               "failure_message": "Your card has insufficient funds."})


def test_charge_failed_falls_back_to_failure_code_and_finds_newer_invoice_links():
    body = load("charge.failed")
    charge = body["data"]["object"]
    del charge["outcome"], charge["invoice"]
    charge["failure_code"] = "expired_card"
    charge["payment_details"] = {"customer_reference": None, "order_reference": "in_1QdZqOLkdIwHu7ixR3mGZ2bP"}
    event = parse_event("stripe", json.dumps(body))
    assert event.invoice.ref == "in_1QdZqOLkdIwHu7ixR3mGZ2bP" and event.invoice.decline_code == "expired_card"
    del charge["payment_details"]  # basil: no link to the invoice at all
    event = parse_event("stripe", json.dumps(body))
    assert event.kind == "payment_failed_detail" and event.invoice is None
    assert event.extra["decline_code"] == "expired_card"
    assert event.extra["payment_intent"] == "pi_3QdZqPLkdIwHu7ix0kJ5xY7n"
    charge["parent"] = {"invoice_details": {"invoice": "in_parent"}}
    assert parse_event("stripe", json.dumps(body)).invoice.ref == "in_parent"


def test_payment_intent_payment_failed_decline_code_wins_over_code():
    event = stripe_event("payment_intent.payment_failed")
    assert (event.kind, event.customer_ref, event.customer_email) == ("payment_failed_detail", "cus_RVx2Zq8mJ3kT1a",
                                                                      "ana.lima@example.com")
    assert event.invoice == InvoiceInfo(ref="in_1QdZqOLkdIwHu7ixR3mGZ2bP", customer_ref="cus_RVx2Zq8mJ3kT1a",
                                        amount_minor=4900, currency="EUR", decline_code="expired_card",
                                        failure_message="Your card has expired.",
                                        payment_method_ref="pm_1PzL3xLkdIwHu7ixVb8NcM4k",
                                        charge_ref="ch_3QdZqPLkdIwHu7ix0vN2sWq1")
    assert event.card == CardEvent(ref="pm_1PzL3xLkdIwHu7ixVb8NcM4k", customer_ref="cus_RVx2Zq8mJ3kT1a",
                                   brand="visa", last4="9995", exp_month=12, exp_year=2025,
                                   fingerprint="Xt5EWLLDS7FJjR1c")
    body = load("payment_intent.payment_failed")
    del body["data"]["object"]["last_payment_error"]["decline_code"]
    assert parse_event("stripe", json.dumps(body)).invoice.decline_code == "card_declined"


def test_payment_method_automatically_updated_is_the_card_updater():
    event = stripe_event("payment_method.automatically_updated")
    assert event == BillingEvent(
        provider="stripe", event_id="evt_1QeA1bLkdIwHu7ixAu7Up8dT", kind="payment_method_updated",
        raw_type="payment_method.automatically_updated", occurred_at=at(1768400000),
        customer_ref="cus_RVx2Zq8mJ3kT1a", customer_email="ana.lima@example.com",
        card=CardEvent(ref="pm_1PzL3xLkdIwHu7ixVb8NcM4k", customer_ref="cus_RVx2Zq8mJ3kT1a", brand="visa",
                       last4="9995", exp_month=2, exp_year=2029, fingerprint="Xt5EWLLDS7FJjR1c", detached=False),
        card_via="card_updater", extra={"livemode": False, "api_version": "2024-06-20"})


@pytest.mark.parametrize("stripe_type", ["payment_method.attached", "payment_method.updated"])
def test_payment_method_attached_or_updated_is_the_customer(stripe_type):
    body = load("payment_method.automatically_updated")
    body["type"] = stripe_type
    event = parse_event("stripe", json.dumps(body))
    assert (event.kind, event.card_via, event.card.detached) == ("payment_method_updated", "customer", False)
    assert event.card.exp_year == 2029


def test_payment_method_detached_names_the_customer_it_left():
    event = stripe_event("payment_method.detached")
    assert (event.kind, event.card_via, event.customer_ref) == ("payment_method_updated", "customer",
                                                                "cus_RVx2Zq8mJ3kT1a")
    assert event.card == CardEvent(ref="pm_1OldCardLkdIwHu7ixOld0001", customer_ref="cus_RVx2Zq8mJ3kT1a",
                                   brand="mastercard", last4="4444", exp_month=7, exp_year=2025,
                                   fingerprint="Qm3FkP0aZ8yXwV1t", detached=True)
    assert event.customer_email is None


def test_customer_updated_default_payment_method():
    event = stripe_event("customer.updated")
    assert event == BillingEvent(
        provider="stripe", event_id="evt_1QeC3eLkdIwHu7ixCustUpd1", kind="default_payment_method",
        raw_type="customer.updated", occurred_at=at(1768470005), customer_ref="cus_RVx2Zq8mJ3kT1a",
        customer_email="ana.lima@example.com", card=None, card_via="customer",
        default_payment_method_ref="pm_1QeC3cLkdIwHu7ixNewCard1",
        extra={"livemode": False, "api_version": "2024-06-20"})
    body = load("customer.updated")
    body["data"]["object"]["invoice_settings"]["default_payment_method"] = None  # a name change, say
    ignored = parse_event("stripe", json.dumps(body))
    assert (ignored.kind, ignored.customer_ref, ignored.default_payment_method_ref) == ("ignored",
                                                                                        "cus_RVx2Zq8mJ3kT1a", None)
    # the same default card, something else changed (delinquent flag, e-mail): no card change, no charge
    body = load("customer.updated")
    body["data"]["previous_attributes"] = {"delinquent": False}
    assert parse_event("stripe", json.dumps(body)).kind == "ignored"


def test_setup_intent_succeeded_sets_the_default_card():
    event = stripe_event("setup_intent.succeeded")
    assert event == BillingEvent(
        provider="stripe", event_id="evt_1QeC3dLkdIwHu7ixSetup001", kind="default_payment_method",
        raw_type="setup_intent.succeeded", occurred_at=at(1768470000), customer_ref="cus_RVx2Zq8mJ3kT1a",
        card_via="customer", default_payment_method_ref="pm_1QeC3cLkdIwHu7ixNewCard1",
        extra={"livemode": False, "api_version": "2024-06-20", "setup_intent": "seti_1QeC3aLkdIwHu7ixNewCard1"})
    body = load("setup_intent.succeeded")
    body["data"]["object"]["payment_method"] = load("payment_method.automatically_updated")["data"]["object"]
    expanded = parse_event("stripe", json.dumps(body))
    assert expanded.card.ref == "pm_1PzL3xLkdIwHu7ixVb8NcM4k" and expanded.card.exp_year == 2029
    assert expanded.customer_email == "ana.lima@example.com"
    body["data"]["object"]["customer"] = None  # Checkout without a customer: nothing to apply
    assert parse_event("stripe", json.dumps(body)).kind == "ignored"


def test_subscription_updated_mrr_from_items():
    event = stripe_event("customer.subscription.updated")
    assert (event.kind, event.customer_ref, event.occurred_at) == ("subscription_updated", "cus_RVx2Zq8mJ3kT1a",
                                                                   at(1768381262))
    # 4900/month + 3 seats x 12000/year (= 3000/month); the metered item has no list price
    assert event.subscription == SubscriptionInfo(
        ref="sub_1PzL4bLkdIwHu7ixC2dVq9Wn", customer_ref="cus_RVx2Zq8mJ3kT1a", status="past_due",
        plan_id="price_1PzKzzLkdIwHu7ixTeamMonthly", mrr_minor=7900, currency="EUR",
        current_period_end=dt.datetime(2026, 2, 14, 9, tzinfo=UTC),
        default_payment_method_ref="pm_1PzL3xLkdIwHu7ixVb8NcM4k")
    assert event.extra == {"livemode": False, "api_version": "2024-06-20", "cancel_at_period_end": False}


def test_subscription_deleted_basil_period_on_items_and_legacy_plan():
    event = stripe_event("customer.subscription.deleted.basil")
    # 59700 per 3 months = 19900; legacy weekly plan 2 x 1000 x 52/12 = 8666.67 -> 8667
    assert event.subscription == SubscriptionInfo(
        ref="sub_1RbCaZLkdIwHu7ixQ1wE2rT3", customer_ref="cus_SxA9bQ2wE4rT6y", status="canceled",
        plan_id="price_1RbCZZLkdIwHu7ixProQuarter", mrr_minor=28567, currency="USD",
        current_period_end=at(1773561600), default_payment_method_ref=None)
    assert event.extra["cancellation_reason"] == "payment_failed"
    assert event.extra["canceled_at"] == event.extra["ended_at"] == at(1769590800)
    for stripe_type in ("customer.subscription.created", "customer.subscription.paused",
                        "customer.subscription.resumed"):
        body = load("customer.subscription.deleted.basil")
        body["type"] = stripe_type
        assert parse_event("stripe", json.dumps(body)).kind == "subscription_updated"


def test_subscription_without_usable_prices_has_no_mrr():
    body = load("customer.subscription.updated")
    body["data"]["object"]["items"]["data"] = [body["data"]["object"]["items"]["data"][2]]  # metered only
    assert parse_event("stripe", json.dumps(body)).subscription.mrr_minor is None


@pytest.mark.parametrize("amount, quantity, interval, count, expected", [
    (1000, 1, "month", 1, 1000), (12000, 1, "year", 1, 1000), (1000, 1, "week", 1, 4333),
    (100, 1, "day", 1, 3042), (59700, 1, "month", 3, 19900), (24000, 2, "year", 2, 2000),
    (1000, 1, "fortnight", 1, None), (1000, 1, "month", 0, None), (0, 5, "month", 1, 0),
])
def test_monthly_amount(amount, quantity, interval, count, expected):
    assert monthly_amount(amount, quantity, interval, count) == expected


def test_other_stripe_types_are_ignored():
    event = parse_event("stripe", json.dumps({"id": "evt_1", "object": "event", "type": "invoice.upcoming",
                                              "created": 1768381260,
                                              "data": {"object": {"id": "in_x", "customer": "cus_1"}}}))
    assert (event.kind, event.raw_type, event.customer_ref) == ("ignored", "invoice.upcoming", "cus_1")
    thin = parse_event("stripe", json.dumps({"id": "evt_2", "type": "product.created", "created": 1}))
    assert thin.kind == "ignored" and thin.occurred_at == at(1)


def test_every_mapped_stripe_type_yields_a_known_kind():
    assert set(STRIPE_KINDS.values()) <= set(KINDS)


@pytest.mark.parametrize("raw, expected", [
    (b"\xff\xfe", "not JSON"),
    ("not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"object": "event", "type": "invoice.paid", "created": 1}), "has no id"),
    (json.dumps({"id": "evt_1", "created": 1}), "has no type"),
    (json.dumps({"id": "evt_1", "type": "invoice.paid"}), "no created time"),
    (json.dumps({"id": "evt_1", "type": "invoice.paid", "created": "yesterday"}), "no created time"),
    (json.dumps({"id": "evt_1", "type": "invoice.paid", "created": 1}), "data.object is missing"),
    (json.dumps({"id": "evt_1", "type": "invoice.paid", "created": 1, "data": {"object": {"amount_due": 5}}}),
     "data.object has no id"),
])
def test_bad_stripe_bodies(raw, expected):
    with pytest.raises(BadBillingEvent, match=expected) as info:
        parse_event("stripe", raw)
    assert isinstance(info.value, WinbackError)


def test_unknown_provider():
    with pytest.raises(BadBillingEvent, match="unknown billing provider"):
        parse_event("paypal", "{}")


def test_stripe_event_id_argument_only_when_the_body_has_none():
    body = load("invoice.paid")
    assert parse_event("stripe", json.dumps(body), event_id="evt_other").event_id == "evt_1QdbH2LkdIwHu7ixkPq8Lm3N"
    del body["id"]
    assert parse_event("stripe", json.dumps(body), event_id="evt_other").event_id == "evt_other"


def test_stripe_wrong_field_types_are_not_trusted():
    body = load("invoice.payment_failed")
    invoice = body["data"]["object"]
    invoice.update(amount_due="49.00", attempt_count=True, currency=7, customer={"no": "id"})
    event = parse_event("stripe", json.dumps(body))
    assert (event.invoice.amount_minor, event.invoice.attempt_count, event.invoice.currency,
            event.invoice.customer_ref) == (None, None, None, None)


# --- the standard format -------------------------------------------------------------------------

FAILED = {
    "type": "invoice.payment_failed", "timestamp": "2026-01-15T11:58:03Z",
    "data": {"invoice_id": "INV-2026-0042", "customer_id": "C-1001", "customer_email": "ana@example.com",
             "subscription_id": "S-77", "amount_due": 4900, "currency": "eur", "status": "open", "attempt_count": 1,
             "decline_code": "insufficient_funds", "failure_message": "Your card has insufficient funds.",
             "payment_method_id": "PM-9", "charge_id": "CH-1", "billing_reason": "subscription_cycle",
             "card": {"brand": "visa", "last4": "4242", "exp_month": 8, "exp_year": 2027,
                      "fingerprint": "Xt5EWLLDS7FJjR1c"}},
}


def std(body: dict, provider: str = "standard", event_id: str | None = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"):
    return parse_event(provider, json.dumps(body).encode(), event_id=event_id)


def test_standard_invoice_payment_failed_every_field():
    event = std(FAILED)
    assert event == BillingEvent(
        provider="standard", event_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", kind="invoice_payment_failed",
        raw_type="invoice.payment_failed", occurred_at=dt.datetime(2026, 1, 15, 11, 58, 3, tzinfo=UTC),
        customer_ref="C-1001", customer_email="ana@example.com",
        invoice=InvoiceInfo(ref="INV-2026-0042", customer_ref="C-1001", subscription_ref="S-77", amount_minor=4900,
                            currency="EUR", status="open", attempt_count=1, decline_code="insufficient_funds",
                            failure_message="Your card has insufficient funds.", payment_method_ref="PM-9",
                            charge_ref="CH-1", paid_at=None, billing_reason="subscription_cycle"),
        card=CardEvent(ref="PM-9", customer_ref="C-1001", brand="visa", last4="4242", exp_month=8, exp_year=2027,
                       fingerprint="Xt5EWLLDS7FJjR1c"))
    without_card = copy.deepcopy(FAILED)
    del without_card["data"]["card"]
    assert std(without_card).card is None and std(without_card).invoice.payment_method_ref == "PM-9"


def test_standard_sandbox_provider_and_body_id():
    event = std({**FAILED, "id": "sbx_evt_1"}, provider="sandbox", event_id="ignored-when-body-has-one")
    assert (event.provider, event.event_id) == ("sandbox", "sbx_evt_1")
    with pytest.raises(BadBillingEvent, match="no id"):
        std(FAILED, event_id=None)


def test_standard_paid_with_unix_paid_at():
    body = {"type": "invoice.paid", "timestamp": 1768557660,
            "data": {"invoice_id": "INV-2026-0042", "customer_id": "C-1001", "status": "paid", "amount_due": 4900,
                     "currency": "EUR", "paid_at": "2026-01-16T10:00:00+00:00"}}
    event = std(body)
    assert event.kind == "invoice_paid" and event.occurred_at == at(1768557660)
    assert event.invoice.paid_at == dt.datetime(2026, 1, 16, 10, tzinfo=UTC) and event.invoice.status == "paid"


def test_standard_charge_failed_card_updater_default_card_and_subscription():
    failed = std({"type": "charge.failed", "timestamp": "2026-01-15T11:58:00Z",
                  "data": {"invoice_id": "INV-1", "customer_id": "C-1", "decline_code": "expired_card",
                           "payment_method_id": "PM-9", "charge_id": "CH-9",
                           "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2025}}})
    assert failed.kind == "payment_failed_detail" and failed.invoice.decline_code == "expired_card"
    assert failed.card == CardEvent(ref="PM-9", customer_ref="C-1", brand="visa", last4="4242", exp_month=12,
                                    exp_year=2025)
    assert failed.extra == {"charge": "CH-9", "decline_code": "expired_card"}
    updated = std({"type": "payment_method.automatically_updated", "timestamp": "2026-01-15T11:00:00Z",
                   "data": {"customer_id": "C-1", "payment_method_id": "PM-9",
                            "card": {"last4": "4242", "exp_month": 12, "exp_year": 2029}}})
    assert (updated.kind, updated.card_via, updated.card.exp_year) == ("payment_method_updated", "card_updater", 2029)
    detached = std({"type": "payment_method.detached", "timestamp": "2026-01-15T11:00:00Z",
                    "data": {"customer_id": "C-1", "payment_method_id": "PM-8"}})
    assert detached.card == CardEvent(ref="PM-8", customer_ref="C-1", detached=True)
    assert detached.card_via == "customer"
    default = std({"type": "customer.updated", "timestamp": "2026-01-15T11:00:00Z",
                   "data": {"customer_id": "C-1", "default_payment_method_id": "PM-10"}})
    assert (default.kind, default.default_payment_method_ref, default.card_via, default.card) == (
        "default_payment_method", "PM-10", "customer", None)
    setup = std({"type": "setup_intent.succeeded", "timestamp": "2026-01-15T11:00:00Z",
                 "data": {"customer_id": "C-1", "payment_method_id": "PM-11", "card": {"last4": "1881"}}})
    assert setup.default_payment_method_ref == "PM-11" and setup.card.last4 == "1881"
    sub = std({"type": "customer.subscription.deleted", "timestamp": "2026-01-15T11:00:00Z",
               "data": {"subscription_id": "S-77", "customer_id": "C-1", "status": "canceled", "mrr": 4900,
                        "currency": "eur", "plan_id": "team-monthly", "current_period_end": "2026-02-14T09:00:00Z",
                        "default_payment_method_id": "PM-9"}})
    assert sub.subscription == SubscriptionInfo(ref="S-77", customer_ref="C-1", status="canceled",
                                                plan_id="team-monthly", mrr_minor=4900, currency="EUR",
                                                current_period_end=dt.datetime(2026, 2, 14, 9, tzinfo=UTC),
                                                default_payment_method_ref="PM-9")
    assert std({"type": "order.created", "timestamp": 1, "data": {"customer_id": 42}}).kind == "ignored"


@pytest.mark.parametrize("change, expected", [
    ({"timestamp": None}, "no timestamp"),
    ({"timestamp": "2026-01-15"}, "timestamp must be ISO 8601"),
    ({"timestamp": "2026-01-15T11:58:03"}, "timestamp must be ISO 8601"),  # no zone
    ({"type": ""}, "has no type"),
    ({"data": []}, "data must be a JSON object"),
    ({"data": {"customer_id": "C-1"}}, "data.invoice_id is required"),
    ({"data": {**FAILED["data"], "amount_due": 49.0}}, "data.amount_due must be a whole number"),
    ({"data": {**FAILED["data"], "amount_due": -1}}, "data.amount_due must be a whole number >= 0"),
    ({"data": {**FAILED["data"], "currency": "euro"}}, "3-letter ISO 4217"),
    ({"data": {**FAILED["data"], "card": "visa"}}, "data.card must be an object"),
    ({"data": {**FAILED["data"], "paid_at": "later"}}, "data.paid_at must be ISO 8601"),
    ({"data": {**FAILED["data"], "customer_id": ["C"]}}, "data.customer_id must be a string"),
    ({"id": {"x": 1}}, "event id must be a string"),
])
def test_bad_standard_bodies(change, expected):
    body = copy.deepcopy(FAILED)
    for key, value in change.items():
        if value is None:
            del body[key]
        else:
            body[key] = value
    with pytest.raises(BadBillingEvent, match=expected):
        std(body)


def test_bad_standard_card_and_missing_default_method():
    body = {"type": "charge.failed", "timestamp": "2026-01-15T11:58:00Z",
            "data": {"payment_method_id": "PM-9", "card": {"exp_month": 13}}}
    with pytest.raises(BadBillingEvent, match="exp_month is 1-12"):
        std(body)
    with pytest.raises(BadBillingEvent, match="default_payment_method_id are required"):
        std({"type": "customer.updated", "timestamp": "2026-01-15T11:00:00Z", "data": {"customer_id": "C-1"}})
    with pytest.raises(BadBillingEvent, match="payment_method_id is required"):
        std({"type": "payment_method.attached", "timestamp": "2026-01-15T11:00:00Z", "data": {"customer_id": "C-1"}})


def test_the_documented_examples_parse():
    docs = Path(__file__).resolve().parents[2] / "docs" / "dunning-webhooks.md"
    [block] = re.findall(r"```json\n(.*?)```", docs.read_text(encoding="utf-8"), flags=re.S)
    event = parse_event("standard", block, event_id="msg_doc")
    assert (event.kind, event.invoice.amount_minor, event.invoice.decline_code, event.card.last4) == (
        "invoice_payment_failed", 4900, "insufficient_funds", "4242")
    from winback.dunning.providers import standard_events

    [example] = re.findall(r"::\n\n(    \{.*?\n    \})\n", standard_events.__doc__, flags=re.S)
    assert parse_event("standard", example, event_id="msg_doc").invoice == event.invoice
