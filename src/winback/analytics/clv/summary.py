"""Per-customer RFM sufficient statistics from a transaction log (vectorised)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RFMSummary", "summary_from_transactions"]


@dataclass(frozen=True)
class RFMSummary:
    """One row per customer with a purchase up to the observation end, sorted by customer id.

    ``frequency``: repeat purchases (distinct time units with a purchase, minus one);
    ``recency``: time units between the first and the last purchase; ``T``: time units between
    the first purchase and the observation end; ``monetary_value``: mean value of the repeat
    purchases (amounts summed per time unit, the first unit excluded), 0 when frequency is 0.
    """

    customer_id: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    monetary_value: np.ndarray | None

    def __len__(self) -> int:
        return int(self.customer_id.shape[0])


def _days(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind != "M":
        arr = np.asarray(values, dtype="datetime64[us]")
    if np.any(np.isnat(arr)):
        raise ValueError("dates contain missing values")
    return arr.astype("datetime64[D]").astype(np.int64)  # floors to the calendar day


def _period(days: np.ndarray, time_unit: str) -> np.ndarray:
    if time_unit == "day":
        return days
    if time_unit == "week":
        # weeks from Monday to Sunday like pandas' "W" (W-SUN) periods; 1970-01-01 is a Thursday
        return (days + 3) // 7
    raise ValueError('time_unit must be "day" or "week"')


def summary_from_transactions(
    customer_ids, dates, amounts=None, observation_end=None, time_unit: str = "day"
) -> RFMSummary:
    """Frequency, recency, T and monetary value per customer, in days or weeks.

    Matches ``lifetimes.utils.summary_data_from_transaction_data(..., freq="D" | "W")``:
    transactions are bucketed into calendar days (or Monday-to-Sunday weeks); several purchases
    in one bucket count once, with their amounts summed; transactions after
    ``observation_end`` (default: the last transaction date) are ignored, and so are
    customers whose first purchase is after it. Sorting-based, no per-customer Python loop.
    """
    ids = np.asarray(customer_ids)
    days = _days(dates)
    n = ids.shape[0]
    if days.shape[0] != n:
        raise ValueError("customer_ids and dates must have the same length")
    amt = None
    if amounts is not None:
        amt = np.asarray(amounts, dtype=np.float64)
        if amt.shape[0] != n:
            raise ValueError("amounts must have the same length as customer_ids")
        if not np.all(np.isfinite(amt)):
            raise ValueError("amounts contain NaN or infinite values")
    if n == 0:
        raise ValueError("no transactions")
    end_day = int(days.max()) if observation_end is None else int(_days([observation_end])[0])
    per = _period(days, time_unit)
    end = int(_period(np.array([end_day]), time_unit)[0])
    keep = per <= end
    uniq_ids, codes = np.unique(ids, return_inverse=True)
    codes = codes.reshape(-1)[keep].astype(np.int64)
    per = per[keep]
    if amt is not None:
        amt = amt[keep]
    if per.shape[0] == 0:
        empty = np.zeros(0)
        return RFMSummary(uniq_ids[:0], empty, empty, empty, None if amt is None else empty)
    lo = int(per.min())
    span = int(per.max()) - lo + 1
    key = codes * span + (per - lo)
    order = np.argsort(key, kind="stable")
    key = key[order]
    # one group per (customer, time unit)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    group_code = codes[order][starts]
    group_per = per[order][starts]
    # one customer per run of groups
    cust_starts = np.flatnonzero(np.r_[True, group_code[1:] != group_code[:-1]])
    cust_ends = np.r_[cust_starts[1:], group_code.shape[0]]
    count = cust_ends - cust_starts
    first = group_per[cust_starts]
    last = group_per[cust_ends - 1]
    frequency = (count - 1).astype(np.float64)
    monetary = None
    if amt is not None:
        group_sum = np.add.reduceat(amt[order], starts)
        group_sum[cust_starts] = 0.0  # the first purchase (its whole time unit) is excluded
        repeat_sum = np.add.reduceat(group_sum, cust_starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            monetary = np.where(frequency > 0, repeat_sum / np.maximum(frequency, 1.0), 0.0)
    return RFMSummary(
        customer_id=uniq_ids[group_code[cust_starts]],
        frequency=frequency,
        recency=(last - first).astype(np.float64),
        T=(end - first).astype(np.float64),
        monetary_value=monetary,
    )
