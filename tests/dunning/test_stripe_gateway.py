"""The Stripe gateway, driven through the official SDK against a fake of Stripe's HTTP API."""

from __future__ import annotations

import datetime as dt
import socket
from types import SimpleNamespace

import pytest

from tests.dunning.fake_stripe import DEFAULT_API_KEY, FakeStripe
from winback.config import DunningSettings
from winback.dunning.gateways import make_gateway
from winback.dunning.gateways.base import ChargeResult, GatewayError
from winback.dunning.gateways.stripe_gateway import StripeGateway
from winback.dunning.policy import GATEWAY_ERRORS, classify
from winback.kit.errors import ConfigError

CLIENT_TIMEOUT = 0.5


@pytest.fixture(autouse=True)
def _no_proxy_for_loopback(monkeypatch):
    """The SDK's HTTP client honours proxy variables; the fake is on loopback."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def fake():
    with FakeStripe(hang_seconds=CLIENT_TIMEOUT * 4) as server:
        yield server


def settings_for(fake: FakeStripe, api_key: str | None = DEFAULT_API_KEY, **extra) -> DunningSettings:
    return DunningSettings(gateway="stripe", stripe_api_key=api_key, stripe_api_base=fake.url,
                           timeout_seconds=CLIENT_TIMEOUT, **extra)


@pytest.fixture
def gateway(fake) -> StripeGateway:
    return StripeGateway.from_settings(SimpleNamespace(dunning=settings_for(fake)))


@pytest.fixture
def invoice(fake) -> dict:
    customer = fake.add_customer(default_payment_method="pm_card_on_file")
    subscription = fake.add_subscription(customer=customer["id"])
    return fake.add_invoice(customer=customer["id"], subscription=subscription["id"], amount_due=4900,
                            currency="eur")


def charge(gateway: StripeGateway, invoice_ref: str, key: str, payment_method_ref: str | None = None) -> ChargeResult:
    return gateway.charge_invoice(invoice_ref, payment_method_ref=payment_method_ref, amount_minor=4900,
                                  currency="EUR", idempotency_key=key)


def test_success_sends_our_key_through_the_sdk_and_charges_once(fake, gateway, invoice):
    result = charge(gateway, invoice["id"], "dun-1-attempt-1", payment_method_ref="pm_new_card")

    assert result.status == "succeeded"
    assert result.gateway_ref and result.gateway_ref.startswith("pi_")
    assert fake.charges[invoice["id"]] == 1
    [request] = fake.requests_to("POST", f"/v1/invoices/{invoice['id']}/pay")
    assert request.idempotency_key == "dun-1-attempt-1"
    assert request.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers.get("stripe-version")  # the SDK pins its API version
    assert request.params["payment_method"] == "pm_new_card"
    assert request.params["expand"] == ["payments"]
    assert request.status == 200 and not request.replayed


def test_without_a_payment_method_the_parameter_is_not_sent(fake, gateway, invoice):
    assert charge(gateway, invoice["id"], "k").status == "succeeded"
    [request] = fake.requests_to("POST", f"/v1/invoices/{invoice['id']}/pay")
    assert "payment_method" not in request.params


@pytest.mark.parametrize(("outcome", "decline_code", "category"), [
    ("insufficient_funds", "insufficient_funds", "soft"),  # code=card_declined, decline_code=insufficient_funds
    ("expired_card", "expired_card", "hard"),  # code only
    ("incorrect_number", "incorrect_number", "hard"),  # code only
    ("fraudulent", "fraudulent", "hard"),  # decline_code
    ("do_not_honor", "do_not_honor", "soft"),
    ("invoice_payment_intent_requires_action", "authentication_required", "hard"),
])
def test_declines_map_to_their_decline_code(fake, gateway, invoice, outcome, decline_code, category):
    fake.script(invoice["id"], outcome)

    result = charge(gateway, invoice["id"], "k1")

    assert result.status == "failed"
    assert result.decline_code == decline_code
    assert classify(result.decline_code) == category
    assert result.message
    assert result.gateway_ref and result.gateway_ref.startswith("pi_")
    [request] = fake.requests_to("POST", f"/v1/invoices/{invoice['id']}/pay")
    assert request.status == 402
    assert fake.attempts[invoice["id"]] == 1 and fake.charges[invoice["id"]] == 0


@pytest.mark.parametrize(("outcome", "code"), [("500", "api_error"), ("429", "rate_limit"), ("timeout", "timeout")])
def test_gateway_failures_are_errors_without_sdk_retries(fake, gateway, invoice, outcome, code):
    fake.script(invoice["id"], outcome)

    result = charge(gateway, invoice["id"], "k1")

    assert result.status == "error"
    assert result.decline_code == code and code in GATEWAY_ERRORS
    assert classify(result.decline_code) == "gateway"
    # max_network_retries=0: the SDK sent exactly one request, winback's policy decides what next
    assert len(fake.requests_to("POST", f"/v1/invoices/{invoice['id']}/pay")) == 1


def test_nothing_listening_is_a_connection_error(fake, invoice):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = StripeGateway.connect(DEFAULT_API_KEY, api_base=f"http://127.0.0.1:{port}", timeout_seconds=CLIENT_TIMEOUT)

    result = charge(gateway, invoice["id"], "k1")

    assert (result.status, result.decline_code) == ("error", "api_connection_error")
    with pytest.raises(GatewayError) as raised:
        gateway.lookup_invoice(invoice["id"])
    assert raised.value.code == "api_connection_error"


def test_a_lost_response_retried_with_the_same_key_does_not_charge_twice(fake, gateway, invoice):
    fake.script(invoice["id"], "timeout")  # Stripe charges the card, the response never arrives in time

    first = charge(gateway, invoice["id"], "dun-7-attempt-1")
    assert (first.status, first.decline_code) == ("error", "timeout")
    assert fake.charges[invoice["id"]] == 1  # the money moved although we did not hear back

    # retried while the first request is still running at Stripe: 409, no charge
    early = charge(gateway, invoice["id"], "dun-7-attempt-1")
    assert (early.status, early.decline_code) == ("error", "api_error")

    fake.wait_idle()
    retry = charge(gateway, invoice["id"], "dun-7-attempt-1")

    assert retry.status == "succeeded"
    assert retry.gateway_ref == first.gateway_ref or first.gateway_ref is None
    requests = fake.requests_to("POST", f"/v1/invoices/{invoice['id']}/pay")
    assert [r.idempotency_key for r in requests] == ["dun-7-attempt-1"] * 3
    assert [r.status for r in requests] == [200, 409, 200]
    assert requests[-1].replayed
    assert fake.attempts[invoice["id"]] == 1 and fake.charges[invoice["id"]] == 1


def test_a_decline_is_replayed_for_its_key_and_a_new_key_charges_again(fake, gateway, invoice):
    fake.script(invoice["id"], "insufficient_funds", "paid")

    assert charge(gateway, invoice["id"], "attempt-1").decline_code == "insufficient_funds"
    replay = charge(gateway, invoice["id"], "attempt-1")
    assert (replay.status, replay.decline_code) == ("failed", "insufficient_funds")
    assert fake.attempts[invoice["id"]] == 1  # the issuer was asked once
    assert fake.requests_to("POST", f"/v1/invoices/{invoice['id']}/pay")[-1].replayed

    assert charge(gateway, invoice["id"], "attempt-2").status == "succeeded"
    assert fake.attempts[invoice["id"]] == 2 and fake.charges[invoice["id"]] == 1


def test_a_server_error_is_replayed_for_the_same_key(fake, gateway, invoice):
    """Stripe (API v1) saves 500s under the key too: only a new key reaches the endpoint again."""
    fake.script(invoice["id"], "500")

    assert charge(gateway, invoice["id"], "attempt-1").decline_code == "api_error"
    assert charge(gateway, invoice["id"], "attempt-1").decline_code == "api_error"
    assert fake.requests_to("POST", f"/v1/invoices/{invoice['id']}/pay")[-1].replayed
    assert charge(gateway, invoice["id"], "attempt-2").status == "succeeded"


def test_a_rate_limited_request_is_not_saved_under_its_key(fake, gateway, invoice):
    fake.script(invoice["id"], "429")

    assert charge(gateway, invoice["id"], "attempt-1").decline_code == "rate_limit"
    assert charge(gateway, invoice["id"], "attempt-1").status == "succeeded"
    assert not fake.requests_to("POST", f"/v1/invoices/{invoice['id']}/pay")[-1].replayed


def test_the_same_key_with_other_parameters_is_refused(fake, gateway, invoice):
    assert charge(gateway, invoice["id"], "attempt-1").status == "succeeded"

    with pytest.raises(GatewayError) as raised:
        charge(gateway, invoice["id"], "attempt-1", payment_method_ref="pm_other")

    assert raised.value.code == "idempotency_error"
    assert fake.requests_to("POST", f"/v1/invoices/{invoice['id']}/pay")[-1].status == 400
    assert fake.charges[invoice["id"]] == 1


def test_an_invoice_paid_meanwhile_is_already_paid(fake, gateway, invoice):
    assert charge(gateway, invoice["id"], "attempt-1").status == "succeeded"

    result = charge(gateway, invoice["id"], "attempt-2")

    assert result.status == "already_paid"
    assert fake.charges[invoice["id"]] == 1
    assert fake.requests_to("POST", f"/v1/invoices/{invoice['id']}/pay")[-1].status == 400


@pytest.mark.parametrize(("status", "expected"), [("paid", "already_paid"), ("void", "not_payable"),
                                                   ("uncollectible", "not_payable")])
def test_invoices_that_are_not_open(fake, gateway, status, expected):
    customer = fake.add_customer()
    closed = fake.add_invoice(customer=customer["id"], status=status)

    result = charge(gateway, closed["id"], "k1")

    assert result.status == expected
    assert fake.attempts[closed["id"]] == 0
    assert fake.requests_to("GET", f"/v1/invoices/{closed['id']}")  # decided from the invoice, not the message


def test_an_unknown_invoice_is_a_gateway_error(fake, gateway):
    with pytest.raises(GatewayError) as raised:
        charge(gateway, "in_missing", "k1")
    assert raised.value.code == "invalid_request_error"
    assert "in_missing" in str(raised.value)


def test_lookup_reads_the_last_decline_and_the_card_to_charge(fake, gateway, invoice):
    fake.script(invoice["id"], "insufficient_funds")
    charge(gateway, invoice["id"], "attempt-1")

    state = gateway.lookup_invoice(invoice["id"])

    assert state.invoice_ref == invoice["id"]
    assert state.status == "open"
    assert (state.amount_due_minor, state.currency) == (4900, "EUR")
    assert state.paid_at is None
    assert state.decline_code == "insufficient_funds"
    assert state.payment_method_ref == "pm_card_on_file"  # the customer's invoice default
    [request] = fake.requests_to("GET", f"/v1/invoices/{invoice['id']}")
    assert "payments.data.payment.payment_intent" in request.params["expand"]


def test_lookup_of_a_paid_invoice_gives_paid_at(fake, gateway):
    customer = fake.add_customer()
    subscription = fake.add_subscription(customer=customer["id"], default_payment_method="pm_sub_card")
    paid = fake.add_invoice(customer=customer["id"], subscription=subscription["id"], status="paid",
                            paid_at=1767268800, currency="usd")

    state = gateway.lookup_invoice(paid["id"])

    assert state.status == "paid"
    assert state.paid_at == dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
    assert state.currency == "USD"
    assert state.decline_code is None
    assert state.payment_method_ref == "pm_sub_card"  # the subscription's card comes before the customer's


def test_lookup_of_a_missing_invoice_raises(fake, gateway):
    with pytest.raises(GatewayError) as raised:
        gateway.lookup_invoice("in_missing")
    assert raised.value.code == "invalid_request_error"


def test_cancel_deletes_the_subscription_and_is_repeatable(fake, gateway, invoice):
    subscription_id = invoice["parent"]["subscription_details"]["subscription"]

    gateway.end_subscription(subscription_id, action="cancel", idempotency_key="end-1")
    gateway.end_subscription(subscription_id, action="cancel", idempotency_key="end-1")  # a retry: no error

    assert fake.objects["subscriptions"][subscription_id]["status"] == "canceled"
    deletes = fake.requests_to("DELETE", f"/v1/subscriptions/{subscription_id}")
    assert len(deletes) == 2 and deletes[0].status == 200


def test_pause_voids_collection(fake, gateway, invoice):
    subscription_id = invoice["parent"]["subscription_details"]["subscription"]

    gateway.end_subscription(subscription_id, action="pause", idempotency_key="end-2")

    [request] = fake.requests_to("POST", f"/v1/subscriptions/{subscription_id}")
    assert request.params == {"pause_collection": {"behavior": "void"}}
    assert request.idempotency_key == "end-2"
    assert fake.objects["subscriptions"][subscription_id]["pause_collection"]["behavior"] == "void"
    assert fake.objects["subscriptions"][subscription_id]["status"] != "canceled"


def test_end_subscription_of_an_unknown_subscription_raises(fake, gateway):
    with pytest.raises(GatewayError):
        gateway.end_subscription("sub_missing", action="cancel", idempotency_key="end-3")


def test_card_update_redirect_is_a_setup_mode_checkout_session(fake, gateway, invoice):
    url = gateway.card_update_redirect(invoice["customer"], return_url="https://app.example/card/done",
                                       cancel_url="https://app.example/card/cancel")

    [session] = fake.objects["checkout_sessions"].values()
    assert url == session["url"]
    [request] = fake.requests_to("POST", "/v1/checkout/sessions")
    assert request.params["mode"] == "setup"
    assert request.params["customer"] == invoice["customer"]
    assert request.params["payment_method_types"] == ["card"]
    assert request.params["success_url"] == "https://app.example/card/done"
    assert request.params["cancel_url"] == "https://app.example/card/cancel"
    assert request.params["setup_intent_data"] == {"metadata": {"winback_purpose": "card_update"}}


def test_set_default_payment_method_updates_the_customer(fake, gateway, invoice):
    gateway.set_default_payment_method(invoice["customer"], "pm_updated")

    [request] = fake.requests_to("POST", f"/v1/customers/{invoice['customer']}")
    assert request.params == {"invoice_settings": {"default_payment_method": "pm_updated"}}
    assert fake.objects["customers"][invoice["customer"]]["invoice_settings"]["default_payment_method"] == "pm_updated"
    assert gateway.lookup_invoice(invoice["id"]).payment_method_ref == "pm_updated"


@pytest.mark.parametrize("api_key", [None, "", "   "])
def test_a_missing_api_key_is_a_config_error(fake, api_key):
    with pytest.raises(ConfigError, match="stripe_api_key"):
        StripeGateway.from_settings(SimpleNamespace(dunning=settings_for(fake, api_key=api_key)))


def test_a_publishable_key_is_a_config_error(fake):
    with pytest.raises(ConfigError, match="publishable"):
        StripeGateway.from_settings(settings_for(fake, api_key="pk_test_123"))


def test_make_gateway_builds_the_stripe_gateway(fake, invoice):
    gateway = make_gateway(SimpleNamespace(dunning=settings_for(fake)))

    assert isinstance(gateway, StripeGateway) and gateway.name == "stripe"
    assert gateway.lookup_invoice(invoice["id"]).status == "open"  # stripe_api_base is honoured


def test_a_wrong_api_key_is_a_gateway_error_not_a_decline(fake, invoice):
    gateway = StripeGateway.from_settings(settings_for(fake, api_key="sk_test_wrong_key_000000"))

    with pytest.raises(GatewayError) as raised:
        charge(gateway, invoice["id"], "k1")
    assert raised.value.code == "authentication_error"
    assert "stripe_api_key" in str(raised.value)
    with pytest.raises(GatewayError) as raised:
        gateway.lookup_invoice(invoice["id"])
    assert raised.value.code == "authentication_error"
    assert fake.requests[-1].status == 401
    assert fake.attempts[invoice["id"]] == 0
