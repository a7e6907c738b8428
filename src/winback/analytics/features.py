"""Per-customer behavioural features as of an instant: the raw material of the health score and
of the churn-risk model.

:func:`customer_features` pushes the work down to the history backend with Ibis: one filtered
aggregation per fact table (each materialised as a temporary table where the backend allows, so
none is computed twice), joined on ``(source, customer_id)``; it fetches one row per customer and
turns the instants it found into day counts with NumPy. On 1M customers with 28M fact rows it
takes about 15 s on two cores (``benchmarks/bench_health.py``). It reads only facts at
or before ``as_of`` - rows that happen later change nothing - so features "as of" a past cutoff
are what was knowable then, which is what the churn-risk model's time-based split relies on.

Windows (``T = as_of``; lengths from :class:`~winback.config.HealthSettings`):

* recent window ``(T - recent_days, T]`` (30 days);
* baseline window ``(T - recent_days - baseline_days, T - recent_days]`` (days 31..120 before T);
* ticket window ``(T - ticket_days, T]``; failed-payment window ``(T - payment_failure_days, T]``.

Columns (one row per customer known at ``T``: in ``customers`` with ``created_at <= T``, or with
any fact at or before ``T``):

* ``source, customer_id``;
* ``is_subscriber_active``: a paying spell (:func:`winback.analytics.metrics.paid_spells` rules)
  is active at ``T``; ``mrr`` / ``mrr_currency``: the MRR in force at ``T`` summed over the
  active spells (integer minor units; a customer paying in two currencies gets the larger);
  ``tenure_days``: days since the first paid start or first purchase, whichever came first
  (null if the customer never paid);
* engagement from ``product_events`` (``count`` is the number of events a row stands for):
  ``logins_30d`` (``login`` and ``session_start`` events - a shop's visits - in the recent
  window), ``feature_uses_30d`` (``feature_used``), ``distinct_features_30d`` and
  ``distinct_features_baseline`` (distinct ``feature`` values of ``feature_used`` events);
  ``login_baseline_per_day`` / ``feature_use_baseline_per_day``: events in the baseline window
  per *observable* baseline day; the baseline starts no earlier than the customer's first
  product event (tracking often starts after the account does) and is null when fewer than
  ``min_baseline_days`` of it were observable; ``logins_vs_baseline`` /
  ``feature_uses_vs_baseline``: recent daily rate / baseline daily rate (1 = as usual, 0.28 =
  down 72%; null without a baseline or when it is zero);
  ``last_activity_at`` / ``days_since_last_activity``: latest product event of any type
  (days are fractional: ``(T - instant) / 1 day``);
* purchases: completed orders (``ordered_at``) and paid invoices with a positive amount (at
  ``coalesce(paid_at, created_at)``): ``purchases`` (count), ``last_purchase_at``,
  ``days_since_last_purchase``, ``median_days_between_purchases`` (median of the gaps between
  consecutive distinct purchase days; null with fewer than two purchase days);
* support: ``open_tickets`` (opened by ``T`` and not resolved by ``T``: ``resolved_at > T``, or
  no ``resolved_at`` and a status other than solved/closed), ``tickets_90d`` (opened in the
  ticket window), ``lowest_csat_90d`` / ``lowest_csat_at`` (lowest 1-5 rating in the ticket
  window, from tickets - rated when resolved, else when opened - and ``csat`` surveys; the
  latest of equal lows), ``latest_nps`` / ``latest_nps_at`` / ``days_since_latest_nps`` (latest
  ``nps`` survey score);
* billing: ``card_expires_on`` (last valid day of the card on the customer's latest payment
  attempt that names one: a card is valid through the end of its expiry month),
  ``days_until_card_expiry`` (from ``T``'s date; negative once expired);
  ``failed_payment_at`` / ``failed_payment_decline_code`` / ``days_since_failed_payment``: the
  latest failed attempt in the failed-payment window when nothing succeeded after it (no later
  successful attempt and no later paid invoice), else null; ``cancel_scheduled_for`` /
  ``days_until_cancel``: the end of a subscription whose cancellation was requested by ``T``
  (``canceled_at <= T``) and takes effect after ``T`` (``coalesce(ended_at, current_period_end) >
  T``; the earliest if several). A ``cancel_at_period_end`` flag without a
  ``canceled_at`` is a snapshot fact: it counts only while ``ended_at`` is empty and the period
  end is after ``T``, so on a past ``T`` it may anticipate a request made later.

Snapshot columns (a ticket's ``status`` without ``resolved_at``, a subscription's ``status``)
describe the time of the last ingest; the rules above use the timestamps where they exist.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from typing import Iterator

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from winback.analytics import metrics
from winback.config import HealthSettings

KEY = ["source", "customer_id"]
LOGIN_EVENTS = ("login", "session_start")
FEATURE_EVENT = "feature_used"
RESOLVED_STATUSES = ("solved", "closed")
MICROS_PER_DAY = 86_400 * 1_000_000
NULL_MICROS = np.iinfo(np.int64).min

#: feature columns in output order (after ``source, customer_id``)
FEATURE_COLUMNS = (
    "is_subscriber_active", "mrr", "mrr_currency", "tenure_days",
    "logins_30d", "login_baseline_per_day", "logins_vs_baseline",
    "feature_uses_30d", "feature_use_baseline_per_day", "feature_uses_vs_baseline",
    "distinct_features_30d", "distinct_features_baseline", "last_activity_at", "days_since_last_activity",
    "purchases", "last_purchase_at", "days_since_last_purchase", "median_days_between_purchases",
    "open_tickets", "tickets_90d", "lowest_csat_90d", "lowest_csat_at", "latest_nps", "latest_nps_at",
    "days_since_latest_nps", "card_expires_on", "days_until_card_expiry", "failed_payment_at",
    "failed_payment_decline_code", "days_since_failed_payment", "cancel_scheduled_for", "days_until_cancel",
)


def naive_utc(instant: dt.datetime) -> dt.datetime:
    """Zone-less UTC (the history's convention) of an aware or naive datetime."""
    if instant.tzinfo is not None:
        instant = instant.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return instant


def _lit(instant: dt.datetime) -> ir.Value:
    return ibis.literal(naive_utc(instant), type="timestamp")


def _table(con, name: str, source: str | None) -> ir.Table:
    t = con.table(name)
    return t if source is None else t.filter(t.source == source)


def _attach(left: ir.Table, right: ir.Table) -> ir.Table:
    j = left.left_join(right, KEY)
    return j.drop([c for c in j.columns if c.endswith("_right")])


def _zero() -> ir.IntegerValue:
    return ibis.literal(0, type="int64")


# ================================================================================ the query parts

def _engagement(con, t: dt.datetime, s: HealthSettings, source: str | None) -> ir.Table:
    ev = _table(con, "product_events", source)
    ev = ev.filter(ev.occurred_at <= _lit(t))
    recent_from = _lit(t - dt.timedelta(days=s.recent_days))
    base_from = _lit(t - dt.timedelta(days=s.recent_days + s.baseline_days))
    n = ev["count"].coalesce(1).cast("int64")
    recent = ev.occurred_at > recent_from
    baseline = (ev.occurred_at > base_from) & ~recent
    login = ev.event_type.isin(LOGIN_EVENTS)
    used = ev.event_type == FEATURE_EVENT
    return ev.group_by(KEY).aggregate(
        logins_30d=n.sum(where=login & recent),
        _logins_base=n.sum(where=login & baseline),
        feature_uses_30d=n.sum(where=used & recent),
        _uses_base=n.sum(where=used & baseline),
        distinct_features_30d=ev.feature.nunique(where=used & recent),
        distinct_features_baseline=ev.feature.nunique(where=used & baseline),
        _first_event_at=ev.occurred_at.min(),
        last_activity_at=ev.occurred_at.max(),
    )


def _purchase_log(con, t: dt.datetime, source: str | None) -> ir.Table:
    """``(source, customer_id, at)``: completed orders and paid invoices with money, at or before ``t``."""
    orders = _table(con, "orders", source)
    orders = orders.filter((orders.status == "completed") & (orders.ordered_at <= _lit(t)))
    inv = _table(con, "invoices", source)
    paid_at = inv.paid_at.coalesce(inv.created_at)
    inv = inv.filter((inv.status == "paid") & (inv.amount_paid.coalesce(inv.amount_due) > 0) & (paid_at <= _lit(t)))
    return ibis.union(orders.select(*KEY, at=orders.ordered_at),
                      inv.select(*KEY, at=inv.paid_at.coalesce(inv.created_at)), distinct=False)


def _purchases(con, t: dt.datetime, source: str | None) -> ir.Table:
    log = _purchase_log(con, t, source)
    counts = log.group_by(KEY).aggregate(purchases=log.count(), last_purchase_at=log.at.max(),
                                         _first_purchase_at=log.at.min())
    days = log.select(*KEY, day=log.at.date()).distinct()
    days = days.mutate(_prev=days.day.lag().over(group_by=KEY, order_by=days.day))
    days = days.filter(days._prev.notnull())
    gaps = days.mutate(_gap=days.day.delta(days._prev, unit="day").cast("float64"))
    median = gaps.group_by(KEY).aggregate(median_days_between_purchases=gaps._gap.median())
    return _attach(counts, median)


def _support(con, t: dt.datetime, s: HealthSettings, source: str | None) -> tuple[ir.Table, ir.Table]:
    since = _lit(t - dt.timedelta(days=s.ticket_days))
    tk = _table(con, "tickets", source)
    tk = tk.filter(tk.opened_at <= _lit(t))
    still_open = ((tk.resolved_at > _lit(t)).fill_null(False)
                  | (tk.resolved_at.isnull() & ~tk.status.isin(RESOLVED_STATUSES)))
    one = ibis.literal(1, type="int64")
    tickets = tk.group_by(KEY).aggregate(
        open_tickets=ibis.ifelse(still_open, one, _zero()).sum(),
        tickets_90d=ibis.ifelse(tk.opened_at > since, one, _zero()).sum(),
    )
    # CSAT ratings in the window: tickets (rated when resolved, else opened) and csat surveys
    rated_at = tk.resolved_at.coalesce(tk.opened_at)
    from_tickets = tk.filter(tk.csat.notnull() & (rated_at <= _lit(t)) & (rated_at > since))
    from_tickets = from_tickets.select(*KEY, csat=from_tickets.csat.cast("int64"),
                                       rated_at=from_tickets.resolved_at.coalesce(from_tickets.opened_at))
    sv = _table(con, "survey_responses", source)
    sv_csat = sv.filter((sv.survey == "csat") & sv.score.between(1, 5) & (sv.responded_at <= _lit(t))
                        & (sv.responded_at > since))
    sv_csat = sv_csat.select(*KEY, csat=sv_csat.score.cast("int64"), rated_at=sv_csat.responded_at)
    ratings = ibis.union(from_tickets, sv_csat, distinct=False)
    ratings = ratings.mutate(_low=ratings.csat.min().over(group_by=KEY))
    lows = ratings.filter(ratings.csat == ratings._low)
    csat = lows.group_by(KEY).aggregate(lowest_csat_90d=lows.csat.min(), lowest_csat_at=lows.rated_at.max())
    # latest NPS answer
    nps = sv.filter((sv.survey == "nps") & sv.score.notnull() & (sv.responded_at <= _lit(t)))
    nps = metrics._latest(nps, KEY, [ibis.desc("responded_at"), ibis.desc("response_id")])
    nps = nps.select(*KEY, latest_nps=nps.score.cast("int64"), latest_nps_at=nps.responded_at)
    return _attach(tickets, csat), nps


def _payments(con, t: dt.datetime, source: str | None) -> ir.Table:
    pa_ = _table(con, "payment_attempts", source)
    pa_ = pa_.filter(pa_.attempted_at <= _lit(t))
    failed = pa_.status == "failed"
    has_card = pa_.card_exp_year.notnull() & pa_.card_exp_month.notnull()
    card_month = pa_.card_exp_year.cast("int64") * 12 + pa_.card_exp_month.cast("int64") - 1
    return pa_.group_by(KEY).aggregate(
        _last_failed_at=pa_.attempted_at.max(where=failed),
        _last_succeeded_at=pa_.attempted_at.max(where=pa_.status == "succeeded"),
        _last_decline_code=pa_.decline_code.argmax(pa_.attempted_at, where=failed),
        _card_month=card_month.argmax(pa_.attempted_at, where=has_card),
    )


def _subscriptions(con, t: dt.datetime, source: str | None) -> ir.Table:
    spells = metrics._spell_base(con)
    if source is not None:
        spells = spells.filter(spells.source == source)
    spells = spells.filter(spells.paid_start <= _lit(t))
    first = spells.group_by(KEY).aggregate(_first_paid_start=spells.paid_start.min())
    live = metrics.state_at(con, spells, t)
    money = live.group_by([*KEY, "currency"]).aggregate(_mrr=live.mrr_at.sum())
    money = metrics._latest(money, KEY, [ibis.desc("_mrr"), ibis.asc("currency")])
    money = money.select(*KEY, mrr=money._mrr.cast("int64"), mrr_currency=money.currency,
                         is_subscriber_active=ibis.literal(True))
    subs = _table(con, "subscriptions", source)
    ends = subs.ended_at.coalesce(subs.current_period_end)
    requested = (subs.canceled_at <= _lit(t)).fill_null(False)
    flagged = subs.canceled_at.isnull() & subs.cancel_at_period_end.fill_null(False) & subs.ended_at.isnull()
    scheduled = subs.filter((subs.started_at <= _lit(t)) & (ends > _lit(t)).fill_null(False) & (requested | flagged))
    scheduled = scheduled.group_by(KEY).aggregate(
        cancel_scheduled_for=scheduled.ended_at.coalesce(scheduled.current_period_end).min())
    return _attach(_attach(first, money), scheduled)


def _spine(con, t: dt.datetime, source: str | None, parts: list[ir.Table]) -> ir.Table:
    cust = _table(con, "customers", source)
    cust = cust.filter(cust.created_at <= _lit(t))
    keys = [k.select(source=k.source.cast("string"), customer_id=k.customer_id.cast("string"))
            for k in [cust, *parts]]
    return ibis.union(*keys, distinct=True)


def _parts(con, t: dt.datetime, s: HealthSettings, source: str | None) -> list[ir.Table]:
    """One aggregate per fact table, each keyed by ``(source, customer_id)``."""
    tickets, nps = _support(con, t, s, source)
    return [_engagement(con, t, s, source), _purchases(con, t, source), tickets, nps, _payments(con, t, source),
            _subscriptions(con, t, source)]


def _assemble(con, t: dt.datetime, source: str | None, parts: list[ir.Table]) -> ir.Table:
    out = _spine(con, t, source, parts)
    for part in parts:
        out = _attach(out, part)
    return out


def features_expr(con, as_of: dt.datetime, settings: HealthSettings | None = None, *,
                  source: str | None = None) -> ir.Table:
    """The Ibis expression behind :func:`customer_features` (raw instants, helper columns prefixed ``_``)."""
    t = naive_utc(as_of)
    return _assemble(con, t, source, _parts(con, t, settings or HealthSettings(), source))


@contextmanager
def _materialised(parts: list[ir.Table]) -> Iterator[list[ir.Table]]:
    """The parts as temporary tables on the backend (each appears twice in the query - in the key
    spine and in its join - and DuckDB would otherwise compute the inlined ones twice); computed
    inline where the backend cannot hold temporary tables. Released afterwards."""
    cached: list = []
    try:
        for part in parts:
            cached.append(part.cache())
    except Exception:  # noqa: BLE001 - e.g. a backend without temporary tables
        for table in cached:
            table.release()
        yield parts
        return
    try:
        yield cached
    finally:
        for table in cached:
            table.release()


# ================================================================================ the result

def _micros(table: pa.Table, name: str) -> np.ndarray:
    return metrics.timestamp_micros(table.column(name))


def _days_since(micros: np.ndarray, t_micros: int) -> np.ndarray:
    return np.where(micros == NULL_MICROS, np.nan, (t_micros - micros) / MICROS_PER_DAY)


def _ts(micros: np.ndarray) -> pa.Array:
    return pa.array(micros, pa.int64(), mask=micros == NULL_MICROS).cast(pa.timestamp("us"))


def _days_column(micros: np.ndarray, t_micros: int) -> pa.Array:
    return pa.array(_days_since(micros, t_micros), pa.float64(), from_pandas=True)


def _int_column(table: pa.Table, name: str, fill: int | None = 0) -> pa.Array:
    col = table.column(name).cast(pa.int64())
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return col.fill_null(fill) if fill is not None else col


def _float(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def customer_features(con, as_of: dt.datetime, *, source: str | None = None,
                      settings: HealthSettings | None = None) -> pa.Table:
    """One row per customer: the features of the module docstring, as of ``as_of`` (UTC).

    ``con`` is an Ibis backend on the history; ``source`` limits the rows to one source;
    ``settings`` (a :class:`~winback.config.HealthSettings`) sets the window lengths. Rows are
    sorted by ``(source, customer_id)``. Only facts at or before ``as_of`` are read.
    """
    s = settings or HealthSettings()
    t = naive_utc(as_of)
    with _materialised(_parts(con, t, s, source)) as parts:
        raw = _assemble(con, t, source, parts).to_pyarrow()
    n = raw.num_rows
    t_micros = metrics.epoch_micros(t)

    # engagement rates against the customer's own (observable) baseline
    first_event = _micros(raw, "_first_event_at")
    base_end = t_micros - s.recent_days * MICROS_PER_DAY
    base_start = np.maximum(base_end - s.baseline_days * MICROS_PER_DAY, first_event)
    observed_days = np.clip((base_end - base_start) / MICROS_PER_DAY, 0.0, float(s.baseline_days))
    has_baseline = (first_event != NULL_MICROS) & (observed_days >= s.min_baseline_days)
    safe_days = np.where(has_baseline, observed_days, 1.0)
    logins_recent = np.nan_to_num(_float(raw, "logins_30d"))
    uses_recent = np.nan_to_num(_float(raw, "feature_uses_30d"))
    login_base = np.where(has_baseline, np.nan_to_num(_float(raw, "_logins_base")) / safe_days, np.nan)
    uses_base = np.where(has_baseline, np.nan_to_num(_float(raw, "_uses_base")) / safe_days, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        login_ratio = np.where(login_base > 0, logins_recent / s.recent_days / login_base, np.nan)
        uses_ratio = np.where(uses_base > 0, uses_recent / s.recent_days / uses_base, np.nan)

    # tenure from the first payment of any kind
    first_paid = _micros(raw, "_first_paid_start")
    first_purchase = _micros(raw, "_first_purchase_at")
    big = np.iinfo(np.int64).max
    start = np.minimum(np.where(first_paid == NULL_MICROS, big, first_paid),
                       np.where(first_purchase == NULL_MICROS, big, first_purchase))
    start = np.where(start == big, NULL_MICROS, start)

    # failed payment not recovered since (no later success, no later paid invoice)
    failed_at = _micros(raw, "_last_failed_at")
    succeeded_at = _micros(raw, "_last_succeeded_at")
    last_purchase = _micros(raw, "last_purchase_at")
    recent_failure = (failed_at != NULL_MICROS) & (failed_at > t_micros - s.payment_failure_days * MICROS_PER_DAY)
    unrecovered = recent_failure & (succeeded_at < failed_at) & (last_purchase < failed_at)
    failed_at = np.where(unrecovered, failed_at, NULL_MICROS)
    decline = pc.if_else(pa.array(unrecovered, pa.bool_()), raw.column("_last_decline_code").cast(pa.string()),
                         pa.scalar(None, pa.string()))

    # card: last valid day of the expiry month; days from T's date
    card_month = _float(raw, "_card_month")
    has_card = ~np.isnan(card_month)
    month_index = np.where(has_card, card_month, 0).astype(np.int64) - (1970 * 12)  # months since 1970-01
    next_month = month_index.astype("datetime64[M]") + np.timedelta64(1, "M")
    card_last_day = next_month.astype("datetime64[D]") - np.timedelta64(1, "D")
    today = np.datetime64(t.date(), "D")
    days_to_expiry = (card_last_day - today).astype(np.int64)
    card_expires_on = pa.array(card_last_day, pa.date32(), mask=~has_card) if n else pa.array([], pa.date32())

    cancel_at = _micros(raw, "cancel_scheduled_for")
    active = raw.column("is_subscriber_active").cast(pa.bool_()).fill_null(False)
    cols = {
        "source": raw.column("source").cast(pa.string()),
        "customer_id": raw.column("customer_id").cast(pa.string()),
        "is_subscriber_active": active,
        "mrr": _int_column(raw, "mrr"),
        "mrr_currency": raw.column("mrr_currency").cast(pa.string()),
        "tenure_days": _days_column(start, t_micros),
        "logins_30d": _int_column(raw, "logins_30d"),
        "login_baseline_per_day": pa.array(login_base, pa.float64(), from_pandas=True),
        "logins_vs_baseline": pa.array(login_ratio, pa.float64(), from_pandas=True),
        "feature_uses_30d": _int_column(raw, "feature_uses_30d"),
        "feature_use_baseline_per_day": pa.array(uses_base, pa.float64(), from_pandas=True),
        "feature_uses_vs_baseline": pa.array(uses_ratio, pa.float64(), from_pandas=True),
        "distinct_features_30d": _int_column(raw, "distinct_features_30d"),
        "distinct_features_baseline": _int_column(raw, "distinct_features_baseline"),
        "last_activity_at": _ts(_micros(raw, "last_activity_at")),
        "days_since_last_activity": _days_column(_micros(raw, "last_activity_at"), t_micros),
        "purchases": _int_column(raw, "purchases"),
        "last_purchase_at": _ts(last_purchase),
        "days_since_last_purchase": _days_column(last_purchase, t_micros),
        "median_days_between_purchases": raw.column("median_days_between_purchases").cast(pa.float64()),
        "open_tickets": _int_column(raw, "open_tickets"),
        "tickets_90d": _int_column(raw, "tickets_90d"),
        "lowest_csat_90d": _int_column(raw, "lowest_csat_90d", fill=None),
        "lowest_csat_at": _ts(_micros(raw, "lowest_csat_at")),
        "latest_nps": _int_column(raw, "latest_nps", fill=None),
        "latest_nps_at": _ts(_micros(raw, "latest_nps_at")),
        "days_since_latest_nps": _days_column(_micros(raw, "latest_nps_at"), t_micros),
        "card_expires_on": card_expires_on,
        "days_until_card_expiry": pa.array(days_to_expiry, pa.int64(), mask=~has_card),
        "failed_payment_at": _ts(failed_at),
        "failed_payment_decline_code": decline,
        "days_since_failed_payment": _days_column(failed_at, t_micros),
        "cancel_scheduled_for": _ts(cancel_at),
        "days_until_cancel": pa.array(-_days_since(cancel_at, t_micros), pa.float64(), from_pandas=True),
    }
    out = pa.table(cols)
    assert tuple(out.column_names[2:]) == FEATURE_COLUMNS
    return out.sort_by([("source", "ascending"), ("customer_id", "ascending")])
