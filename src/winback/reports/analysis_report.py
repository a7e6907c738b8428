"""The ``winback analyze`` HTML report: one self-contained file, charts included, works offline.

Input is the JSON-able report data that :mod:`winback.analytics.service` assembles (see
``build_report``'s docstring for the keys), so the report can be rebuilt from a stored run.
"""

from __future__ import annotations

import datetime as dt
import html
import time
from pathlib import Path

import plotly.graph_objects as go
from jinja2 import Environment, PackageLoader, select_autoescape
from plotly.offline import get_plotlyjs

REASON_COLOURS = {
    "price": "#d62728", "missing_feature": "#1f77b4", "usability": "#9467bd", "support": "#ff7f0e",
    "competitor": "#8c564b", "involuntary": "#7f7f7f", "other": "#bcbd22", "unknown": "#c7c7c7",
}


def _fig_html(fig: go.Figure) -> str:
    fig.update_layout(margin=dict(l=50, r=20, t=50, b=40), template="plotly_white", height=380)
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def retention_curves(km: dict) -> str:
    fig = go.Figure()
    for group, curve in km.items():
        fig.add_trace(go.Scatter(x=curve["timeline"], y=curve["survival"], mode="lines", name=str(group),
                                 line_shape="hv"))
    fig.update_layout(title="Retention curve: share of paying customers still subscribed (Kaplan-Meier)",
                      xaxis_title="days since first payment", yaxis_title="still subscribed", yaxis_tickformat=".0%")
    return _fig_html(fig)


def cohort_heatmap(cohorts: list[dict]) -> str:
    labels = sorted({c["cohort"] for c in cohorts})
    ages = sorted({c["age"] for c in cohorts})
    index = {(c["cohort"], c["age"]): c["retention"] for c in cohorts}
    z = [[index.get((label, age)) for age in ages] for label in labels]
    fig = go.Figure(go.Heatmap(z=z, x=ages, y=labels, colorscale="Blues", zmin=0, zmax=1,
                               hovertemplate="cohort %{y}, month %{x}: %{z:.0%}<extra></extra>"))
    fig.update_layout(title="Cohort retention (share of each signup cohort still paying)",
                      xaxis_title="months since first payment", yaxis_title="cohort", height=520)
    return _fig_html(fig)


def churn_by_reason_chart(rows: list[dict], events: list[dict], value: str, title: str) -> str:
    periods = sorted({r["period"] for r in rows})
    reasons = sorted({r["reason"] for r in rows}, key=lambda r: list(REASON_COLOURS).index(r)
                     if r in REASON_COLOURS else 99)
    fig = go.Figure()
    for reason in reasons:
        by_period = {r["period"]: r[value] for r in rows if r["reason"] == reason}
        fig.add_trace(go.Bar(x=periods, y=[by_period.get(p, 0) for p in periods], name=reason,
                             marker_color=REASON_COLOURS.get(reason)))
    for event in events:
        fig.add_vline(x=event["period"], line_dash="dash", line_color="#444")
        fig.add_annotation(x=event["period"], y=1, yref="paper", text=html.escape(event["label"]), showarrow=False,
                           xanchor="left", yanchor="top", bgcolor="rgba(255,255,255,0.8)")
    fig.update_layout(barmode="stack", title=title, xaxis_title="month", xaxis_type="category")
    return _fig_html(fig)


def pareto_chart(pareto: dict) -> str:
    share = pareto["cumulative_share"]
    n = len(share)
    xs = [(i + 1) / n for i in range(n)] if n else []
    fig = go.Figure(go.Scatter(x=xs, y=share, mode="lines", name="cumulative share of lost value"))
    fig.add_vline(x=0.2, line_dash="dash")
    fig.add_annotation(x=0.2, y=pareto["top_share"], text=f"top 20% hold {pareto['top_share']:.0%}",
                       showarrow=True, arrowhead=2)
    fig.update_layout(title="Pareto: share of lost value held by the most valuable churned customers",
                      xaxis_title="share of churned customers (most valuable first)", yaxis_title="share of lost value",
                      xaxis_tickformat=".0%", yaxis_tickformat=".0%")
    return _fig_html(fig)


def clv_histogram(values: list[float], currency: str, title: str) -> str:
    fig = go.Figure(go.Histogram(x=values, nbinsx=60))
    fig.update_layout(title=title, xaxis_title=f"value ({currency})", yaxis_title="customers")
    return _fig_html(fig)


def dunning_weekly_chart(weekly: list[dict]) -> str:
    weeks = [w["week"] for w in weekly]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=weeks, y=[w["failed"] for w in weekly], name="failed invoices", marker_color="#d62728"))
    fig.add_trace(go.Bar(x=weeks, y=[w["recovered"] for w in weekly], name="recovered", marker_color="#2ca02c"))
    fig.update_layout(title="Failed payments and recoveries per week", xaxis_title="week (starting Monday)",
                      yaxis_title="invoices", barmode="group")
    return _fig_html(fig)


def _share(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ci_text(entry: dict) -> str:
    return "-" if entry.get("ci_low") is None else f"{entry['ci_low']:.1%} to {entry['ci_high']:.1%}"


def dunning_section(report: dict | None) -> dict:
    """The report's "Dunning: failed payments and recovery" section from :func:`winback.dunning.report.dunning_report`:
    ``{"empty": True}`` when no failed payment is recorded, else key figures, tables and the weekly chart."""
    if not report or not report["failed"]["invoices"]:
        return {"empty": True}
    from winback.dunning.report import money_text

    rate, ttr = report["recovery_rate"], report["time_to_recovery"]

    def days(value) -> str:
        return "-" if value is None else f"{value:.1f} days"

    cards = {
        "failed invoices": f"{report['failed']['invoices']:,} ({money_text(report['failed']['amount'])})",
        "recovered": f"{report['recovered']['invoices']:,} ({money_text(report['recovered']['amount'])})",
        "recovered MRR": money_text(report["recovered"]["mrr"]),
        "recovery rate": f"{_share(rate['rate'])} (95% CI {_ci_text(rate)})",
        "open: amount at risk": f"{report['open']['invoices']:,} ({money_text(report['open']['amount_at_risk'])})",
        "lost (retries exhausted)": f"{report['lost']['invoices']:,} (MRR {money_text(report['lost']['mrr'])})",
        "median time to recovery": days(ttr["median_days"]),
    }

    def outcome_cols(e: dict) -> dict:
        return {"failed": e["failed"], "recovered": e["recovered"], "open": e["open"], "lost": e["lost"],
                "closed": e["closed"], "recovery rate": _share(e["rate"]), "95% CI": _ci_text(e)}

    tables = {
        "Recovery by decline category": [{"category": k, **outcome_cols(e)} for k, e in report["by_category"].items()],
        "Recovered by how": [{"how": k.replace("_", " "), "invoices": e["invoices"], "share": _share(e["share"]),
                              "amount": money_text(e["amount"]), "MRR": money_text(e["mrr"])}
                             for k, e in report["recovered"]["by"].items()],
        "Time to recovery": [{"bucket": h["bucket"], "invoices": h["invoices"], "share": _share(h["share"])}
                             for h in ttr["histogram"]],
        "Recovery by first decline code (top codes)": [{"code": e["code"], "category": e["category"],
                                                        **outcome_cols(e)} for e in report["by_decline_code"]],
    }
    a, n = report["attempts"], report["notices"]
    notes = [f"Time to recovery: median {days(ttr['median_days'])}, p75 {days(ttr['p75_days'])}, "
             f"p90 {days(ttr['p90_days'])}.",
             f"{a['charges']:,} charges ({a['retries']:,} retries), {_share(a['rate'])} succeeded; at most "
             f"{a['max_per_card_30d']:,} on one card in any 30 days (cap {a['cap_per_card_30d']}).",
             f"{n['failed_payment_sent']:,} failed-payment e-mails and {n['expiry_reminders_sent']:,} card-expiry "
             f"reminders sent; {n['cards_updated_after_reminder']['total']:,} reminded cards updated within 30 days; "
             f"{n['card_updater_updates']:,} cards updated by the card updater."]
    return {"empty": False, "cards": cards, "tables": tables, "notes": notes,
            "chart": dunning_weekly_chart(report["weekly"]) if report["weekly"] else None}


def build_report(data: dict, path: Path) -> Path:
    """Write the report. ``data`` keys: title, observation_end, summary (dict of headline figures),
    tables (name -> list of row dicts), km (group -> {timeline, survival}), cohorts (rows with cohort,
    age, retention), reasons (rows with period, reason, lost_customers, lost_mrr), events (period,
    label), pareto ({cumulative_share, top_share}), clv ({values, currency, title}), currency, dunning (the
    :func:`winback.dunning.report.dunning_report` dict; without it the dunning section says that no failed
    payment is recorded)."""
    charts = []
    if data.get("km"):
        charts.append(("Retention", retention_curves(data["km"])))
    if data.get("reasons"):
        charts.append(("Churn by reason", churn_by_reason_chart(
            data["reasons"], data.get("events", []), "lost_customers", "Churned customers by reason per month")))
        charts.append(("Lost MRR by reason", churn_by_reason_chart(
            data["reasons"], data.get("events", []), "lost_mrr",
            f"Lost MRR by reason per month ({data.get('currency', '')})")))
    if data.get("cohorts"):
        charts.append(("Cohorts", cohort_heatmap(data["cohorts"])))
    if data.get("pareto") and data["pareto"].get("cumulative_share"):
        charts.append(("Pareto", pareto_chart(data["pareto"])))
    if data.get("clv") and data["clv"].get("values"):
        charts.append(("Customer value", clv_histogram(data["clv"]["values"], data["clv"]["currency"],
                                                       data["clv"]["title"])))
    env = Environment(loader=PackageLoader("winback.reports", "templates"), autoescape=select_autoescape())
    page = env.get_template("analysis.html").render(
        title=data.get("title", "winback analysis"), observation_end=data.get("observation_end"),
        generated_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        summary=data.get("summary", {}), tables=data.get("tables", {}), charts=charts,
        dunning=dunning_section(data.get("dunning")), plotly_js=get_plotlyjs())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def copy_state_feedback(settings, note=None) -> int:
    """Bring what recipients told winback itself (the exit survey page, in the state store) into the
    history before analysing it (idempotent; see :mod:`winback.ingest.web_surveys`)."""
    from winback.history.store import open_history
    from winback.ingest.web_surveys import copy_survey_responses

    if note:
        note("copying survey answers from the state store")
    with open_history(settings.history_path) as con:
        return copy_survey_responses(settings, con)


def run_analysis(settings, observation_end: dt.datetime | None = None, *, write_report: bool = True,
                 note=None, refresh_segments: bool = True):
    """analyze + insights (profile) + segment refresh + store the scores + the HTML report."""
    from winback.analytics.service import analyze, store_scores
    from winback.insights.service import build_insights

    note = note or (lambda _m: None)
    copy_state_feedback(settings, note)
    outcome = analyze(settings, observation_end, note=note)
    insights = build_insights(settings, outcome, note=note)
    outcome.seconds.update({f"insights_{k}": v for k, v in insights.seconds.items()})
    t0 = time.perf_counter()
    note("storing scores")
    state_scores = insights.profile.append_column("churn_reason", insights.profile.column("reason"))
    outcome.analysis_id = store_scores(settings, outcome, None, scores=state_scores, insights=insights.summary)
    outcome.seconds["store"] = time.perf_counter() - t0
    segments = None
    if refresh_segments:
        from winback.segments.service import refresh

        t0 = time.perf_counter()
        note("refreshing segments")
        segments = refresh(settings, as_of=outcome.observation_end)
        outcome.seconds["segments"] = time.perf_counter() - t0
    path = None
    if write_report:
        note("report")
        t0 = time.perf_counter()
        path = settings.workspace / "reports" / f"analysis-{outcome.observation_end:%Y-%m-%d}.html"
        data = dict(outcome.report_data)
        data["tables"] = {**data.get("tables", {}), **insight_tables(settings, insights)}
        data["dunning"] = dunning_data(settings)
        build_report(data, path)
        outcome.report_data = data  # what the report shows: the demo renders it again after dunning ran
        _set_report_path(settings, outcome.analysis_id, path)
        outcome.seconds["report"] = time.perf_counter() - t0
    outcome.summary["analysis_id"] = outcome.analysis_id
    outcome.summary["report"] = str(path) if path else None
    outcome.summary["insights"] = _insights_headline(insights.summary)
    if segments is not None:
        outcome.summary["segments"] = _segments_headline(segments)
    return outcome, path


def dunning_data(settings) -> dict:
    """The recovery report over every failed invoice in the state store (for the dunning section)."""
    from winback.dunning.report import dunning_report

    return dunning_report(settings)


def _money_text(minor, currency) -> str:
    from winback.kit.money import Money

    return "-" if minor is None else Money(int(minor), currency or "USD").format()


def insight_tables(settings, insights, limit: int = 25) -> dict[str, list[dict]]:
    """The report's insight tables: at-risk customers, priorities, phone interviews, reasons, themes."""
    import numpy as np

    profile = insights.profile
    cols = set(profile.column_names)
    rows = profile.select([c for c in ("customer_id", "name", "status", "health_score", "health_band",
                                       "health_factors", "churn_risk", "mrr_minor", "currency", "reason",
                                       "reason_confidence", "p_return", "value_after_return_minor",
                                       "recoverable_value_minor", "priority_rank", "suggested_channel")
                           if c in cols]).to_pylist()
    tables: dict[str, list[dict]] = {}
    risky = [r for r in rows if r["status"] == "active" and r.get("health_band") == "at_risk"]
    risky.sort(key=lambda r: (-(r.get("churn_risk") or 0.0), r.get("health_score") or 0.0))
    tables["Active customers at risk"] = [
        {"customer": f"{r['name'] or ''} ({r['customer_id']})", "health": f"{r['health_score']:.0f}",
         "churn risk": "-" if r.get("churn_risk") is None else f"{r['churn_risk']:.0%}",
         "MRR": _money_text(r["mrr_minor"], r["currency"]), "why": "; ".join(r.get("health_factors") or [])}
        for r in risky[:limit]]
    ranked = sorted((r for r in rows if r.get("priority_rank") is not None), key=lambda r: r["priority_rank"])
    tables["Win-back priorities (expected recoverable value)"] = [
        {"#": r["priority_rank"], "customer": f"{r['name'] or ''} ({r['customer_id']})",
         "reason": f"{r['reason']} ({(r.get('reason_confidence') or 0):.0%})",
         "P(return)": f"{(r.get('p_return') or 0):.1%}",
         "value after return": _money_text(r["value_after_return_minor"], r["currency"]),
         "recoverable": _money_text(r["recoverable_value_minor"], r["currency"]),
         "channel": r["suggested_channel"]} for r in ranked[:limit]]
    reasons = insights.summary.get("reasons", {}).get("by_reason", {})
    conf: dict[str, list[float]] = {}
    for r in rows:
        if r.get("reason") is not None and r.get("reason_confidence") is not None:
            conf.setdefault(r["reason"], []).append(r["reason_confidence"])
    tables["Churn reasons (every lost customer)"] = [
        {"reason": k, "customers": f"{v:,}", "mean confidence": f"{np.mean(conf.get(k, [0])):.0%}"}
        for k, v in reasons.items()]
    themes = insights.summary.get("themes", {}).get("themes", [])
    tables["Feedback themes (frequency x lost MRR)"] = [
        {"theme": t["label"], "reason": t["reason"], "customers": f"{t['customers']:,}",
         "lost MRR": _money_text(t["lost_mrr_minor"], t.get("currency")),
         "languages": ", ".join(sorted(t.get("languages", {}))),
         "quote": (t["quotes"][0]["text"] if t.get("quotes") else "")[:90]} for t in themes[:15]]
    features = insights.summary.get("feature_requests", {}).get("features", [])
    tables["Requested features and releases"] = [
        {"feature": f.get("label") or f["feature"], "requesters": f"{f['requesters']:,}",
         "churned": f"{f['churned_requesters']:,}", "lost MRR": _money_text(f.get("lost_mrr_minor"), f.get("currency")),
         "release": (f"shipped {str(f['released_at'])[:10]}" if f.get("shipped") else
                     f"planned {str(f['released_at'])[:10]}" if f.get("released_at") else "not planned")}
        for f in features[:15]]
    return {k: v for k, v in tables.items() if v}


def _set_report_path(settings, analysis_id: int, path: Path) -> None:
    from sqlalchemy import update

    from winback.kit.db import make_engine, session_scope
    from winback.models.scores import AnalysisRun

    engine = make_engine(settings.resolved_state_url)
    try:
        with session_scope(engine) as session:
            session.execute(update(AnalysisRun).where(AnalysisRun.id == analysis_id).values(report_path=str(path)))
    finally:
        engine.dispose()


def _insights_headline(summary: dict) -> dict:
    out = {"statuses": summary.get("statuses", {}), "reasons": summary.get("reasons", {}).get("by_reason", {})}
    health = summary.get("health") or {}
    if health:
        out["health_bands"] = health.get("by_band", {})
        model = health.get("churn_risk_model", {})
        out["churn_risk_model"] = {k: model.get(k) for k in ("auc", "brier", "ece", "baseline_auc", "baseline_ece",
                                                              "n_test", "error") if k in model}
    prop = (summary.get("propensity") or {}).get("subscriptions")
    if prop:
        out["propensity"] = {"mode": prop.get("mode"), "why": prop.get("why")}
    if summary.get("personas"):
        out["personas"] = summary["personas"].get("by_persona", {})
    out["priorities"] = summary.get("priorities", {})
    themes = (summary.get("themes") or {}).get("themes", [])
    out["top_themes"] = [{"label": t["label"], "reason": t["reason"], "customers": t["customers"],
                          "lost_mrr_minor": t["lost_mrr_minor"]} for t in themes[:5]]
    return out


def _segments_headline(outcomes) -> list[dict]:
    return [{"name": o.name, "ok": o.ok, "members": o.member_count, "entered": o.entered, "exited": o.exited,
             "error": o.error} for o in outcomes]
