"""Plotly figures of the dashboard, built server-side and returned as JSON text (see ``common.chart``)."""

from __future__ import annotations

import itertools

import plotly.graph_objects as go

from winback.kit.money import Money
from winback.web.pages.common import chart

BLUE, GREY, RED, GREEN, AMBER = "#2457d6", "#9aa3b2", "#b42318", "#137333", "#b7791f"


def _major(minor, currency: str) -> float:
    return float(Money(int(minor or 0), currency).major())


def monthly_churn(rows: list[dict], currency: str) -> str:
    months = [r["month"] for r in rows]
    fig = go.Figure()
    fig.add_bar(x=months, y=[r["customers"] for r in rows], name="customers churned", marker_color=BLUE)
    fig.add_scatter(x=months, y=[_major(r["lost_mrr_minor"], currency) for r in rows], name=f"MRR lost ({currency})",
                    yaxis="y2", mode="lines+markers", line={"color": RED})
    fig.update_layout(title="Churn by month (each customer's latest churn)", legend={"orientation": "h", "y": -0.2},
                      yaxis={"title": "customers"}, yaxis2={"title": currency, "overlaying": "y", "side": "right"})
    return chart(fig)


def recovered(rows: list[dict], currency: str) -> str:
    days = [r["day"] for r in rows]
    cumulative = list(itertools.accumulate(_major(r["revenue_minor"], currency) for r in rows))
    fig = go.Figure()
    fig.add_bar(x=days, y=[r["conversions"] for r in rows], name="conversions", marker_color=GREY)
    fig.add_scatter(x=days, y=cumulative, name=f"recovered revenue, cumulative ({currency})", yaxis="y2",
                    mode="lines", line={"color": GREEN, "width": 3})
    fig.update_layout(title="Recovered revenue (conversions attributed to campaigns)",
                      legend={"orientation": "h", "y": -0.2}, yaxis={"title": "conversions"},
                      yaxis2={"title": currency, "overlaying": "y", "side": "right"})
    return chart(fig)


def reasons(table: list[dict]) -> str:
    names = [r["reason"].replace("_", " ") for r in table]
    fig = go.Figure()
    for basis, colour, title in (("billing", RED, "billing facts (payment failed)"), ("stated", BLUE, "stated"),
                                 ("inferred", AMBER, "inferred from text"), ("none", GREY, "no evidence")):
        fig.add_bar(y=names, x=[r[basis] for r in table], name=title, orientation="h", marker_color=colour)
    fig.update_layout(barmode="stack", title="Churn reasons: stated vs inferred",
                      legend={"orientation": "h", "y": -0.2}, yaxis={"autorange": "reversed"})
    return chart(fig)


def involuntary(rows: list[dict]) -> str:
    months = [r["month"] for r in rows]
    fig = go.Figure()
    fig.add_bar(x=months, y=[r["involuntary"] for r in rows], name="involuntary (payment failed)", marker_color=RED)
    fig.add_bar(x=months, y=[r["customers"] - r["involuntary"] for r in rows], name="voluntary", marker_color=BLUE)
    fig.update_layout(barmode="stack", title="Voluntary and involuntary churn by month",
                      legend={"orientation": "h", "y": -0.2})
    return chart(fig)


def dunning_weekly(weekly: list[dict]) -> str:
    weeks = [w["week"] for w in weekly]
    fig = go.Figure()
    fig.add_bar(x=weeks, y=[w["failed"] for w in weekly], name="failed invoices", marker_color=RED)
    fig.add_bar(x=weeks, y=[w["recovered"] for w in weekly], name="recovered", marker_color=GREEN)
    fig.update_layout(barmode="group", title="Failed payments and recoveries per week",
                      legend={"orientation": "h", "y": -0.2}, yaxis={"title": "invoices"},
                      xaxis={"title": "week (starting Monday)"})
    return chart(fig)


def recovery_by_category(by_category: dict) -> str:
    names = list(by_category)
    fig = go.Figure()
    for field, colour, title in (("recovered", GREEN, "recovered"), ("open", AMBER, "open"),
                                 ("lost", RED, "lost (retries exhausted)"), ("closed", GREY, "closed elsewhere")):
        fig.add_bar(x=names, y=[by_category[n][field] for n in names], name=title, marker_color=colour)
    fig.update_layout(barmode="stack", title="Failed invoices by decline category and outcome",
                      legend={"orientation": "h", "y": -0.2}, yaxis={"title": "invoices"})
    return chart(fig)


def funnel(res: dict) -> str:
    f = res["funnel"]
    stages = [("sent", f["sent"]), ("delivered", f["delivered"]), ("opened (people)", f["opens_human"]),
              ("clicked (people)", f["clicks_human"]), ("converted", f["conversions"])]
    fig = go.Figure(go.Funnel(y=[s for s, _ in stages], x=[n for _, n in stages], marker={"color": BLUE},
                              textinfo="value+percent initial"))
    fig.update_layout(title="Funnel (machine opens and clicks left out)")
    return chart(fig)


def themes(rows: list[dict]) -> str:
    labels = [t.get("label") or t.get("id") for t in rows]
    fig = go.Figure(go.Bar(y=labels, x=[t.get("customers") or 0 for t in rows], orientation="h",
                           marker_color=BLUE, name="customers"))
    fig.update_layout(title="Top feedback themes (customers mentioning)", yaxis={"autorange": "reversed"},
                      )
    return chart(fig, height=440)


def cohort_rows(extra: dict) -> list[tuple[str, list]]:
    """Cohort or survival data from the summary, as (title, rows of cells) when present."""
    out = []
    for key, value in extra.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            cols = list(value[0].keys())
            out.append((key.replace("_", " "), [cols] + [[row.get(c) for c in cols] for row in value[:40]]))
        elif isinstance(value, dict) and value:
            out.append((key.replace("_", " "), [["key", "value"]] + [[k, v] for k, v in list(value.items())[:40]]))
    return out
