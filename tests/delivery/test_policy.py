"""The pure rules: addresses, send windows in the customer's zone, caps, warm-up, backoff, replies."""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import pytest

from winback.delivery.policy import (RateLimiter, address_problem, backoff_seconds, cap_free_at, classify_smtp,
                                     header_value_problem, next_send_time, normalize_address, parse_weekdays,
                                     warmup_allowance, zone)

UTC = dt.timezone.utc
ALL_DAYS = parse_weekdays("mon,tue,wed,thu,fri,sat,sun")


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize("address", ["a@example.com", "first.last+tag@sub.example.co.uk", "x_y@a-b.io"])
def test_good_addresses(address):
    assert address_problem(address) is None


@pytest.mark.parametrize("address, words", [
    ("a@example.com\r\nBcc: evil@example.org", "control characters"),
    ("no-at-sign", "invalid"), ("a@localhost", "invalid"), ("Name <a@example.com>", "invalid"),
    ("a@@example.com", "invalid"), ("ü@example.com", "not ASCII"), ("", "no recipient"),
    ("a" * 65 + "@example.com", "invalid"),
])
def test_bad_addresses_are_refused_with_a_reason(address, words):
    assert words in address_problem(address)


def test_normalize_and_header_values():
    assert normalize_address("  Foo@Example.COM ") == "foo@example.com"
    assert "injection" in header_value_problem("Subject", "Hi\r\nBcc: x@example.com")
    assert header_value_problem("Subject", "Hi there") is None


def test_quiet_hours_wrap_midnight_in_the_customers_zone():
    tokyo = zone("Asia/Tokyo")
    # 12:00Z = 21:00 in Tokyo: quiet until 08:00 local = 23:00Z
    assert next_send_time(at("2026-01-15T12:00:00"), tokyo, 21, 8, ALL_DAYS) == at("2026-01-15T23:00:00")
    # 01:00Z = 10:00 in Tokyo: fine now
    assert next_send_time(at("2026-01-15T01:00:00"), tokyo, 21, 8, ALL_DAYS) == at("2026-01-15T01:00:00")
    # New York, 03:30 local (08:30Z, EST) -> 08:00 local = 13:00Z
    assert next_send_time(at("2026-01-15T08:30:00"), zone("America/New_York"), 21, 8, ALL_DAYS) == \
        at("2026-01-15T13:00:00")


def test_send_weekdays_defer_to_the_next_allowed_local_day():
    weekdays = parse_weekdays("mon-fri")
    assert weekdays == frozenset(range(5))
    # Saturday 2026-01-17 10:00 in Berlin -> Monday 08:00 Berlin (07:00Z)
    got = next_send_time(at("2026-01-17T09:00:00"), zone("Europe/Berlin"), 21, 8, weekdays)
    assert got == at("2026-01-19T07:00:00")
    # Friday 23:00 in Berlin is quiet, Saturday/Sunday excluded -> Monday 08:00
    assert next_send_time(at("2026-01-16T22:00:00"), zone("Europe/Berlin"), 21, 8, weekdays) == \
        at("2026-01-19T07:00:00")


def test_dst_gap_is_handled():
    # 2026-03-29 02:00 does not exist in Berlin; quiet 0-3 local ends at 03:00 CEST = 01:00Z
    got = next_send_time(at("2026-03-29T00:30:00"), zone("Europe/Berlin"), 0, 3, ALL_DAYS)
    assert got == at("2026-03-29T01:00:00")


def test_unknown_zone_falls_back_to_default():
    assert zone("Not/AZone", "Asia/Tokyo").key == "Asia/Tokyo"


def test_frequency_cap_window_frees_when_the_oldest_send_leaves():
    now = at("2026-01-15T12:00:00")
    week = dt.timedelta(days=7)
    sends = [at("2026-01-10T09:00:00"), at("2026-01-13T09:00:00")]
    assert cap_free_at(sends, now, 3, week) is None
    assert cap_free_at(sends, now, 2, week) == at("2026-01-17T09:00:00")
    assert cap_free_at(sends, now, 3, week, extra=1) == at("2026-01-17T09:00:00")
    assert cap_free_at([at("2026-01-01T00:00:00")], now, 1, week) is None  # out of the window


def test_warmup_allowance_and_backoff():
    assert [warmup_allowance([50, 100, 200], d) for d in (1, 2, 3, 4, 30)] == [50, 100, 200, 200, 200]
    rng = random.Random(1)
    delays = [backoff_seconds(a, 60, 3600, rng) for a in range(1, 10)]
    for attempt, delay in enumerate(delays, start=1):
        nominal = min(3600, 60 * 2 ** (attempt - 1))
        assert nominal / 2 <= delay <= nominal
    assert len({round(backoff_seconds(3, 60, 3600, rng), 6) for _ in range(20)}) > 1  # jitter


def test_smtp_reply_classification():
    assert classify_smtp(250).outcome == "sent"
    assert classify_smtp(451, "try later").outcome == "retry"
    assert classify_smtp(None, "timeout").outcome == "retry"
    assert classify_smtp(550, "no such user").outcome == "bounced"
    assert classify_smtp(554, "content", "data").outcome == "bounced"
    assert classify_smtp(553, "sender", "mail").outcome == "failed"


def test_rate_limiter_spaces_tokens():
    now = [0.0]
    slept = []

    async def sleeper(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(10.0, clock=lambda: now[0], sleeper=sleeper)

    async def take(k):
        for _ in range(k):
            await limiter.acquire()

    asyncio.run(take(21))
    assert now[0] == pytest.approx(2.0)  # 1 token in the bucket, then 20 at 10/s
    assert all(s == pytest.approx(0.1) for s in slept)
