"""Webhook signatures: our verifiers against headers built by the stripe SDK and the standardwebhooks
library (their own signing helpers), and cross-checked with their own verifiers."""

from __future__ import annotations

import base64
import datetime as dt
import time

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from winback.dunning.signatures import BadWebhookSignature, WebhookSecretMissing, verify_standard, verify_stripe
from winback.kit.errors import WinbackError

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
SECRET = "whsec_test_5f0c1b2a9e8d7c6b5a4f3e2d1c0b9a8f"
OTHER = "whsec_rolled_0a1b2c3d4e5f60718293a4b5c6d7e8f9"
BODY = b'{"id": "evt_1QdZrKLkdIwHu7ixqDn4Hv2a", "object": "event", "type": "invoice.payment_failed"}'
STD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-32byt").decode()
STD_OTHER = "whsec_" + base64.b64encode(b"another-standard-key-for-rolling").decode()


def stripe_header(body: bytes, secret: str = SECRET, timestamp: int = T) -> str:
    return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=timestamp)


def std_headers(body: bytes, secret: str = STD_SECRET, msg_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
                at: dt.datetime = NOW) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, at, body)}


def reason(call) -> str:
    with pytest.raises(BadWebhookSignature) as info:
        call()
    assert isinstance(info.value, WinbackError) and info.value.reason == str(info.value)
    return info.value.reason


# --- Stripe ------------------------------------------------------------------------------------

def test_stripe_valid_header_returns_its_timestamp():
    assert verify_stripe(BODY, stripe_header(BODY), [SECRET], now=NOW) == T


def test_stripe_several_v1_values_one_valid_and_v0_ignored():
    good = stripe_header(BODY).split(",v1=")[1]
    header = f"t={T},v1={'0' * 64},v1={good},v0={'f' * 64}"
    assert verify_stripe(BODY, header, [SECRET], now=NOW) == T
    assert "no matching signature" in reason(lambda: verify_stripe(BODY, f"t={T},v1={'0' * 64},v0={good}",
                                                                   [SECRET], now=NOW))


def test_stripe_rolling_secrets_either_one_verifies():
    assert verify_stripe(BODY, stripe_header(BODY, OTHER), [SECRET, OTHER], now=NOW) == T
    assert verify_stripe(BODY, stripe_header(BODY, SECRET), [SECRET, OTHER], now=NOW) == T
    assert verify_stripe(BODY, stripe_header(BODY, SECRET), ["  ", SECRET], now=NOW) == T  # blanks skipped


def test_stripe_tampered_body_and_wrong_secret_are_refused():
    header = stripe_header(BODY)
    assert "no matching signature" in reason(lambda: verify_stripe(BODY.replace(b"failed", b"paid!!"), header,
                                                                   [SECRET], now=NOW))
    assert "no matching signature" in reason(lambda: verify_stripe(BODY, header, [OTHER], now=NOW))
    # the timestamp is signed too: moving it breaks the signature
    moved = header.replace(f"t={T}", f"t={T + 1}")
    assert "no matching signature" in reason(lambda: verify_stripe(BODY, moved, [SECRET], now=NOW))


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 10 * 365 * 86_400])
def test_stripe_stale_and_future_timestamps_are_refused(offset):
    header = stripe_header(BODY, timestamp=T + offset)
    assert "timestamp outside tolerance" in reason(lambda: verify_stripe(BODY, header, [SECRET], now=NOW))


@pytest.mark.parametrize("offset", [-300, 300, 0, -1, 1])
def test_stripe_tolerance_edge_is_inclusive(offset):
    assert verify_stripe(BODY, stripe_header(BODY, timestamp=T + offset), [SECRET], now=NOW) == T + offset


def test_stripe_tolerance_is_configurable_and_now_fractional():
    header = stripe_header(BODY, timestamp=T - 301)
    assert verify_stripe(BODY, header, [SECRET], now=NOW, tolerance=600) == T - 301
    late = NOW + dt.timedelta(seconds=300, microseconds=1)  # 300.000001 s after t: outside
    assert "outside tolerance" in reason(lambda: verify_stripe(BODY, stripe_header(BODY), [SECRET], now=late))


@pytest.mark.parametrize("header, expected", [
    (None, "missing Stripe-Signature header"),
    ("", "missing Stripe-Signature header"),
    ("garbage", "malformed"),
    (f"v1={'a' * 64}", "exactly one t="),
    (f"t=abc,v1={'a' * 64}", "exactly one t="),
    (f"t=-5,v1={'a' * 64}", "exactly one t="),
    (f"t={T},t={T},v1={'a' * 64}", "exactly one t="),
    (f"t={T}", "no v1 signature"),
    (f"t={T},v0={'a' * 64}", "no v1 signature"),
    (f"t={T},v1=\u00e9\u00e9", "no matching signature"),
])
def test_stripe_malformed_and_missing_headers(header, expected):
    assert expected in reason(lambda: verify_stripe(BODY, header, [SECRET], now=NOW))


def test_stripe_no_secret_configured():
    for secrets in ([], ["", "   "], None):
        with pytest.raises(WebhookSecretMissing, match="stripe_webhook_secrets"):
            verify_stripe(BODY, stripe_header(BODY), secrets, now=NOW)


def test_stripe_agrees_with_the_sdk_on_a_known_case():
    header = stripe_header(BODY, timestamp=int(time.time()))
    assert stripe.WebhookSignature.verify_header(BODY, header, SECRET, tolerance=300)
    now = dt.datetime.now(UTC)
    verify_stripe(BODY, header, [SECRET], now=now)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.text(max_size=400),
       secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF,
                                             blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")),
                      min_size=1, max_size=40),
       age=st.integers(min_value=-240, max_value=240), flip=st.data())
def test_property_stripe_matches_sdk_and_any_byte_change_is_refused(body, secret, age, flip):
    raw = body.encode()
    now = dt.datetime.now(UTC)
    timestamp = int(now.timestamp()) - age
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)
    # both accept what the SDK signed (the SDK checks only staleness against the system clock)
    assert stripe.WebhookSignature.verify_header(raw, header, secret, tolerance=300)
    assert verify_stripe(raw, header, [secret], now=now) == timestamp
    # a wrong secret: both refuse
    wrong = secret + "x"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(raw, header, wrong, tolerance=300)
    with pytest.raises(BadWebhookSignature):
        verify_stripe(raw, header, [wrong], now=now)
    # any single-byte change of the body is refused (our verifier works on raw bytes: any byte value)
    changed = bytearray(raw or b"\x00")
    if raw:
        index = flip.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="index")
        changed[index] = (changed[index] + flip.draw(st.integers(min_value=1, max_value=255), label="delta")) % 256
    with pytest.raises(BadWebhookSignature, match="no matching signature"):
        verify_stripe(bytes(changed), header, [secret], now=now)


# --- Standard Webhooks -------------------------------------------------------------------------

def test_standard_valid_returns_the_webhook_id_and_the_library_agrees():
    headers = std_headers(BODY)
    assert verify_standard(BODY, headers, [STD_SECRET], now=NOW) == "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    real = std_headers(BODY, at=dt.datetime.now(UTC))
    assert Webhook(STD_SECRET).verify(BODY, real, json_parse=False) is None
    assert verify_standard(BODY, real, [STD_SECRET], now=dt.datetime.now(UTC))


def test_standard_header_names_are_case_insensitive_and_svix_names_work():
    headers = {k.upper(): v for k, v in std_headers(BODY).items()}
    assert verify_standard(BODY, headers, [STD_SECRET], now=NOW)
    svix = {k.replace("webhook-", "svix-"): v for k, v in std_headers(BODY).items()}
    assert verify_standard(BODY, svix, [STD_SECRET], now=NOW)


def test_standard_several_signatures_and_rolling_secrets():
    headers = std_headers(BODY, STD_OTHER)
    headers["webhook-signature"] = ("v1," + base64.b64encode(b"x" * 32).decode() + " v1a,ed25519sig "
                                    + headers["webhook-signature"])
    assert verify_standard(BODY, headers, [STD_SECRET, STD_OTHER], now=NOW)
    assert "no matching signature" in reason(lambda: verify_standard(BODY, headers, [STD_SECRET], now=NOW))
    # a secret without the whsec_ prefix is the same key (as in the reference library)
    assert verify_standard(BODY, std_headers(BODY), [STD_SECRET.removeprefix("whsec_")], now=NOW)


def test_standard_tampered_body_wrong_secret_and_changed_id():
    headers = std_headers(BODY)
    assert "no matching signature" in reason(lambda: verify_standard(BODY + b" ", headers, [STD_SECRET], now=NOW))
    assert "no matching signature" in reason(lambda: verify_standard(BODY, headers, [STD_OTHER], now=NOW))
    replayed = {**headers, "webhook-id": "msg_other"}  # the id is signed: a new id is not a new message
    assert "no matching signature" in reason(lambda: verify_standard(BODY, replayed, [STD_SECRET], now=NOW))


@pytest.mark.parametrize("offset, accepted", [(-301, False), (301, False), (-300, True), (300, True)])
def test_standard_tolerance(offset, accepted):
    headers = std_headers(BODY, at=NOW + dt.timedelta(seconds=offset))
    if accepted:
        assert verify_standard(BODY, headers, [STD_SECRET], now=NOW)
    else:
        assert "timestamp outside tolerance" in reason(lambda: verify_standard(BODY, headers, [STD_SECRET], now=NOW))


@pytest.mark.parametrize("change, expected", [
    ({"webhook-id": None}, "missing webhook-id header"),
    ({"webhook-id": None, "webhook-timestamp": None}, "missing webhook-id, webhook-timestamp headers"),
    ({"webhook-signature": None}, "missing webhook-signature header"),
    ({"webhook-timestamp": "soon"}, "malformed webhook-timestamp"),
    ({"webhook-timestamp": "1768478400.5"}, "malformed webhook-timestamp"),
    ({"webhook-signature": "deadbeef"}, "malformed webhook-signature"),
    ({"webhook-signature": "v1a,abc"}, "no v1 signature"),
])
def test_standard_malformed_and_missing_headers(change, expected):
    headers = std_headers(BODY)
    for key, value in change.items():
        if value is None:
            del headers[key]
        else:
            headers[key] = value
    assert expected in reason(lambda: verify_standard(BODY, headers, [STD_SECRET], now=NOW))


def test_standard_no_or_bad_secret_configured():
    with pytest.raises(WebhookSecretMissing, match="standard_webhook_secrets"):
        verify_standard(BODY, std_headers(BODY), [], now=NOW)
    with pytest.raises(WebhookSecretMissing, match="whsec_<base64>"):
        verify_standard(BODY, std_headers(BODY), ["whsec_not*base64!"], now=NOW)


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=300), key=st.binary(min_size=1, max_size=48),
       msg_id=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
       age=st.integers(min_value=-240, max_value=240), index=st.integers(min_value=0))
def test_property_standard_matches_the_reference_library(body, key, msg_id, age, index):
    secret = "whsec_" + base64.b64encode(key).decode()
    now = dt.datetime.now(UTC).replace(microsecond=0)
    headers = std_headers(body, secret, msg_id, now - dt.timedelta(seconds=age))
    Webhook(secret).verify(body, headers, json_parse=False)  # the library accepts ...
    assert verify_standard(body, headers, [secret], now=now) == msg_id  # ... and so do we
    if body:
        changed = bytearray(body)
        changed[index % len(body)] ^= 0x01
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(bytes(changed), headers, json_parse=False)
        with pytest.raises(BadWebhookSignature, match="no matching signature"):
            verify_standard(bytes(changed), headers, [secret], now=now)
