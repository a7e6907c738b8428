"""Pure delivery rules (no I/O): addresses, send windows, frequency caps, warm-up, backoff, SMTP replies.

Everything here takes its inputs explicitly (instants are aware UTC datetimes) so that the
worker's decisions can be unit-tested without a database or a server.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.timezone.utc
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# --- addresses and header values ---------------------------------------------------------------

_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"^{_LOCAL}@{_LABEL}(?:\.{_LABEL})+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,75}$")


def normalize_address(address: str | None) -> str:
    """The form suppressions are stored and compared in: trimmed, lower-cased."""
    return (address or "").strip().lower()


def address_problem(address: str | None) -> str | None:
    """Why ``address`` cannot be used as a recipient (``None`` when it is fine).

    Only plain ASCII ``local@domain.tld`` addresses are accepted: no display names, no
    comments, no line breaks (header injection), at most 254 characters.
    """
    if address is None or not str(address).strip():
        return "no recipient address"
    text = str(address)
    if _CONTROL.search(text):
        return f"recipient address {text!r} contains control characters (CR/LF header injection?)"
    text = text.strip()
    if len(text) > 254:
        return "recipient address is longer than 254 characters"
    if not text.isascii():
        return f"recipient address {text!r} is not ASCII (SMTPUTF8 addresses are not supported)"
    local = text.rsplit("@", 1)[0] if "@" in text else ""
    if len(local) > 64 or not _ADDRESS.match(text):
        return f"invalid recipient address {text!r}"
    return None


def header_value_problem(name: str, value: object) -> str | None:
    """Why a header value cannot be written (CR/LF or other control characters, too long)."""
    if not isinstance(value, str):
        return f"header {name} must be text, got {type(value).__name__}"
    if _CONTROL.search(value.replace("\t", " ")):
        return f"header {name} contains CR/LF or control characters (header injection refused)"
    if len(value) > 990:
        return f"header {name} is longer than 990 characters"
    return None


def header_name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not _HEADER_NAME.match(name):
        return f"invalid header name {name!r}"
    return None


def domain_of(address: str) -> str:
    return normalize_address(address).rsplit("@", 1)[-1]


# --- time zones, quiet hours and send windows ----------------------------------------------------

def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """The customer's zone, or the default when missing or unknown."""
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")  # pragma: no cover


def parse_weekdays(text: str) -> frozenset[int]:
    """``"mon,tue,fri"`` -> {0, 1, 4} (Python weekday numbers); ranges like ``mon-fri`` too."""
    days: set[int] = set()
    for raw in text.split(","):
        part = raw.strip().lower()
        if not part:
            continue
        ends = [x.strip()[:3] for x in part.split("-", 1)]
        for name in ends:
            if name not in WEEKDAYS:
                raise ValueError(f"unknown weekday {name!r} (use mon, tue, wed, thu, fri, sat, sun)")
        i, j = WEEKDAYS.index(ends[0]), WEEKDAYS.index(ends[-1])
        while True:
            days.add(i)
            if i == j:
                break
            i = (i + 1) % 7
    return frozenset(days)


def _quiet(hour: int, start: int, end: int) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


def next_send_time(now: dt.datetime, tz: ZoneInfo, quiet_start: int, quiet_end: int,
                   weekdays: frozenset[int]) -> dt.datetime:
    """The first instant at or after ``now`` that is outside quiet hours on an allowed local weekday.

    Quiet hours ``[quiet_start, quiet_end)`` may wrap midnight (21 -> 8). Local times are
    resolved with zoneinfo, so DST gaps and folds are handled by walking whole local hours.
    """
    if not weekdays:
        raise ValueError("no weekday is allowed for sending")
    local = now.astimezone(tz)
    if not _quiet(local.hour, quiet_start, quiet_end) and local.weekday() in weekdays:
        return now
    # walk forward hour by hour (at most 8 days) to the first allowed local hour start
    candidate = local.replace(minute=0, second=0, microsecond=0)
    for _ in range(24 * 8 + 2):
        candidate = (candidate.astimezone(UTC) + dt.timedelta(hours=1)).astimezone(tz)
        if not _quiet(candidate.hour, quiet_start, quiet_end) and candidate.weekday() in weekdays:
            return max(candidate.astimezone(UTC), now)
    raise ValueError("no allowed send time within 8 days")  # pragma: no cover


# --- frequency cap -----------------------------------------------------------------------------

def cap_free_at(sent_times: list[dt.datetime], now: dt.datetime, limit: int, window: dt.timedelta,
                extra: int = 0) -> dt.datetime | None:
    """When one more commercial message may be sent, given the customer's recent sends.

    ``sent_times``: sends in the window ending at ``now``; ``extra``: sends already approved in
    this round (they count as sent at ``now``). Returns ``None`` when a slot is free now, else
    the instant the oldest blocking send leaves the rolling window.
    """
    times = sorted(t for t in sent_times if t > now - window) + [now] * extra
    if len(times) < limit:
        return None
    # the window holds len(times) sends; it frees when the (len - limit + 1)-th oldest leaves it
    return times[len(times) - limit] + window


# --- warm-up -----------------------------------------------------------------------------------

def warmup_allowance(schedule: list[int], day_number: int) -> int:
    """Messages allowed on day ``day_number`` (1 = the sending domain's first day)."""
    if not schedule:
        return 10**12
    index = min(max(day_number, 1), len(schedule)) - 1
    return int(schedule[index])


def next_utc_midnight(now: dt.datetime) -> dt.datetime:
    day = now.astimezone(UTC).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), UTC)


def utc_day_start(now: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(now.astimezone(UTC).date(), dt.time(), UTC)


# --- retries -----------------------------------------------------------------------------------

def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half of ``min(cap, base * 2**(attempt-1))`` fixed,
    the other half random, so retries of many messages spread out but never come back sooner than
    half the nominal delay."""
    nominal = min(cap, base * math.pow(2.0, max(attempt, 1) - 1))
    r = (rng or random).random()
    return nominal / 2.0 + r * nominal / 2.0


@dataclass(frozen=True)
class SmtpVerdict:
    outcome: str  # sent | retry | bounced | failed
    code: int | None
    detail: str


def classify_smtp(code: int | None, detail: str = "", stage: str = "rcpt") -> SmtpVerdict:
    """Map an SMTP reply to an outcome.

    2xx sent; 4xx (and no code: connection error or timeout) retry; 5xx to RCPT or DATA is a
    bounce (the address gets a ``hard_bounce`` suppression); 5xx to MAIL FROM is our sender's
    problem, not the recipient's: the message fails without suppressing anyone.
    """
    detail = " ".join(str(detail).split())[:500]
    if code is None:
        return SmtpVerdict("retry", None, detail or "connection error")
    if 200 <= code < 300:
        return SmtpVerdict("sent", code, detail)
    if 400 <= code < 500:
        return SmtpVerdict("retry", code, detail)
    if 500 <= code < 600:
        if stage == "mail":
            return SmtpVerdict("failed", code, f"sender refused: {detail}")
        return SmtpVerdict("bounced", code, detail)
    return SmtpVerdict("retry", code, f"unexpected reply: {detail}")


# --- rate limit --------------------------------------------------------------------------------

class RateLimiter:
    """Token bucket: ``rate`` tokens per second, bucket of ``burst`` tokens (default 1: even spacing).

    ``clock`` and ``sleeper`` are injectable (``time.monotonic`` and ``asyncio.sleep``)."""

    def __init__(self, rate: float, burst: float = 1.0, clock=None, sleeper=None):
        import asyncio
        import time

        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self._clock = clock or time.monotonic
        self._sleep = sleeper or asyncio.sleep
        self._tokens = self.burst
        self._last = self._clock()
        self._lock = asyncio.Lock()

    def delay_for_next(self) -> float:
        """Seconds to wait before one more token is available (and take it)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        async with self._lock:
            wait = self.delay_for_next()
            if wait > 0:
                await self._sleep(wait)
