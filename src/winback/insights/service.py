"""Build the customer profile: analytics scores + lifecycle + reasons + feature requests + personas
+ health + churn risk + win-back propensity + priorities, and the feedback themes.

``build_insights`` is run by ``winback analyze`` right after the analytics stage; it reads the
history through Ibis, writes ``customer_profile`` into the history store (for segments) and
returns the profile and an ``insights`` summary (themes, feature requests, model reports) that
the caller stores with the analysis run.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from winback.config import Settings
from winback.history.store import connect, ibis_connection
from winback.insights import priorities as prio
from winback.insights.profile import conform, write_profile

Note = Callable[[str], None]


@dataclass
class InsightsOutcome:
    profile: pa.Table
    summary: dict
    seconds: dict[str, float] = field(default_factory=dict)


def _naive(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def _count(con, table: str) -> int:
    try:
        return int(con.table(table).count().execute())
    except Exception:
        return 0


def _customer_refs(settings: Settings) -> pa.Table:
    from sqlalchemy import select

    from winback.kit.db import make_engine
    from winback.models.customer import Customer

    engine = make_engine(settings.resolved_state_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Customer.source, Customer.external_id, Customer.id)).all()
    finally:
        engine.dispose()
    return pa.table({"source": pa.array([r[0] for r in rows], pa.string()),
                     "customer_id": pa.array([r[1] for r in rows], pa.string()),
                     "customer_ref": pa.array([r[2] for r in rows], pa.int64())})


def _base(con, settings: Settings, scores: pa.Table, obs: dt.datetime) -> pa.Table:
    """Customers + analytics scores + lifecycle status (trial_only / trialing / prospect added)."""
    customers = con.table("customers").select(
        "source", "customer_id", "email", "name", "company", "phone", "locale", "country", "timezone", "plan_id",
        "created_at", "marketing_basis", "marketing_opt_out", "attributes").to_pyarrow()
    subs = con.table("subscriptions")
    end = subs.ended_at.coalesce(subs.canceled_at)
    sub_rows = subs.select("source", "customer_id", "status", "cancel_reason_code", ended=end,
                           trial_end=subs.trial_end, started_at=subs.started_at).to_pyarrow()
    refs = _customer_refs(settings)
    parts = scores.column("key").to_pylist() if scores.num_rows else []
    split = [k.split("\x1f", 1) for k in parts]
    sc = scores.drop_columns(["key"]).append_column("source", pa.array([p[0] for p in split], pa.string())) \
        .append_column("customer_id", pa.array([p[1] for p in split], pa.string())) if scores.num_rows else None
    local = duckdb.connect()
    try:
        local.register("customers", customers)
        local.register("subs", sub_rows)
        local.register("refs", refs)
        obs_sql = f"TIMESTAMP '{_naive(obs).isoformat(sep=' ')}'"
        score_cols = ""
        join = ""
        if sc is not None:
            local.register("sc", sc)
            keep = [c for c in sc.column_names if c not in ("source", "customer_id", "status", "churned_at",
                                                            "churn_reason")]
            score_cols = "".join(f', sc."{c}"' for c in keep)
            join = "LEFT JOIN sc USING (source, customer_id)"
        status_expr = "sc.status" if sc is not None else "NULL"
        churned_expr = "sc.churned_at" if sc is not None and "churned_at" in sc.column_names else "NULL"
        return local.execute(f"""
            WITH sub_summary AS (
                SELECT source, customer_id,
                       bool_or(ended IS NULL OR ended > {obs_sql}) AS has_open,
                       max(ended) FILTER (WHERE ended <= {obs_sql}) AS last_end,
                       count(*) AS subscriptions
                FROM subs WHERE started_at <= {obs_sql} GROUP BY ALL)
            SELECT c.*, refs.customer_ref,
                   CASE WHEN {status_expr} IN ('active', 'churned', 'lost') THEN {status_expr}
                        WHEN ss.has_open THEN 'trialing'
                        WHEN ss.subscriptions > 0 THEN 'trial_only'
                        ELSE 'prospect' END AS status,
                   CASE WHEN {status_expr} IN ('active', 'churned', 'lost') THEN {churned_expr}
                        WHEN NOT coalesce(ss.has_open, true) THEN ss.last_end END AS churned_at
                   {score_cols}
            FROM customers c
            LEFT JOIN refs USING (source, customer_id)
            LEFT JOIN sub_summary ss USING (source, customer_id)
            {join}
            ORDER BY c.source, c.customer_id
        """).to_arrow_table()
    finally:
        local.close()


def _lost_buyers_churn_time(con, base: pa.Table, obs: dt.datetime) -> pa.Table:
    """Lost buyers (status ``lost``) have no subscription end: their churn moment is their last order."""
    lost = pc.equal(base.column("status"), "lost")
    if not pc.any(lost).as_py():
        return base
    orders = con.table("orders")
    last = (orders.filter(orders.status == "completed").group_by(["source", "customer_id"])
            .aggregate(last_order=orders.ordered_at.max()).to_pyarrow())
    local = duckdb.connect()
    try:
        local.register("b", base)
        local.register("lo", last)
        return local.execute("""
            SELECT b.* REPLACE (CASE WHEN b.status = 'lost' THEN lo.last_order ELSE b.churned_at END AS churned_at)
            FROM b LEFT JOIN lo USING (source, customer_id) ORDER BY b.source, b.customer_id
        """).to_arrow_table()
    finally:
        local.close()


def _join(base: pa.Table, extra: pa.Table, columns: list[str]) -> pa.Table:
    """Left-join ``columns`` of ``extra`` (keyed by source, customer_id) onto ``base``, replacing same-named ones."""
    if extra is None or extra.num_rows == 0:
        return base
    local = duckdb.connect()
    try:
        local.register("b", base.drop_columns([c for c in columns if c in base.column_names]))
        local.register("x", extra.select(["source", "customer_id", *columns]))
        cols = ", ".join(f'x."{c}"' for c in columns)
        return local.execute(f"SELECT b.*, {cols} FROM b LEFT JOIN x USING (source, customer_id) "
                             f"ORDER BY b.source, b.customer_id").to_arrow_table()
    finally:
        local.close()


def _num(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    column = table.column(name).cast(pa.float64())
    return column.fill_null(np.nan).to_numpy() if table.num_rows else np.zeros(0)


def _minor(values: np.ndarray) -> pa.Array:
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    return pa.array(np.where(missing, 0, np.round(values)).astype(np.int64), pa.int64(), mask=missing)


def _set(table: pa.Table, name: str, values) -> pa.Table:
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, arr)
    return table.append_column(name, arr)


# --- the steps --------------------------------------------------------------------------------------

def _reasons(con, base: pa.Table, seconds: dict) -> tuple[pa.Table, dict]:
    from winback.insights.evidence import assign_reasons, churn_evidence

    t0 = time.perf_counter()
    status = np.asarray(base.column("status").to_pylist(), dtype=object)
    lost = np.isin(status, prio.LOST_STATUSES)
    churned = base.filter(pa.array(lost)).select(["source", "customer_id", "churned_at", "involuntary"]
                                                 if "involuntary" in base.column_names
                                                 else ["source", "customer_id", "churned_at"])
    churned = churned.filter(pc.is_valid(churned.column("churned_at")))
    evidence = churn_evidence(con, churned)
    decided = assign_reasons(churned, evidence)
    out = _join(base, decided, ["reason", "reason_confidence", "reason_evidence", "stated_reason_code"])
    seconds["reasons"] = time.perf_counter() - t0
    reasons = Counter(decided.column("reason").to_pylist())
    conf = decided.column("reason_confidence").to_numpy(zero_copy_only=False) if decided.num_rows else np.array([])
    return out, {"customers": decided.num_rows, "by_reason": dict(reasons.most_common()),
                 "mean_confidence": round(float(conf.mean()), 4) if conf.size else None,
                 "from_text": int(sum(1 for e in decided.column("reason_evidence").to_pylist()
                                      if '"_text"' in e or 'text"' in e))}


def build_insights(settings: Settings, analysis, *, note: Note | None = None) -> InsightsOutcome:
    """Run every insight on the history as of ``analysis.observation_end`` and write the profile."""
    note = note or (lambda _m: None)
    seconds: dict[str, float] = {}
    obs = analysis.observation_end
    summary: dict = {}
    con = ibis_connection(settings.history_path, read_only=True)
    try:
        t0 = time.perf_counter()
        note("customer profile")
        base = _base(con, settings, analysis.scores, obs)
        base = _lost_buyers_churn_time(con, base, obs)
        seconds["profile_base"] = time.perf_counter() - t0

        note("churn reasons")
        base, summary["reasons"] = _reasons(con, base, seconds)

        for step, fn in INSIGHT_STEPS:
            t0 = time.perf_counter()
            note(step.replace("_", " "))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                base, info = fn(con, settings, base, obs)
            if info:
                summary[step] = info
            seconds[step] = time.perf_counter() - t0
    finally:
        con.disconnect()

    t0 = time.perf_counter()
    note("priorities")
    base, summary["priorities"] = _priorities(settings, base)
    seconds["priorities"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    profile = conform(base)
    hist = connect(settings.history_path)
    try:
        write_profile(hist, profile)
    finally:
        hist.close()
    seconds["write_profile"] = time.perf_counter() - t0
    summary["statuses"] = dict(Counter(profile.column("status").to_pylist()).most_common())
    return InsightsOutcome(profile, summary, seconds)


def _priorities(settings: Settings, base: pa.Table) -> tuple[pa.Table, dict]:
    status = np.asarray(base.column("status").to_pylist(), dtype=object)
    lost = np.isin(status, prio.LOST_STATUSES)
    group = np.where(lost, "lost", np.where(status == "active", "active", None))
    value = np.where(lost, _num(base, "lost_value_minor"), _num(base, "expected_clv_12m_minor"))
    base = _set(base, "value_tier", pa.array(prio.value_tiers(value, group).tolist(), pa.string()))
    p_return = _num(base, "p_return")
    after, recoverable = prio.recoverable_value(p_return, _num(base, "lost_value_minor"), _num(base, "mrr_minor"))
    after = np.where(lost, after, np.nan)
    recoverable = np.where(lost, recoverable, np.nan)
    ranks = prio.priority_ranks(recoverable, lost)
    col = base.column
    channel, interview = prio.suggested_channels(
        lost, after, col("email").to_pylist(), col("phone").to_pylist(), col("marketing_basis").to_pylist(),
        [bool(v) for v in col("marketing_opt_out").to_pylist()],
        phone_top_share=_insights_setting(settings, "phone_top_share", 0.01))
    base = _set(base, "value_after_return_minor", _minor(after))
    base = _set(base, "recoverable_value_minor", _minor(recoverable))
    base = _set(base, "priority_rank", _minor(ranks))
    base = _set(base, "suggested_channel", pa.array(channel.tolist(), pa.string()))
    ok = ~np.isnan(recoverable)
    return base, {"ranked": int(ok.sum()), "expected_recoverable_minor": int(np.nansum(recoverable)),
                  "phone_interviews": int(interview.sum()),
                  "channels": dict(Counter(c for c in channel.tolist() if c).most_common())}


def _feature_requests(con, settings: Settings, base: pa.Table, obs: dt.datetime):
    """Feature requests (events and free text) per customer, linked to releases."""
    from winback.insights.features import FeatureCatalog, feature_requests, feature_summary

    if _count(con, "product_events") == 0 and _count(con, "survey_responses") == 0 and \
            _count(con, "subscriptions") == 0:
        return base, None
    catalog = FeatureCatalog.from_history(con, obs)
    requests = feature_requests(con, obs, catalog=catalog)
    if requests.num_rows == 0:
        return base, {"features": []}
    local = duckdb.connect()
    try:
        local.register("r", requests)
        per = local.execute("SELECT source, customer_id, list(DISTINCT feature ORDER BY feature) AS requested_features "
                            "FROM r GROUP BY ALL").to_arrow_table()
    finally:
        local.close()
    base = _join(base, per, ["requested_features"])
    summary = feature_summary(con, obs, catalog=catalog, requests=requests).to_pylist()
    return base, {"features": summary}


def _personas(con, settings: Settings, base: pa.Table, obs: dt.datetime):
    from winback.insights.personas import assign_personas, commerce_sources, persona_features

    sources = commerce_sources(con)
    if not sources:
        return base, None
    assigned = assign_personas(persona_features(con, obs, sources=sources))
    base = _join(base, assigned, ["persona"])
    return base, {"customers": assigned.num_rows,
                  "by_persona": dict(Counter(assigned.column("persona").to_pylist()).most_common())}


def _health(con, settings: Settings, base: pa.Table, obs: dt.datetime):
    """Health score and factors for active customers; the churn-risk model beside it."""
    from winback.analytics.churn_risk import train_and_evaluate
    from winback.analytics.features import customer_features
    from winback.analytics.health import health_scores

    status = np.asarray(base.column("status").to_pylist(), dtype=object)
    active_keys = base.filter(pa.array(status == "active")).select(["source", "customer_id"])
    if active_keys.num_rows == 0:
        return base, None
    all_features = customer_features(con, obs, settings=settings.health)
    feats = all_features
    local = duckdb.connect()
    try:
        local.register("f", feats)
        local.register("a", active_keys)
        local.register("b", base.select(["source", "customer_id", "p_alive"]) if "p_alive" in base.column_names
                       else active_keys.append_column("p_alive", pa.nulls(active_keys.num_rows, pa.float64())))
        feats = local.execute("SELECT f.*, b.p_alive AS _p_alive FROM f JOIN a USING (source, customer_id) "
                              "LEFT JOIN b USING (source, customer_id) ORDER BY source, customer_id").to_arrow_table()
    finally:
        local.close()
    p_alive = _num(feats, "_p_alive")
    scored = health_scores(feats, settings.health, p_alive)
    info: dict = {"scored": scored.num_rows,
                  "by_band": dict(Counter(scored.column("health_band").to_pylist()).most_common()),
                  "inactive_regular": int(pc.sum(scored.column("inactive_regular")).as_py() or 0)}
    extra = scored
    result = train_and_evaluate(con, obs, settings=settings.health, raise_on_insufficient=False,
                                current_features=all_features)
    info["churn_risk_model"] = {k: v for k, v in result.report.items() if k not in ("baseline_reliability",)}
    if result.predictions is not None and result.predictions.num_rows:
        local = duckdb.connect()
        try:
            local.register("s", scored)
            local.register("p", result.predictions.select(["source", "customer_id", "churn_risk"]))
            extra = local.execute("SELECT s.*, p.churn_risk FROM s LEFT JOIN p USING (source, customer_id)"
                                  ).to_arrow_table()
        finally:
            local.close()
    cols = ["health_score", "health_band", "health_factors"] + (["churn_risk"] if "churn_risk" in
                                                                 extra.column_names else [])
    return _join(base, extra, cols), info


def _propensity(con, settings: Settings, base: pa.Table, obs: dt.datetime):
    """P(return) for lost customers: the learnt/prior model for subscribers, the prior for trials
    that never converted, and the BG/NBD purchase model for buyers (P(at least one purchase in the
    next 12 months) = 1 - exp(-expected purchases), a Poisson reading of the expected count)."""
    from winback.analytics.propensity import fit_propensity, prior_propensity

    status = np.asarray(base.column("status").to_pylist(), dtype=object)
    n = base.num_rows
    p = np.full(n, np.nan)
    info: dict = {}
    keys = list(zip(base.column("source").to_pylist(), base.column("customer_id").to_pylist()))
    reasons = base.column("reason").to_pylist() if "reason" in base.column_names else [None] * n
    if (status == "churned").any():
        override = {k: r for k, r, st in zip(keys, reasons, status) if st == "churned" and r}
        model = fit_propensity(con, obs, reasons=override)
        info["subscriptions"] = {k: v for k, v in model.report.items() if k not in ("reliability",)}
        churned = model.churned
        if churned is not None and churned.num_rows:
            predicted = model.predict(churned)
            index = {k: i for i, k in enumerate(keys)}
            for s, c, value in zip(churned.column("source").to_pylist(), churned.column("customer_id").to_pylist(),
                                   predicted):
                i = index.get((s, c))
                if i is not None and status[i] == "churned":
                    p[i] = value
    trial = status == "trial_only"
    if trial.any():
        churned_at = base.column("churned_at").to_pylist()
        months = np.array([(_naive(obs) - t).days / (365.25 / 12) if t is not None else 0.0
                           for t, is_trial in zip(churned_at, trial) if is_trial])
        p[trial] = prior_propensity([r for r, is_trial in zip(reasons, trial) if is_trial],
                                    np.full(int(trial.sum()), np.nan), months)
        info["trial_only"] = {"mode": "prior", "customers": int(trial.sum())}
    lost = status == "lost"
    if lost.any():
        expected = _num(base, "expected_purchases_12m")
        p[lost] = 1.0 - np.exp(-np.nan_to_num(expected[lost]))
        info["buyers"] = {"mode": "bgnbd", "customers": int(lost.sum())}
    base = _set(base, "p_return", pa.array(p, pa.float64(), mask=np.isnan(p)))
    return base, info


def _themes(con, settings: Settings, base: pa.Table, obs: dt.datetime):
    """Feedback themes over every text, with each customer's lost MRR and the reason classifier."""
    from winback.insights.features import FeatureCatalog
    from winback.insights.reasons import classify_texts
    from winback.insights.themes import feedback_from_history, find_themes

    feedback = feedback_from_history(con, obs)
    if feedback.num_rows == 0:
        return base, {"themes": []}
    texts = feedback.column("text").to_pylist()
    reasons = [c.reason if c.reason != "unknown" else None for c in classify_texts(texts)]
    catalog = FeatureCatalog.from_history(con, obs)
    themes = find_themes(feedback, reasons=reasons, features=catalog)
    out = []
    for t in themes[:THEMES_KEPT]:
        d = t.to_dict()
        d["members"] = d["members"][:MEMBERS_KEPT]
        out.append(d)
    return base, {"themes": out, "feedback_texts": feedback.num_rows, "themes_found": len(themes)}


THEMES_KEPT = 50
MEMBERS_KEPT = 200

# (name, fn(con, settings, base, obs) -> (base, info)), run in this order after the reasons
INSIGHT_STEPS: list[tuple[str, Callable]] = [
    ("feature_requests", _feature_requests),
    ("personas", _personas),
    ("health", _health),
    ("propensity", _propensity),
    ("themes", _themes),
]


def insights_json(outcome: InsightsOutcome) -> str:
    return json.dumps(outcome.summary, default=str, ensure_ascii=False)


def _insights_setting(settings: Settings, name: str, default):
    section = getattr(settings, "insights", None)
    return getattr(section, name, default) if section is not None else default
