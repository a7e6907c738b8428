"""Entry points used by the CLI (``winback worker``, ``winback suppressions``) and the web app."""

from __future__ import annotations

import asyncio
import signal
import threading

from winback.config import Settings
from winback.delivery import outbox, suppression
from winback.delivery.worker import Summary, Worker
from winback.kit.db import make_engine
from winback.kit.errors import WinbackError


def run(settings: Settings, *, worker_id: str | None = None, until_idle: bool = False,
        max_messages: int | None = None, clock=None, handle_signals: bool = False,
        stop: threading.Event | None = None) -> Summary:
    """Run one worker. ``until_idle``: stop when nothing is due; otherwise poll until ``stop``
    is set (or SIGTERM/SIGINT with ``handle_signals``: the current batch is finished first)."""
    stop = stop or threading.Event()
    previous = {}
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        worker = Worker(settings, worker_id=worker_id, clock=clock)
        return asyncio.run(worker.run(until_idle=until_idle, max_messages=max_messages, stop=stop))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_simulated(settings: Settings, *, start, days: float, step_hours: float = 6.0, on_round=None) -> Summary:
    """Catch up ``days`` of sending on a virtual clock (the demo; a backfill): one worker drains
    everything due, the clock moves ``step_hours``, and again. Quiet hours, caps, delays and the
    campaign scheduler all see the virtual time. ``on_round(now, engine)`` runs before each round
    (the demo's billing simulation and dunning worker)."""
    import datetime as dt

    from winback.kit.clock import FixedClock

    clock = FixedClock(start)
    engine = outbox.delivery_engine(settings.resolved_state_url)
    total = Summary()
    try:
        rounds = max(1, int(days * 24 / step_hours))
        for _ in range(rounds + 1):
            if on_round is not None:
                on_round(clock.now(), engine)
            worker = Worker(settings, clock=clock, engine=engine)
            summary = asyncio.run(worker.run(until_idle=True))
            for name in ("sent", "deferred", "retried", "bounced", "failed", "suppressed", "canceled", "scheduled",
                         "batches"):
                setattr(total, name, getattr(total, name) + getattr(summary, name))
            total.seconds += summary.seconds
            clock.advance(seconds=dt.timedelta(hours=step_hours).total_seconds())
    finally:
        engine.dispose()
    return total


def queue_counts(settings: Settings) -> dict[str, int]:
    engine = make_engine(settings.resolved_state_url)
    try:
        with engine.connect() as conn:
            return outbox.queue_counts(conn)
    finally:
        engine.dispose()


def list_suppressions(settings: Settings, address: str | None = None, limit: int | None = None) -> list[dict]:
    engine = make_engine(settings.resolved_state_url)
    try:
        with engine.connect() as conn:
            return suppression.list_suppressions(conn, address, limit)
    finally:
        engine.dispose()


def add_suppression(settings: Settings, address: str, reason: str, scope: str = "all", source: str = "cli",
                    detail: str | None = None) -> bool:
    """Suppress an address. An ``unsubscribed`` reason goes through :func:`suppression.unsubscribe`
    (opt-out and event too, fenced against running workers)."""
    engine = outbox.delivery_engine(settings.resolved_state_url)
    now = settings.clock().now()
    try:
        if reason == "unsubscribed":
            return suppression.unsubscribe(engine, address, source=source, scope=scope, now=now,
                                           detail=detail).newly_suppressed
        with outbox.write_txn(engine) as conn:
            return suppression.add(conn, address, reason, scope=scope, source=source, detail=detail, now=now)
    finally:
        engine.dispose()


def remove_suppression(settings: Settings, address: str, scope: str | None = None) -> int:
    if scope is not None and scope not in suppression.SCOPES:
        raise WinbackError(f"unknown suppression scope {scope!r} (use all or commercial)")
    engine = outbox.delivery_engine(settings.resolved_state_url)
    try:
        with outbox.write_txn(engine) as conn:
            return suppression.remove(conn, address, scope)
    finally:
        engine.dispose()


__all__ = ["Summary", "add_suppression", "list_suppressions", "queue_counts", "remove_suppression", "run"]
