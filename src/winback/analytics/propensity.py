"""Win-back propensity: the calibrated probability that a churned customer comes back by themselves.

What is predicted
-----------------
For a customer whose last paying spell ended ``m`` months before ``as_of`` and who has not come
back since, ``p_return`` is

    P(a new paying spell starts within ``horizon_days`` after ``as_of`` | no return in those m months)

with no win-back offer (the natural return rate; the offer lifts are the playbooks' business).
Default horizon: 365 days.

Churn events and returns (:func:`churn_events`)
-----------------------------------------------
Built from :func:`~winback.analytics.metrics.paid_spells` censored at ``as_of`` (spells starting
later are unknown; spells ending later are still open):

* a **churn event** is an ended paying spell that no other spell of the same customer covers: no
  other spell starts at or before ``paid_end + 1 day`` and is still open (or ends later) at
  ``paid_end``. Switching plans by cancelling one subscription and starting another is not churn;
  of several spells ending at the same instant one event is kept (the highest MRR). Trials that
  never paid are not churn events (they never paid; see ``trial_only`` customers elsewhere);
* its **return** is the customer's next paid start after the churn (at or before ``as_of``);
* features known **at churn time**: canonical ``reason`` (:mod:`winback.analytics.reasons`, or a
  caller's override), ``involuntary``, ``mrr_minor`` (the spell's last MRR) and ``currency``,
  ``tier`` (``plans.tier`` of the spell's last plan), ``tenure_days`` (length of the spell),
  ``prior_spells`` (paying spells the customer had before this one), ``engagement_per_week``
  (``product_events`` counts in the 84 days up to the churn, per week) and the calendar month
  (as sine and cosine).

The model leaves out constant features, exact copies of another one (``involuntary`` is the same
as ``reason=involuntary`` unless reasons were overridden) and the calendar month unless every
month of the year was seen in at least 3 years of training churns: with less, a one-off wave (a
price increase in Q4) would be learnt as seasonality. Missing values at prediction time take the
training medians.

``reasons`` (a mapping ``(source, customer_id) -> reason``, e.g. from the reasons insight that
reads surveys and comments) replaces the stated-code reason of each customer's **latest** churn
event; earlier churns keep their stated reason. A reason outside
:data:`~winback.analytics.reasons.REASONS` counts as ``other``; none as ``unknown``.

Learnt mode (enough past reactivations)
---------------------------------------
1. Training set: churn events that ended at least ``horizon_days`` before ``as_of`` (a full horizon
   observed); label = the customer returned within ``horizon_days`` of the churn.
2. Model: standardised features -> L2 logistic regression -> Platt scaling (a sigmoid fitted on
   held-out folds; Platt 1999, "Probabilistic outputs for support vector machines"; scikit-learn
   ``CalibratedClassifierCV(method="sigmoid")``, 5 stratified folds, their average). Isotonic
   calibration is not used: with tens of positives it overfits (Niculescu-Mizil & Caruana 2005,
   "Predicting good probabilities with supervised learning", ICML).
3. Time-based validation: the same pipeline trained on the oldest 70% of the training churns and
   scored on the newest 30%: AUC, Brier score, ECE with 10 equal-width bins (Naeini, Cooper &
   Hauskrecht 2015; Guo et al. 2017) and with 10 equal-mass bins, a reliability table (equal-mass
   bins: most probabilities are small), and the prior mode on the same split for comparison.
   ``report["cross_validation"]`` adds the same figures from random 5-fold out-of-fold predictions
   over all training churns (more returns to judge by, no time shift). The model used afterwards
   is refitted on all training churns.
4. **Time since churn.** The classifier answers "will a customer like this come back within a
   year of leaving", conditional on the churn instant. A customer still away ``m`` months later
   has survived the period when returns are likeliest, so their chance must be lower. winback uses
   the grouped-time proportional-hazards model (Prentice & Gloeckler 1978, "Regression analysis of
   grouped survival data with application to breast cancer data", Biometrics 34(1)): every
   churner's return hazard has the same shape over time since churn, scaled by their features, so
   with ``p0`` the classifier's probability and ``Lambda0`` the baseline cumulative return hazard

       p_return(m) = 1 - (1 - p0) ** c(m),   c(m) = (Lambda0(m + H) - Lambda0(m)) / Lambda0(H)

   (``H`` the horizon in months; ``c(0) = 1`` keeps the calibrated probability at churn time).
   ``Lambda0`` is estimated from **all** churn events, including recent ones (censored at
   ``as_of``), on a monthly grid with the actuarial life table (returns ``d``, exposure ``n -
   censored / 2``) up to the last month with at least 30 churns exposed. The monthly hazard is
   fitted non-increasing (pooled adjacent violators, exposure-weighted; Ayer et al. 1955) and each
   pooled block's rate is the Jeffreys estimate ``(returns + 1/2) / exposure``, so a long stretch
   without returns keeps a small positive hazard and nobody's chance is exactly zero; the last
   block's rate continues beyond the data, ``Lambda0`` is the sum of ``-log(1 - hazard)``, and
   ``c`` is made non-increasing in ``m``: a longer absence never raises the estimate. (The pooled
   hazard also falls because the likeliest returners leave the pool first; this approximation is
   the price of a simple, checkable model. ``report["recency_check"]`` compares predicted and
   observed returns of churners still away after 3, 6 and 12 months: on 50,000 generated
   customers 0.044 vs 0.044, 0.020 vs 0.021 and 0.004 vs 0.002.)

Prior mode (fewer than ``min_positives`` returns, default 30)
-------------------------------------------------------------
A documented table of natural return rates within 365 days per reason
(:data:`PRIOR_RETURN_RATES`). They are configurable defaults, roughly in line with what the brief
quotes (win-back programmes recover up to 30% of churned users *with* offers; a few percent come
back without any): 3-5% for voluntary reasons, 2% for competitor switchers, 12% for involuntary
churn (they did not mean to leave). Each rate is a Beta prior with ``PRIOR_STRENGTH`` (50)
pseudo-churns, updated by whatever returns the history shows (posterior mean ``(s p + returns) /
(s + churns)`` over churn events with a full horizon; with none it is the table value exactly).
Then (:func:`prior_propensity`):

    p0 = min(rate[reason] x value_factor x tenure_factor, 0.95)
    value_factor  = clip((mrr / reference_mrr) ** 0.1, 0.8, 1.25)   (1 without a reference)
    tenure_factor = 0.9 + 0.2 x min(tenure_days, 730) / 730          (1 without a tenure; 1 at 1 year)
    p_return(m)   = 1 - (1 - p0) ** exp(-m / 6)

i.e. the same proportional-hazards form with a baseline whose returns fade with a 6-month time
constant (``c(m) = exp(-m / tau)``); for another horizon the 365-day rate is rescaled under the
same baseline. ``reference_mrr`` is the median MRR of the history's churn events in the
customer's currency.

Mode, validation and fitted parts are in :attr:`PropensityModel.report`: ``mode`` and ``why``,
counts (``churn_events``, ``churned_now``, ``eligible_events``, ``positives``, ``base_rate``),
``prior`` (rates, churns and returns per reason, posterior), and in learnt mode ``features``,
``coefficients`` (standardised, averaged over the calibration folds), ``validation``,
``cross_validation``, ``recency`` (``c(m)`` at a few months, the monthly hazard) and
``recency_check``; ``seconds``.

Cost: one query (the spells, a self-join per customer, a window over product events); the model
fits on one row per churn. 50,000 generated customers (16,784 churns, 2M history rows): ~2.5 s
for fit, 0.03 s to score 15,712 churned customers (``benchmarks/bench_propensity.py``).
"""

from __future__ import annotations

import datetime as dt
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Mapping

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from winback.analytics.calibration import expected_calibration_error, reliability_table  # noqa: F401 (re-exported)
from winback.analytics.metrics import _instant, epoch_micros, paid_spells, timestamp_micros
from winback.analytics.reasons import OTHER, REASONS, UNKNOWN

DAYS_PER_MONTH = 365.25 / 12
MICROS_PER_DAY = 86_400 * 1_000_000
MICROS_PER_MONTH = DAYS_PER_MONTH * MICROS_PER_DAY
DEFAULT_HORIZON_DAYS = 365
MIN_POSITIVES = 30
SWITCH_GRACE_DAYS = 1
ENGAGEMENT_DAYS = 84

#: Natural (no-offer) return rates within 365 days per canonical reason: configurable defaults.
PRIOR_RETURN_RATES: dict[str, float] = {
    "price": 0.05,
    "missing_feature": 0.04,
    "usability": 0.04,
    "support": 0.03,
    "competitor": 0.02,
    "other": 0.03,
    "involuntary": 0.12,
    "unknown": 0.04,
}
PRIOR_STRENGTH = 50.0  # pseudo-churns behind each prior rate
PRIOR_RECENCY_MONTHS = 6.0  # time constant of the prior's fading return hazard
PRIOR_HORIZON_DAYS = 365
VALUE_ELASTICITY = 0.1
VALUE_BOUNDS = (0.8, 1.25)
TENURE_CAP_DAYS = 730
MAX_PROBABILITY = 0.95

MIN_AT_RISK = 30  # churns exposed in a month of the life table for it to count
C_GRID_MONTHS = 240
MIN_SEASON_YEARS = 3  # calendar-month features need every month seen in this many years

REQUIRED_COLUMNS = ("source", "customer_id", "churned_at", "reason", "involuntary", "mrr_minor", "tenure_days")
OPTIONAL_COLUMNS = ("currency", "tier", "prior_spells", "engagement_per_week", "months_since_churn")


# ================================================================================ the prior (pure)

def _reason_names(reason) -> np.ndarray:
    values = np.asarray(reason, dtype=object).reshape(-1)
    known = set(REASONS)
    return np.array([UNKNOWN if r is None or (isinstance(r, float) and math.isnan(r))
                     else (r if r in known else OTHER) for r in values], dtype=object)


def _as_float(values, n: int, default: float = np.nan) -> np.ndarray:
    if values is None:
        return np.full(n, default)
    out = np.asarray([np.nan if v is None else v for v in np.asarray(values, dtype=object).reshape(-1)],
                     dtype=np.float64)
    return np.broadcast_to(out, (n,)).copy() if out.size == 1 and n != 1 else out


def prior_recency_factor(months_since_churn, recency_months: float = PRIOR_RECENCY_MONTHS) -> np.ndarray:
    """``c(m) = exp(-m / tau)``: the share of the horizon's return hazard left after ``m`` months away."""
    m = np.maximum(np.asarray(months_since_churn, dtype=np.float64), 0.0)
    return np.exp(-m / recency_months)


def prior_propensity(reason, mrr_minor, months_since_churn, *, tenure_days=None, reference_mrr_minor=None,
                     horizon_days: float = DEFAULT_HORIZON_DAYS, rates: Mapping[str, float] | None = None,
                     recency_months: float = PRIOR_RECENCY_MONTHS):
    """The prior-mode probability of returning within ``horizon_days`` (see the module docstring).

    Scalars or equal-length arrays. ``reason``: canonical reason (None -> ``unknown``, an
    unlisted one -> ``other``); ``mrr_minor``: MRR lost at churn; ``months_since_churn``: months
    (of 365.25 / 12 days) since the churn; ``tenure_days``: length of the lost spell (None -> no
    tenure factor); ``reference_mrr_minor``: the MRR that counts as typical (None -> no value
    factor); ``rates``: per-reason 365-day rates (default :data:`PRIOR_RETURN_RATES`).

    With ``mrr_minor == reference_mrr_minor`` (or no reference), no tenure, ``months_since_churn
    = 0`` and the default horizon it returns ``rates[reason]`` exactly.
    """
    scalar = np.ndim(reason) == 0 and np.ndim(mrr_minor) == 0 and np.ndim(months_since_churn) == 0
    names = _reason_names(reason if np.ndim(reason) else [reason])
    n = max(names.size, np.size(mrr_minor), np.size(months_since_churn))
    if names.size == 1 and n > 1:
        names = np.repeat(names, n)
    table = dict(PRIOR_RETURN_RATES if rates is None else rates)
    fallback = table.get(UNKNOWN, PRIOR_RETURN_RATES[UNKNOWN])
    base = np.array([table.get(r, table.get(OTHER, fallback)) for r in names], dtype=np.float64)
    mrr = _as_float(np.atleast_1d(mrr_minor), n)
    ref = _as_float(None if reference_mrr_minor is None else np.atleast_1d(reference_mrr_minor), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((ref > 0) & (mrr >= 0), (mrr + 1.0) / (ref + 1.0), 1.0)
    value = np.where(np.isfinite(ratio), np.clip(ratio ** VALUE_ELASTICITY, *VALUE_BOUNDS), 1.0)
    value = np.where(np.isnan(ref) | np.isnan(mrr), 1.0, value)
    tenure = _as_float(None if tenure_days is None else np.atleast_1d(tenure_days), n)
    # 0.9 + 0.2 x min(tenure, 730) / 730, written so that one year gives exactly 1
    tenure_factor = np.where(np.isnan(tenure), 1.0,
                             1.0 + 0.2 * (np.clip(tenure, 0, TENURE_CAP_DAYS) - TENURE_CAP_DAYS / 2) / TENURE_CAP_DAYS)
    p365 = np.clip(base * value * tenure_factor, 0.0, MAX_PROBABILITY)
    p0 = _rescale_horizon(p365, horizon_days, recency_months)
    m = _as_float(np.atleast_1d(months_since_churn), n, 0.0)
    out = _fade(p0, prior_recency_factor(np.nan_to_num(m), recency_months))
    return float(out[0]) if scalar else out


def _fade(p0: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``1 - (1 - p0) ** c``, exactly ``p0`` where ``c == 1``."""
    return np.where(c == 1.0, p0, 1.0 - (1.0 - p0) ** c)


def _rescale_horizon(p365: np.ndarray, horizon_days: float, recency_months: float) -> np.ndarray:
    """A 365-day rate as a ``horizon_days`` rate under the prior baseline ``Lambda0(t) ~ 1 - exp(-t / tau)``."""
    if horizon_days == PRIOR_HORIZON_DAYS:
        return p365
    h = horizon_days / DAYS_PER_MONTH
    year = PRIOR_HORIZON_DAYS / DAYS_PER_MONTH
    ratio = (1.0 - math.exp(-h / recency_months)) / (1.0 - math.exp(-year / recency_months))
    return 1.0 - (1.0 - p365) ** ratio


def _scores(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    out = {"events": int(y.size), "returns": int(y.sum()), "observed_rate": float(y.mean()) if y.size else None,
           "mean_predicted": float(p.mean()) if y.size else None}
    if y.size == 0:
        return out
    both = 0 < y.sum() < y.size
    out["auc"] = float(roc_auc_score(y, p)) if both else None
    out["brier"] = float(brier_score_loss(y, p))
    out["brier_base_rate"] = float(np.mean((y - y.mean()) ** 2))
    out["ece"] = expected_calibration_error(y, p, 10, "uniform")
    out["ece_equal_mass"] = expected_calibration_error(y, p, 10, "quantile")
    return out


# ================================================================================ churn events (Ibis)

def churn_events(con, as_of: dt.datetime, *, reason_map: dict[str, str] | None = None,
                 engagement_days: int = ENGAGEMENT_DAYS) -> ir.Table:
    """One row per churn event up to ``as_of`` (see the module docstring), as an Ibis expression.

    Columns: ``source, customer_id, subscription_id, plan_id, tier, paid_start, churned_at,
    tenure_days, reason, involuntary, mrr_minor, currency, prior_spells, engagement_per_week,
    next_paid_start`` (the customer's next paid start after the churn, at or before ``as_of``;
    null = not back).
    """
    t = _instant(as_of)
    keys = ["source", "customer_id"]
    sp = paid_spells(con, reason_map)
    sp = sp.filter(sp.paid_start <= t)
    sp = sp.mutate(_seq=ibis.row_number().over(group_by=keys, order_by=[sp.paid_start, sp.subscription_id]),
                   _end=ibis.ifelse(sp.paid_end <= t, sp.paid_end, ibis.null("timestamp")))
    ended = sp.filter(sp._end.notnull())
    other = sp.select(*keys, _o_sub=sp.subscription_id, _o_start=sp.paid_start, _o_end=sp._end)
    pairs = ended.select(*keys, "subscription_id", "paid_end").join(other, keys)
    grace = ibis.interval(days=SWITCH_GRACE_DAYS)
    covered = pairs.filter((pairs._o_sub != pairs.subscription_id) & (pairs._o_start <= pairs.paid_end + grace)
                           & (pairs._o_end.isnull() | (pairs._o_end > pairs.paid_end)))
    covered = covered.select("source", "subscription_id").distinct()
    later = pairs.filter(pairs._o_start > pairs.paid_end)
    later = later.group_by(["source", "subscription_id"]).aggregate(next_paid_start=later._o_start.min())
    ev = ended.anti_join(covered, ["source", "subscription_id"])
    ev = ev.mutate(_rn=ibis.row_number().over(group_by=[*keys, "paid_end"],
                                              order_by=[ibis.desc(ev.mrr), ev.subscription_id]))
    ev = ev.filter(ev._rn == 0)
    ev = ev.left_join(later, ["source", "subscription_id"])
    ev = ev.drop([c for c in ev.columns if c.endswith("_right")])
    # engagement in the weeks up to the churn
    pe = con.table("product_events")
    pe = pe.select(*keys, "occurred_at", _n=pe["count"].fill_null(1))
    win = ev.select(*keys, "subscription_id", "paid_end").join(pe, keys)
    win = win.filter((win.occurred_at <= win.paid_end)
                     & (win.occurred_at > win.paid_end - ibis.interval(days=engagement_days)))
    activity = win.group_by(["source", "subscription_id"]).aggregate(_events=win._n.sum())
    ev = ev.left_join(activity, ["source", "subscription_id"])
    ev = ev.drop([c for c in ev.columns if c.endswith("_right")])
    plans = con.table("plans")
    plans = plans.select("source", _plan=plans.plan_id, tier=plans.tier)
    ev = ev.left_join(plans, (ev.source == plans.source) & (ev.plan_id == plans._plan))
    ev = ev.drop([c for c in ev.columns if c.endswith("_right")])
    return ev.select(
        "source", "customer_id", "subscription_id", "plan_id", "tier", "paid_start",
        churned_at=ev.paid_end,
        tenure_days=(ev.paid_end.epoch_seconds() - ev.paid_start.epoch_seconds()) / 86400.0,
        reason=ev.reason, involuntary=ev.involuntary, mrr_minor=ev.mrr, currency=ev.currency,
        prior_spells=ev._seq.cast("int64"),  # row_number is 0-based
        engagement_per_week=ev._events.fill_null(0).cast("float64") / (engagement_days / 7.0),
        next_paid_start=ev.next_paid_start,
    )


def _fetch_events(con, as_of: dt.datetime, reasons: Mapping | None, reason_map) -> pa.Table:
    table = churn_events(con, as_of, reason_map=reason_map).to_pyarrow()
    table = table.sort_by([("source", "ascending"), ("customer_id", "ascending"), ("churned_at", "ascending"),
                           ("subscription_id", "ascending")])
    return _override_reasons(table, reasons)


def _override_reasons(table: pa.Table, reasons: Mapping | None) -> pa.Table:
    """Replace the reason of each customer's latest churn event by ``reasons[(source, customer_id)]``."""
    if not reasons or table.num_rows == 0:
        return table
    src = table.column("source").to_pylist()
    cid = table.column("customer_id").to_pylist()
    latest: dict[tuple, int] = {}
    for i, key in enumerate(zip(src, cid)):  # rows are sorted by churn time within a customer
        latest[key] = i
    values = table.column("reason").to_pylist()
    for key, i in latest.items():
        if key in reasons:
            values[i] = reasons[key]
    return table.set_column(table.column_names.index("reason"), "reason", pa.array(values, pa.string()))


def churned_customers(con, as_of: dt.datetime, *, reasons: Mapping | None = None,
                      reason_map: dict[str, str] | None = None) -> pa.Table:
    """Customers churned at ``as_of`` (latest churn event, not back since): the input of
    :meth:`PropensityModel.predict`, with ``months_since_churn`` added. Sorted by source, customer."""
    events = _fetch_events(con, as_of, reasons, reason_map)
    return _current(events, as_of)


def _current(events: pa.Table, as_of: dt.datetime) -> pa.Table:
    out = events.filter(pc.is_null(events.column("next_paid_start")))
    churned = timestamp_micros(out.column("churned_at"))
    months = (epoch_micros(as_of) - churned) / MICROS_PER_MONTH
    return out.drop(["next_paid_start"]).append_column("months_since_churn", pa.array(months, pa.float64()))


# ================================================================================ features

@dataclass
class _FeatureSpec:
    """What the design matrix needs to be rebuilt at prediction time (medians learnt at fit)."""

    reference_mrr: dict[str, float]
    default_reference_mrr: float
    tier_median: float
    tenure_median: float
    engagement_median: float
    keep: list[int] | None = None  # columns of :func:`_design` the model uses
    names: list[str] = field(default_factory=list)


def _column(table: pa.Table, name: str):
    return table.column(name) if name in table.column_names else None


def _floats(col, n: int, default: float = np.nan) -> np.ndarray:
    if col is None:
        return np.full(n, default)
    col = col.cast(pa.float64()) if not pa.types.is_floating(col.type) else col
    return col.fill_null(default).to_numpy(zero_copy_only=False).astype(np.float64) if n else np.zeros(0)


def _references(table: pa.Table, spec: _FeatureSpec) -> np.ndarray:
    n = table.num_rows
    cur = _column(table, "currency")
    if cur is None:
        return np.full(n, spec.default_reference_mrr)
    return np.array([spec.reference_mrr.get(c, spec.default_reference_mrr) for c in cur.to_pylist()])


def _learn_spec(events: pa.Table) -> _FeatureSpec:
    mrr = _floats(events.column("mrr_minor"), events.num_rows)
    cur = np.array(events.column("currency").to_pylist(), dtype=object)
    refs = {}
    for c in sorted({x for x in cur if x is not None}):
        vals = mrr[(cur == c) & ~np.isnan(mrr)]
        if vals.size:
            refs[c] = float(np.median(vals))
    ok = mrr[~np.isnan(mrr)]
    tier = _floats(events.column("tier"), events.num_rows)
    tenure = _floats(events.column("tenure_days"), events.num_rows)
    eng = _floats(events.column("engagement_per_week"), events.num_rows)

    def med(x):
        x = x[~np.isnan(x)]
        return float(np.median(x)) if x.size else 0.0

    return _FeatureSpec(refs, float(np.median(ok)) if ok.size else 0.0, med(tier), med(tenure), med(eng))


def _design(table: pa.Table, spec: _FeatureSpec) -> tuple[np.ndarray, list[str]]:
    """The features at churn time, one row per churn (see the module docstring)."""
    n = table.num_rows
    reasons = _reason_names(table.column("reason").to_pylist())
    cols, names = [], []
    for r in REASONS:
        cols.append((reasons == r).astype(np.float64))
        names.append(f"reason={r}")
    inv = table.column("involuntary").cast(pa.bool_()).fill_null(False).to_numpy(zero_copy_only=False)
    cols.append(inv.astype(np.float64))
    names.append("involuntary")
    mrr = _floats(table.column("mrr_minor"), n)
    ref = _references(table, spec)
    mrr = np.where(np.isnan(mrr), ref, mrr)
    cols.append(np.log1p(np.maximum(mrr, 0)) - np.log1p(np.maximum(ref, 0)))
    names.append("log_mrr_vs_median")
    tier_col = _column(table, "tier")
    tier = _floats(tier_col, n)
    cols.append(np.where(np.isnan(tier), spec.tier_median, tier))
    names.append("tier")
    tenure = _floats(table.column("tenure_days"), n)
    tenure = np.where(np.isnan(tenure), spec.tenure_median, tenure)
    cols.append(np.log1p(np.maximum(tenure, 0) / DAYS_PER_MONTH))
    names.append("log_tenure_months")
    spells = _floats(_column(table, "prior_spells"), n, 0.0)
    cols.append(np.minimum(np.nan_to_num(spells), 3.0))
    names.append("prior_spells")
    eng = _floats(_column(table, "engagement_per_week"), n)
    cols.append(np.log1p(np.maximum(np.where(np.isnan(eng), spec.engagement_median, eng), 0)))
    names.append("log_engagement_per_week")
    micros = timestamp_micros(table.column("churned_at"))
    month = (micros.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64) % 12).astype(np.float64)
    cols.append(np.sin(2 * np.pi * month / 12))
    cols.append(np.cos(2 * np.pi * month / 12))
    names += ["month_sin", "month_cos"]
    return (np.column_stack(cols) if n else np.zeros((0, len(names)))), names


def _features(table: pa.Table, spec: _FeatureSpec) -> np.ndarray:
    x, _ = _design(table, spec)
    return x if spec.keep is None else x[:, spec.keep]


def _choose_columns(x: np.ndarray, names: list[str], churned_micros: np.ndarray) -> list[int]:
    """Leave out constant columns, exact copies of an earlier column (``involuntary`` is
    ``reason=involuntary`` unless reasons were overridden) and the calendar-month terms unless
    every month of the year was seen in at least :data:`MIN_SEASON_YEARS` years (with less, a
    one-off event such as a price increase would pass for seasonality)."""
    months = churned_micros.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
    years_per_month = [len({int(v) // 12 for v in months if int(v) % 12 == m}) for m in range(12)]
    seasonal = min(years_per_month) >= MIN_SEASON_YEARS if months.size else False
    keep: list[int] = []
    for j, name in enumerate(names):
        col = x[:, j]
        if name.startswith("month_") and not seasonal:
            continue
        if col.size and np.all(col == col[0]):
            continue
        if any(np.array_equal(col, x[:, i]) for i in keep):
            continue
        keep.append(j)
    return keep


def _classifier(y: np.ndarray, random_state: int, C: float):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = int(min(5, y.sum(), y.size - y.sum()))
    base = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    return CalibratedClassifierCV(base, method="sigmoid",
                                  cv=StratifiedKFold(n_splits=max(folds, 2), shuffle=True,
                                                     random_state=random_state))


# ================================================================================ the return-hazard baseline

def _antitonic_blocks(d: np.ndarray, exposure: np.ndarray) -> list[tuple[int, int]]:
    """Pool adjacent violators (Ayer et al. 1955): blocks ``[lo, hi)`` whose pooled rates
    ``sum d / sum exposure`` strictly decrease, the exposure-weighted least-squares fit (equal
    neighbours are pooled too, so a stretch without returns is one block)."""
    blocks: list[list[float]] = []  # [lo, hi, d, exposure]
    for i in range(d.size):
        blocks.append([i, i + 1, float(d[i]), float(exposure[i])])
        while len(blocks) > 1 and blocks[-2][2] * blocks[-1][3] <= blocks[-1][2] * blocks[-2][3]:
            hi, dd, ee = blocks[-1][1], blocks[-1][2], blocks[-1][3]
            blocks.pop()
            blocks[-1][1] = hi
            blocks[-1][2] += dd
            blocks[-1][3] += ee
    return [(int(b[0]), int(b[1])) for b in blocks]


def baseline_cumulative_hazard(months_followed: np.ndarray, returned: np.ndarray, *,
                               min_at_risk: int = MIN_AT_RISK,
                               grid_months: int = C_GRID_MONTHS + 60) -> tuple[np.ndarray, dict]:
    """``Lambda0`` at whole months ``0..grid_months`` from churn follow-up (months; returned or censored).

    Actuarial life table on monthly intervals (returns ``d``, exposure ``n - censored / 2``) up to
    the last month with at least ``min_at_risk`` churns exposed; the monthly return hazard is
    fitted non-increasing (pooled adjacent violators, exposure-weighted) and each pooled block's
    rate is the Jeffreys estimate ``(returns + 1/2) / exposure``, so a stretch without returns
    keeps a small positive hazard; the last block's rate continues beyond the data.
    Returns (``Lambda0``, facts for the report).
    """
    t = np.asarray(months_followed, dtype=np.float64)
    e = np.asarray(returned, dtype=bool)
    k_max = int(np.ceil(t.max())) + 1 if t.size else 1
    k = np.floor(np.maximum(t, 0.0)).astype(np.int64)
    d = np.bincount(k[e], minlength=k_max)[:k_max].astype(np.float64)
    c = np.bincount(k[~e], minlength=k_max)[:k_max].astype(np.float64)
    n = t.size - np.concatenate([[0.0], np.cumsum(d + c)[:-1]])
    exposed = n - c / 2.0
    reliable = exposed >= min_at_risk
    months = int(np.argmin(reliable)) if not reliable.all() else k_max  # the leading run of reliable months
    months = max(months, 1)
    d, exposed = d[:months], np.maximum(exposed[:months], 1e-9)
    hazard = np.empty(months)
    blocks = _antitonic_blocks(d, exposed)
    for lo, hi in blocks:
        hazard[lo:hi] = (d[lo:hi].sum() + 0.5) / exposed[lo:hi].sum()
    hazard = np.minimum.accumulate(np.clip(hazard, 0.0, 1.0 - 1e-9))
    step = -np.log1p(-hazard)
    grid = np.arange(grid_months + 1)
    per_month = np.where(grid[:-1] < months, step[np.minimum(grid[:-1], months - 1)], step[-1])
    lam = np.concatenate([[0.0], np.cumsum(per_month)])
    return lam, {"reliable_months": months, "tail_hazard_per_month": float(hazard[-1]),
                 "monthly_hazard": [round(float(x), 5) for x in hazard]}


def recency_curve(cumulative_hazard: np.ndarray, horizon_months: float) -> np.ndarray:
    """``c(m)`` at whole months ``0..C_GRID_MONTHS``, non-increasing, ``c(0) = 1``."""
    grid = np.arange(cumulative_hazard.size, dtype=np.float64)

    def lam(x):
        return np.interp(x, grid, cumulative_hazard)

    m = np.arange(C_GRID_MONTHS + 1, dtype=np.float64)
    whole = lam(horizon_months)
    if whole <= 0:
        return np.ones(m.size)
    curve = (lam(m + horizon_months) - lam(m)) / whole
    curve[0] = 1.0
    return np.clip(np.minimum.accumulate(curve), 0.0, 1.0)


def _interp_curve(curve: np.ndarray, months: np.ndarray) -> np.ndarray:
    return np.interp(np.maximum(months, 0.0), np.arange(curve.size, dtype=np.float64), curve)


# ================================================================================ the model

@dataclass
class PropensityModel:
    """A fitted win-back propensity model; :meth:`predict` scores churned customers."""

    mode: str  # "learnt" | "prior"
    as_of: dt.datetime
    horizon_days: float
    report: dict
    spec: _FeatureSpec
    classifier: object | None = None
    curve: np.ndarray | None = None  # c(m) at whole months (learnt mode)
    prior_rates: dict[str, float] = field(default_factory=dict)
    recency_months: float = PRIOR_RECENCY_MONTHS
    churned: pa.Table | None = None  # the customers churned at ``as_of`` (as :func:`churned_customers`)

    def predict(self, churned: pa.Table, *, as_of: dt.datetime | None = None) -> np.ndarray:
        """P(return within the horizon after ``as_of`` | still away), one per row of ``churned``.

        ``churned`` needs ``source, customer_id, churned_at, reason, involuntary, mrr_minor,
        tenure_days`` and may carry ``currency`` (MRR is compared with the median of its currency),
        ``tier``, ``prior_spells``, ``engagement_per_week`` (missing ones take the training
        medians; ``prior_spells`` 0) and ``months_since_churn`` (else computed from ``churned_at``
        and ``as_of``, default the model's). :func:`churned_customers` builds such a table.
        """
        missing = [c for c in REQUIRED_COLUMNS if c not in churned.column_names]
        if missing:
            raise ValueError(f"churned table lacks column(s) {', '.join(missing)}")
        months = self._months(churned, as_of)
        if self.mode == "learnt":
            p0 = self.predict_at_churn(churned)
            return _fade(p0, _interp_curve(self.curve, months))
        return self._prior(churned, months)

    def predict_at_churn(self, churned: pa.Table) -> np.ndarray:
        """P(return within the horizon after the churn), i.e. ``months_since_churn = 0``."""
        if churned.num_rows == 0:
            return np.zeros(0)
        if self.mode == "learnt":
            return self.classifier.predict_proba(_features(churned, self.spec))[:, 1]
        return self._prior(churned, np.zeros(churned.num_rows))

    def _months(self, churned: pa.Table, as_of: dt.datetime | None) -> np.ndarray:
        if as_of is None and "months_since_churn" in churned.column_names:
            return _floats(churned.column("months_since_churn"), churned.num_rows, 0.0)
        at = epoch_micros(as_of or self.as_of)
        return (at - timestamp_micros(churned.column("churned_at"))) / MICROS_PER_MONTH

    def _prior(self, churned: pa.Table, months: np.ndarray) -> np.ndarray:
        n = churned.num_rows
        if n == 0:
            return np.zeros(0)
        return prior_propensity(
            churned.column("reason").to_pylist(), _floats(churned.column("mrr_minor"), n), months,
            tenure_days=_floats(churned.column("tenure_days"), n), reference_mrr_minor=_references(churned, self.spec),
            horizon_days=self.horizon_days, rates=self.prior_rates, recency_months=self.recency_months)


def posterior_rates(reasons, returned, *, rates: Mapping[str, float] | None = None,
                    strength: float = PRIOR_STRENGTH) -> tuple[dict[str, float], dict]:
    """Beta-binomial shrinkage of the prior rates: ``(s p + returns) / (s + churns)`` per reason."""
    table = dict(PRIOR_RETURN_RATES if rates is None else rates)
    names = _reason_names(reasons)
    y = np.asarray(returned, dtype=bool)
    out, facts = {}, {}
    for r, p in table.items():
        sel = names == r
        churns, back = int(sel.sum()), int(y[sel].sum())
        out[r] = (strength * p + back) / (strength + churns) if churns else p
        facts[r] = {"prior": p, "churns": churns, "returns": back, "posterior": out[r]}
    return out, facts


def fit_propensity(con, as_of: dt.datetime, *, horizon_days: float = DEFAULT_HORIZON_DAYS,
                   reasons: Mapping | None = None, reason_map: dict[str, str] | None = None,
                   min_positives: int = MIN_POSITIVES, prior_rates: Mapping[str, float] | None = None,
                   prior_strength: float = PRIOR_STRENGTH, recency_months: float = PRIOR_RECENCY_MONTHS,
                   test_fraction: float = 0.3, C: float = 0.5, random_state: int = 0) -> PropensityModel:
    """Fit the win-back propensity model on the history up to ``as_of`` (see the module docstring).

    ``reasons``: optional ``{(source, customer_id): reason}`` overriding the stated reason of each
    customer's latest churn; ``reason_map``: cancellation code -> reason map for
    :func:`~winback.analytics.metrics.paid_spells`. ``min_positives`` returns within the horizon
    are needed for the learnt mode; otherwise the prior mode is used. Deterministic.
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    timings = {}
    t0 = time.perf_counter()
    events = _fetch_events(con, as_of, reasons, reason_map)
    timings["query"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = events.num_rows
    churned = timestamp_micros(events.column("churned_at"))
    nxt = timestamp_micros(events.column("next_paid_start"))
    null = np.iinfo(np.int64).min
    back = nxt != null
    at = epoch_micros(as_of)
    horizon = horizon_days * MICROS_PER_DAY
    eligible = churned <= at - horizon
    y_all = back & (nxt - churned <= horizon)
    y = y_all[eligible]
    spec = _learn_spec(events) if n else _FeatureSpec({}, 0.0, 0.0, 0.0, 0.0)
    rates = dict(PRIOR_RETURN_RATES if prior_rates is None else prior_rates)
    elig = events.filter(pa.array(eligible)) if n else events
    post, prior_facts = posterior_rates(elig.column("reason").to_pylist() if n else [], y, rates=rates,
                                        strength=prior_strength)
    report: dict = {
        "as_of": as_of.isoformat(), "horizon_days": horizon_days, "churn_events": int(n),
        "churned_now": int((~back).sum()) if n else 0, "eligible_events": int(eligible.sum()),
        "positives": int(y.sum()), "base_rate": float(y.mean()) if y.size else None,
        "min_positives": min_positives,
        "prior": {"strength": prior_strength, "recency_months": recency_months, "by_reason": prior_facts,
                  "reference_mrr": spec.reference_mrr},
    }
    if y.sum() < min_positives or (y.size - y.sum()) < min_positives:
        report["mode"] = "prior"
        report["why"] = (f"{int(y.sum())} returns within {horizon_days:g} days among {int(eligible.sum())} churns "
                         f"old enough to tell (at least {min_positives} needed): prior rates per reason, "
                         "updated by the returns seen")
        timings["fit"] = time.perf_counter() - t0
        report["seconds"] = timings
        return PropensityModel("prior", as_of, horizon_days, report, spec, prior_rates=post,
                               recency_months=recency_months, churned=_current(events, as_of))

    report["mode"] = "learnt"
    report["why"] = (f"{int(y.sum())} returns within {horizon_days:g} days among {int(eligible.sum())} churns "
                     f"old enough to tell (at least {min_positives} needed)")
    x_all, all_names = _design(elig, spec)
    spec.keep = _choose_columns(x_all, all_names, churned[eligible])
    x = x_all[:, spec.keep]
    names = spec.names = [all_names[j] for j in spec.keep]
    report["features"] = names
    # small dense problems: threaded BLAS only adds contention (4x slower measured with a busy 2nd core)
    with threadpool_limits(limits=1):
        report["validation"] = _validate(elig, x, y, churned[eligible], spec, rates, prior_strength,
                                         horizon_days, recency_months, test_fraction, C, random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            clf = _classifier(y, random_state, C).fit(x, y)
        report["cross_validation"] = _cross_validate(x, y, random_state, C)
    report["coefficients"] = _coefficients(clf, names)
    # time since churn: baseline return hazard from every churn event (censored at as_of)
    stop = np.where(back, nxt, at)
    followed = (stop - churned) / MICROS_PER_MONTH
    lam, facts = baseline_cumulative_hazard(followed, back)
    horizon_months = horizon_days / DAYS_PER_MONTH
    curve = recency_curve(lam, horizon_months)
    report["recency"] = {"method": "grouped proportional hazards, life-table baseline", **facts,
                         "c": {str(m): round(float(curve[m]), 4) for m in (0, 1, 3, 6, 12, 18, 24, 36)}}
    model = PropensityModel("learnt", as_of, horizon_days, report, spec, classifier=clf, curve=curve,
                            prior_rates=post, recency_months=recency_months, churned=_current(events, as_of))
    report["recency_check"] = _recency_check(model, events, churned, nxt, back, at, horizon)
    timings["fit"] = time.perf_counter() - t0
    report["seconds"] = timings
    return model


def _cross_validate(x: np.ndarray, y: np.ndarray, random_state: int, C: float, folds: int = 5) -> dict:
    """Out-of-fold predictions of the whole pipeline over all training churns (random stratified
    folds, ignoring time): more returns to judge ranking and calibration than the time split has."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    k = int(min(folds, y.sum(), y.size - y.sum()))
    if k < 2 or y.sum() < 2 * 2:
        return {"skipped": "too few returns"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        p = cross_val_predict(_classifier(y, random_state, C), x, y, method="predict_proba",
                              cv=StratifiedKFold(n_splits=k, shuffle=True, random_state=random_state + 1))[:, 1]
    return {"folds": k, **_scores(y, p)}


def _coefficients(clf, names: list[str]) -> dict[str, float]:
    """Mean logistic-regression coefficient (standardised features) over the calibration folds."""
    coefs = [c.estimator[-1].coef_[0] for c in clf.calibrated_classifiers_]
    mean = np.mean(coefs, axis=0)
    return {name: round(float(v), 4) for name, v in zip(names, mean)}


def _validate(elig: pa.Table, x: np.ndarray, y: np.ndarray, churned: np.ndarray, spec: _FeatureSpec,
              rates: dict, strength: float, horizon_days: float, recency_months: float, test_fraction: float,
              C: float, random_state: int) -> dict:
    order = np.argsort(churned, kind="stable")
    cut = int(round(order.size * (1.0 - test_fraction)))
    train, test = order[:cut], order[cut:]
    out = {"split": "time", "test_fraction": test_fraction, "train_events": int(train.size),
           "train_returns": int(y[train].sum()), "test_events": int(test.size), "test_returns": int(y[test].sum())}
    if train.size:
        out["train_until"] = str(np.datetime64(int(churned[train].max()), "us"))
    if y[train].sum() < 5 or (train.size - y[train].sum()) < 5 or test.size == 0:
        out["skipped"] = "too few returns in the older churns to validate"
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        clf = _classifier(y[train], random_state, C).fit(x[train], y[train])
    p = clf.predict_proba(x[test])[:, 1]
    out.update(_scores(y[test], p))
    out["reliability"] = reliability_table(y[test], p, 10, "quantile")
    # the prior mode on the same split (rates updated by the older churns only)
    reasons = elig.column("reason").to_pylist()
    post, _ = posterior_rates([reasons[i] for i in train], y[train], rates=rates, strength=strength)
    test_table = elig.take(pa.array(test))
    prior = PropensityModel("prior", dt.datetime(1970, 1, 1), horizon_days, {}, spec, prior_rates=post,
                            recency_months=recency_months).predict_at_churn(test_table)
    out["prior_mode"] = {k: v for k, v in _scores(y[test], prior).items() if k in ("auc", "brier", "ece",
                                                                                   "ece_equal_mass",
                                                                                   "mean_predicted")}
    return out


def _recency_check(model: PropensityModel, events: pa.Table, churned: np.ndarray, nxt: np.ndarray,
                   back: np.ndarray, at: int, horizon: float) -> list[dict]:
    """Churners still away ``m`` months after leaving, with a full horizon after that: predicted
    P(return in the next horizon) vs what happened (in-sample for the classifier)."""
    rows = []
    p0 = None
    for m in (3, 6, 12):
        start = churned + m * MICROS_PER_MONTH
        sel = (start + horizon <= at) & (~back | (nxt > start))
        if not sel.any():
            continue
        if p0 is None:
            p0 = model.predict_at_churn(events)
        observed = back[sel] & (nxt[sel] <= start[sel] + horizon)
        predicted = _fade(p0[sel], _interp_curve(model.curve, np.full(sel.sum(), float(m))))
        rows.append({"months_away": m, "customers": int(sel.sum()), "returns": int(observed.sum()),
                     "observed_rate": float(observed.mean()), "mean_predicted": float(predicted.mean())})
    return rows


__all__ = [
    "PRIOR_RETURN_RATES", "PRIOR_STRENGTH", "PRIOR_RECENCY_MONTHS", "PropensityModel", "baseline_cumulative_hazard",
    "churn_events", "churned_customers", "expected_calibration_error", "fit_propensity", "posterior_rates",
    "prior_propensity", "prior_recency_factor", "recency_curve", "reliability_table",
]
