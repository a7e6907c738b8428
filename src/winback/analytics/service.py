"""Run the analytics on a workspace: retention, reasons, survival, cohorts, RFM, CLV, Pareto.

``analyze`` reads the history through Ibis, computes per-customer scores with the pure
functions of this stage, replaces the state store's ``customer_scores`` in one transaction
(with an ``analysis_runs`` row) and returns a summary plus the data for the HTML report.
``fit_clv_file`` backs ``winback clv fit``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from winback.analytics import clv
from winback.analytics.cohorts import cohort_matrix
from winback.analytics.metrics import paid_spells, retention
from winback.analytics.pareto import pareto
from winback.analytics.periods import Period, period_of
from winback.analytics.rfm import rfm_scores, rfm_segments, rfm_table
from winback.analytics.survival import km_by, tenure
from winback.config import Settings
from winback.history.store import ibis_connection
from winback.kit.errors import WinbackError

DAYS_PER_MONTH = 365.25 / 12
MONTHLY_DISCOUNT = 0.01
Note = Callable[[str], None]


@dataclass
class AnalysisOutcome:
    analysis_id: int | None
    observation_end: dt.datetime
    summary: dict
    report_data: dict
    scores: pa.Table
    seconds: dict[str, float] = field(default_factory=dict)


# --- helpers -------------------------------------------------------------------------------------

def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def last_complete(observation_end: dt.datetime, grain: str) -> Period:
    """The latest period of ``grain`` that ends at or before the observation end (+1 s)."""
    period = period_of(observation_end, grain)
    if period.end > observation_end + dt.timedelta(seconds=1):
        period = period_of(period.start - dt.timedelta(microseconds=1), grain)
    return period


def _count(con, table: str) -> int:
    try:
        return int(con.table(table).count().execute())
    except Exception:  # table missing on a foreign backend
        return 0


def _key(source: pa.ChunkedArray, customer: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.binary_join_element_wise(source, customer, "\x1f")


# --- subscriptions: status, tenure, sBG value --------------------------------------------------------

def customer_status(con, observation_end: dt.datetime) -> pa.Table:
    """Per customer with a paying spell: status (active/churned), churned_at, reason, MRR, tenure."""
    obs = ibis.literal(observation_end.replace(tzinfo=None), type="timestamp")
    sp = paid_spells(con)
    sp = sp.filter(sp.paid_start <= obs)
    w = ibis.window(group_by=[sp.source, sp.customer_id], order_by=[ibis.desc(sp.paid_start)])
    ranked = sp.mutate(_rn=ibis.row_number().over(w))
    last = ranked.filter(ranked._rn == 0)
    open_ = last.paid_end.isnull() | (last.paid_end > obs)
    end = ibis.ifelse(open_, obs, last.paid_end)
    out = last.select(
        "source", "customer_id", "plan_id", "mrr", "currency",
        status=ibis.ifelse(open_, "active", "churned"),
        churned_at=ibis.ifelse(open_, ibis.null("timestamp"), last.paid_end),
        churn_reason=ibis.ifelse(open_, ibis.null("string"), last.reason),
        involuntary=ibis.ifelse(open_, ibis.null("boolean"), last.involuntary),
        spell_days=(end.epoch_seconds() - last.paid_start.epoch_seconds()) / 86400.0,
    )
    return out.to_pyarrow()


def subscription_values(status: pa.Table, tenures: pa.Table) -> tuple[pa.Table, dict]:
    """sBG per plan on monthly tenures: 12-month CLV of active subscribers (conditional survival,
    discounted) and the value lost by churned ones (Fader & Hardie 2010, DERL)."""
    models: dict[str, dict] = {}
    plan_t = tenures.column("plan_id").to_numpy(zero_copy_only=False)
    months_t = np.floor(tenures.column("duration_days").to_numpy() / DAYS_PER_MONTH)
    observed = tenures.column("observed").to_numpy(zero_copy_only=False).astype(bool)
    months_t = np.where(observed, np.maximum(months_t, 1), months_t)
    fitted: dict = {}
    for plan in sorted({p for p in plan_t if p is not None}):
        sel = plan_t == plan
        if observed[sel].sum() < 5:
            continue
        with warnings.catch_warnings():  # convergence is reported in the summary instead
            warnings.simplefilter("ignore", clv.ConvergenceWarning)
            model = clv.ShiftedBetaGeometricModel().fit_tenures(months_t[sel], observed[sel])
        fitted[plan] = model
        life = float(model.expected_lifetime())
        models[plan] = {"params": model.params_, "log_likelihood": model.log_likelihood_,
                        "customers": int(sel.sum()), "converged": bool(getattr(model, "converged_", True)),
                        # infinite when alpha <= 1 (a heavy tail of near-permanent subscribers)
                        "expected_lifetime_months": life if np.isfinite(life) else None,
                        "discounted_expected_lifetime_months": float(model.discounted_expected_lifetime(MONTHLY_DISCOUNT))}
    if observed.sum() >= 5:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", clv.ConvergenceWarning)
            fitted[None] = clv.ShiftedBetaGeometricModel().fit_tenures(months_t, observed)
    n = status.num_rows
    plans = status.column("plan_id").to_numpy(zero_copy_only=False)
    mrr = status.column("mrr").to_numpy(zero_copy_only=False).astype(np.float64)
    mrr = np.nan_to_num(mrr)
    months = np.floor(status.column("spell_days").to_numpy() / DAYS_PER_MONTH)
    churned = np.asarray(status.column("status").to_pylist()) == "churned"
    clv_12m = np.full(n, np.nan)
    lost = np.full(n, np.nan)
    discount = (1 + MONTHLY_DISCOUNT) ** -np.arange(1, 13)
    for plan in set(plans.tolist()) | {None}:
        model = fitted.get(plan) or fitted.get(None)
        if model is None:
            continue
        sel = plans == plan if plan is not None else np.array([p is None for p in plans])
        if not sel.any():
            continue
        k = months[sel]
        s_now = model.survival(k)
        future = np.stack([model.survival(k + j) for j in range(1, 13)], axis=1) / s_now[:, None]
        value = mrr[sel][:, None] * future * discount[None, :]
        clv_12m[sel] = np.where(churned[sel], 0.0, value.sum(axis=1))
        lost_sel = np.where(churned[sel], model.value_lost(np.maximum(k - 1, 0), mrr[sel], MONTHLY_DISCOUNT), np.nan)
        lost[sel] = lost_sel
    # the brief's historical formula: value per month x 1 purchase a month x lifespan (1 / monthly churn)
    monthly_churn = observed.sum() / max(months_t.sum(), 1.0)
    historical = clv.historical_clv_from_churn_rate(mrr, 1.0, min(max(monthly_churn, 1e-3), 1.0))
    models["historical"] = {"monthly_churn_rate_used": float(monthly_churn)}
    return pa.table({"expected_clv_12m": clv_12m, "lost_value": lost, "historical_clv": historical}), models


# --- transactions: BG/NBD + Gamma-Gamma ------------------------------------------------------------

def transaction_values(con, observation_end: dt.datetime, kind: str) -> tuple[pa.Table, dict]:
    """BG/NBD and Gamma-Gamma on the purchase log (weeks): P(alive), expected purchases and
    discounted 12-month CLV per customer, plus the historical CLV formula."""
    obs = ibis.literal(observation_end.replace(tzinfo=None), type="timestamp")
    if kind == "orders":
        t = con.table("orders")
        t = t.filter((t.status == "completed") & (t.ordered_at <= obs))
        log = t.select("source", "customer_id", at=t.ordered_at, amount=t.total_amount)
    else:
        t = con.table("invoices")
        t = t.filter((t.status == "paid") & (t.amount_paid > 0))
        at = t.paid_at.coalesce(t.created_at)
        t = t.mutate(_at=at).filter(lambda x: x._at <= obs)
        log = t.select("source", "customer_id", at=t._at, amount=t.amount_paid)
    data = log.to_pyarrow()
    if data.num_rows == 0:
        return pa.table({"key": pa.array([], pa.string())}), {}
    keys = _key(data.column("source"), data.column("customer_id")).to_numpy(zero_copy_only=False)
    dates = data.column("at").cast(pa.timestamp("us")).to_numpy()
    amounts = data.column("amount").to_numpy().astype(np.float64)
    summary = clv.summary_from_transactions(keys, dates, amounts, observation_end.replace(tzinfo=None), "week")
    f, r, T, m = summary.frequency, summary.recency, summary.T, summary.monetary_value
    info: dict = {}
    bg = clv.BetaGeoModel().fit(f, r, T)
    info["bgnbd"] = {"params": bg.params_, "log_likelihood": bg.log_likelihood_}
    p_alive = bg.probability_alive(f, r, T)
    purchases_52w = bg.expected_purchases(52.0, f, r, T)
    repeat = f > 0
    value = np.where(repeat, m, np.nan)
    if repeat.sum() >= 20:
        gg = clv.GammaGammaModel().fit(f[repeat], m[repeat])
        info["gamma_gamma"] = {"params": gg.params_, "log_likelihood": gg.log_likelihood_}
        avg = gg.expected_average_value(f, np.where(repeat, m, 0.0))
        clv_12m = clv.customer_lifetime_value(bg, f, r, T, avg, horizon_months=12,
                                              discount_rate_monthly=MONTHLY_DISCOUNT, time_unit_days=7)
    else:
        avg = np.full(len(summary), np.nan)
        clv_12m = np.full(len(summary), np.nan)
    # historical CLV (the brief's formula): average purchase value x purchases per year x lifespan (years)
    total_first = amounts.sum() / max(len(np.unique(keys)), 1)
    weeks_active = np.maximum(T, 1.0)
    per_year = (f + 1) / weeks_active * 52.0
    avg_value = np.where(repeat, m, total_first / np.maximum(f + 1, 1))
    churn_year = float(np.clip(1.0 - np.mean(p_alive), 0.05, 0.95))
    hist = clv.historical_clv_from_churn_rate(avg_value, per_year, churn_year)
    info["historical"] = {"annual_churn_rate_used": churn_year}
    return pa.table({
        "key": summary.customer_id, "p_alive": p_alive, "expected_purchases_12m": purchases_52w,
        "expected_clv_12m": clv_12m, "historical_clv": hist,
    }), info


# --- the whole run ------------------------------------------------------------------------------------

def analyze(settings: Settings, observation_end: dt.datetime | None = None, *, write_report: bool = True,
            note: Note | None = None) -> AnalysisOutcome:
    note = note or (lambda _msg: None)
    seconds: dict[str, float] = {}
    clock = settings.clock()
    obs = _utc(observation_end or clock.now())
    started = clock.now()
    con = ibis_connection(settings.history_path, read_only=True)
    try:
        t0 = time.perf_counter()
        note("retention metrics")
        has_subs = _count(con, "subscriptions") > 0
        has_orders = _count(con, "orders") > 0
        if not has_subs and not has_orders:
            raise WinbackError("the history holds no subscriptions and no orders: ingest data first")
        periods = {g: last_complete(obs, g) for g in ("month", "quarter", "year")}
        headline = {g: retention(con, p)[0] for g, p in periods.items()} if has_subs else {}
        seconds["retention"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        note("churn by reason")
        reasons, events = [], []
        if has_subs:
            first = con.table("subscriptions").started_at.min().execute()
            first = _utc(first.to_pydatetime() if hasattr(first, "to_pydatetime") else first)
            start = max(first, periods["month"].start - dt.timedelta(days=3 * 366))
            reasons = churn_by_month(con, start, periods["month"].end)
            events = _price_events(con, start, obs)
        seconds["reasons"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        note("survival and cohorts")
        km, cohorts, status, tenures = {}, [], None, None
        if has_subs:
            km = km_by(con, obs.replace(tzinfo=None), by="plan")
            cohorts = cohort_matrix(con, obs.replace(tzinfo=None)).to_pylist()
            status = customer_status(con, obs)
            tenures = tenure(con, obs.replace(tzinfo=None))
        seconds["survival_cohorts"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        note("RFM")
        rfm_kind = "orders" if has_orders else "invoices"
        rfm = rfm_table(con, obs.replace(tzinfo=None), kind=rfm_kind)
        seconds["rfm"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        note("customer value models")
        # BG/NBD + Gamma-Gamma describe non-contractual buying (orders); subscriptions use sBG
        tx_values, tx_info = (transaction_values(con, obs, "orders") if has_orders
                              else (pa.table({"key": pa.array([], pa.string())}), {}))
        sub_values, sbg_info = (subscription_values(status, tenures) if status is not None and status.num_rows
                                else (None, {}))
        seconds["clv"] = time.perf_counter() - t0
    finally:
        con.disconnect()

    t0 = time.perf_counter()
    note("scores")
    scores = _assemble_scores(status, sub_values, rfm, tx_values)
    seconds["assemble"] = time.perf_counter() - t0
    churned_value = _pareto_input(scores)
    par = pareto(churned_value[1], churned_value[0]) if len(churned_value[0]) else None
    summary = _summary(obs, periods, headline, scores, par, tx_info, sbg_info, has_subs)
    report_data = _report_data(settings, obs, summary, km, cohorts, reasons, events, par, scores)
    return AnalysisOutcome(None, obs, summary, report_data, scores, seconds | {"started": started.timestamp()})


def churn_by_month(con, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Ended paying spells per calendar month and reason: rows of period, reason, lost_customers,
    lost_mrr ({currency: minor units}). One query (the per-period :func:`retention` is exact but
    would need one query per month)."""
    sp = paid_spells(con)
    ended = sp.filter((sp.paid_end >= start.replace(tzinfo=None)) & (sp.paid_end < end.replace(tzinfo=None)))
    monthly = ended.mutate(month=ended.paid_end.truncate("M"))
    grouped = (monthly.group_by(["month", "reason", "currency"])
               .aggregate(lost_customers=monthly.count(), lost_mrr=monthly.mrr.sum())
               .order_by(["month", "reason"]))
    rows: dict[tuple, dict] = {}
    for r in grouped.to_pyarrow().to_pylist():
        key = (r["month"].strftime("%Y-%m"), r["reason"] or "unknown")
        row = rows.setdefault(key, {"period": key[0], "reason": key[1], "lost_customers": 0, "lost_mrr": {}})
        row["lost_customers"] += int(r["lost_customers"])
        row["lost_mrr"][r["currency"]] = row["lost_mrr"].get(r["currency"], 0) + int(r["lost_mrr"] or 0)
    return list(rows.values())


def _price_events(con, start: dt.datetime, end: dt.datetime) -> list[dict]:
    pc_ = con.table("price_changes")
    rows = pc_.filter((pc_.effective_at >= start.replace(tzinfo=None)) & (pc_.effective_at <= end.replace(tzinfo=None))
                      & (pc_.new_amount > pc_.old_amount.fill_null(0))).to_pyarrow().to_pylist()
    by_month: dict[str, list[str]] = {}
    for r in rows:
        by_month.setdefault(r["effective_at"].strftime("%Y-%m"), []).append(str(r["plan_id"]))
    return [{"period": month, "label": f"price increase ({', '.join(sorted(set(plans)))})"}
            for month, plans in sorted(by_month.items())]


def _assemble_scores(status: pa.Table | None, sub_values: pa.Table | None, rfm: pa.Table, tx: pa.Table) -> pa.Table:
    """One row per customer key (source \\x1f customer_id) with every score; joined in DuckDB."""
    import duckdb

    con = duckdb.connect()
    try:
        parts = []
        if status is not None and status.num_rows:
            st = status.append_column("key", _key(status.column("source"), status.column("customer_id")))
            if sub_values is not None:
                for name in sub_values.column_names:
                    st = st.append_column(f"sub_{name}", sub_values.column(name))
            con.register("st", st)
            parts.append("SELECT key FROM st")
        if rfm.num_rows:
            r = rfm_scores(rfm.column("recency_days").to_numpy(), rfm.column("frequency").to_numpy(),
                           rfm.column("monetary_minor").to_numpy())
            seg = rfm_segments(r.r, r.f, r.m)
            rf = rfm.append_column("key", _key(rfm.column("source"), rfm.column("customer_id")))
            rf = rf.append_column("r_score", pa.array(r.r)).append_column("f_score", pa.array(r.f))
            rf = rf.append_column("m_score", pa.array(r.m)).append_column("rfm_segment", pa.array(seg.astype(str)))
            con.register("rf", rf)
            parts.append("SELECT key FROM rf")
        if tx.num_rows:
            con.register("tx", tx)
            parts.append("SELECT key FROM tx")
        if not parts:
            return pa.table({"key": pa.array([], pa.string())})
        has = {name: name in [p.split()[-1] for p in parts] for name in ("st", "rf", "tx")}
        cols = ["k.key"]
        joins = []
        if has["st"]:
            cols += ["st.status", "st.churned_at", "st.churn_reason", "st.involuntary",
                     "CAST(round(st.spell_days) AS INTEGER) AS tenure_days", "st.mrr AS mrr_minor", "st.currency",
                     "st.sub_expected_clv_12m", "st.sub_lost_value", "st.sub_historical_clv"]
            joins.append("LEFT JOIN st USING (key)")
        if has["rf"]:
            cols += ["rf.recency_days", "rf.frequency", "rf.monetary_minor", "rf.r_score", "rf.f_score",
                     "rf.m_score", "rf.rfm_segment", "rf.currency AS rfm_currency"]
            joins.append("LEFT JOIN (SELECT * FROM rf QUALIFY row_number() OVER (PARTITION BY key ORDER BY "
                         "monetary_minor DESC) = 1) rf USING (key)")
        if has["tx"]:
            cols += ["tx.p_alive", "tx.expected_purchases_12m", "tx.expected_clv_12m AS tx_expected_clv_12m",
                     "tx.historical_clv"]
            joins.append("LEFT JOIN tx USING (key)")
        sql = f"SELECT {', '.join(cols)} FROM ({' UNION '.join(parts)}) k {' '.join(joins)} ORDER BY k.key"
        out = con.execute(sql).to_arrow_table()
    finally:
        con.close()
    return _finish_scores(out)


def _finish_scores(t: pa.Table) -> pa.Table:
    n = t.num_rows
    cols = set(t.column_names)

    def num(name):
        return t.column(name).to_numpy(zero_copy_only=False).astype(np.float64) if name in cols else np.full(n, np.nan)

    sub_clv, tx_clv = num("sub_expected_clv_12m"), num("tx_expected_clv_12m")
    sub_hist = num("sub_historical_clv")
    expected = np.where(np.isnan(sub_clv), tx_clv, sub_clv)
    lost = num("sub_lost_value")
    status = t.column("status").to_pylist() if "status" in cols else [None] * n
    if "status" not in cols or True:
        # non-contractual customers: "churned" when P(alive) < 0.5 and they have bought before
        p_alive = num("p_alive")
        status = [s if s is not None else ("lost" if (not np.isnan(pa_) and pa_ < 0.5) else
                                            ("active" if not np.isnan(pa_) else "never_paid"))
                  for s, pa_ in zip(status, p_alive)]
        hist = num("historical_clv")
        lost = np.where(np.isnan(lost) & (np.asarray(status) == "lost"), hist, lost)
    ranked = np.full(n, np.nan)
    ok = ~np.isnan(lost) & (lost > 0)
    order = np.argsort(-np.where(ok, lost, -np.inf), kind="stable")
    ranked[order[: ok.sum()]] = np.arange(1, ok.sum() + 1)

    def minor(values):
        return pa.array(np.where(np.isnan(values), None, np.round(values)).tolist(), pa.int64())

    out = {"key": t.column("key"), "status": pa.array(status, pa.string())}
    for name in ("churned_at", "churn_reason", "involuntary", "tenure_days", "mrr_minor", "currency",
                 "recency_days", "frequency", "monetary_minor", "r_score", "f_score", "m_score", "rfm_segment"):
        if name in cols:
            out[name] = t.column(name)
    if "currency" not in cols and "rfm_currency" in cols:
        out["currency"] = t.column("rfm_currency")
    elif "rfm_currency" in cols:
        out["currency"] = pc.coalesce(t.column("currency"), t.column("rfm_currency"))
    for name in ("p_alive", "expected_purchases_12m"):
        out[name] = pa.array(np.where(np.isnan(num(name)), None, num(name)).tolist(), pa.float64())
    out["expected_clv_12m_minor"] = minor(expected)
    out["historical_clv_minor"] = minor(np.where(np.isnan(sub_hist), num("historical_clv"), sub_hist))
    out["lost_value_minor"] = minor(lost)
    out["lost_value_rank"] = pa.array(np.where(np.isnan(ranked), None, ranked).tolist(), pa.int64())
    return pa.table(out)


def _pareto_input(scores: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    if "lost_value_minor" not in scores.column_names:
        return np.array([]), np.array([])
    lost = scores.column("lost_value_minor").to_numpy(zero_copy_only=False)
    keep = np.array([v is not None and v == v and v > 0 for v in lost])
    ids = np.asarray(scores.column("key").to_pylist(), dtype=object)[keep]
    return ids, lost[keep].astype(np.float64)


def _main_currency(scores: pa.Table) -> str:
    if "currency" not in scores.column_names:
        return "USD"
    counts = Counter(c for c in scores.column("currency").to_pylist() if c)
    return counts.most_common(1)[0][0] if counts else "USD"


def _summary(obs, periods, headline, scores, par, tx_info, sbg_info, has_subs) -> dict:
    status = Counter(scores.column("status").to_pylist()) if scores.num_rows else Counter()
    out: dict = {"observation_end": obs.isoformat(), "customers_scored": scores.num_rows,
                 "customers_by_status": dict(status), "currency": _main_currency(scores)}
    if has_subs:
        out["retention"] = {periods[g].label: {k: headline[g].get(k) for k in (
            "start_customers", "end_customers", "new_customers", "reactivated_customers", "lost_customers",
            "churn_rate", "crr", "involuntary_share", "reactivation_rate", "mrr")} for g in headline}
    if par is not None:
        out["pareto"] = {"churned_customers_with_value": int(len(par.ids)), "top_fraction": par.top_fraction,
                         "top_share_of_lost_value": round(float(par.top_share), 4),
                         "customers_for_80pct": None if par.customers_for_80pct is None
                         else round(float(par.customers_for_80pct), 4),
                         "total_lost_value_minor": int(round(par.total))}
    out["models"] = {**tx_info, **({"sbg_by_plan": sbg_info} if sbg_info else {})}
    if scores.num_rows and "rfm_segment" in scores.column_names:
        out["rfm_segments"] = dict(Counter(s for s in scores.column("rfm_segment").to_pylist() if s).most_common())
    return out


def _report_data(settings, obs, summary, km, cohorts, reasons, events, par, scores) -> dict:
    from winback.kit.money import Money, minor_unit_exponent

    currency = summary["currency"]
    scale = 10 ** minor_unit_exponent(currency)
    cards: dict = {}
    for label, r in summary.get("retention", {}).items():
        if r.get("churn_rate") is not None:
            cards[f"churn rate {label}"] = f"{r['churn_rate']:.1f}%"
        if r.get("crr") is not None:
            cards[f"CRR {label}"] = f"{r['crr']:.1f}%"
    if "pareto" in summary:
        p = summary["pareto"]
        cards["lost value held by top 20%"] = f"{p['top_share_of_lost_value']:.0%}"
        cards["total lost value"] = Money(p["total_lost_value_minor"], currency).format()
    cards["customers scored"] = f"{summary['customers_scored']:,}"
    main_reasons = [dict(r, lost_mrr=float(r["lost_mrr"].get(currency, 0)) / scale if isinstance(r.get("lost_mrr"), dict)
                         else float(r.get("lost_mrr") or 0) / scale) for r in reasons]
    top = []
    if par is not None:
        for key, value in list(zip(par.ids[:25], par.values[:25])):
            source, _, customer = str(key).partition("\x1f")
            top.append({"customer": customer, "source": source, "lost value": Money(int(value), currency).format()})
    values = scores.column("expected_clv_12m_minor").to_pylist() if scores.num_rows else []
    statuses = scores.column("status").to_pylist() if scores.num_rows else []
    clv_values = [float(v) / scale for v, st in zip(values, statuses) if v is not None and st == "active"]
    return {
        "title": f"winback analysis - {settings.name}",
        "observation_end": obs.strftime("%Y-%m-%d %H:%M UTC"),
        "summary": cards,
        "currency": currency,
        "km": {str(g): {"timeline": r.timeline.tolist(), "survival": r.survival.tolist()} for g, r in km.items()},
        "cohorts": [{"cohort": str(c["cohort"])[:7], "age": int(c["age"]), "retention": float(c["retention"])}
                    for c in cohorts],
        "reasons": main_reasons,
        "events": events,
        "pareto": {"cumulative_share": _thin(par.cumulative_share.tolist()) if par is not None else [],
                   "top_share": float(par.top_share) if par is not None else 0.0},
        "clv": {"values": clv_values[:200_000], "currency": currency, "title": "Expected 12-month value of active customers"},
        "tables": {"Most valuable lost customers": top},
    }


def _thin(values: list[float], limit: int = 2000) -> list[float]:
    if len(values) <= limit:
        return values
    idx = np.linspace(0, len(values) - 1, limit).round().astype(int)
    return [values[i] for i in idx]


# --- persistence ------------------------------------------------------------------------------------

SCORE_COLUMNS = ("status", "churned_at", "churn_reason", "involuntary", "tenure_days", "mrr_minor", "currency",
                 "recency_days", "frequency", "monetary_minor", "r_score", "f_score", "m_score", "rfm_segment",
                 "p_alive", "expected_purchases_12m", "expected_clv_12m_minor", "historical_clv_minor",
                 "lost_value_minor", "lost_value_rank",
                 # filled by the insights stage (winback.insights.profile)
                 "value_tier", "reason_confidence", "reason_evidence", "requested_features", "persona",
                 "health_score", "health_band", "health_factors", "churn_risk", "p_return",
                 "value_after_return_minor", "recoverable_value_minor", "priority_rank", "suggested_channel")
TIME_SCORE_COLUMNS = frozenset({"churned_at"})
INT_SCORE_COLUMNS = frozenset({"recency_days", "tenure_days", "frequency", "r_score", "f_score", "m_score"})


def store_scores(settings: Settings, outcome: AnalysisOutcome, report_path: Path | None = None, *,
                 scores: pa.Table | None = None, insights: dict | None = None) -> int:
    """Replace ``customer_scores`` with this run's scores and record the run; returns its id.

    ``scores`` (default: the outcome's) is keyed by ``key`` (source \\x1f customer_id) or, when it
    has one, by ``customer_ref`` (the state store's customers.id); list values are stored as JSON.
    """
    from sqlalchemy import delete, select

    from winback.kit.db import make_engine, session_scope
    from winback.models.customer import Customer
    from winback.models.scores import AnalysisRun, CustomerScore

    scores = outcome.scores if scores is None else scores
    engine = make_engine(settings.resolved_state_url)
    try:
        with session_scope(engine) as session:
            ids = None
            if "customer_ref" not in scores.column_names:
                ids = {f"{src}\x1f{ext}": cid for cid, src, ext in
                       session.execute(select(Customer.id, Customer.source, Customer.external_id)).all()}
            run = AnalysisRun(started_at=dt.datetime.fromtimestamp(outcome.seconds.get("started", time.time()),
                                                                   dt.timezone.utc),
                              observation_end=outcome.observation_end, customers_scored=0,
                              summary=json.dumps(outcome.summary, default=str),
                              insights=json.dumps(insights, default=str, ensure_ascii=False) if insights else None,
                              report_path=str(report_path) if report_path else None)
            session.add(run)
            session.flush()
            session.execute(delete(CustomerScore))
            inserted = _insert_scores(session.connection(), scores, ids, run.id)
            run.customers_scored = inserted
            run.finished_at = settings.clock().now()
            session.flush()
            run_id = run.id
        return run_id
    finally:
        engine.dispose()


def _cell(column: str, value, postgres: bool):
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    if column in TIME_SCORE_COLUMNS:
        return (value.replace(tzinfo=dt.timezone.utc) if postgres
                else value.strftime("%Y-%m-%d %H:%M:%S.%f"))  # SQLAlchemy's SQLite format
    if column in INT_SCORE_COLUMNS:
        return int(round(value))
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _insert_scores(conn, scores: pa.Table, ids: dict[str, int] | None, analysis_id: int, chunk: int = 50_000) -> int:
    """Bulk insert, one Arrow batch at a time (bounded memory): COPY on PostgreSQL, a driver-level
    executemany on SQLite (several times faster than ORM dicts)."""
    present = [c for c in SCORE_COLUMNS if c in scores.column_names]
    columns = ["customer_id", "analysis_id", *present]
    postgres = conn.dialect.name == "postgresql"
    total = 0
    for batch in scores.to_batches(max_chunksize=chunk):
        data = {c: batch.column(c).to_pylist() for c in present}
        refs = (batch.column("customer_ref").to_pylist() if ids is None
                else [ids.get(k) for k in batch.column("key").to_pylist()])
        rows = []
        for i, cid in enumerate(refs):
            if cid is None:
                continue
            rows.append([cid, analysis_id, *(_cell(c, data[c][i], postgres) for c in present)])
        if not rows:
            continue
        if postgres:
            with conn.connection.driver_connection.cursor() as cur:
                with cur.copy(f"COPY customer_scores ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        else:
            placeholders = ", ".join("?" for _ in columns)
            conn.exec_driver_sql(f"INSERT INTO customer_scores ({', '.join(columns)}) VALUES ({placeholders})",
                                 [tuple(r) for r in rows])
        total += len(rows)
    return total


# --- winback clv fit FILE ----------------------------------------------------------------------------

MODELS = ("bgnbd", "pnbd", "gamma-gamma", "sbg")


def read_numeric_table(path: Path) -> pa.Table:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from winback.ingest.sources.tabular import file_format

    fmt = file_format(path)
    if not path.is_file():
        raise WinbackError(f"{path}: file not found")
    try:
        if fmt == "parquet":
            return pq.read_table(path)
        if fmt == "csv":
            return pacsv.read_csv(path)
        if fmt == "jsonl":
            import pyarrow.json as pajson
            return pajson.read_json(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise WinbackError(f"{path}: cannot read ({' '.join(str(exc).split())[:200]})") from exc
    raise WinbackError(f"{path}: expected a .csv, .parquet or .jsonl file")


def _column(table: pa.Table, name: str, path: Path) -> np.ndarray:
    col = table.column(name)
    try:
        values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        texts = col.cast(pa.string()).to_pylist()
        for row, text in enumerate(texts, start=2):
            try:
                float(text)
            except (TypeError, ValueError):
                raise WinbackError(f"{path}, row {row}, column {name!r}: not a number (value {text!r})") from None
        raise
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        row = int(bad[0])
        raise WinbackError(f"{path}, row {row + 2}, column {name!r}: must be a non-negative number "
                           f"(value {col[row].as_py()!r})")
    return values


def fit_clv_file(path: Path, model: str, observation_end: dt.datetime | None = None, time_unit: str = "day") -> dict:
    """Fit one CLV model on a transaction log (customer_id, date, amount) or a summary table
    (frequency, recency, T[, monetary_value]); ``sbg`` takes (period, active)."""
    if model not in MODELS:
        raise WinbackError(f"unknown --model {model!r}: expected one of {', '.join(MODELS)}")
    if time_unit not in ("day", "week"):
        raise WinbackError("--time-unit must be day or week")
    path = Path(path)
    table = read_numeric_table(path)
    names = {c.lower(): c for c in table.column_names}
    if model == "sbg":
        missing = [c for c in ("period", "active") if c not in names]
        if missing:
            raise WinbackError(f"{path}: sbg needs columns period and active (missing {', '.join(missing)})")
        fitted = clv.ShiftedBetaGeometricModel().fit(_column(table, names["period"], path),
                                                     _column(table, names["active"], path))
        return _fit_result(model, fitted, input_kind="survivors", rows=table.num_rows)
    if {"frequency", "recency", "t"} <= set(names):
        f, r, T = (_column(table, names[c], path) for c in ("frequency", "recency", "t"))
        m = _column(table, names["monetary_value"], path) if "monetary_value" in names else None
        kind = "summary"
    elif {"customer_id", "date"} <= set(names):
        ids = table.column(names["customer_id"]).cast(pa.string()).to_numpy(zero_copy_only=False)
        try:
            dates = pc.cast(table.column(names["date"]), pa.timestamp("us")).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            try:
                dates = pc.strptime(table.column(names["date"]).cast(pa.string()), format="%Y-%m-%d",
                                    unit="us").to_numpy()
            except pa.ArrowInvalid as exc:
                raise WinbackError(f"{path}, column 'date': expected dates like 2025-03-31 ({exc})") from None
        amounts = _column(table, names["amount"], path) if "amount" in names else None
        if model == "gamma-gamma" and amounts is None:
            raise WinbackError(f"{path}: gamma-gamma needs an amount column")
        end = observation_end.replace(tzinfo=None) if observation_end else None
        if end is None:
            end = dates.max().astype("datetime64[us]").astype(dt.datetime)
        summary = clv.summary_from_transactions(ids, dates, amounts, end, time_unit)
        f, r, T, m = summary.frequency, summary.recency, summary.T, summary.monetary_value
        kind = "transactions"
    else:
        raise WinbackError(f"{path}: expected columns customer_id, date[, amount] (a transaction log) or "
                           f"frequency, recency, T[, monetary_value] (a summary); found {', '.join(table.column_names)}")
    if model == "gamma-gamma":
        if m is None:
            raise WinbackError(f"{path}: gamma-gamma needs monetary_value (summary) or amount (transactions)")
        repeat = f > 0
        fitted = clv.GammaGammaModel().fit(f[repeat], m[repeat])
        return _fit_result(model, fitted, input_kind=kind, rows=int(repeat.sum()))
    cls = clv.BetaGeoModel if model == "bgnbd" else clv.ParetoNBDModel
    fitted = cls().fit(f, r, T)
    return _fit_result(model, fitted, input_kind=kind, rows=len(f))


def _fit_result(model: str, fitted, input_kind: str, rows: int) -> dict:
    return {"model": model, "input": input_kind, "customers": rows,
            "params": fitted.params_, "standard_errors": fitted.standard_errors_,
            "log_likelihood": fitted.log_likelihood_, "converged": bool(getattr(fitted, "converged_", True))}
