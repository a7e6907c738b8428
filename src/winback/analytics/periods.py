"""Reporting periods: half-open UTC intervals ``[start, end)`` named like ``2024``, ``2024-Q4``, ``2024-05``.

A :class:`Period` is what every period metric takes (retention, churn by reason, lost MRR over
time). Instants are aware UTC datetimes; ``start`` belongs to the period, ``end`` does not, so
consecutive periods tile time without overlap (the end of one is the start of the next).

Text forms accepted by :func:`parse_period` (surrounding blanks ignored, letters in any case):

* ``YYYY`` a calendar year, e.g. ``2024``;
* ``YYYY-Hn`` a half year, n in 1..2, e.g. ``2025-H1`` (January to June);
* ``YYYY-Qn`` a quarter, n in 1..4, e.g. ``2024-Q4``;
* ``YYYY-MM`` a calendar month, e.g. ``2024-05``.

:func:`periods_between` lists consecutive periods of one grain (``month``, ``quarter``,
``half``, ``year``) covering a range.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

UTC = dt.timezone.utc
GRAINS = ("month", "quarter", "half", "year")
_MONTHS = {"month": 1, "quarter": 3, "half": 6, "year": 12}
_PATTERN = re.compile(r"^(\d{4})(?:-(?:(\d{2})|[Qq](\d)|[Hh](\d)))?$")


@dataclass(frozen=True, order=True)
class Period:
    """A half-open interval ``[start, end)`` of aware UTC datetimes with a display label."""

    label: str
    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, dt.datetime):
                raise TypeError(f"Period.{name} must be a datetime, got {value!r}")
            object.__setattr__(self, name, _utc(value))
        if not self.start < self.end:
            raise ValueError(f"period {self.label!r}: start {self.start.isoformat()} must be before "
                             f"end {self.end.isoformat()}")

    def __contains__(self, instant: dt.datetime) -> bool:
        return self.start <= _utc(instant) < self.end

    def __str__(self) -> str:
        return self.label


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _month_start(year: int, month0: int) -> dt.datetime:
    """The first instant of month ``month0`` (0-based, may exceed 11) counted from January ``year``."""
    year += month0 // 12
    return dt.datetime(year, month0 % 12 + 1, 1, tzinfo=UTC)


def _label(year: int, month0: int, grain: str) -> str:
    if grain == "year":
        return f"{year:04d}"
    if grain == "half":
        return f"{year:04d}-H{month0 // 6 + 1}"
    if grain == "quarter":
        return f"{year:04d}-Q{month0 // 3 + 1}"
    return f"{year:04d}-{month0 + 1:02d}"


def period_of(instant: dt.datetime, grain: str) -> Period:
    """The period of ``grain`` that contains ``instant``."""
    step = _grain_months(grain)
    instant = _utc(instant)
    month0 = (instant.month - 1) // step * step
    return Period(_label(instant.year, month0, grain), _month_start(instant.year, month0),
                  _month_start(instant.year, month0 + step))


def _grain_months(grain: str) -> int:
    try:
        return _MONTHS[grain]
    except (KeyError, TypeError):
        raise ValueError(f"unknown grain {grain!r}: expected one of {', '.join(GRAINS)}") from None


def grain_of(text: str) -> str:
    """The grain a period label is written in (``2024`` -> year, ``2024-05`` -> month ...)."""
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(_bad(text))
    _, month, quarter, half = match.groups()
    return "month" if month else "quarter" if quarter else "half" if half else "year"


def _bad(text) -> str:
    return (f"cannot read period {text!r}: expected a year (2024), half year (2025-H1), "
            f"quarter (2024-Q4) or month (2024-05)")


def parse_period(text: str | Period) -> Period:
    """Read ``2024`` | ``2025-H1`` | ``2024-Q4`` | ``2024-05`` as a :class:`Period` (a Period passes through).

    Raises ValueError naming the text and the accepted forms when it is anything else.
    """
    if isinstance(text, Period):
        return text
    if not isinstance(text, str):
        raise ValueError(_bad(text))
    match = _PATTERN.match(text.strip())
    if not match:
        raise ValueError(_bad(text))
    year_text, month, quarter, half = match.groups()
    year = int(year_text)
    if year < 1:
        raise ValueError(f"cannot read period {text!r}: year must be 0001 or later")
    if month is not None:
        m = int(month)
        if not 1 <= m <= 12:
            raise ValueError(f"cannot read period {text!r}: month must be 01..12")
        return period_of(dt.datetime(year, m, 1, tzinfo=UTC), "month")
    if quarter is not None:
        q = int(quarter)
        if not 1 <= q <= 4:
            raise ValueError(f"cannot read period {text!r}: quarter must be Q1..Q4")
        return period_of(dt.datetime(year, 3 * q - 2, 1, tzinfo=UTC), "quarter")
    if half is not None:
        h = int(half)
        if not 1 <= h <= 2:
            raise ValueError(f"cannot read period {text!r}: half must be H1 or H2")
        return period_of(dt.datetime(year, 6 * h - 5, 1, tzinfo=UTC), "half")
    return period_of(dt.datetime(year, 1, 1, tzinfo=UTC), "year")


def _as_bounds(value: str | Period | dt.datetime | dt.date) -> tuple[dt.datetime, dt.datetime]:
    """(first instant, last instant + 1 microsecond's worth: the exclusive end) of a period-like value."""
    if isinstance(value, dt.datetime):
        instant = _utc(value)
        return instant, instant + dt.timedelta(microseconds=1)
    if isinstance(value, dt.date):
        instant = dt.datetime.combine(value, dt.time(), UTC)
        return instant, instant + dt.timedelta(microseconds=1)
    period = parse_period(value)
    return period.start, period.end


def periods_between(first: str | Period | dt.datetime | dt.date, last: str | Period | dt.datetime | dt.date,
                    grain: str = "month") -> list[Period]:
    """Consecutive periods of ``grain`` from the one containing ``first`` to the one containing ``last``.

    ``first`` and ``last`` are period labels, Periods, datetimes or dates; a period argument
    stands for all of its instants, so ``periods_between("2024", "2025", "quarter")`` gives the
    eight quarters of 2024 and 2025. Raises ValueError when ``last`` lies before ``first``.
    """
    step = _grain_months(grain)
    lo, _ = _as_bounds(first)
    _, hi = _as_bounds(last)
    last_instant = hi - dt.timedelta(microseconds=1)
    if last_instant < lo:
        raise ValueError(f"periods_between: {last!s} lies before {first!s}")
    out = []
    current = period_of(lo, grain)
    while current.start <= last_instant:
        out.append(current)
        nxt = current.end
        month0 = nxt.month - 1
        current = Period(_label(nxt.year, month0, grain), nxt, _month_start(nxt.year, month0 + step))
    return out
