"""Customer health: a 0-100 score, a band and the top reasons, from the early-warning signals of
DOMAIN.md ("Early warning": falling engagement, falling purchase frequency, negative feedback)
plus billing trouble (failed payments, expiring cards, scheduled cancellations).

Pure functions over the table of :func:`winback.analytics.features.customer_features` (and,
optionally, P(alive) per customer from the CLV models, e.g. :mod:`winback.analytics.clv.bgnbd`:
Fader, Hardie & Lee 2008, "Computing P(alive) using the BG/NBD model"); NumPy and Arrow compute
only, no per-customer Python (1M customers score in about 2 s).

Scoring (an additive penalty score, the usual shape of customer-success health scores; the
weights are judgement, not fitted - :mod:`winback.analytics.churn_risk` fits a model and
reports both side by side)::

    health_score = clip(100 - sum_f penalty_f, 0, 100)

with ``W_f`` = ``settings.penalties.<f>`` and each factor ``f`` contributing (``s`` =
:class:`~winback.config.HealthSettings`):

==================== ============================================================ =============================
factor               fires when                                                    penalty
==================== ============================================================ =============================
cancel_scheduled     ``cancel_scheduled_for`` is set                               ``W``
payment_failed       ``failed_payment_at`` is set (recent, not recovered)          ``W``
purchase_lapse       regular (``purchases >= s.regular_min_purchases``), no        ``W``
                     purchase for ``s.inactive_days`` and usually buying more
                     often than that (median gap unknown or shorter) - the
                     brief's 60-day rule, flagged in ``inactive_regular`` - or
                     ``purchases >= 2`` and ``days_since_last_purchase >=
                     max(s.purchase_overdue_ratio x median gap, s.min_lapse_days)``
low_p_alive          ``p_alive < s.p_alive_threshold`` (``t``)                      ``W x (t - p_alive) / t``
logins_down          ``logins_vs_baseline <= 1 - s.engagement_drop`` and the       ``W x (1 - logins_vs_baseline)``
                     baseline predicts ``>= s.min_expected_events`` logins in the
                     recent window
feature_use_down     the same for ``feature_uses_vs_baseline``                     ``W x (1 - ratio)``
no_recent_activity   ``days_since_last_activity >= s.quiet_days``                   ``W``
low_csat             ``lowest_csat_90d <= s.low_csat_max`` (``c``)                  ``W x (c + 1 - csat) / c``
card_expiring        active subscriber, ``days_until_card_expiry <=                ``W``
                     s.card_expiry_days`` (an expired card too)
nps_detractor        ``latest_nps <= s.nps_detractor_max`` (``d``), answered        ``W x (d + 1 - nps) / (d + 1)``
                     within ``s.nps_max_age_days``
unresolved_tickets   ``open_tickets >= 1`` (``m = s.max_counted_tickets``)          ``W x min(open_tickets, m)``
many_tickets         ``tickets_90d >= s.many_tickets``                              ``W``
==================== ============================================================ =============================

``health_band``: ``healthy`` when ``score >= s.healthy_min``, ``watch`` when ``score >=
s.watch_min``, else ``at_risk``. ``health_factors``: the ``s.max_factors`` largest penalties,
largest first (ties in the order of the table above), each in plain words, e.g. "logins down 72%
against their own baseline", "no purchase for 84 days (usually every 21)", "card expires on
2026-01-31", "payment failed on 2025-12-20 (insufficient_funds)", "2 unresolved tickets", "CSAT 1/5
on 2025-12-03", "cancellation scheduled for 2026-01-15", "P(alive) 0.31".

The score is meant for current customers (it scores everyone; a churned subscriber simply
collects lapse and inactivity factors).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from winback.config import HealthSettings

#: factor names, in tie-break order
FACTORS = ("cancel_scheduled", "payment_failed", "purchase_lapse", "low_p_alive", "logins_down", "feature_use_down",
           "no_recent_activity", "low_csat", "card_expiring", "nps_detractor", "unresolved_tickets", "many_tickets")
BANDS = ("healthy", "watch", "at_risk")


# ================================================================================ helpers

def _num(features: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64 with NaN for nulls."""
    col = features.column(name)
    if pa.types.is_boolean(col.type):
        col = col.cast(pa.int8())
    return col.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def _present(features: pa.Table, name: str) -> np.ndarray:
    col = features.column(name)
    return pc.is_valid(col).to_numpy(zero_copy_only=False).astype(bool)


def _ge(values: np.ndarray, bound: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(values, nan=-np.inf) >= bound


def _le(values: np.ndarray, bound: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(values, nan=np.inf) <= bound


def _text_int(values: np.ndarray) -> pa.Array:
    return pa.array(np.floor(values + 0.5).astype(np.int64)).cast(pa.string())


def _text_floor(values: np.ndarray) -> pa.Array:
    return pa.array(np.floor(values).astype(np.int64)).cast(pa.string())


def _text_date(column) -> pa.Array:
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return pc.strftime(col, format="%Y-%m-%d")


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _p_alive(p_alive, n: int) -> np.ndarray:
    if p_alive is None:
        return np.full(n, np.nan)
    values = np.asarray(p_alive, dtype=np.float64).reshape(-1)
    if values.size != n:
        raise ValueError(f"p_alive has {values.size} values for {n} customers")
    return values


# ================================================================================ penalties

def inactive_regular(features: pa.Table, settings: HealthSettings | None = None) -> np.ndarray:
    """The brief's rule: a regular customer (``>= regular_min_purchases`` purchases) with no purchase
    for ``inactive_days``, who usually buys more often than that (median gap unknown or shorter)."""
    s = settings or HealthSettings()
    purchases = np.nan_to_num(_num(features, "purchases"))
    since = _num(features, "days_since_last_purchase")
    usual = _num(features, "median_days_between_purchases")
    return (purchases >= s.regular_min_purchases) & _ge(since, s.inactive_days) & ~_ge(usual, s.inactive_days)


def factor_penalties(features: pa.Table, settings: HealthSettings | None = None, p_alive=None) -> dict[str, np.ndarray]:
    """Points each factor takes off every customer's score (0 where it does not fire), by factor name."""
    s = settings or HealthSettings()
    w = s.penalties
    n = features.num_rows
    out: dict[str, np.ndarray] = {}

    out["cancel_scheduled"] = np.where(_present(features, "cancel_scheduled_for"), w.cancel_scheduled, 0.0)
    out["payment_failed"] = np.where(_present(features, "failed_payment_at"), w.payment_failed, 0.0)

    purchases = np.nan_to_num(_num(features, "purchases"))
    since = _num(features, "days_since_last_purchase")
    usual = _num(features, "median_days_between_purchases")
    with np.errstate(invalid="ignore"):
        overdue_after = np.maximum(s.purchase_overdue_ratio * usual, s.min_lapse_days)
        overdue = (purchases >= 2) & (np.nan_to_num(usual) > 0) & (np.nan_to_num(since, nan=-1) >= overdue_after)
    lapse = inactive_regular(features, s) | overdue
    out["purchase_lapse"] = np.where(lapse, w.purchase_lapse, 0.0)

    p = _p_alive(p_alive, n)
    t = s.p_alive_threshold
    with np.errstate(invalid="ignore"):
        low = np.nan_to_num(p, nan=np.inf) < t
        out["low_p_alive"] = np.where(low, w.low_p_alive * (t - np.clip(np.nan_to_num(p), 0, 1)) / t, 0.0)

    for name, ratio_col, base_col, weight in (
            ("logins_down", "logins_vs_baseline", "login_baseline_per_day", w.logins_down),
            ("feature_use_down", "feature_uses_vs_baseline", "feature_use_baseline_per_day", w.feature_use_down)):
        ratio = _num(features, ratio_col)
        expected = _num(features, base_col) * s.recent_days
        fires = _le(ratio, 1.0 - s.engagement_drop) & _ge(expected, s.min_expected_events)
        out[name] = np.where(fires, weight * (1.0 - np.clip(np.nan_to_num(ratio), 0.0, 1.0)), 0.0)

    out["no_recent_activity"] = np.where(_ge(_num(features, "days_since_last_activity"), s.quiet_days),
                                         w.no_recent_activity, 0.0)

    csat = _num(features, "lowest_csat_90d")
    c = s.low_csat_max
    out["low_csat"] = np.where(_le(csat, c), w.low_csat * (c + 1 - np.nan_to_num(csat, nan=c + 1)) / c, 0.0)
    out["low_csat"] = np.clip(out["low_csat"], 0.0, w.low_csat)

    active = np.nan_to_num(_num(features, "is_subscriber_active")) > 0
    expiry = _num(features, "days_until_card_expiry")
    out["card_expiring"] = np.where(active & _le(expiry, s.card_expiry_days), w.card_expiring, 0.0)

    nps = _num(features, "latest_nps")
    d = s.nps_detractor_max
    fresh = _le(_num(features, "days_since_latest_nps"), s.nps_max_age_days)
    out["nps_detractor"] = np.where(_le(nps, d) & fresh,
                                    w.nps_detractor * (d + 1 - np.nan_to_num(nps, nan=d + 1)) / (d + 1), 0.0)

    open_tickets = np.nan_to_num(_num(features, "open_tickets"))
    out["unresolved_tickets"] = w.unresolved_tickets * np.minimum(open_tickets, s.max_counted_tickets)
    out["many_tickets"] = np.where(_ge(_num(features, "tickets_90d"), s.many_tickets), w.many_tickets, 0.0)
    return {name: out[name].astype(np.float64) for name in FACTORS}



# ================================================================================ factor texts

def _messages(name: str, f: pa.Table, penalty: np.ndarray, s: HealthSettings, p: np.ndarray) -> pa.Array:
    """Plain-words text of factor ``name`` for the rows of ``f`` (all of which have it)."""
    if name == "cancel_scheduled":
        return _join("cancellation scheduled for ", _text_date(f.column("cancel_scheduled_for")))
    if name == "payment_failed":
        code = f.column("failed_payment_decline_code").combine_chunks()
        suffix = pc.if_else(pc.is_valid(code), _join(" (", code.fill_null(""), ")"), "")
        return _join("payment failed on ", _text_date(f.column("failed_payment_at")), suffix)
    if name == "purchase_lapse":
        usual = _num(f, "median_days_between_purchases")
        known = ~np.isnan(usual)
        head = _join("no purchase for ", _text_floor(_num(f, "days_since_last_purchase")), " days")
        tail = _join(" (usually every ", _text_int(np.nan_to_num(usual)), ")")
        return _join(head, pc.if_else(pa.array(known), tail, ""))
    if name == "low_p_alive":
        hundredths = np.clip(np.floor(p * 100 + 0.5), 0, 100).astype(np.int64)
        whole = pa.array(hundredths // 100).cast(pa.string())
        frac = pc.utf8_lpad(pa.array(hundredths % 100).cast(pa.string()), width=2, padding="0")
        return _join("P(alive) ", whole, ".", frac)
    if name in ("logins_down", "feature_use_down"):
        ratio = _num(f, "logins_vs_baseline" if name == "logins_down" else "feature_uses_vs_baseline")
        what = "logins" if name == "logins_down" else "feature use"
        return _join(f"{what} down ", _text_int(100 * (1 - np.clip(ratio, 0, 1))), "% against their own baseline")
    if name == "no_recent_activity":
        return _join("no product activity for ", _text_floor(_num(f, "days_since_last_activity")), " days")
    if name == "low_csat":
        return _join("CSAT ", _text_int(_num(f, "lowest_csat_90d")), "/5 on ", _text_date(f.column("lowest_csat_at")))
    if name == "card_expiring":
        days = _num(f, "days_until_card_expiry")
        verb = pc.if_else(pa.array(days < 0), "card expired on ", "card expires on ")
        return _join(verb, _text_date(f.column("card_expires_on")))
    if name == "nps_detractor":
        return _join("NPS ", _text_int(_num(f, "latest_nps")), "/10 on ", _text_date(f.column("latest_nps_at")))
    if name == "unresolved_tickets":
        count = np.minimum(np.nan_to_num(_num(f, "open_tickets")), 10**9)
        noun = pc.if_else(pa.array(count == 1), " unresolved ticket", " unresolved tickets")
        return _join(_text_int(count), noun)
    if name == "many_tickets":
        return _join(_text_int(_num(f, "tickets_90d")), f" tickets in the last {s.ticket_days} days")
    raise ValueError(f"unknown factor {name!r}")


# ================================================================================ the score

def health_scores(features: pa.Table, settings: HealthSettings | None = None, p_alive=None) -> pa.Table:
    """Score every row of ``features`` (see the module docstring).

    ``p_alive``: optional array aligned with the rows (NaN where unknown). Returns ``source,
    customer_id, health_score`` (float, 0-100, one decimal), ``health_band`` (healthy / watch /
    at_risk), ``health_factors`` (list of up to ``max_factors`` texts, largest penalty first) and
    ``inactive_regular`` (the 60-day rule, for triggering a win-back email).
    """
    s = settings or HealthSettings()
    n = features.num_rows
    p = _p_alive(p_alive, n)
    penalties = factor_penalties(features, s, p)
    matrix = np.stack([penalties[name] for name in FACTORS], axis=1) if n else np.zeros((0, len(FACTORS)))
    score = np.round(np.clip(100.0 - matrix.sum(axis=1), 0.0, 100.0), 1)
    band = np.where(score >= s.healthy_min, 0, np.where(score >= s.watch_min, 1, 2))

    # top factors: stable sort on -penalty keeps the FACTORS order among ties
    k = min(s.max_factors, len(FACTORS))
    order = np.argsort(-matrix, axis=1, kind="stable")[:, :k] if n else np.zeros((0, k), dtype=np.int64)
    chosen_penalty = np.take_along_axis(matrix, order, axis=1) if n else np.zeros((0, k))
    chosen = chosen_penalty > 0
    counts = chosen.sum(axis=1)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    positions, texts = [], []
    for index, name in enumerate(FACTORS):
        rows, ranks = np.nonzero(chosen & (order == index))
        if rows.size == 0:
            continue
        subset = features.take(pa.array(rows))
        texts.append(_messages(name, subset, matrix[rows, index], s, p[rows]))
        positions.append(offsets[rows] + ranks)
    if texts:
        values = pa.concat_arrays([t.cast(pa.string()) for t in texts])
        values = values.take(pa.array(np.argsort(np.concatenate(positions), kind="stable")))
    else:
        values = pa.array([], pa.string())
    factors = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)
    return pa.table({
        "source": features.column("source"),
        "customer_id": features.column("customer_id"),
        "health_score": pa.array(score, pa.float64()),
        "health_band": pa.array(np.asarray(BANDS, dtype=object)[band] if n else [], pa.string()),
        "health_factors": factors,
        "inactive_regular": pa.array(inactive_regular(features, s) if n else [], pa.bool_()),
    })


def baseline_risk(scores) -> np.ndarray:
    """The health score read as a churn risk: ``1 - health_score / 100`` (for comparing with the model)."""
    return 1.0 - np.asarray(scores, dtype=np.float64) / 100.0
