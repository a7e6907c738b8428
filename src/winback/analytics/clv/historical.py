"""The simple (historical) CLV formula of the product brief.

    CLV = average purchase value x purchases per period x expected lifespan (periods)

with the churn-rate form of the lifespan, expected lifespan = 1 / churn rate per period (the
mean of a geometric lifetime with constant churn). All functions are vectorised: pass one
value per customer (or segment) and get one CLV back; scalars broadcast.
"""

from __future__ import annotations

import numpy as np

__all__ = ["historical_clv", "historical_clv_from_churn_rate", "lifespan_from_churn_rate"]


def _out(values: np.ndarray):
    return float(values) if values.ndim == 0 else values


def lifespan_from_churn_rate(churn_rate):
    """Expected lifespan in periods = 1 / churn rate (churn rate per period in (0, 1])."""
    c = np.asarray(churn_rate, dtype=np.float64)
    if np.any(~(c > 0)) or np.any(c > 1):
        raise ValueError("churn_rate must be in (0, 1] per period")
    return _out(1.0 / c)


def historical_clv(average_purchase_value, purchases_per_period, lifespan_periods, margin=1.0):
    """CLV = average purchase value x purchases per period x expected lifespan x margin."""
    v = np.asarray(average_purchase_value, dtype=np.float64)
    f = np.asarray(purchases_per_period, dtype=np.float64)
    life = np.asarray(lifespan_periods, dtype=np.float64)
    m = np.asarray(margin, dtype=np.float64)
    if np.any(f < 0) or np.any(life < 0):
        raise ValueError("purchases_per_period and lifespan_periods must be non-negative")
    return _out(v * f * life * m)


def historical_clv_from_churn_rate(average_purchase_value, purchases_per_period, churn_rate, margin=1.0):
    """CLV = average purchase value x purchases per period / churn rate x margin."""
    return historical_clv(average_purchase_value, purchases_per_period, lifespan_from_churn_rate(churn_rate), margin)
