"""RFM: recency, frequency and monetary value per customer, quantile scores and named segments.

Data (:func:`rfm_table`), per ``(source, customer_id, currency)`` up to ``observation_end``:

* ``kind="orders"``: completed orders (``status = 'completed'``, ``ordered_at < observation_end``);
  monetary = sum of ``total_amount``;
* ``kind="invoices"``: paid invoices (``status = 'paid'``, paid at ``coalesce(paid_at,
  created_at) < observation_end``); monetary = sum of ``coalesce(amount_paid, amount_due)``;
* ``recency_days``: days (float) from the last purchase to ``observation_end``;
  ``frequency``: number of purchases; ``monetary_minor``: total in minor units of ``currency``
  (a customer who bought in two currencies has two rows: amounts are never added across them).

Scores (:func:`rfm_scores`, Hughes 1994, "Strategic Database Marketing"): each measure becomes
an integer 1..``bins`` by its percentile rank. With ``n`` values and ``rank`` = number of
values strictly smaller (so tied values share the lowest rank of their group, whatever their
order), ``score = 1 + floor(bins x rank / n)``; without ties this puts n/bins customers in each
score like NTILE. Recency is reversed: the most recent purchases get ``bins``.

Segments (:func:`rfm_segments`): the common 11-segment map over recency R and
``FM = round_half_up((F + M) / 2)``, written as data: a list of ``(name, (r_min, r_max),
(fm_min, fm_max))`` rules, the first matching rule wins, ranges inclusive.
:data:`DEFAULT_SEGMENTS` covers all 25 (R, FM) cells of 5-bin scores; pass your own list to
change it (cells no rule matches get ``unmatched``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa

from winback.analytics import metrics

KINDS = ("orders", "invoices")

Rule = tuple[str, tuple[int, int], tuple[int, int]]

#: (name, R range, FM range): first match wins. R = recency score, FM = mean of F and M scores.
DEFAULT_SEGMENTS: list[Rule] = [
    ("Champions", (5, 5), (4, 5)),
    ("Loyal", (3, 4), (4, 5)),
    ("Potential loyalist", (4, 5), (2, 3)),
    ("New", (5, 5), (1, 1)),
    ("Promising", (4, 4), (1, 1)),
    ("Need attention", (3, 3), (3, 3)),
    ("About to sleep", (3, 3), (1, 2)),
    ("Cannot lose them", (1, 2), (5, 5)),
    ("At risk", (1, 2), (3, 4)),
    ("Lost", (1, 1), (1, 1)),
    ("Hibernating", (1, 2), (1, 2)),
]


def rfm_table(con, observation_end: dt.datetime, kind: str = "orders") -> pa.Table:
    """Recency, frequency and monetary value per customer and currency (see the module docstring).

    Columns: ``source, customer_id, currency, last_purchase_at, recency_days, frequency,
    monetary_minor``; sorted by ``(source, customer_id, currency)``.
    """
    t_end = metrics._instant(observation_end)
    if kind == "orders":
        orders = con.table("orders")
        rows = orders.filter((orders.status == "completed") & (orders.ordered_at < t_end))
        rows = rows.select("source", "customer_id", "currency", _at=rows.ordered_at, _amount=rows.total_amount)
    elif kind == "invoices":
        inv = con.table("invoices")
        at = inv.paid_at.coalesce(inv.created_at)
        rows = inv.filter((inv.status == "paid") & (at < t_end))
        rows = rows.select("source", "customer_id", "currency", _at=rows.paid_at.coalesce(rows.created_at),
                           _amount=rows.amount_paid.coalesce(rows.amount_due))
    else:
        raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    agg = rows.group_by(["source", "customer_id", "currency"]).aggregate(
        last_purchase_at=rows._at.max(), frequency=rows.count(), monetary_minor=rows._amount.sum())
    table = agg.to_pyarrow()
    last = metrics.timestamp_micros(table.column("last_purchase_at"))
    recency = (metrics.epoch_micros(observation_end) - last) / 86_400_000_000
    out = pa.table({
        "source": table.column("source").cast(pa.string()),
        "customer_id": table.column("customer_id").cast(pa.string()),
        "currency": table.column("currency").cast(pa.string()),
        "last_purchase_at": pa.array(last, pa.int64()).cast(pa.timestamp("us")),
        "recency_days": pa.array(recency, pa.float64()),
        "frequency": table.column("frequency").cast(pa.int64()),
        "monetary_minor": table.column("monetary_minor").cast(pa.int64()),
    })
    return out.sort_by([("source", "ascending"), ("customer_id", "ascending"), ("currency", "ascending")])


def quantile_scores(values, bins: int = 5, higher_is_better: bool = True) -> np.ndarray:
    """Integer scores 1..``bins`` by percentile rank; ties share the score of their lowest rank."""
    if not isinstance(bins, (int, np.integer)) or isinstance(bins, bool) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    x = np.asarray(values, dtype=float).reshape(-1)
    if np.isnan(x).any():
        raise ValueError("scores need values for every customer: found NaN")
    if not higher_is_better:
        x = -x
    n = x.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ordered = np.sort(x)
    rank = np.searchsorted(ordered, x, side="left")  # values strictly smaller
    return (1 + (bins * rank) // n).astype(np.int64)


@dataclass(frozen=True)
class RFMScores:
    r: np.ndarray
    f: np.ndarray
    m: np.ndarray

    @property
    def fm(self) -> np.ndarray:
        return fm_score(self.f, self.m)


def rfm_scores(recency, frequency, monetary, bins: int = 5) -> RFMScores:
    """Quantile scores 1..``bins`` (recency reversed: recent = ``bins``); arrays of equal length."""
    r, f, m = (np.asarray(v).reshape(-1) for v in (recency, frequency, monetary))
    if not r.size == f.size == m.size:
        raise ValueError(f"recency ({r.size}), frequency ({f.size}) and monetary ({m.size}) differ in length")
    return RFMScores(quantile_scores(r, bins, higher_is_better=False), quantile_scores(f, bins),
                     quantile_scores(m, bins))


def fm_score(f, m) -> np.ndarray:
    """``round_half_up((F + M) / 2)`` as integers."""
    return (np.asarray(f, dtype=np.int64) + np.asarray(m, dtype=np.int64) + 1) // 2


def rfm_segments(r, f, m, segments: Sequence[Rule] = DEFAULT_SEGMENTS, unmatched: str = "unmatched") -> np.ndarray:
    """Segment name per customer from R, F, M scores by the first matching ``(name, r_range, fm_range)`` rule."""
    r = np.asarray(r, dtype=np.int64).reshape(-1)
    fm = fm_score(np.asarray(f).reshape(-1), np.asarray(m).reshape(-1))
    if r.size != fm.size:
        raise ValueError(f"r ({r.size}) and f/m ({fm.size}) differ in length")
    out = np.full(r.size, unmatched, dtype=object)
    free = np.ones(r.size, dtype=bool)
    for rule in segments:
        try:
            name, (r_lo, r_hi), (fm_lo, fm_hi) = rule
        except (TypeError, ValueError):
            raise ValueError(f"a segment rule is (name, (r_min, r_max), (fm_min, fm_max)), got {rule!r}") from None
        hit = free & (r >= r_lo) & (r <= r_hi) & (fm >= fm_lo) & (fm <= fm_hi)
        out[hit] = name
        free &= ~hit
    return out
