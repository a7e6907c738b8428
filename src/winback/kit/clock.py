"""Injectable time. Code asks a :class:`Clock` for ``now()``; tests and the demo pin it."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

UTC = dt.timezone.utc


class Clock(Protocol):
    def now(self) -> dt.datetime:  # aware, UTC
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


class FixedClock:
    """A clock that reads a set instant and moves only when told to."""

    def __init__(self, instant: dt.datetime):
        self._now = as_utc(instant)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, **delta: float) -> None:
        self._now += dt.timedelta(**delta)


def as_utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC datetime; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_instant(text: str) -> dt.datetime:
    """Parse an ISO 8601 date or date-time (``2025-09-30``, ``2025-09-30T12:00:00+09:00``)."""
    text = text.strip()
    if len(text) == 10:
        return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), UTC)
    return as_utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
