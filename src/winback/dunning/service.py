"""Dunning entry points: process stored billing webhooks, run due retries, schedule notices, card updates.

``tick`` is one round of the dunning worker (``winback dunning run``, ``winback serve --with-worker``
and the demo call it): parse and apply the billing webhooks stored since the last round, charge the
cases that are due, queue the customer notices and card-expiry reminders. Every step is safe to
run from several processes at once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid

from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from winback.dunning.apply import CASES, apply_event, retry_open_cases, set_default_card, upsert_card
from winback.dunning.events import CardEvent
from winback.dunning.gateways import make_gateway
from winback.dunning.gateways.base import CardInfo
from winback.dunning.retries import Retrier, claim_due
from winback.kit.clock import FixedClock
from winback.kit.db import make_engine, write_transaction
from winback.kit.errors import WinbackError
from winback.models.tracking import WebhookEvent

log = logging.getLogger(__name__)
WEBHOOKS = WebhookEvent.__table__
BILLING_PROVIDERS = ("stripe", "standard", "sandbox")
WEBHOOK_LEASE = dt.timedelta(minutes=5)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class _Now:
    def __init__(self, now: dt.datetime):
        self._now = now

    def now(self) -> dt.datetime:
        return self._now


def _clock(settings, clock=None, now: dt.datetime | None = None):
    if now is not None:
        return _Now(now)
    return clock or settings.clock()


# --- webhooks -------------------------------------------------------------------------------------------

def _claim_webhooks(engine: Engine, now: dt.datetime, limit: int) -> list[dict]:
    with write_transaction(engine) as conn:
        due = and_(WEBHOOKS.c.provider.in_(BILLING_PROVIDERS),
                   or_(WEBHOOKS.c.status == "received",
                       and_(WEBHOOKS.c.status == "processing", WEBHOOKS.c.processed_at < now - WEBHOOK_LEASE)))
        stmt = select(WEBHOOKS.c.id).where(due).order_by(WEBHOOKS.c.id).limit(limit)
        if engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        ids = [r[0] for r in conn.execute(stmt).all()]
        if not ids:
            return []
        conn.execute(update(WEBHOOKS).where(WEBHOOKS.c.id.in_(ids)).values(status="processing", processed_at=now))
        return [dict(r) for r in conn.execute(select(WEBHOOKS).where(WEBHOOKS.c.id.in_(ids))).mappings().all()]


def process_webhooks(settings, *, engine: Engine, now: dt.datetime | None = None, limit: int = 500) -> dict:
    """Parse and apply stored billing webhooks (oldest event first within a batch). Each event is
    applied in its own transaction; a bad one is marked ``failed`` with the reason and the rest go on."""
    from winback.dunning.providers import parse_event

    now = now or settings.clock().now()
    counts = {"applied": 0, "stale": 0, "ignored": 0, "failed": 0}
    while True:
        rows = _claim_webhooks(engine, now, limit)
        if not rows:
            return counts
        parsed = []
        for row in rows:
            try:
                parsed.append((parse_event(row["provider"], row["payload"], event_id=_event_id(row)), row))
            except WinbackError as exc:
                _finish_webhook(engine, row["id"], "failed", str(exc)[:500], now)
                counts["failed"] += 1
        parsed.sort(key=lambda p: (p[0].occurred_at, p[1]["id"]))
        for ev, row in parsed:
            try:
                with write_transaction(engine) as conn:
                    outcome = apply_event(conn, settings, ev, now)
                    conn.execute(update(WEBHOOKS).where(WEBHOOKS.c.id == row["id"]).values(
                        status="ignored" if outcome == "ignored" else "processed",
                        error="stale: older than the state it would change" if outcome == "stale" else None,
                        processed_at=now))
                counts[outcome] += 1
            except IntegrityError as exc:  # another worker created the same case at the same moment: again
                tries = (row.get("error") or "").count("conflict") + 1
                status = "received" if tries < 3 else "failed"
                _finish_webhook(engine, row["id"], status, f"conflict {tries}: {' '.join(str(exc).split())[:300]}",
                                now if status == "failed" else None)
                key = "failed" if status == "failed" else "retried"
                counts[key] = counts.get(key, 0) + 1
            except Exception as exc:  # one broken event must not stop the others
                log.exception("dunning: webhook %s (%s) failed", row["event_id"], row["type"])
                _finish_webhook(engine, row["id"], "failed", f"{type(exc).__name__}: {exc}"[:500], now)
                counts["failed"] += 1
        if len(rows) < limit:
            return counts


def _event_id(row: dict) -> str | None:
    """The stored event id without the provider prefix some endpoints add."""
    event_id = row.get("event_id") or ""
    prefix = f"{row['provider']}:"
    return event_id[len(prefix):] if event_id.startswith(prefix) else event_id or None


def _finish_webhook(engine: Engine, row_id: int, status: str, error: str | None, now: dt.datetime | None) -> None:
    with write_transaction(engine) as conn:
        conn.execute(update(WEBHOOKS).where(WEBHOOKS.c.id == row_id).values(status=status, error=error,
                                                                            processed_at=now))


# --- retries --------------------------------------------------------------------------------------------

def run_due(settings, *, engine: Engine, gateway=None, clock=None, now: dt.datetime | None = None,
            worker: str | None = None, limit: int = 200) -> dict:
    """Work every case whose next step is due: charge, wait, or give up when retries are over."""
    clock = _clock(settings, clock, now)
    gateway = gateway or make_gateway(settings, engine=engine, clock=clock)
    worker = worker or default_worker_id()
    retrier = Retrier(settings, engine, gateway, clock, worker)
    counts: dict[str, int] = {}
    while True:
        cases = claim_due(engine, worker, clock.now(), settings.dunning.lease_seconds, limit, provider=gateway.name)
        for case in cases:
            outcome = retrier.work(case)["outcome"]
            counts[outcome] = counts.get(outcome, 0) + 1
        if len(cases) < limit:
            return counts


def schedule_notices(settings, *, engine: Engine, now: dt.datetime, expiry: bool = True) -> dict:
    """Queue due failed-payment notices and (with ``expiry``) card-expiry reminders."""
    from winback.dunning import notices

    if not settings.dunning.notices:
        return {"case_notices": 0, "expiry_reminders": 0}
    with write_transaction(engine) as conn:
        cases = notices.schedule_case_notices(conn, settings, now)
        reminders = notices.schedule_expiry_reminders(conn, settings, now) if expiry else 0
    return {"case_notices": cases, "expiry_reminders": reminders}


EXPIRY_EVERY = dt.timedelta(hours=1)  # reminders are by the day: one scan of the cards an hour is plenty


def tick(settings, *, engine: Engine, gateway=None, clock=None, now: dt.datetime | None = None,
         worker: str | None = None, state: dict | None = None) -> dict:
    """One round of the dunning worker (see the module docstring). ``state`` (kept by a long-running
    worker between rounds) limits the card-expiry scan to once per hour."""
    clock = _clock(settings, clock, now)
    gateway = gateway or make_gateway(settings, engine=engine, clock=clock)
    t = clock.now()
    result = {"webhooks": process_webhooks(settings, engine=engine, now=t)}
    result["charges"] = run_due(settings, engine=engine, gateway=gateway, clock=clock, worker=worker)
    t = clock.now()
    expiry = state is None or state.get("expiry_at") is None or t - state["expiry_at"] >= EXPIRY_EVERY
    result["notices"] = schedule_notices(settings, engine=engine, now=t, expiry=expiry)
    if expiry and state is not None:
        state["expiry_at"] = t
    return result


def run(settings, *, until_idle: bool = False, poll_seconds: float = 5.0, stop: threading.Event | None = None,
        clock=None, engine: Engine | None = None, gateway=None, worker: str | None = None) -> dict:
    """The dunning worker loop: ``tick`` every ``poll_seconds`` until ``stop`` (or once, ``until_idle``)."""
    stop = stop or threading.Event()
    own = engine is None
    engine = engine or make_engine(settings.resolved_state_url)
    worker = worker or default_worker_id()
    totals: dict = {"rounds": 0}
    state: dict = {}
    try:
        gateway = gateway or make_gateway(settings, engine=engine, clock=clock or settings.clock())
        while True:
            result = tick(settings, engine=engine, gateway=gateway, clock=clock, worker=worker, state=state)
            totals["rounds"] += 1
            for group in ("webhooks", "charges", "notices"):
                for name, value in result[group].items():
                    totals[f"{group}.{name}"] = totals.get(f"{group}.{name}", 0) + value
            if until_idle or stop.wait(poll_seconds):
                return totals
    finally:
        if own:
            engine.dispose()


# --- a new card -----------------------------------------------------------------------------------------

def update_card(settings, *, engine: Engine, provider: str, customer_ref: str, card: CardInfo,
                via: str = "customer", now: dt.datetime | None = None, gateway=None, charge_now: bool = True,
                clock=None) -> dict:
    """The customer gave a new card (the card-update page) or the card updater renewed one: store it,
    make it the default, and charge the customer's open failed invoices with it now.

    Returns ``{"card": ..., "cases": [ids], "charges": [{invoice_ref, status, decline_code,
    amount_minor, currency}]}`` (``charges`` empty when ``charge_now`` is false: the worker charges
    them on its next round)."""
    clock = _clock(settings, clock, now)
    t = clock.now()
    event = CardEvent(ref=card.ref, customer_ref=customer_ref, brand=card.brand, last4=card.last4,
                      exp_month=card.exp_month, exp_year=card.exp_year, fingerprint=card.fingerprint)
    trigger = "card_updater" if via == "card_updater" else "customer_update"
    with write_transaction(engine) as conn:
        upsert_card(conn, provider, event, via=via, at=t, now=t)
        cases = set_default_card(conn, provider, customer_ref, card.ref, at=t, now=t, trigger=trigger)
        cases += [c for c in retry_open_cases(conn, provider, customer_ref=customer_ref, payment_method_ref=card.ref,
                                              trigger=trigger, now=t) if c not in cases]
    result = {"card": {"ref": card.ref, "brand": card.brand, "last4": card.last4, "exp_month": card.exp_month,
                       "exp_year": card.exp_year}, "cases": sorted(cases), "charges": []}
    if not charge_now or not cases:
        return result
    gateway = gateway or make_gateway(settings, engine=engine, clock=clock)
    if gateway.name != provider:  # another billing system's invoices: it charges them itself
        return result
    worker = f"card-update:{uuid.uuid4().hex[:8]}"
    retrier = Retrier(settings, engine, gateway, clock, worker)
    for claimed in _claim_now(engine, worker, t, settings.dunning.lease_seconds, sorted(cases)):
        outcome = retrier.work(claimed)
        result["charges"].append({"invoice_ref": claimed["invoice_ref"], "amount_minor": claimed["amount_minor"],
                                  "currency": claimed["currency"],
                                  "status": _charge_status(outcome["outcome"]),
                                  "decline_code": outcome.get("decline_code")})
    return result


def _claim_now(engine: Engine, worker: str, now: dt.datetime, lease: float, case_ids: list[int]) -> list[dict]:
    """Claim these cases for an immediate charge; a case another worker holds is left to it (waiting
    briefly for a lease that is about to end would only slow the page)."""
    deadline = time.monotonic() + 2.0
    claimed = claim_due(engine, worker, now, lease, len(case_ids), case_ids=case_ids)
    while len(claimed) < len(case_ids) and time.monotonic() < deadline:
        time.sleep(0.1)
        more = claim_due(engine, worker, now, lease, len(case_ids),
                         case_ids=[c for c in case_ids if c not in {x["id"] for x in claimed}])
        claimed += more
    return claimed


def _charge_status(outcome: str) -> str:
    return {"succeeded": "succeeded", "already_paid": "succeeded", "failed": "failed", "error": "error",
            "gateway_error": "error"}.get(outcome, "skipped")


def open_cases_for_customer(engine: Engine, customer_id: int) -> list[dict]:
    """Open failed invoices of a customer (the card-update page)."""
    with engine.connect() as conn:
        rows = conn.execute(select(CASES).where(CASES.c.customer_id == customer_id, CASES.c.status == "open")
                            .order_by(CASES.c.first_failed_at)).mappings().all()
    return [dict(r) for r in rows]


def store_sandbox_event(engine: Engine, event: dict, *, now: dt.datetime) -> bool:
    """Store an event of the sandbox billing system as if its webhook had arrived (the demo)."""
    from winback.kit.db import insert_ignore

    with write_transaction(engine) as conn:
        return insert_ignore(conn, WEBHOOKS, [dict(
            provider="sandbox", event_id=event["id"], type=event["type"],
            payload=json.dumps(event, separators=(",", ":")), headers=None, status="received", error=None,
            received_at=now, processed_at=None)], ["provider", "event_id"]) > 0


__all__ = ["process_webhooks", "run_due", "tick", "run", "update_card", "open_cases_for_customer",
           "schedule_notices", "store_sandbox_event", "FixedClock"]


def status(settings, *, engine: Engine | None = None) -> dict:
    """What the dunning worker has to do and what went wrong: webhooks by status (with the latest
    failures), cases by status, the next charge due, cases waiting for a new card."""
    from sqlalchemy import func

    own = engine is None
    engine = engine or make_engine(settings.resolved_state_url)
    try:
        with engine.connect() as conn:
            hooks = {f"{p}:{s}": n for p, s, n in conn.execute(
                select(WEBHOOKS.c.provider, WEBHOOKS.c.status, func.count()).where(
                    WEBHOOKS.c.provider.in_(BILLING_PROVIDERS)).group_by(WEBHOOKS.c.provider, WEBHOOKS.c.status))}
            failed = [dict(r._mapping) for r in conn.execute(
                select(WEBHOOKS.c.provider, WEBHOOKS.c.event_id, WEBHOOKS.c.type, WEBHOOKS.c.error,
                       WEBHOOKS.c.received_at).where(WEBHOOKS.c.provider.in_(BILLING_PROVIDERS),
                                                     WEBHOOKS.c.status == "failed")
                .order_by(WEBHOOKS.c.id.desc()).limit(5))]
            cases = {s: n for s, n in conn.execute(select(CASES.c.status, func.count()).where(
                CASES.c.first_failed_at.is_not(None)).group_by(CASES.c.status))}
            waiting = conn.execute(select(func.count()).select_from(CASES).where(
                CASES.c.status == "open", CASES.c.needs_update.is_(True))).scalar_one()
            due = conn.execute(select(func.min(CASES.c.next_attempt_at)).where(CASES.c.status == "open")).scalar()
    finally:
        if own:
            engine.dispose()
    for r in failed:
        r["received_at"] = r["received_at"].isoformat() if r["received_at"] else None
    return {"gateway": settings.dunning.gateway, "webhooks": hooks, "failed_webhooks": failed, "cases": cases,
            "waiting_for_new_card": waiting, "next_step_at": due.isoformat() if due else None}
