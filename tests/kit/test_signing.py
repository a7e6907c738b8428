"""Signed link tokens: round trip, tampering, another purpose, expiry, no personal data in links."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from winback.campaigns import links
from winback.kit.signing import BadSignature, sign, verify

KEY = b"k" * 32
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def test_round_trip_and_purpose_binding():
    token = sign(KEY, "unsubscribe", {"c": 7, "m": "<x@y>"})
    assert verify(KEY, "unsubscribe", token) == {"c": 7, "m": "<x@y>"}
    with pytest.raises(BadSignature, match="signature"):
        verify(KEY, "survey", token)  # an unsubscribe token is not a survey token
    with pytest.raises(BadSignature, match="signature"):
        verify(b"other-key" * 4, "unsubscribe", token)


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # MAC changed
    lambda t: ("e" if t[0] != "e" else "f") + t[1:],  # payload changed
    lambda t: t.replace(".", ""),  # no separator
    lambda t: t + ".x",  # two separators
    lambda t: "",
    lambda t: "x" * 5000,
])
def test_tampered_tokens_are_refused(mutate):
    token = sign(KEY, "click", {"m": "<a@b>", "t": "https://example.com/reactivate"})
    with pytest.raises(BadSignature):
        verify(KEY, "click", mutate(token))


def test_a_forged_target_never_verifies():
    token = sign(KEY, "click", {"m": "<a@b>", "t": "https://example.com/x"})
    body, mac = token.split(".")
    forged = base64.urlsafe_b64encode(b'{"m":"<a@b>","t":"https://evil.example/x"}').rstrip(b"=").decode()
    with pytest.raises(BadSignature):
        verify(KEY, "click", f"{forged}.{mac}")


def test_expiry():
    token = sign(KEY, "card_update", {"c": 1}, expires_at=NOW + dt.timedelta(days=7))
    assert verify(KEY, "card_update", token, now=NOW + dt.timedelta(days=6))["c"] == 1
    with pytest.raises(BadSignature, match="expired"):
        verify(KEY, "card_update", token, now=NOW + dt.timedelta(days=7, seconds=1))


def test_links_carry_no_address():
    url = links.unsubscribe_url(KEY, "https://wb.example", customer_id=5, message="<m@x>", campaign_id=2)
    token = url.rsplit("/", 1)[1]
    assert url.startswith("https://wb.example/u/")
    assert verify(KEY, "unsubscribe", token) == {"c": 5, "m": "<m@x>", "k": 2}
    card = links.card_update_url(KEY, "https://wb.example/", customer_id=5, message="<m@x>", now=NOW)
    payload = verify(KEY, "card_update", card.rsplit("/", 1)[1], now=NOW)
    assert payload["exp"] == int((NOW + dt.timedelta(days=links.CARD_LINK_DAYS)).timestamp())
