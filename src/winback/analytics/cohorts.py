"""Cohort retention matrix: of the customers who first paid in period c, how many paid in period c + k.

Definitions (paying spells as in :mod:`winback.analytics.metrics`):

* a customer's **cohort** is the period (``grain``: month, quarter, half or year) of their first
  ``paid_start``;
* **age** k is the number of whole periods since the cohort period (age 0 = the cohort period);
* a customer is **active at age k** when one of their spells overlaps period c + k, i.e. they
  paid for at least part of it (``paid_start < period end`` and the spell had not ended by the
  period start); age 0 is therefore 100%, and a customer who leaves and comes back counts again
  from the period they return;
* only **complete** periods are reported: period c + k appears when it ended at or before
  ``observation_end``; spells are cut at ``observation_end`` (nothing after it is seen).

Rows: ``cohort`` (label, e.g. ``2024-05``), ``cohort_start``, ``age``, ``customers`` (cohort
size), ``active``, ``retention`` (``active / customers``, a share in [0, 1]). The history query
returns one row per spell; overlapping spells of one customer are merged in NumPy, so each
customer counts once per period.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from winback.analytics import metrics
from winback.analytics.periods import GRAINS, _MONTHS, period_of

NULL = np.iinfo(np.int64).min


def _period_index(micros: np.ndarray, step: int) -> np.ndarray:
    """Index of the grain period (``step`` months) containing each instant (months since 1970 // step)."""
    months = micros.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
    return np.floor_divide(months, step)


def _period_start(index: int, step: int) -> dt.datetime:
    month0 = index * step
    return dt.datetime(1970 + month0 // 12, month0 % 12 + 1, 1, tzinfo=dt.timezone.utc)


def cohort_matrix(con, observation_end: dt.datetime, grain: str = "month", spells=None) -> pa.Table:
    """The cohort x age retention table (see the module docstring), sorted by cohort then age."""
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}: expected one of {', '.join(GRAINS)}")
    step = _MONTHS[grain]
    spells = metrics._spell_base(con) if spells is None else spells  # no churn classification needed
    t_end = metrics._instant(observation_end)
    sp = spells.filter(spells.paid_start < t_end).select("source", "customer_id", "paid_start", "paid_end")
    table = sp.to_pyarrow()
    table = table.sort_by([("source", "ascending"), ("customer_id", "ascending"), ("paid_start", "ascending")])
    return _matrix(table, observation_end, grain, step)


def _matrix(table: pa.Table, observation_end: dt.datetime, grain: str, step: int) -> pa.Table:
    empty = pa.table({"cohort": pa.array([], pa.string()), "cohort_start": pa.array([], pa.timestamp("us", "UTC")),
                      "age": pa.array([], pa.int64()), "customers": pa.array([], pa.int64()),
                      "active": pa.array([], pa.int64()), "retention": pa.array([], pa.float64())})
    limit = metrics.epoch_micros(observation_end)
    last_complete = int(_period_index(np.array([limit]), step)[0]) - 1
    if table.num_rows == 0:
        return empty
    start = metrics.timestamp_micros(table.column("paid_start"))
    end = metrics.timestamp_micros(table.column("paid_end"))
    end = np.where((end == NULL) | (end > limit), limit, end)
    i0 = _period_index(start, step)
    i1 = _period_index(end - 1, step)  # the period of the last paid instant
    # customer boundaries (rows are sorted by source, customer_id, paid_start)
    src = table.column("source").combine_chunks()
    cid = table.column("customer_id").combine_chunks()
    n = table.num_rows
    new_customer = np.ones(n, dtype=bool)
    if n > 1:
        same = pc.and_(pc.equal(src[1:], src[:-1]), pc.equal(cid[1:], cid[:-1])).fill_null(False)
        new_customer[1:] = ~same.to_numpy(zero_copy_only=False)
    cust = np.cumsum(new_customer) - 1
    first_row = np.flatnonzero(new_customer)
    cohort = i0[first_row][cust]  # first paid start is the first row of each customer
    # periods each spell adds beyond what the customer's earlier spells covered: running max of i1
    base = int(min(i0.min(), i1.min())) - 1
    span = int(max(i0.max(), i1.max())) - base + 2
    key = cust.astype(np.int64) * span + (i1 - base)
    running = np.maximum.accumulate(key)
    prev_max = np.empty(n, dtype=np.int64)
    prev_max[0] = base
    prev_max[1:] = running[:-1] - cust[1:].astype(np.int64) * span + base
    prev_max[new_customer] = base  # nothing covered before a customer's first spell
    lo = np.maximum(i0, prev_max + 1)
    hi = np.minimum(i1, last_complete)
    keep = lo <= hi
    c_first = int(cohort.min())
    c_last = min(int(cohort.max()), last_complete)
    if c_last < c_first:
        return empty
    n_cohorts = c_last - c_first + 1
    ages = last_complete - c_first + 1
    diff = np.zeros((n_cohorts, ages + 1), dtype=np.int64)
    c_row = cohort[keep] - c_first
    ok = c_row < n_cohorts
    c_row, lo_k, hi_k = c_row[ok], lo[keep][ok], hi[keep][ok]
    c_abs = c_row + c_first
    np.add.at(diff, (c_row, lo_k - c_abs), 1)
    np.add.at(diff, (c_row, hi_k - c_abs + 1), -1)
    active = np.cumsum(diff, axis=1)[:, :ages]
    cust_cohort = cohort[first_row]
    sizes = np.bincount(cust_cohort[cust_cohort <= c_last] - c_first, minlength=n_cohorts)
    rows_c, rows_a = [], []
    for c in range(n_cohorts):
        if sizes[c] == 0:
            continue
        max_age = last_complete - (c + c_first)
        rows_c.append(np.full(max_age + 1, c))
        rows_a.append(np.arange(max_age + 1))
    if not rows_c:
        return empty
    rc = np.concatenate(rows_c)
    ra = np.concatenate(rows_a)
    starts = {c: _period_start(c + c_first, step) for c in np.unique(rc)}
    labels = {c: period_of(starts[c], grain).label for c in starts}
    act = active[rc, ra]
    size = sizes[rc]
    return pa.table({
        "cohort": pa.array([labels[c] for c in rc], pa.string()),
        "cohort_start": pa.array([starts[c] for c in rc], pa.timestamp("us", "UTC")),
        "age": pa.array(ra.astype(np.int64)),
        "customers": pa.array(size.astype(np.int64)),
        "active": pa.array(act.astype(np.int64)),
        "retention": pa.array(act / size, pa.float64()),
    })
