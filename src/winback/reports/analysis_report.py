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


def build_report(data: dict, path: Path) -> Path:
    """Write the report. ``data`` keys: title, observation_end, summary (dict of headline figures),
    tables (name -> list of row dicts), km (group -> {timeline, survival}), cohorts (rows with cohort,
    age, retention), reasons (rows with period, reason, lost_customers, lost_mrr), events (period,
    label), pareto ({cumulative_share, top_share}), clv ({values, currency, title}), currency."""
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
        summary=data.get("summary", {}), tables=data.get("tables", {}), charts=charts, plotly_js=get_plotlyjs())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def run_analysis(settings, observation_end: dt.datetime | None = None, *, write_report: bool = True,
                 note=None):
    """analyze + store the scores + write the HTML report (in the workspace's reports/ folder)."""
    from winback.analytics.service import analyze, store_scores

    outcome = analyze(settings, observation_end, note=note)
    path = None
    if write_report:
        (note or (lambda _m: None))("report")
        t0 = time.perf_counter()
        path = settings.workspace / "reports" / f"analysis-{outcome.observation_end:%Y-%m-%d}.html"
        build_report(outcome.report_data, path)
        outcome.seconds["report"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    (note or (lambda _m: None))("storing scores")
    outcome.analysis_id = store_scores(settings, outcome, path)
    outcome.seconds["store"] = time.perf_counter() - t0
    outcome.summary["analysis_id"] = outcome.analysis_id
    outcome.summary["report"] = str(path) if path else None
    return outcome, path
