"""Pareto (80/20) view of value: how much of the total the top customers hold.

DOMAIN.md step 3: start with the ~20% of churned users who carry ~80% of the lost value.

Given one non-negative value per customer (lost MRR, CLV ...), customers are ranked by value,
highest first (ties by id, so the ranking is deterministic). With ``n`` customers and total
``T``:

* ``cumulative_share[i]`` = share of ``T`` held by the top ``i + 1`` customers;
* ``top_count = ceil(top_fraction x n)`` (at least 1) and ``top_share =
  cumulative_share[top_count - 1]``: the share held by the top ``top_fraction`` of customers;
* ``count_for_80pct`` = the fewest customers whose values add up to at least 80% of ``T``, and
  ``customers_for_80pct = count_for_80pct / n``.

When ``T`` is 0 every share is 0 and ``customers_for_80pct`` is None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np



@dataclass(frozen=True)
class ParetoResult:
    ids: np.ndarray  # ranked, highest value first
    values: np.ndarray  # in the same order
    cumulative_share: np.ndarray
    total: float
    top_fraction: float
    top_count: int
    top_share: float
    count_for_80pct: int | None
    customers_for_80pct: float | None

    @property
    def top_ids(self) -> np.ndarray:
        """Ids of the top ``top_fraction`` of customers."""
        return self.ids[: self.top_count]


def pareto(values, ids=None, top_fraction: float = 0.2) -> ParetoResult:
    """Rank customers by value and measure concentration (see the module docstring)."""
    v = np.asarray(values, dtype=float).reshape(-1)
    n = v.size
    if n == 0:
        raise ValueError("pareto needs at least one value")
    if not np.isfinite(v).all():
        raise ValueError("values must be finite numbers")
    if (v < 0).any():
        raise ValueError("values must not be negative")
    if not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must lie in (0, 1], got {top_fraction}")
    ident = np.arange(n) if ids is None else np.asarray(ids)
    if ident.shape[0] != n:
        raise ValueError(f"ids ({ident.shape[0]}) and values ({n}) differ in length")
    order = np.lexsort((ident, -v))  # value descending, then id ascending
    ranked_ids, ranked = ident[order], v[order]
    total = float(ranked.sum())
    top_count = max(1, math.ceil(top_fraction * n - 1e-9))
    if total > 0:
        running = np.cumsum(ranked)
        cumulative = running / total
        reached = np.nonzero(running * 5 >= total * 4)[0]  # share >= 80%, exact for whole-number values
        count80 = int(reached[0]) + 1
        share80: float | None = count80 / n
    else:
        cumulative = np.zeros(n)
        count80, share80 = None, None
    return ParetoResult(ranked_ids, ranked, cumulative, total, float(top_fraction), top_count,
                        float(cumulative[top_count - 1]), count80, share80)
