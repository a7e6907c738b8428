"""Signature checks of billing webhooks: Stripe's ``Stripe-Signature`` and Standard Webhooks.

Both are HMAC-SHA256 over the raw body and a timestamp, checked here against an injected ``now``
(the SDKs read the system clock, which tests and the pinned demo clock cannot move):

* **Stripe** (https://docs.stripe.com/webhooks#verify-manually): the header is
  ``t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=<hex>]``; the signed content is
  ``f"{t}."`` followed by the raw body, keyed with the endpoint secret *as text* (``whsec_...``
  is used whole, not decoded). Several ``v1`` values are sent while Stripe rolls a secret, and
  several secrets may be configured here while we roll ours: any (secret, v1) pair that matches
  is enough. ``v0`` (test-mode legacy) is ignored.
* **Standard Webhooks** (https://www.standardwebhooks.com, spec ``v1``): headers ``webhook-id``,
  ``webhook-timestamp`` (unix seconds) and ``webhook-signature`` (space-separated
  ``v1,<base64>`` values; other versions such as ``v1a`` are skipped); the secret is
  ``whsec_<base64>`` and the key is its base64-decoded bytes; the signed content is
  ``f"{id}.{timestamp}."`` followed by the raw body. Svix's ``svix-*`` header names are read
  when the ``webhook-*`` ones are absent (Svix sends Standard Webhooks under that prefix).

Both reject a timestamp more than ``tolerance`` seconds from ``now`` in either direction (a stale
replay or a clock far ahead); exactly ``tolerance`` seconds away is still accepted. Signatures are
checked before the timestamp so "outside tolerance" is only said of authentic messages. Every
comparison is constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping

from winback.kit.errors import WinbackError

__all__ = ["BadWebhookSignature", "WebhookSecretMissing", "verify_stripe", "verify_standard"]

_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # unix seconds (ASCII digits only: int() takes others too)


class BadWebhookSignature(WinbackError):
    """A webhook failed its signature check; ``reason`` says why (one line, safe to answer)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class WebhookSecretMissing(BadWebhookSignature):
    """No usable secret is configured: nothing can be verified (a setup problem, not the sender's)."""


def _usable(secrets: list[str] | tuple[str, ...] | None, setting: str) -> list[str]:
    # ASCII whitespace around a pasted secret is dropped (a secret never contains any)
    usable = [s.strip(" \t\r\n") for s in (secrets or []) if isinstance(s, str) and s.strip(" \t\r\n")]
    if not usable:
        raise WebhookSecretMissing(f"no webhook secret configured: set [dunning] {setting}")
    return usable


def _check_time(timestamp: int, now: dt.datetime, tolerance: int) -> None:
    skew = now.timestamp() - timestamp
    if skew > tolerance:
        raise BadWebhookSignature(f"timestamp outside tolerance: {int(skew)} s old (at most {tolerance} s)")
    if -skew > tolerance:
        raise BadWebhookSignature(f"timestamp outside tolerance: {int(-skew)} s in the future "
                                  f"(at most {tolerance} s)")


def _ascii(text: str) -> bytes:
    return text.encode("utf-8", errors="replace")


def verify_stripe(raw: bytes, header: str | None, secrets: list[str], *, now: dt.datetime,
                  tolerance: int = 300) -> int:
    """Check a ``Stripe-Signature`` header over the raw body; returns its timestamp (unix seconds).

    Raises :class:`WebhookSecretMissing` when ``secrets`` holds no secret, and
    :class:`BadWebhookSignature` when the header is missing or malformed, no ``v1`` signature
    matches any secret, or the timestamp is more than ``tolerance`` seconds from ``now``."""
    usable = _usable(secrets, "stripe_webhook_secrets")
    if header is None or not header.strip():
        raise BadWebhookSignature("missing Stripe-Signature header")
    timestamps: list[str] = []
    candidates: list[str] = []
    for item in header.split(","):
        if not item.strip():
            continue
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise BadWebhookSignature("malformed Stripe-Signature header: expected t=...,v1=...")
        key, value = key.strip(), value.strip()
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            candidates.append(value)
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise BadWebhookSignature("malformed Stripe-Signature header: needs exactly one t=<unix seconds>")
    if not candidates:
        raise BadWebhookSignature("malformed Stripe-Signature header: no v1 signature")
    timestamp = int(timestamps[0])
    signed = f"{timestamp}.".encode() + bytes(raw)
    expected = [hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest().encode()
                for secret in usable]
    matched = False
    for candidate in candidates:
        given = _ascii(candidate)
        for digest in expected:  # no early exit: the work done does not depend on which pair matches
            matched |= hmac.compare_digest(digest, given)
    if not matched:
        raise BadWebhookSignature("no matching signature: the body or the secret differs "
                                  "(check [dunning] stripe_webhook_secrets)")
    _check_time(timestamp, now, tolerance)
    return timestamp


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret ``whsec_<base64>`` (the prefix is optional)."""
    text = secret.strip().removeprefix("whsec_")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookSecretMissing("a [dunning] standard_webhook_secrets entry is not whsec_<base64>") from None
    if not key:
        raise WebhookSecretMissing("a [dunning] standard_webhook_secrets entry is empty")
    return key


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = {str(k).lower(): v for k, v in headers.items()}
    value = lowered.get(f"webhook-{name}")
    if value is None:
        value = lowered.get(f"svix-{name}")
    return value.strip() if isinstance(value, str) and value.strip() else None


def verify_standard(raw: bytes, headers: Mapping[str, str], secrets: list[str], *, now: dt.datetime,
                    tolerance: int = 300) -> str:
    """Check a Standard Webhooks message over the raw body; returns its ``webhook-id``.

    ``headers`` is any mapping of the request headers (names in any case). Raises
    :class:`WebhookSecretMissing` when no usable ``whsec_<base64>`` secret is configured and
    :class:`BadWebhookSignature` when a header is missing or malformed, no ``v1`` signature
    matches, or the timestamp is more than ``tolerance`` seconds from ``now``."""
    keys = [standard_key(secret) for secret in _usable(secrets, "standard_webhook_secrets")]
    missing = [f"webhook-{name}" for name in ("id", "timestamp", "signature") if _header(headers, name) is None]
    if missing:
        raise BadWebhookSignature(f"missing {', '.join(missing)} header{'s' if len(missing) > 1 else ''}")
    msg_id, stamp, signature = (_header(headers, name) for name in ("id", "timestamp", "signature"))
    assert msg_id is not None and stamp is not None and signature is not None
    if not _TIMESTAMP.fullmatch(stamp):
        raise BadWebhookSignature("malformed webhook-timestamp header: expected unix seconds")
    candidates = []
    for item in signature.split(" "):
        version, sep, value = item.partition(",")
        if not item:
            continue
        if not sep or not version or not value:
            raise BadWebhookSignature("malformed webhook-signature header: expected v1,<base64> values "
                                      "separated by spaces")
        if version == "v1":
            candidates.append(value)
    if not candidates:
        raise BadWebhookSignature("malformed webhook-signature header: no v1 signature")
    timestamp = int(stamp)
    signed = f"{msg_id}.{timestamp}.".encode() + bytes(raw)
    expected = [base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()) for key in keys]
    matched = False
    for candidate in candidates:
        given = _ascii(candidate)
        for digest in expected:
            matched |= hmac.compare_digest(digest, given)
    if not matched:
        raise BadWebhookSignature("no matching signature: the body or the secret differs "
                                  "(check [dunning] standard_webhook_secrets)")
    _check_time(timestamp, now, tolerance)
    return msg_id
