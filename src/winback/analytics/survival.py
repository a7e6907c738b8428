"""Customer lifetime as survival: the Kaplan-Meier estimator and tenures from the history.

Kaplan-Meier (product-limit) estimator, Kaplan & Meier (1958), "Nonparametric estimation from
incomplete observations", JASA 53(282): at each distinct time ``t_i`` with ``n_i`` customers at
risk (duration ``>= t_i``) and ``d_i`` observed churns,

    S(t) = prod_{t_i <= t} (1 - d_i / n_i).

Variance by Greenwood's formula (Greenwood 1926): ``Var[log S(t)] ~ sum_{t_i <= t} d_i / (n_i (n_i -
d_i))``. Confidence interval on the log(-log) scale ("exponential Greenwood", Kalbfleisch &
Prentice 2002, section 1.4; the default of lifelines): with ``v = log S(t)`` and
``s = sqrt(Greenwood sum)``,

    lower = exp(-exp(log(-v) - z s / v)),  upper = exp(-exp(log(-v) + z s / v)),

which always lies in [0, 1]. Where ``S = 1`` (no churn yet) both bounds are 1; where ``n_i = d_i``
(everyone left) the Greenwood term is taken as 0 and ``S`` and both bounds are 0, as lifelines
does. The median survival time is the first time with ``S(t) <= 0.5`` (``inf`` if never).

**Tenure** (:func:`tenure`): each customer's first paying spell (see
:mod:`winback.analytics.metrics`) from its paid start to its end, in days; the spell is
``observed`` (churned) when it ended at or before ``observation_end``, else censored at
``observation_end``. The customer's plan is the plan in force when the spell started (later
upgrades do not move a customer into the plan they grew into, which would bias survival).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from statistics import NormalDist

import ibis
import numpy as np
import pyarrow as pa

from winback.analytics import metrics

MICROS_PER_DAY = 86_400 * 1_000_000


@dataclass(frozen=True)
class KMResult:
    """A Kaplan-Meier fit: arrays indexed by ``timeline`` (0 first, then every distinct duration)."""

    timeline: np.ndarray
    survival: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    median: float
    alpha: float = 0.05

    @property
    def n(self) -> int:
        return int(self.at_risk[0]) if self.at_risk.size else 0

    def survival_at(self, t: float | np.ndarray) -> float | np.ndarray:
        """S(t) as a right-continuous step function (1 before the first time)."""
        idx = np.searchsorted(self.timeline, np.asarray(t, dtype=float), side="right") - 1
        values = np.where(idx >= 0, self.survival[np.maximum(idx, 0)], 1.0)
        return float(values) if np.ndim(values) == 0 else values


def kaplan_meier(durations, observed=None, alpha: float = 0.05) -> KMResult:
    """Product-limit estimate of the survival function with Greenwood log(-log) bounds.

    ``durations``: non-negative numbers; ``observed``: booleans (True = the event happened,
    False = censored), all True when omitted; ``alpha``: 1 - confidence level.
    """
    d = np.asarray(durations, dtype=float).reshape(-1)
    e = np.ones(d.size, dtype=bool) if observed is None else np.asarray(observed).astype(bool).reshape(-1)
    if e.size != d.size:
        raise ValueError(f"durations ({d.size}) and observed ({e.size}) differ in length")
    if not np.isfinite(d).all():
        raise ValueError("durations must be finite numbers")
    if (d < 0).any():
        raise ValueError("durations must not be negative")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    timeline = np.unique(np.concatenate([[0.0], d]))
    # at risk at t_i: durations >= t_i; events at t_i: observed durations == t_i
    sorted_d = np.sort(d)
    at_risk = (d.size - np.searchsorted(sorted_d, timeline, side="left")).astype(np.int64)
    pos = np.searchsorted(timeline, d[e])
    events = np.bincount(pos, minlength=timeline.size).astype(np.int64)
    n = at_risk.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_terms = np.where(n > 0, np.log(np.where(n > 0, n - events, 1.0)) - np.log(np.where(n > 0, n, 1.0)), 0.0)
        log_s = np.cumsum(log_terms)
        green = np.where((n > events) & (n > 0), events / (n * (n - events)), 0.0)
    var = np.cumsum(green)
    survival = np.exp(log_s)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = log_s
        spread = z * np.sqrt(var) / v
        lower = np.exp(-np.exp(np.log(-v) - spread))
        upper = np.exp(-np.exp(np.log(-v) + spread))
    one = survival >= 1.0
    lower = np.where(one, 1.0, lower)
    upper = np.where(one, 1.0, upper)
    zero = survival <= 0.0
    lower = np.where(zero, 0.0, lower)
    upper = np.where(zero, 0.0, upper)
    below = np.nonzero(survival <= 0.5)[0]
    median = float(timeline[below[0]]) if below.size else math.inf
    return KMResult(timeline, survival, lower, upper, at_risk, events, median, alpha)


# ================================================================================ from the history

def tenure(con, observation_end: dt.datetime, spells=None) -> pa.Table:
    """First paying spell per customer, as survival data (see the module docstring).

    Columns: ``source, customer_id, plan_id`` (plan at the spell's start), ``paid_start``,
    ``duration_days`` (float), ``observed`` (bool). Spells starting at or after
    ``observation_end`` are left out. Rows are sorted by ``(source, customer_id)``.
    """
    t_end = metrics._instant(observation_end)
    spells = metrics._spell_base(con) if spells is None else spells  # no churn classification needed
    sp = spells.filter(spells.paid_start < t_end)
    first = metrics._latest(sp, list(metrics.KEY), [ibis.asc("paid_start"), ibis.asc("subscription_id")])
    first = metrics.plan_at_start(con, first)
    table = first.select("source", "customer_id", "plan_id", "paid_start", "paid_end").to_pyarrow()
    start = metrics.timestamp_micros(table.column("paid_start"))
    end = metrics.timestamp_micros(table.column("paid_end"))
    limit = metrics.epoch_micros(observation_end)
    null = np.iinfo(np.int64).min
    observed = (end != null) & (end <= limit)
    stop = np.where(observed, end, limit)
    duration = (stop - start) / MICROS_PER_DAY
    out = pa.table({
        "source": table.column("source").cast(pa.string()),
        "customer_id": table.column("customer_id").cast(pa.string()),
        "plan_id": table.column("plan_id").cast(pa.string()),
        "paid_start": pa.array(start, type=pa.int64()).cast(pa.timestamp("us")),
        "duration_days": pa.array(duration, type=pa.float64()),
        "observed": pa.array(observed, type=pa.bool_()),
    })
    return out.sort_by([("source", "ascending"), ("customer_id", "ascending")])


def km_by(con, observation_end: dt.datetime, by: str | None = "plan", alpha: float = 0.05,
          spells=None) -> dict:
    """Kaplan-Meier fits of :func:`tenure` per group: ``by`` = ``"plan"`` (plan at the start of the
    first spell), ``"cohort"`` (``YYYY-MM`` of the first paid start) or None (one fit, key None)."""
    table = tenure(con, observation_end, spells=spells)
    durations = table.column("duration_days").to_numpy()
    observed = table.column("observed").to_numpy(zero_copy_only=False)
    if by is None:
        return {None: kaplan_meier(durations, observed, alpha)}
    if by == "plan":
        keys = np.array(table.column("plan_id").fill_null("(none)").to_pylist(), dtype=object)
    elif by == "cohort":
        start = table.column("paid_start").to_numpy().astype("datetime64[M]")
        keys = np.datetime_as_string(start, unit="M").astype(object)
    else:
        raise ValueError(f"unknown grouping by={by!r}: expected 'plan', 'cohort' or None")
    out = {}
    for key in sorted(set(keys)):
        mask = keys == key
        out[key] = kaplan_meier(durations[mask], observed[mask], alpha)
    return out
