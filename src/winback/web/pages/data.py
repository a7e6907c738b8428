"""The dashboard's reads of the state store (aggregated in SQL, paginated; never the history store)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, case, func, literal_column, or_, select, text

from winback.models.campaigns import Campaign, CustomerEvent, Enrollment
from winback.models.customer import Customer
from winback.models.delivery import CallTask, OutboxMessage, Suppression
from winback.models.dunning import DunningAttempt, DunningCase
from winback.models.scores import AnalysisRun, CustomerScore
from winback.models.segments import Segment, SegmentMembership
from winback.models.tracking import Conversion, SurveyResponse, TrackingEvent
from winback.web.pages.common import bucket, like_escape, loads

LOST_STATUSES = ("churned", "lost")


def latest_run(conn, *, insights: bool = False) -> dict | None:
    """The latest analysis run's summary (and its insights JSON when asked: it can be large)."""
    cols = [AnalysisRun.id, AnalysisRun.observation_end, AnalysisRun.finished_at, AnalysisRun.customers_scored,
            AnalysisRun.summary]
    if insights:
        cols.append(AnalysisRun.insights)
    row = conn.execute(select(*cols).order_by(AnalysisRun.id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["summary"] = loads(out.get("summary"), {}) or {}
    if insights:
        out["insights"] = loads(out.get("insights"), {}) or {}
    return out


def retention_periods(summary: dict) -> list[dict]:
    """The summary's retention periods, shortest first (month, quarter, year)."""
    out = []
    for key, value in (summary.get("retention") or {}).items():
        if not isinstance(value, dict):
            continue
        mrr = value.get("mrr") or {}
        cur = summary.get("currency") if summary.get("currency") in mrr else next(iter(mrr), None)
        out.append({"period": key, **{k: v for k, v in value.items() if k != "mrr"}, "currency": cur,
                    "mrr": mrr.get(cur, {}) if cur else {}})
    def rank(period: str) -> int:  # a month (2025-12), then a quarter (2025-Q4), then a year (2025)
        return 1 if "Q" in period else 0 if len(period) == 7 else 2

    out.sort(key=lambda p: (rank(p["period"]), p["period"]))
    return out


def monthly_churn(conn, months: int = 24) -> list[dict]:
    """Customers whose (last) churn fell in each month and the MRR they took, from customer_scores."""
    m = bucket(conn, CustomerScore.churned_at)
    rows = conn.execute(select(m.label("month"), func.count().label("customers"),
                               func.sum(CustomerScore.mrr_minor).label("lost_mrr_minor"),
                               func.sum(case((CustomerScore.involuntary.is_(True), 1), else_=0)).label("involuntary"))
                        .where(CustomerScore.churned_at.is_not(None), CustomerScore.status.in_(LOST_STATUSES))
                        .group_by(m).order_by(m)).mappings().all()
    return [dict(r) for r in rows][-months:]


def recovered_by_day(conn) -> list[dict]:
    """Attributed conversions (revenue recovered by campaigns) per day and currency."""
    d = bucket(conn, Conversion.occurred_at, "day")
    rows = conn.execute(select(d.label("day"), Conversion.currency, func.count().label("conversions"),
                               func.coalesce(func.sum(Conversion.revenue_minor), 0).label("revenue_minor"))
                        .where(Conversion.campaign_id.is_not(None)).group_by(d, Conversion.currency)
                        .order_by(d)).mappings().all()
    return [dict(r) for r in rows]


def conversion_totals(conn) -> list[dict]:
    rows = conn.execute(select(Conversion.currency, func.count().label("conversions"),
                               func.coalesce(func.sum(Conversion.revenue_minor), 0).label("revenue_minor"),
                               func.sum(case((Conversion.campaign_id.is_not(None), 1), else_=0)).label("attributed"))
                        .group_by(Conversion.currency)).mappings().all()
    return [dict(r) for r in rows]


def message_counts(conn) -> dict[str, int]:
    return {s: n for s, n in conn.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))}


# ------------------------------------------------------------------------------------ churn

def reason_basis(conn) -> list[dict]:
    """Lost customers by churn reason and by what the reason rests on: billing facts (involuntary),
    a stated code or survey choice, or only inferred (free text, "would return if"), or nothing."""
    ev = func.coalesce(CustomerScore.reason_evidence, literal_column("''"))
    basis = case(
        (ev.like('%"source": "billing"%'), literal_column("'billing'")),
        (or_(ev.like('%"source": "cancel_code"%'), ev.like('%"source": "survey_choice"%')), literal_column("'stated'")),
        (or_(ev == "", ev == "[]"), literal_column("'none'")),
        else_=literal_column("'inferred'"))
    reason = func.coalesce(CustomerScore.churn_reason, literal_column("'unknown'"))
    rows = conn.execute(select(reason.label("reason"), basis.label("basis"), func.count().label("customers"),
                               func.coalesce(func.sum(CustomerScore.mrr_minor), 0).label("lost_mrr_minor"),
                               func.avg(CustomerScore.reason_confidence).label("confidence"))
                        .where(CustomerScore.status.in_(LOST_STATUSES))
                        .group_by(text("1"), text("2"))).mappings().all()  # positions: the CASE has bound values
    return [dict(r) for r in rows]


def status_counts(conn) -> dict[str, int]:
    return {s: n for s, n in conn.execute(select(CustomerScore.status, func.count()).group_by(CustomerScore.status))}


# ------------------------------------------------------------------------------------ at risk

def band_counts(conn) -> dict[str, int]:
    return {b or "none": n for b, n in conn.execute(
        select(CustomerScore.health_band, func.count()).where(CustomerScore.status == "active")
        .group_by(CustomerScore.health_band))}


def at_risk_page(conn, band: str, offset: int, limit: int) -> list[dict]:
    q = (select(Customer.id, Customer.external_id, Customer.name, Customer.email, Customer.company,
                CustomerScore.health_score, CustomerScore.health_band, CustomerScore.health_factors,
                CustomerScore.churn_risk, CustomerScore.mrr_minor, CustomerScore.currency, CustomerScore.value_tier,
                CustomerScore.expected_clv_12m_minor)
         .join(CustomerScore, CustomerScore.customer_id == Customer.id)
         .where(CustomerScore.status == "active", CustomerScore.health_band == band)
         .order_by(CustomerScore.churn_risk.desc().nulls_last(), CustomerScore.health_score, Customer.id)
         .offset(offset).limit(limit))
    out = []
    for r in conn.execute(q).mappings():
        row = dict(r)
        row["health_factors"] = loads(row["health_factors"], []) or []
        out.append(row)
    return out


# ------------------------------------------------------------------------------------ segments

def segments(conn) -> list[dict]:
    return [dict(r) for r in conn.execute(select(Segment.__table__).order_by(Segment.name)).mappings()]


def segment(conn, name: str) -> dict | None:
    row = conn.execute(select(Segment.__table__).where(Segment.name == name)).mappings().first()
    return dict(row) if row else None


def segment_members(conn, segment_id: int, offset: int, limit: int) -> list[dict]:
    q = (select(Customer.id, Customer.external_id, Customer.name, Customer.email, SegmentMembership.entered_at,
                CustomerScore.status, CustomerScore.churn_reason, CustomerScore.value_tier, CustomerScore.mrr_minor,
                CustomerScore.currency, CustomerScore.p_return, CustomerScore.recoverable_value_minor,
                CustomerScore.priority_rank)
         .join(Customer, Customer.id == SegmentMembership.customer_id)
         .outerjoin(CustomerScore, CustomerScore.customer_id == Customer.id)
         .where(SegmentMembership.segment_id == segment_id)
         .order_by(CustomerScore.priority_rank.is_(None), CustomerScore.priority_rank, Customer.id)
         .offset(offset).limit(limit))
    return [dict(r) for r in conn.execute(q).mappings()]


def priorities_count(conn) -> int:
    return conn.execute(select(func.count()).select_from(CustomerScore)
                        .where(CustomerScore.priority_rank.is_not(None))).scalar_one()


def priorities_page(conn, offset: int, limit: int) -> list[dict]:
    q = (select(Customer.id, Customer.external_id, Customer.name, Customer.email, CustomerScore.priority_rank,
                CustomerScore.status, CustomerScore.churn_reason, CustomerScore.reason_confidence,
                CustomerScore.p_return, CustomerScore.value_after_return_minor,
                CustomerScore.recoverable_value_minor, CustomerScore.currency, CustomerScore.value_tier,
                CustomerScore.suggested_channel)
         .join(CustomerScore, CustomerScore.customer_id == Customer.id)
         .where(CustomerScore.priority_rank.is_not(None))
         .order_by(CustomerScore.priority_rank).offset(offset).limit(limit))
    rows = [dict(r) for r in conn.execute(q).mappings()]
    names = customer_segments(conn, [r["id"] for r in rows])
    for r in rows:
        r["segments"] = names.get(r["id"], [])
    return rows


def customer_segments(conn, ids: list[int]) -> dict[int, list[str]]:
    if not ids:
        return {}
    out: dict[int, list[str]] = {}
    for cid, name in conn.execute(select(SegmentMembership.customer_id, Segment.name)
                                  .join(Segment, Segment.id == SegmentMembership.segment_id)
                                  .where(SegmentMembership.customer_id.in_(ids)).order_by(Segment.name)):
        out.setdefault(cid, []).append(name)
    return out


# ------------------------------------------------------------------------------------ campaigns

def campaigns(conn) -> list[dict]:
    return [dict(r) for r in conn.execute(select(Campaign.__table__).order_by(Campaign.key)).mappings()]


def campaign(conn, key: str) -> dict | None:
    row = conn.execute(select(Campaign.__table__).where(Campaign.key == key)).mappings().first()
    return dict(row) if row else None


def enrollment_breakdown(conn, campaign_id: int) -> dict:
    status = {f"{a}:{s}": n for a, s, n in conn.execute(
        select(Enrollment.arm, Enrollment.status, func.count()).where(Enrollment.campaign_id == campaign_id)
        .group_by(Enrollment.arm, Enrollment.status))}
    offers = [dict(r) for r in conn.execute(
        select(func.coalesce(Enrollment.offer_key, literal_column("'none'")).label("offer"), func.count().label("customers"),
               func.coalesce(func.sum(Enrollment.offer_cost_minor), 0).label("expected_cost_minor"))
        .where(Enrollment.campaign_id == campaign_id, Enrollment.arm == "treatment")
        .group_by(func.coalesce(Enrollment.offer_key, literal_column("'none'"))).order_by(func.count().desc())).mappings()]
    exits = [dict(r) for r in conn.execute(
        select(Enrollment.exit_reason.label("reason"), func.count().label("n"))
        .where(Enrollment.campaign_id == campaign_id, Enrollment.exit_reason.is_not(None))
        .group_by(Enrollment.exit_reason).order_by(func.count().desc())).mappings()]
    return {"status": status, "offers": offers, "exits": exits}


def outbox_count(conn, campaign_id: int | None = None, customer_id: int | None = None) -> int:
    q = select(func.count()).select_from(OutboxMessage)
    if campaign_id is not None:
        q = q.where(OutboxMessage.campaign_id == campaign_id)
    if customer_id is not None:
        q = q.where(OutboxMessage.customer_id == customer_id)
    return conn.execute(q).scalar_one()


def outbox_page(conn, offset: int, limit: int, *, campaign_id: int | None = None,
                customer_id: int | None = None) -> list[dict]:
    q = (select(OutboxMessage.id, OutboxMessage.channel, OutboxMessage.status, OutboxMessage.step,
                OutboxMessage.variant, OutboxMessage.locale, OutboxMessage.to_address, OutboxMessage.subject,
                OutboxMessage.due_at, OutboxMessage.sent_at, OutboxMessage.status_reason, Campaign.key.label("campaign"),
                Customer.external_id.label("customer"), OutboxMessage.customer_id)
         .outerjoin(Campaign, Campaign.id == OutboxMessage.campaign_id)
         .outerjoin(Customer, Customer.id == OutboxMessage.customer_id))
    if campaign_id is not None:
        q = q.where(OutboxMessage.campaign_id == campaign_id)
    if customer_id is not None:
        q = q.where(OutboxMessage.customer_id == customer_id)
    q = q.order_by(OutboxMessage.id.desc()).offset(offset).limit(limit)
    return [dict(r) for r in conn.execute(q).mappings()]


def message(conn, outbox_id: int) -> dict | None:
    row = conn.execute(select(OutboxMessage.__table__, Campaign.key.label("campaign_key"),
                              Customer.external_id.label("customer"))
                       .outerjoin(Campaign, Campaign.id == OutboxMessage.campaign_id)
                       .outerjoin(Customer, Customer.id == OutboxMessage.customer_id)
                       .where(OutboxMessage.id == outbox_id)).mappings().first()
    return dict(row) if row else None


def message_events(conn, outbox_id: int) -> list[dict]:
    return [dict(r) for r in conn.execute(
        select(TrackingEvent.kind, TrackingEvent.machine, TrackingEvent.machine_reason, TrackingEvent.link,
               TrackingEvent.target, TrackingEvent.source, TrackingEvent.occurred_at)
        .where(TrackingEvent.message_id == outbox_id).order_by(TrackingEvent.occurred_at).limit(200)).mappings()]


# ------------------------------------------------------------------------------------ themes / surveys

def survey_reasons(conn) -> list[dict]:
    return [dict(r) for r in conn.execute(
        select(SurveyResponse.survey, func.coalesce(SurveyResponse.reason, literal_column("'unanswered'")).label("reason"),
               func.count().label("responses"))
        .group_by(SurveyResponse.survey, func.coalesce(SurveyResponse.reason, literal_column("'unanswered'")))
        .order_by(func.count().desc())).mappings()]


def survey_comments(conn, offset: int, limit: int) -> tuple[int, list[dict]]:
    where = and_(SurveyResponse.comment.is_not(None), SurveyResponse.comment != "")
    total = conn.execute(select(func.count()).select_from(SurveyResponse).where(where)).scalar_one()
    rows = [dict(r) for r in conn.execute(
        select(SurveyResponse.id, SurveyResponse.customer_id, Customer.external_id.label("customer"),
               SurveyResponse.reason, SurveyResponse.locale, SurveyResponse.comment, SurveyResponse.submitted_at)
        .join(Customer, Customer.id == SurveyResponse.customer_id).where(where)
        .order_by(SurveyResponse.submitted_at.desc(), SurveyResponse.id.desc()).offset(offset).limit(limit)).mappings()]
    return total, rows


# ------------------------------------------------------------------------------------ customers

def search_customers(conn, q: str, offset: int, limit: int) -> tuple[int, list[dict]]:
    text = q.strip().lower()
    cond = None
    if text:
        pattern = f"%{like_escape(text)}%"
        cond = or_(func.lower(Customer.external_id).like(pattern, escape="\\"),
                   func.lower(Customer.email).like(pattern, escape="\\"),
                   func.lower(Customer.name).like(pattern, escape="\\"),
                   func.lower(Customer.company).like(pattern, escape="\\"))
        if text.isdigit():
            cond = or_(cond, Customer.id == int(text))
    count_q = select(func.count()).select_from(Customer)
    rows_q = (select(Customer.id, Customer.source, Customer.external_id, Customer.name, Customer.email,
                     Customer.company, Customer.locale, CustomerScore.status, CustomerScore.churn_reason,
                     CustomerScore.value_tier, CustomerScore.mrr_minor, CustomerScore.currency)
              .outerjoin(CustomerScore, CustomerScore.customer_id == Customer.id))
    if cond is not None:
        count_q, rows_q = count_q.where(cond), rows_q.where(cond)
    total = conn.execute(count_q).scalar_one()
    rows = [dict(r) for r in conn.execute(rows_q.order_by(Customer.id).offset(offset).limit(limit)).mappings()]
    return total, rows


def customer(conn, customer_id: int) -> dict | None:
    row = conn.execute(select(Customer.__table__).where(Customer.id == customer_id)).mappings().first()
    return dict(row) if row else None


def customer_score(conn, customer_id: int) -> dict | None:
    row = conn.execute(select(CustomerScore.__table__).where(CustomerScore.customer_id == customer_id)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    for name in ("reason_evidence", "health_factors", "requested_features"):
        out[name] = loads(out.get(name), []) or []
    return out


def customer_timeline(conn, customer_id: int, email: str | None, limit: int = 200) -> dict:
    """Everything the state store knows happened to one customer, newest first per kind."""
    enrollments = [dict(r) for r in conn.execute(
        select(Enrollment.id, Campaign.key.label("campaign"), Enrollment.arm, Enrollment.status,
               Enrollment.exit_reason, Enrollment.strategy, Enrollment.offer_key, Enrollment.variants,
               Enrollment.decision, Enrollment.enrolled_at, Enrollment.next_step, Enrollment.finished_at)
        .join(Campaign, Campaign.id == Enrollment.campaign_id).where(Enrollment.customer_id == customer_id)
        .order_by(Enrollment.enrolled_at.desc(), Enrollment.id.desc()).limit(limit)).mappings()]
    for e in enrollments:
        decision = loads(e.pop("decision"), {}) or {}
        e["explanation"] = decision.get("explanation") if isinstance(decision, dict) else None
        e["variants"] = loads(e["variants"], {}) or {}
    events = [dict(r) for r in conn.execute(
        select(CustomerEvent.type, CustomerEvent.occurred_at, CustomerEvent.source, CustomerEvent.properties)
        .where(CustomerEvent.customer_id == customer_id)
        .order_by(CustomerEvent.occurred_at.desc()).limit(limit)).mappings()]
    tracking = [dict(r) for r in conn.execute(
        select(TrackingEvent.kind, TrackingEvent.machine, TrackingEvent.machine_reason, TrackingEvent.link,
               TrackingEvent.message_id, TrackingEvent.step, Campaign.key.label("campaign"), TrackingEvent.occurred_at)
        .outerjoin(Campaign, Campaign.id == TrackingEvent.campaign_id)
        .where(TrackingEvent.customer_id == customer_id)
        .order_by(TrackingEvent.occurred_at.desc()).limit(limit)).mappings()]
    conversions = [dict(r) for r in conn.execute(
        select(Conversion.type, Conversion.occurred_at, Conversion.revenue_minor, Conversion.currency,
               Conversion.message_id, Campaign.key.label("campaign"), Conversion.model)
        .outerjoin(Campaign, Campaign.id == Conversion.campaign_id)
        .where(Conversion.customer_id == customer_id).order_by(Conversion.occurred_at.desc()).limit(limit)).mappings()]
    surveys = [dict(r) for r in conn.execute(
        select(SurveyResponse.survey, SurveyResponse.reason, SurveyResponse.answers, SurveyResponse.comment,
               SurveyResponse.locale, SurveyResponse.submitted_at)
        .where(SurveyResponse.customer_id == customer_id).order_by(SurveyResponse.submitted_at.desc())).mappings()]
    for s in surveys:
        s["answers"] = loads(s["answers"], {}) or {}
    cond = Suppression.customer_id == customer_id
    if email:
        cond = or_(cond, Suppression.address == email.lower())
    suppressions = [dict(r) for r in conn.execute(
        select(Suppression.address, Suppression.scope, Suppression.reason, Suppression.source,
               Suppression.created_at).where(cond).order_by(Suppression.created_at.desc())).mappings()]
    tasks = [dict(r) for r in conn.execute(
        select(CallTask.title, CallTask.status, CallTask.due_at, CallTask.phone).where(
            CallTask.customer_id == customer_id).order_by(CallTask.due_at.desc()).limit(limit)).mappings()]
    return {"enrollments": enrollments, "events": events, "tracking": tracking, "conversions": conversions,
            "surveys": surveys, "suppressions": suppressions, "tasks": tasks}


# ------------------------------------------------------------------------------------ suppressions

def suppressions(conn, q: str, offset: int, limit: int) -> tuple[int, list[dict]]:
    cond = None
    if q.strip():
        cond = Suppression.address.like(f"%{like_escape(q.strip().lower())}%", escape="\\")
    count_q = select(func.count()).select_from(Suppression)
    rows_q = select(Suppression.__table__, Customer.external_id.label("customer")).outerjoin(
        Customer, Customer.id == Suppression.customer_id)
    if cond is not None:
        count_q, rows_q = count_q.where(cond), rows_q.where(cond)
    total = conn.execute(count_q).scalar_one()
    rows = [dict(r) for r in conn.execute(rows_q.order_by(Suppression.created_at.desc(), Suppression.id.desc())
                                          .offset(offset).limit(limit)).mappings()]
    return total, rows


def suppression_reasons(conn) -> dict[str, int]:
    return {r: n for r, n in conn.execute(select(Suppression.reason, func.count()).group_by(Suppression.reason))}


def since(days: int, now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(days=days)


# ------------------------------------------------------------------------------------ dunning

def has_failed_payments(conn) -> bool:
    return conn.execute(select(DunningCase.id).where(DunningCase.first_failed_at.is_not(None)).limit(1)).first() \
        is not None


def dunning_open_count(conn) -> int:
    return int(conn.execute(select(func.count()).select_from(DunningCase)
                            .where(DunningCase.status == "open", DunningCase.first_failed_at.is_not(None))).scalar()
               or 0)


def dunning_open_cases(conn, offset: int, limit: int) -> list[dict]:
    """Failed invoices still worked on, the next charge first (cases waiting for a new card last)."""
    c = DunningCase
    rows = conn.execute(
        select(c.id, c.provider, c.invoice_ref, c.customer_id, c.customer_ref, Customer.name, Customer.email,
               c.amount_minor, c.currency, c.mrr_minor, c.first_failed_at, c.last_decline_code, c.last_category,
               c.attempts, c.next_attempt_at, c.next_trigger, c.needs_update, c.grace_until, c.status)
        .select_from(c.__table__.outerjoin(Customer.__table__, Customer.id == c.customer_id))
        .where(c.status == "open", c.first_failed_at.is_not(None))
        .order_by(case((c.next_attempt_at.is_(None), 1), else_=0), c.next_attempt_at, c.first_failed_at, c.id)
        .offset(offset).limit(limit)).mappings().all()
    return [dict(r) for r in rows]


def dunning_recent_attempts(conn, limit: int = 25) -> list[dict]:
    """The latest charges of failed invoices, newest first."""
    a, c = DunningAttempt, DunningCase
    rows = conn.execute(
        select(a.id, a.number, a.trigger, a.status, a.decline_code, a.category, a.payment_method_ref, a.started_at,
               a.finished_at, c.id.label("case_id"), c.invoice_ref, c.customer_id, c.customer_ref, Customer.name,
               c.amount_minor, c.currency)
        .select_from(a.__table__.join(c.__table__, c.id == a.case_id)
                     .outerjoin(Customer.__table__, Customer.id == c.customer_id))
        .order_by(a.started_at.desc(), a.id.desc()).limit(limit)).mappings().all()
    return [dict(r) for r in rows]


def dunning_recovered_mrr(conn, since_at: dt.datetime) -> list[dict]:
    """Failed invoices recovered since ``since_at`` and their subscriptions' MRR, per currency."""
    c = DunningCase
    rows = conn.execute(select(c.currency, func.count().label("invoices"),
                               func.coalesce(func.sum(c.mrr_minor), 0).label("mrr_minor"))
                        .where(c.status == "recovered", c.first_failed_at.is_not(None), c.recovered_at >= since_at)
                        .group_by(c.currency).order_by(func.count().desc())).mappings().all()
    return [dict(r) for r in rows]
