from __future__ import annotations

import datetime as dt

import pytest

from winback.analytics.periods import Period, grain_of, parse_period, period_of, periods_between

UTC = dt.timezone.utc


def d(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(("text", "label", "start", "end"), [
    ("2024", "2024", d(2024, 1, 1), d(2025, 1, 1)),
    ("2024-Q4", "2024-Q4", d(2024, 10, 1), d(2025, 1, 1)),
    ("2024-q1", "2024-Q1", d(2024, 1, 1), d(2024, 4, 1)),
    ("2024-05", "2024-05", d(2024, 5, 1), d(2024, 6, 1)),
    ("2024-12", "2024-12", d(2024, 12, 1), d(2025, 1, 1)),
    (" 2025-H1 ", "2025-H1", d(2025, 1, 1), d(2025, 7, 1)),
    ("2025-h2", "2025-H2", d(2025, 7, 1), d(2026, 1, 1)),
])
def test_parse_period(text, label, start, end):
    p = parse_period(text)
    assert (p.label, p.start, p.end) == (label, start, end)
    assert p.start.tzinfo is UTC
    assert parse_period(p) is p


@pytest.mark.parametrize("text", ["", "24", "2024-13", "2024-00", "2024-Q5", "2024-Q0", "2024-H3", "2024-5",
                                  "2024/05", "Q4 2024", "2024-05-01", "abc", None, 2024])
def test_parse_period_rejects_bad_text(text):
    with pytest.raises(ValueError, match="period"):
        parse_period(text)


def test_half_open_membership():
    p = parse_period("2024-02")
    assert d(2024, 2, 1) in p
    assert d(2024, 2, 29, 23, 59, 59) in p
    assert d(2024, 3, 1) not in p
    assert dt.datetime(2024, 2, 10) in p  # naive = UTC


def test_period_validates_bounds():
    with pytest.raises(ValueError, match="before"):
        Period("x", d(2024, 2, 1), d(2024, 2, 1))
    p = Period("x", dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2, 9, tzinfo=dt.timezone(dt.timedelta(hours=9))))
    assert p.start.tzinfo is UTC and p.end == d(2024, 1, 2)


def test_periods_between_months_and_quarters():
    months = periods_between("2024-11", "2025-02", "month")
    assert [p.label for p in months] == ["2024-11", "2024-12", "2025-01", "2025-02"]
    assert all(a.end == b.start for a, b in zip(months, months[1:]))
    quarters = periods_between("2024", "2025", "quarter")
    assert [p.label for p in quarters] == [f"{y}-Q{q}" for y in (2024, 2025) for q in (1, 2, 3, 4)]
    assert [p.label for p in periods_between("2023-05", "2025-01", "year")] == ["2023", "2024", "2025"]
    assert [p.label for p in periods_between(d(2024, 3, 15), d(2024, 8, 1), "half")] == ["2024-H1", "2024-H2"]
    assert [p.label for p in periods_between(dt.date(2024, 3, 31), dt.date(2024, 4, 1), "month")] == [
        "2024-03", "2024-04"]


def test_periods_between_errors():
    with pytest.raises(ValueError, match="before"):
        periods_between("2025-01", "2024-12", "month")
    with pytest.raises(ValueError, match="grain"):
        periods_between("2024", "2025", "week")


def test_period_of_and_grain_of():
    assert period_of(d(2024, 8, 31, 23), "quarter").label == "2024-Q3"
    assert grain_of("2024-Q3") == "quarter" and grain_of("2024") == "year" and grain_of("2024-07") == "month"
    with pytest.raises(ValueError):
        grain_of("nope")
