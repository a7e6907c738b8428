"""HMAC-signed, optionally expiring tokens for links in messages (unsubscribe, survey, card update).

A token is ``base64url(payload JSON) . base64url(HMAC-SHA256(key, purpose || payload))``; the
purpose is part of the MAC, so an unsubscribe token can never be replayed as a survey token.
``verify`` compares in constant time and checks the expiry (``exp``, Unix seconds) against the
given instant. Tokens carry ids, never personal data beyond what the link needs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

from winback.kit.errors import WinbackError


class BadSignature(WinbackError):
    """A token was tampered with, is malformed, is for another purpose or has expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, purpose: str, body: str) -> str:
    return _b64(hmac.new(key, f"{purpose}\x00{body}".encode(), hashlib.sha256).digest())


def sign(key: bytes, purpose: str, payload: dict, *, expires_at: dt.datetime | None = None) -> str:
    data = dict(payload)
    if expires_at is not None:
        data["exp"] = int(expires_at.timestamp())
    body = _b64(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_mac(key, purpose, body)}"


def verify(key: bytes, purpose: str, token: str, *, now: dt.datetime | None = None) -> dict:
    """The payload of a valid token; raises :class:`BadSignature` otherwise."""
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > 4096:
        raise BadSignature("malformed link token")
    body, mac = token.split(".")
    if not hmac.compare_digest(mac, _mac(key, purpose, body)):
        raise BadSignature("the link's signature does not match (altered or not ours)")
    try:
        data = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError) as exc:  # pragma: no cover - a valid MAC over junk
        raise BadSignature("malformed link token") from exc
    if not isinstance(data, dict):
        raise BadSignature("malformed link token")
    exp = data.get("exp")
    if exp is not None and now is not None and now.timestamp() > float(exp):
        raise BadSignature("the link has expired")
    return data
