"""Billing webhook bodies -> :class:`~winback.dunning.events.BillingEvent` (one shape for all senders).

:func:`parse_event` is what the worker calls on a stored ``webhook_events`` row:

* ``stripe`` - a Stripe Event object (:mod:`.stripe_events`);
* ``standard`` - the plain JSON format of :mod:`.standard_events`, sent by any other billing system
  with Standard Webhooks signatures; the event id is the ``webhook-id`` header, passed here as
  ``event_id`` (a body ``id`` wins when present);
* ``sandbox`` - the built-in sandbox gateway, in the standard format.

Parsing is pure (no I/O, no clock). A body that cannot be an event (not JSON, no id, no creation
time, no object for a type that needs one, a field of the wrong type) raises
:class:`BadBillingEvent` with a one-line reason; a well-formed event of a type dunning does not use
is returned with ``kind == "ignored"``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from winback.dunning.events import BillingEvent
from winback.kit.errors import WinbackError

__all__ = ["BadBillingEvent", "PROVIDERS", "parse_event"]

PROVIDERS = ("stripe", "standard", "sandbox")
UTC = dt.timezone.utc


class BadBillingEvent(WinbackError):
    """A billing webhook body is not a usable event; the message says what is wrong."""


def parse_event(provider: str, raw: bytes | str, *, event_id: str | None = None) -> BillingEvent:
    """Parse one webhook body of ``provider`` (``stripe``, ``standard`` or ``sandbox``).

    ``event_id`` is the id the delivery was stored under (Standard Webhooks: the ``webhook-id``
    header); it is used when the body carries none."""
    if provider not in PROVIDERS:
        raise BadBillingEvent(f"unknown billing provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray, memoryview)) else raw
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadBillingEvent(f"{provider}: the body is not JSON ({str(exc)[:120]})") from None
    if not isinstance(payload, dict):
        raise BadBillingEvent(f"{provider}: the body is not a JSON object")
    if provider == "stripe":
        from winback.dunning.providers import stripe_events

        return stripe_events.parse(payload, event_id=event_id)
    from winback.dunning.providers import standard_events

    return standard_events.parse(payload, provider=provider, event_id=event_id)


# --- small readers shared by the parsers (lenient about shape, strict about types) -------------

def dig(obj: Any, *path: str) -> Any:
    """``obj[p0][p1]...`` or None when any step is missing or not an object."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def ref(value: Any) -> str | None:
    """An object's id whether it is sent as the id or expanded to the object."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"].strip() or None
    return None


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def from_unix(value: Any) -> dt.datetime | None:
    seconds = as_int(value)
    if seconds is None:
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def upper(value: Any) -> str | None:
    return value.upper() if isinstance(value, str) and value else None
