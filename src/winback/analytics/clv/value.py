"""Discounted customer lifetime value from a transaction model and a value per purchase."""

from __future__ import annotations

import numpy as np

from ._base import broadcast_rft, unique_rows

__all__ = ["customer_lifetime_value", "periods_per_month_for"]

# lifetimes' month lengths per time unit ("D": 30, "W": 4.345, "M": 1, "H": 720)
_LIFETIMES_PERIODS_PER_MONTH = {1.0: 30.0, 7.0: 4.345, 30.0: 1.0, 1.0 / 24.0: 720.0}


def periods_per_month_for(time_unit_days: float) -> float:
    """Time units per month, following lifetimes' convention (a month is 30 days, or 4.345
    weeks); other units use 30 days / ``time_unit_days``."""
    for unit, per_month in _LIFETIMES_PERIODS_PER_MONTH.items():
        if abs(time_unit_days - unit) < 1e-12:
            return per_month
    if time_unit_days <= 0:
        raise ValueError("time_unit_days must be positive")
    return 30.0 / time_unit_days


def customer_lifetime_value(
    transaction_model,
    frequency,
    recency,
    T,
    monetary_value,
    horizon_months: int = 12,
    discount_rate_monthly: float = 0.01,
    time_unit_days: float = 7,
    periods_per_month: float | None = None,
):
    """Discounted expected value of each customer's purchases over the next months:

        CLV = sum_{m=1..H} (E[Y(m u)] - E[Y((m-1) u)]) * value / (1 + d)^m,

    where E[Y(t)] is ``transaction_model.expected_purchases(t, frequency, recency, T)`` (a
    fitted ``BetaGeoModel`` or ``ParetoNBDModel``), u the time units per month, d the monthly
    discount rate and ``monetary_value`` the value per purchase (e.g. a Gamma-Gamma
    ``expected_average_value``). This is lifetimes' ``_customer_lifetime_value`` (same month
    lengths, see ``periods_per_month_for``), so the results can be compared with it.

    Expected purchases are computed once per distinct (frequency, recency, T).
    """
    if horizon_months < 0 or int(horizon_months) != horizon_months:
        raise ValueError("horizon_months must be a non-negative whole number")
    if discount_rate_monthly <= -1:
        raise ValueError("discount_rate_monthly must be greater than -1")
    per_month = periods_per_month if periods_per_month is not None else periods_per_month_for(time_unit_days)
    x, tx, t, shape = broadcast_rft(frequency, recency, T)
    value = np.broadcast_to(np.asarray(monetary_value, dtype=np.float64), shape).reshape(-1)
    months = np.arange(int(horizon_months) + 1, dtype=np.float64)
    times = months * per_month
    u = unique_rows([x, tx, t])
    grid = getattr(transaction_model, "_expected_purchases_grid", None)
    if grid is not None:
        cumulative = grid(times, *u.columns)
    else:
        cumulative = np.stack([np.asarray(transaction_model.expected_purchases(s, *u.columns)) for s in times])
    increments = np.diff(cumulative, axis=0)
    discount = (1.0 + discount_rate_monthly) ** -months[1:]
    factor = np.einsum("m,mn->n", discount, increments)  # not BLAS: see _base.dot
    out = factor[u.inverse] * value
    return float(out[0]) if shape == () else out.reshape(shape)
