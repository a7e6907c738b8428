"""The dashboard's read-only pages (viewer and up; the campaign preview needs a marketer)."""

from __future__ import annotations

import datetime as dt
import json

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from winback.kit.errors import WinbackError
from winback.web.auth import Principal, list_api_keys, list_users, require
from winback.web.pages import charts
from winback.web.pages import data as q
from winback.web.pages.common import engine_of, money, pager, render
from winback.web.pages.router import router

viewer = require("viewer", page=True)
marketer = require("marketer", page=True)
admin = require("admin", page=True)
DUNNING_DAYS = 90  # the /dunning page and the overview's recovered MRR look this far back by default


def campaign_results(request: Request, campaign: str | None = None) -> dict | None:
    """``winback.tracking.results.campaign_results`` on the app's engine and clock."""
    from winback.tracking.results import campaign_results as results

    state = request.app.state
    return results(state.settings, now=state.clock.now(), engine=state.engine, campaign=campaign)


# ------------------------------------------------------------------------------------ overview

@router.get("/", response_class=HTMLResponse)
def overview(request: Request, who: Principal = Depends(viewer)):
    with engine_of(request).connect() as conn:
        run = q.latest_run(conn)
        periods = q.retention_periods(run["summary"]) if run else []
        monthly = q.monthly_churn(conn) if run else []
        recovered = q.recovered_by_day(conn)
        totals = q.conversion_totals(conn)
        messages = q.message_counts(conn)
        statuses = q.status_counts(conn) if run else {}
        dunning_rows = q.dunning_recovered_mrr(conn, request.app.state.clock.now() - dt.timedelta(
            days=DUNNING_DAYS)) if q.has_failed_payments(conn) else None
    results = campaign_results(request) if sum(messages.values()) else None
    currency = (results or {}).get("currency") or (run["summary"].get("currency") if run else None) or \
        request.app.state.settings.ingest.default_currency
    recovered_main = [r for r in recovered if (r["currency"] or currency) == currency]
    dunning_recovered = None
    if dunning_rows is not None:  # the recovered subscriptions' MRR, per currency
        dunning_recovered = {"invoices": sum(r["invoices"] for r in dunning_rows), "mrr": " + ".join(
            money(r["mrr_minor"], r["currency"] or currency) for r in dunning_rows) or money(0, currency)}
    return render(request, "overview.html", who, "overview", run=run, periods=periods,
                  headline=periods[0] if periods else None, statuses=statuses, messages=messages,
                  sent=messages.get("sent", 0) + messages.get("bounced", 0), results=results, totals=totals,
                  currency=currency, dunning_recovered=dunning_recovered, dunning_days=DUNNING_DAYS,
                  churn_chart=charts.monthly_churn(monthly, currency) if monthly else None,
                  recovered_chart=charts.recovered(recovered_main, currency) if recovered_main else None)


# ------------------------------------------------------------------------------------ churn

@router.get("/churn", response_class=HTMLResponse)
def churn(request: Request, who: Principal = Depends(viewer)):
    with engine_of(request).connect() as conn:
        run = q.latest_run(conn, insights=True)
        rows = q.reason_basis(conn) if run else []
        monthly = q.monthly_churn(conn) if run else []
    summary = run["summary"] if run else {}
    insights = run["insights"] if run else {}
    reasons: dict[str, dict] = {}
    for r in rows:
        entry = reasons.setdefault(r["reason"], {"reason": r["reason"], "customers": 0, "lost_mrr_minor": 0,
                                                 "billing": 0, "stated": 0, "inferred": 0, "none": 0,
                                                 "confidence_sum": 0.0})
        entry["customers"] += r["customers"]
        entry["lost_mrr_minor"] += int(r["lost_mrr_minor"] or 0)
        entry[r["basis"]] += r["customers"]
        entry["confidence_sum"] += float(r["confidence"] or 0) * r["customers"]
    table = sorted(reasons.values(), key=lambda e: -e["customers"])
    lost = sum(e["customers"] for e in table)
    for e in table:
        e["share"] = e["customers"] / lost if lost else None
        e["confidence"] = e["confidence_sum"] / e["customers"] if e["customers"] else None
    involuntary = reasons.get("involuntary", {}).get("customers", 0)
    currency = summary.get("currency") or request.app.state.settings.ingest.default_currency
    extra = {k: v for k, v in summary.items() if k in ("cohorts", "survival", "cohort_retention", "survival_curve")}
    return render(request, "churn.html", who, "churn", run=run, summary=summary, reasons=table, lost=lost,
                  involuntary=involuntary, involuntary_share=involuntary / lost if lost else None,
                  periods=q.retention_periods(summary), pareto=summary.get("pareto"), currency=currency,
                  features=(insights.get("feature_requests") or {}).get("features") or [],
                  reasons_summary=insights.get("reasons") or {}, extra=extra,
                  reason_chart=charts.reasons(table) if table else None,
                  involuntary_chart=charts.involuntary(monthly) if monthly else None,
                  cohort_table=charts.cohort_rows(extra))


# ------------------------------------------------------------------------------------ at risk

@router.get("/at-risk", response_class=HTMLResponse)
def at_risk(request: Request, band: str = "at_risk", who: Principal = Depends(viewer)):
    with engine_of(request).connect() as conn:
        run = q.latest_run(conn, insights=True)
        bands = q.band_counts(conn) if run else {}
        if band not in bands and band not in ("at_risk", "watch", "healthy"):
            band = "at_risk"
        p = pager(request, bands.get(band, 0), keep=("band",))
        rows = q.at_risk_page(conn, band, p.offset, p.per_page) if run else []
    model = ((run or {}).get("insights") or {}).get("health", {}).get("churn_risk_model") or {}
    return render(request, "at_risk.html", who, "at_risk", run=run, bands=bands, band=band, rows=rows, pager=p,
                  model=model)


# ------------------------------------------------------------------------------------ segments

@router.get("/segments", response_class=HTMLResponse)
def segments(request: Request, who: Principal = Depends(viewer)):
    with engine_of(request).connect() as conn:
        segs = q.segments(conn)
        p = pager(request, q.priorities_count(conn), per_page=25)
        rows = q.priorities_page(conn, p.offset, p.per_page)
    return render(request, "segments.html", who, "segments", segments=segs, rows=rows, pager=p)


@router.get("/segments/{name}", response_class=HTMLResponse)
def segment(request: Request, name: str, who: Principal = Depends(viewer)):
    from winback.segments.repository import refreshes

    with engine_of(request).connect() as conn:
        seg = q.segment(conn, name)
        if seg is None:
            raise HTTPException(404, f"no segment {name!r}")
        p = pager(request, seg["member_count"] or 0)
        members = q.segment_members(conn, seg["id"], p.offset, p.per_page)
        history = refreshes(conn, seg["id"], limit=10)
    try:
        spec = json.dumps(json.loads(seg["spec"]), indent=2, ensure_ascii=False)
    except ValueError:
        spec = seg["spec"]
    return render(request, "segment.html", who, "segments", seg=seg, spec=spec, members=members, pager=p,
                  history=history)


# ------------------------------------------------------------------------------------ campaigns

@router.get("/campaigns", response_class=HTMLResponse)
def campaigns(request: Request, who: Principal = Depends(viewer)):
    with engine_of(request).connect() as conn:
        camps = q.campaigns(conn)
    results = campaign_results(request) if camps else None
    by_key = {c["key"]: c for c in (results or {}).get("campaigns", [])}
    return render(request, "campaigns.html", who, "campaigns", campaigns=camps, results=results, by_key=by_key)


@router.get("/campaigns/{key}", response_class=HTMLResponse)
def campaign(request: Request, key: str, who: Principal = Depends(viewer)):
    with engine_of(request).connect() as conn:
        camp = q.campaign(conn, key)
        if camp is None:
            raise HTTPException(404, f"no campaign {key!r}")
        breakdown = q.enrollment_breakdown(conn, camp["id"])
        p = pager(request, q.outbox_count(conn, campaign_id=camp["id"]), per_page=25)
        messages = q.outbox_page(conn, p.offset, p.per_page, campaign_id=camp["id"])
    results = campaign_results(request, key)
    res = next(iter(results["campaigns"]), None)
    currency = results["currency"]
    return render(request, "campaign.html", who, "campaigns", camp=camp, res=res, currency=currency,
                  window_days=results["window_days"], breakdown=breakdown, messages=messages, pager=p,
                  funnel_chart=charts.funnel(res) if res and res["funnel"]["sent"] else None)


@router.get("/campaigns/{key}/preview", response_class=HTMLResponse)
def campaign_preview(request: Request, key: str, customer: str = "", step: str = "", locale: str = "",
                     who: Principal = Depends(marketer)):
    from winback.campaigns.service import preview

    with engine_of(request).connect() as conn:
        camp = q.campaign(conn, key)
    if camp is None:
        raise HTTPException(404, f"no campaign {key!r}")
    result, error = None, None
    if customer.strip():
        try:
            result = preview(request.app.state.settings, key, customer.strip(), step=step.strip() or None,
                             locale=locale.strip() or None)
        except WinbackError as exc:
            error = str(exc)
    return render(request, "preview.html", who, "campaigns", camp=camp, customer=customer, step=step,
                  locale=locale, result=result, error=error, status_code=200 if error is None else 422)


@router.get("/messages/{outbox_id}", response_class=HTMLResponse)
def message(request: Request, outbox_id: int, who: Principal = Depends(viewer)):
    with engine_of(request).connect() as conn:
        msg = q.message(conn, outbox_id)
        if msg is None:
            raise HTTPException(404, f"no message {outbox_id}")
        events = q.message_events(conn, outbox_id)
    from winback.web.pages.common import loads

    headers = loads(msg.get("headers"), {}) or {}
    payload = loads(msg.get("payload"), None)
    return render(request, "message.html", who, "campaigns", msg=msg, headers=headers, payload=payload,
                  events=events)


# ------------------------------------------------------------------------------------ dunning

def _date_param(request: Request, name: str) -> tuple[str, dt.datetime | None, str | None]:
    """A ``YYYY-MM-DD`` query parameter: (text, UTC midnight or None, error)."""
    text = (request.query_params.get(name) or "").strip()[:10]
    if not text:
        return "", None, None
    try:
        return text, dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.timezone.utc), None
    except ValueError:
        return text, None, f"{name}: not a date ({text!r}); use YYYY-MM-DD"


@router.get("/dunning", response_class=HTMLResponse)
def dunning(request: Request, who: Principal = Depends(viewer)):
    from winback.dunning.report import dunning_report, money_text

    state = request.app.state
    now = state.clock.now()
    errors = []
    if "since" in request.query_params:
        since_text, since_at, error = _date_param(request, "since")
    else:  # the last 90 days by default; an empty field means from the start
        since_at = dt.datetime.combine((now - dt.timedelta(days=DUNNING_DAYS)).date(), dt.time(), dt.timezone.utc)
        since_text, error = since_at.date().isoformat(), None
    errors.append(error)
    until_text, until_at, error = _date_param(request, "until")
    errors.append(error)
    if since_at and until_at and since_at >= until_at:
        errors.append("the start must be before the end")
        until_text, until_at = "", None
    report = dunning_report(state.settings, engine=state.engine, now=now, since=since_at, until=until_at)
    with engine_of(request).connect() as conn:
        any_failed = q.has_failed_payments(conn)
        p = pager(request, q.dunning_open_count(conn), per_page=25, keep=("since", "until"))
        open_cases = q.dunning_open_cases(conn, p.offset, p.per_page)
        attempts = q.dunning_recent_attempts(conn)
    return render(request, "dunning.html", who, "dunning", r=report, any_failed=any_failed, open_cases=open_cases,
                  pager=p, attempts=attempts, since=since_text, until=until_text,
                  filter_error="; ".join(e for e in errors if e) or None, amounts=money_text,
                  weekly_chart=charts.dunning_weekly(report["weekly"]) if report["weekly"] else None,
                  category_chart=charts.recovery_by_category(report["by_category"])
                  if report["failed"]["invoices"] else None)


# ------------------------------------------------------------------------------------ experiments

@router.get("/experiments", response_class=HTMLResponse)
def experiments(request: Request, who: Principal = Depends(viewer)):
    with engine_of(request).connect() as conn:
        has_campaigns = bool(q.campaigns(conn))
    results = campaign_results(request) if has_campaigns else None
    rows = []
    for c in (results or {}).get("campaigns", []):
        for exp in c["experiments"]:
            variants = [v for v in c["variants"] if v["experiment"] == exp["experiment"]]
            rows.append({"campaign": c["key"], "title": c["title"], **exp, "rows": variants})
    settings = request.app.state.settings
    return render(request, "experiments.html", who, "experiments", experiments=rows, results=results,
                  tracking=settings.tracking)


# ------------------------------------------------------------------------------------ themes

@router.get("/themes", response_class=HTMLResponse)
def themes(request: Request, who: Principal = Depends(viewer)):
    with engine_of(request).connect() as conn:
        run = q.latest_run(conn, insights=True)
        surveys = q.survey_reasons(conn)
        total = q.survey_comments(conn, 0, 0)[0]
        p = pager(request, total, per_page=20)
        _, comments = q.survey_comments(conn, p.offset, p.per_page)
    insights = (run or {}).get("insights") or {}
    block = insights.get("themes") or {}
    theme_rows = [{k: v for k, v in t.items() if k != "members"} for t in (block.get("themes") or [])]
    return render(request, "themes.html", who, "themes", run=run, themes=theme_rows,
                  feedback_texts=block.get("feedback_texts"), surveys=surveys,
                  survey_total=sum(s["responses"] for s in surveys), comments=comments, pager=p,
                  features=(insights.get("feature_requests") or {}).get("features") or [],
                  theme_chart=charts.themes(theme_rows[:15]) if theme_rows else None)


# ------------------------------------------------------------------------------------ customers

@router.get("/customers", response_class=HTMLResponse)
def customers(request: Request, who: Principal = Depends(viewer)):
    text = request.query_params.get("q", "")[:200]
    with engine_of(request).connect() as conn:
        total = q.search_customers(conn, text, 0, 0)[0]
        p = pager(request, total, keep=("q",))
        _, rows = q.search_customers(conn, text, p.offset, p.per_page)
    return render(request, "customers.html", who, "customers", q=text, rows=rows, pager=p)


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
def customer(request: Request, customer_id: int, who: Principal = Depends(viewer)):
    with engine_of(request).connect() as conn:
        cust = q.customer(conn, customer_id)
        if cust is None:
            raise HTTPException(404, f"no customer {customer_id}")
        score = q.customer_score(conn, customer_id)
        timeline = q.customer_timeline(conn, customer_id, cust.get("email"))
        p = pager(request, q.outbox_count(conn, customer_id=customer_id), per_page=50)
        messages = q.outbox_page(conn, p.offset, p.per_page, customer_id=customer_id)
        segs = q.customer_segments(conn, [customer_id]).get(customer_id, [])
    from winback.web.pages.common import loads

    cust["attributes"] = loads(cust.get("attributes"), {}) or {}
    return render(request, "customer.html", who, "customers", cust=cust, score=score, t=timeline,
                  messages=messages, pager=p, segments=segs)


# ------------------------------------------------------------------------------------ suppressions

@router.get("/suppressions", response_class=HTMLResponse)
def suppressions(request: Request, who: Principal = Depends(viewer)):
    from winback.delivery.suppression import REASONS, SCOPES

    text = request.query_params.get("q", "")[:320]
    with engine_of(request).connect() as conn:
        total = q.suppressions(conn, text, 0, 0)[0]
        p = pager(request, total, keep=("q",))
        _, rows = q.suppressions(conn, text, p.offset, p.per_page)
        reasons = q.suppression_reasons(conn)
    return render(request, "suppressions.html", who, "suppressions", rows=rows, pager=p, q=text, reasons=reasons,
                  reason_choices=[r for r in REASONS if r not in ("hard_bounce", "complaint")], scopes=SCOPES)


# ------------------------------------------------------------------------------------ admin

@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, who: Principal = Depends(admin)):
    from winback.models.web import ROLES

    engine = engine_of(request)
    return render(request, "admin.html", who, "admin", users=list_users(engine), keys=list_api_keys(engine),
                  roles=ROLES, new_key=None)
