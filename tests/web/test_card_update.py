"""The card-update page ``/b/TOKEN``: the sandbox form (paid, declined, invalid card), Stripe's
redirect to Checkout, the token and CSRF rules, and the friendly "nothing to pay" page."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import select

from tests.dunning.factories import add_case, add_payment_method, add_subscription
from tests.web.public_fixtures import *  # noqa: F403
from tests.web.public_fixtures import NOW, Public, csrf_of
from winback.campaigns import links
from winback.kit.db import write_transaction
from winback.kit.signing import sign
from winback.models.dunning import BillingPaymentMethod, BillingSubscription, DunningCase, SandboxCard, SandboxCharge

REF = "cus_pub"
PAYS = "4242 4242 4242 4242"
INSUFFICIENT = "4000000000009995"


def billing(pub: Public, *, case: bool = True, amount: int = 4900, currency: str = "USD",
            decline: str = "expired_card") -> None:
    with write_transaction(pub.engine) as conn:
        add_payment_method(conn, "pm_old", customer_ref=REF, customer_id=pub.customer_id, exp=(12, 2025))
        add_subscription(conn, "sub_pub", customer_ref=REF, customer_id=pub.customer_id,
                         payment_method_ref="pm_old", status="past_due" if case else "active")
        if case:
            add_case(conn, "in_pub", customer_ref=REF, customer_id=pub.customer_id, subscription_ref="sub_pub",
                     decline_code=decline, amount_minor=amount, currency=currency, first_failed_at=NOW - dt.timedelta(days=2),
                     payment_method_ref="pm_old")


def case_row(pub: Public) -> dict:
    return pub.rows(DunningCase, invoice_ref="in_pub")[0]


def submit(pub: Public, *, number: str = PAYS, exp: str = "12/30", cvc: str = "123", csrf: str | None = None,
           url: str | None = None, **extra):
    url = url or pub.card()
    if csrf is None:
        csrf = csrf_of(pub.client.get(url).text)
    return pub.client.post(url, data={"csrf": csrf, "number": number, "exp": exp, "cvc": cvc, **extra},
                           follow_redirects=False)


# --- the sandbox form -------------------------------------------------------------------------------------


def test_the_form_shows_the_amount_due_with_card_autocomplete(public: Public):
    billing(public)
    r = public.client.get(public.card())
    assert r.status_code == 200 and "no-store" in r.headers["cache-control"]
    page = r.text
    assert "Amount due: $49.00" in page and "Enter a card below" in page
    for attr in ('autocomplete="cc-number"', 'autocomplete="cc-exp"', 'autocomplete="cc-csc"', 'name="csrf"',
                 'method="post"'):
        assert attr in page
    assert "never the full number" in page and "hello@example.com" in page


def test_a_good_card_pays_the_open_invoice_and_only_brand_last4_expiry_are_kept(public: Public, caplog):
    billing(public)
    caplog.set_level(logging.DEBUG)
    r = submit(public)
    assert r.status_code == 200
    assert "Payment received - thank you!" in r.text and "We received $49.00" in r.text
    assert 'name="number"' not in r.text  # no form after paying
    case = case_row(public)
    assert case["status"] == "recovered" and case["recovered_by"] == "customer_update"
    charges = public.rows(SandboxCharge, invoice_ref="in_pub")
    assert [c["status"] for c in charges] == ["succeeded"] and charges[0]["amount_minor"] == 4900
    cards = public.rows(SandboxCard, customer_ref=REF)
    assert len(cards) == 1 and cards[0]["last4"] == "4242" and (cards[0]["exp_month"], cards[0]["exp_year"]) == (12, 2030)
    new = [c for c in public.rows(BillingPaymentMethod) if c["external_id"] != "pm_old"]
    assert len(new) == 1 and new[0]["updated_via"] == "customer" and new[0]["last4"] == "4242"
    assert public.rows(BillingSubscription, external_id="sub_pub")[0]["payment_method_ref"] == new[0]["external_id"]
    # the number and the security code are nowhere: not in the state store, not in the logs
    with public.engine.connect() as conn:
        dump = " ".join(str(row) for table in (SandboxCard, BillingPaymentMethod, SandboxCharge, DunningCase)
                        for row in conn.execute(select(table.__table__)))
    assert "4242424242424242" not in dump and "4242 4242" not in dump
    assert "4242424242424242" not in caplog.text and PAYS not in caplog.text
    # the page again: nothing left to pay
    again = public.client.get(public.card())
    assert "Nothing to pay" in again.text and "Amount due" not in again.text


def test_a_declined_card_shows_the_plain_reason_and_the_form_again(public: Public):
    billing(public)
    r = submit(public, number=INSUFFICIENT)
    assert r.status_code == 200
    assert "The payment did not go through" in r.text
    assert "the card did not have enough available funds" in r.text and "insufficient_funds" not in r.text
    assert 'autocomplete="cc-number"' in r.text and "Amount due: $49.00" in r.text
    assert case_row(public)["status"] == "open"
    assert [c["status"] for c in public.rows(SandboxCharge, invoice_ref="in_pub")] == ["failed"]
    # then a good card pays
    r = submit(public)
    assert "Payment received" in r.text and case_row(public)["status"] == "recovered"


@pytest.mark.parametrize("number,exp,cvc,field,message", [
    ("4242424242424241", "12/30", "123", "number", "The card number is not valid"),
    ("1234", "12/30", "123", "number", "The card number is not valid"),
    (PAYS, "12/25", "123", "expiry", "This card has expired"),
    (PAYS, "13/30", "123", "expiry", "The expiry date is not valid"),
    (PAYS, "soon", "123", "expiry", "The expiry date is not valid"),
    (PAYS, "12/30", "12a", "cvc", "The security code is not valid"),
])
def test_an_invalid_card_is_refused_before_any_charge(public: Public, number, exp, cvc, field, message):
    billing(public)
    r = submit(public, number=number, exp=exp, cvc=cvc)
    assert r.status_code == 400 and message in r.text and f'data-field="{field}"' in r.text
    assert number not in r.text.replace('placeholder="1234 1234 1234 1234"', "")  # never echoed back
    assert public.rows(SandboxCharge) == [] and public.rows(SandboxCard) == []
    assert case_row(public)["status"] == "open"


def test_the_page_speaks_the_customers_language(public: Public):
    billing(public, amount=490000, currency="JPY")
    public.set_locale("ja-JP")
    r = public.client.get(public.card())
    assert "お支払い情報の更新" in r.text and "￥490,000" in r.text and "カード番号" in r.text
    r = submit(public, number=INSUFFICIENT)
    assert "カードのご利用可能額が不足" in r.text
    public.set_locale("uk")
    r = submit(public, number="4242424242424241")
    assert r.status_code == 400 and "Номер картки недійсний" in r.text


def test_nothing_to_pay_is_a_friendly_page_and_still_lets_the_card_be_replaced(public: Public):
    billing(public, case=False)
    r = public.client.get(public.card())
    assert r.status_code == 200 and "Nothing to pay" in r.text and "All your payments are settled" in r.text
    assert "replace the card we use for your future payments" in r.text and "Save card" in r.text
    r = submit(public)
    assert r.status_code == 200 and "Your card is saved" in r.text
    assert public.rows(SandboxCharge) == []
    # a customer without any billing account: the message only, no form
    with write_transaction(public.engine) as conn:
        conn.execute(BillingSubscription.__table__.delete())
        conn.execute(BillingPaymentMethod.__table__.delete())
    r = public.client.get(public.card())
    assert "Nothing to pay" in r.text and 'name="number"' not in r.text


# --- tokens and CSRF --------------------------------------------------------------------------------------


def test_expired_and_tampered_tokens_get_localised_pages_and_change_nothing(public: Public):
    billing(public)
    public.set_locale("ko")
    old = public.card(now=NOW - dt.timedelta(days=links.CARD_LINK_DAYS + 1))
    assert public.client.get(old).status_code == 410
    r = public.client.post(old, data={"csrf": "0" * 32, "number": PAYS}, headers={"accept-language": "ko-KR"})
    assert r.status_code == 410 and "링크가 만료되었습니다" in r.text
    token = public.card().split("/b/")[1]
    body, mac = token.split(".")
    tampered = f"/b/{body}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}"
    for method in ("GET", "POST"):
        r = public.client.request(method, tampered, data={"number": PAYS, "exp": "12/30", "cvc": "123"}
                                  if method == "POST" else None)
        assert r.status_code == 400
    another = sign(public.key, "card_update", {"c": public.customer_id + 999, "m": "<x@y>"})
    assert public.client.get(f"/b/{another}").status_code == 404
    assert public.rows(SandboxCharge) == [] and case_row(public)["status"] == "open"


def test_the_form_needs_its_own_csrf_field(public: Public):
    billing(public)
    for csrf in ("", "0" * 32, csrf_of(public.client.get(public.survey()).text)):
        r = submit(public, csrf=csrf)
        assert r.status_code == 400
    # the field of another customer's page does not work either
    other = links.card_update_url(public.key, "", customer_id=public.customer_id, message="<other@m>", now=NOW)
    r = submit(public, csrf=csrf_of(public.client.get(other).text))
    assert r.status_code == 400
    assert public.rows(SandboxCharge) == [] and public.rows(SandboxCard) == []


# --- Stripe: Checkout in setup mode -----------------------------------------------------------------------


class FakeStripe:
    name = "stripe"

    def __init__(self):
        self.calls = []

    def card_update_redirect(self, customer_ref, *, return_url, cancel_url):
        self.calls.append((customer_ref, return_url, cancel_url))
        return "https://checkout.stripe.com/c/pay/cs_test_123"


@pytest.fixture
def stripe_mode(public: Public, monkeypatch):
    import winback.dunning.gateways as gateways

    fake = FakeStripe()
    public.client.app.state.settings = public.settings.model_copy(update={
        "dunning": public.settings.dunning.model_copy(update={"gateway": "stripe"})})
    monkeypatch.setattr(gateways, "make_gateway", lambda settings, engine=None, clock=None: fake)
    with write_transaction(public.engine) as conn:
        add_subscription(conn, "sub_stripe", customer_ref="cus_STRIPE", customer_id=public.customer_id,
                         provider="stripe", status="past_due")
        add_case(conn, "in_stripe", customer_ref="cus_STRIPE", customer_id=public.customer_id, provider="stripe",
                 subscription_ref="sub_stripe", decline_code="expired_card", amount_minor=2500, currency="EUR")
    return fake


def test_stripe_mode_redirects_to_checkout_with_303(public: Public, stripe_mode: FakeStripe):
    page = public.client.get(public.card())
    assert page.status_code == 200 and "Continue to the secure payment page" in page.text
    assert "€25.00" in page.text and 'name="number"' not in page.text  # no card field on our page
    r = public.client.post(public.card(), data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "https://checkout.stripe.com/c/pay/cs_test_123"
    (ref, return_url, cancel_url), = stripe_mode.calls
    token = public.card().split("/b/")[1]
    base = public.settings.sender.base_url.rstrip("/")
    assert ref == "cus_STRIPE" and return_url == f"{base}/b/{token}?done=1" and cancel_url == f"{base}/b/{token}"
    # back from Checkout: the card arrives by webhook
    back = public.client.get(public.card() + "?done=1")
    assert back.status_code == 200 and "As soon as your card is confirmed" in back.text
    # without the form field: refused, Stripe not called
    r = public.client.post(public.card(), data={"csrf": "0" * 32}, follow_redirects=False)
    assert r.status_code == 400 and len(stripe_mode.calls) == 1


def test_stripe_mode_without_a_session_is_a_friendly_503(public: Public, stripe_mode: FakeStripe, monkeypatch):
    monkeypatch.setattr(stripe_mode, "card_update_redirect", lambda *a, **k: None)
    page = public.client.get(public.card())
    r = public.client.post(public.card(), data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 503 and "not available right now" in r.text
