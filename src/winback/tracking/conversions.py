"""``winback attribute``: turn conversion events into ``conversions`` rows, last-touch attributed.

A conversion is a ``customer_events`` row whose type is in ``[tracking] conversion_types``
(returned, resubscribed, purchased, payment_recovered, coupon_redeemed by default). Its revenue
is the first of the event properties ``revenue_minor``, ``amount_minor``, ``mrr_minor`` (integer
minor units, >= 0) with ``currency`` (ISO 4217 letters). A property that is negative, fractional,
a boolean or not a number is not guessed at: the conversion is kept with revenue 0 and the event
is listed under ``ignored_revenue`` with the reason.

The credit goes to the last message *sent* (status ``sent``, channel email or task) to the
customer at or before the conversion and at most ``attribution_window_days`` before it
(:mod:`winback.tracking.attribution`). Unique per ``customer_event_id``: re-running adds nothing.
Bounced messages take no credit (they never arrived).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter

from sqlalchemy import Engine

from winback.kit.db import make_engine, write_transaction
from winback.tracking import repository as repo
from winback.tracking.attribution import Touch, last_touch

REVENUE_KEYS = ("revenue_minor", "amount_minor", "mrr_minor")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


def parse_revenue(properties: str | dict | None,
                  default_currency: str | None = None) -> tuple[int, str | None, str | None]:
    """``(revenue_minor, currency, problem)`` from an event's properties; revenue 0 with a reason when unusable."""
    props = properties if isinstance(properties, dict) else repo.json_obj(properties)
    currency = props.get("currency")
    currency = currency.upper() if isinstance(currency, str) and _CURRENCY.match(currency.strip()) else None
    for key in REVENUE_KEYS:
        if key not in props or props[key] is None:
            continue
        value = props[key]
        if isinstance(value, bool):
            return 0, currency, f"{key} is not a number ({value!r})"
        if isinstance(value, str):
            text = value.strip()
            if not re.fullmatch(r"-?\d+", text):
                return 0, currency, f"{key} is not an integer amount of minor units ({value[:40]!r})"
            value = int(text)
        if isinstance(value, float):
            if not math.isfinite(value) or value != int(value):
                return 0, currency, f"{key} is not an integer amount of minor units ({value!r})"
            value = int(value)
        if not isinstance(value, int):
            return 0, currency, f"{key} is not a number ({type(value).__name__})"
        if value < 0:
            return 0, currency, f"{key} is negative ({value})"
        if value > 10 ** 15:
            return 0, currency, f"{key} is implausibly large ({value})"
        if value > 0 and currency is None:
            if props.get("currency") not in (None, ""):
                return 0, None, f"currency is not an ISO 4217 code ({str(props.get('currency'))[:20]!r})"
            currency = default_currency
        return value, currency, None
    return 0, currency, None


def attribute(settings, *, now: dt.datetime | None = None, engine: Engine | None = None) -> dict:
    """Write a ``conversions`` row for every new conversion event; returns what was done."""
    now = now or settings.clock().now()
    window = dt.timedelta(days=settings.tracking.attribution_window_days)
    types = list(settings.tracking.conversion_types)
    own = engine is None
    engine = engine or make_engine(settings.resolved_state_url)
    try:
        with write_transaction(engine) as conn:
            events = repo.pending_conversion_events(conn, types, now)
            if not events:
                return _summary(0, 0, Counter(), [])
            since = min(e["occurred_at"] for e in events) - window
            until = max(e["occurred_at"] for e in events)
            messages = repo.sent_messages_for(conn, (e["customer_id"] for e in events), since, until)
            by_id = {m["id"]: m for m in messages}
            touches = [Touch(m["id"], m["customer_id"], m["sent_at"]) for m in messages]
            credited = last_touch([(e["customer_id"], e["occurred_at"]) for e in events], touches, window)
            rows, ignored = [], []
            for e, touch in zip(events, credited):
                revenue, currency, problem = parse_revenue(e["properties"], settings.ingest.default_currency)
                if problem:
                    ignored.append({"event_id": e["event_id"], "reason": problem})
                m = by_id[touch.id] if touch else {}
                rows.append({
                    "customer_event_id": e["id"], "customer_id": e["customer_id"], "type": e["type"],
                    "occurred_at": e["occurred_at"], "revenue_minor": revenue, "currency": currency,
                    "message_id": m.get("id"), "campaign_id": m.get("campaign_id"),
                    "enrollment_id": m.get("enrollment_id"), "step": m.get("step"), "variant": m.get("variant"),
                    "model": "last_touch", "attributed_at": now,
                })
            written = repo.insert_conversions(conn, rows)
            rows = [r for r in rows if r["customer_event_id"] in written]  # a concurrent run may have won some
            attributed = sum(1 for r in rows if r["message_id"] is not None)
            revenue: Counter = Counter()
            for r in rows:
                if r["revenue_minor"] and r["currency"]:
                    revenue[r["currency"]] += r["revenue_minor"]
            return _summary(len(rows), attributed, revenue, ignored)
    finally:
        if own:
            engine.dispose()


def _summary(conversions: int, attributed: int, revenue: Counter, ignored: list[dict]) -> dict:
    return {"conversions": conversions, "attributed": attributed, "unattributed": conversions - attributed,
            "revenue_minor_by_currency": dict(sorted(revenue.items())), "ignored_revenue": ignored}

