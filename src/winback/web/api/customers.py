"""``/customers``: the list (keyset or offset paging, filters) and one customer's timeline."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from sqlalchemy import func, or_, select

from winback.models.campaigns import Campaign, CustomerEvent, Enrollment
from winback.models.customer import Customer
from winback.models.delivery import OutboxMessage
from winback.models.scores import CustomerScore
from winback.models.segments import Segment, SegmentMembership
from winback.models.tracking import TrackingEvent
from winback.web.api.schemas import CustomerDetail, CustomerPage, Problem, Text
from winback.web.auth import require

router = APIRouter(tags=["customers"])
C = Customer.__table__
S = CustomerScore.__table__
ERRORS = {401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}}
RECENT = 50
MAX_ID = 2 ** 31 - 1

SUMMARY_COLUMNS = (C.c.id, C.c.source, C.c.external_id, C.c.email, C.c.name, C.c.company, C.c.locale, C.c.timezone,
                   C.c.country, C.c.plan_id, C.c.marketing_basis, C.c.marketing_opt_out, S.c.status, S.c.value_tier,
                   S.c.churn_reason, S.c.priority_rank, S.c.health_band)


def parse_cursor(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit() or len(cursor) > 10 or int(cursor) > MAX_ID:
        raise HTTPException(422, "cursor: not a cursor from a previous page")
    return int(cursor)


def like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@router.get("/customers", response_model=CustomerPage, summary="List customers", responses=ERRORS)
def list_customers(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[Text | None, Query(max_length=20, description="`next_cursor` of the previous page.")] = None,
    offset: Annotated[int | None, Query(ge=0, le=10_000_000, description="Instead of `cursor`.")] = None,
    status: Annotated[Text | None, Query(max_length=32, description="Lifecycle status (active, churned, ...).")] = None,
    segment: Annotated[Text | None, Query(max_length=64, description="Members of this segment.")] = None,
    q: Annotated[Text | None, Query(max_length=200, description="Part of the e-mail, name or external id.")] = None,
    _who=Depends(require("viewer")),
):
    if cursor and offset is not None:
        raise HTTPException(422, "give either cursor or offset, not both")
    after = parse_cursor(cursor)
    query = select(*SUMMARY_COLUMNS).select_from(C.outerjoin(S, S.c.customer_id == C.c.id))
    if status:
        query = query.where(S.c.status == status)
    if segment:
        seg = select(SegmentMembership.customer_id).join(Segment, Segment.id == SegmentMembership.segment_id).where(
            Segment.name == segment)
        query = query.where(C.c.id.in_(seg))
    if q:
        pattern = like_pattern(q.strip())
        query = query.where(or_(func.lower(C.c.email).like(pattern, escape="\\"),
                                func.lower(C.c.name).like(pattern, escape="\\"),
                                func.lower(C.c.external_id).like(pattern, escape="\\")))
    if offset is not None:
        query = query.order_by(C.c.id).offset(offset)
    else:
        query = query.where(C.c.id > after).order_by(C.c.id)
    with request.app.state.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query.limit(limit + 1)).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "limit": limit, "next_cursor": str(rows[-1]["id"]) if more and rows else None}


def _json(text):
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


@router.get("/customers/{customer_id}", response_model=CustomerDetail, summary="One customer and their timeline",
            responses={**ERRORS, 404: {"model": Problem}})
def get_customer(request: Request, customer_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                 _who=Depends(require("viewer"))):
    """The record, the latest scores, segments, enrollments, the most recent events, messages and
    tracking events (50 each), and all of them merged into one timeline (newest first)."""
    with request.app.state.engine.connect() as conn:
        record = conn.execute(select(C, S.c.status, S.c.value_tier, S.c.churn_reason, S.c.priority_rank,
                                     S.c.health_band).select_from(C.outerjoin(S, S.c.customer_id == C.c.id))
                              .where(C.c.id == customer_id)).mappings().first()
        if record is None:
            raise HTTPException(404, f"no customer with id {customer_id}")
        record = dict(record)
        record["attributes"] = _json(record.get("attributes"))
        if not isinstance(record["attributes"], (dict, type(None))):
            record["attributes"] = {"value": record["attributes"]}
        score = conn.execute(select(S).where(S.c.customer_id == customer_id)).mappings().first()
        scores = None
        if score is not None:
            scores = {k: (_json(v) if k in ("reason_evidence", "requested_features", "health_factors") else v)
                      for k, v in dict(score).items() if k != "customer_id"}
        segments = [dict(r) for r in conn.execute(
            select(Segment.name, Segment.title, SegmentMembership.entered_at, SegmentMembership.version)
            .join(Segment, Segment.id == SegmentMembership.segment_id)
            .where(SegmentMembership.customer_id == customer_id).order_by(Segment.name)).mappings()]
        enrollments = []
        for r in conn.execute(select(Enrollment.id, Campaign.key.label("campaign"), Enrollment.arm, Enrollment.status,
                                     Enrollment.exit_reason, Enrollment.strategy, Enrollment.offer_key,
                                     Enrollment.variants, Enrollment.next_step, Enrollment.next_due_at,
                                     Enrollment.enrolled_at, Enrollment.finished_at)
                              .join(Campaign, Campaign.id == Enrollment.campaign_id)
                              .where(Enrollment.customer_id == customer_id)
                              .order_by(Enrollment.enrolled_at.desc(), Enrollment.id.desc())).mappings():
            e = dict(r)
            e["variants"] = _json(e["variants"]) or {}
            enrollments.append(e)
        events = []
        for r in conn.execute(select(CustomerEvent.event_id, CustomerEvent.type, CustomerEvent.occurred_at,
                                     CustomerEvent.received_at, CustomerEvent.source, CustomerEvent.properties)
                              .where(CustomerEvent.customer_id == customer_id)
                              .order_by(CustomerEvent.occurred_at.desc(), CustomerEvent.id.desc())
                              .limit(RECENT)).mappings():
            e = dict(r)
            props = _json(e["properties"])
            e["properties"] = props if isinstance(props, dict) else None
            events.append(e)
        messages = [dict(r) for r in conn.execute(
            select(OutboxMessage.id, Campaign.key.label("campaign"), OutboxMessage.step, OutboxMessage.channel,
                   OutboxMessage.category, OutboxMessage.variant, OutboxMessage.subject, OutboxMessage.to_address,
                   OutboxMessage.status, OutboxMessage.status_reason, OutboxMessage.due_at, OutboxMessage.sent_at)
            .outerjoin(Campaign, Campaign.id == OutboxMessage.campaign_id)
            .where(OutboxMessage.customer_id == customer_id)
            .order_by(OutboxMessage.due_at.desc(), OutboxMessage.id.desc()).limit(RECENT)).mappings()]
        tracking = [dict(r) for r in conn.execute(
            select(TrackingEvent.kind, TrackingEvent.message_id, Campaign.key.label("campaign"), TrackingEvent.machine,
                   TrackingEvent.link, TrackingEvent.occurred_at)
            .outerjoin(Campaign, Campaign.id == TrackingEvent.campaign_id)
            .where(TrackingEvent.customer_id == customer_id)
            .order_by(TrackingEvent.occurred_at.desc(), TrackingEvent.id.desc()).limit(RECENT)).mappings()]
    timeline = []
    for e in events:
        timeline.append({"at": e["occurred_at"], "kind": "event", "summary": f"{e['type']} ({e['source']})"})
    for e in enrollments:
        timeline.append({"at": e["enrolled_at"], "kind": "enrollment",
                         "summary": f"enrolled in {e['campaign']} ({e['arm']}, {e['status']})"
                                    + (f", offer {e['offer_key']}" if e["offer_key"] else "")})
    for m in messages:
        timeline.append({"at": m["sent_at"] or m["due_at"], "kind": "message",
                         "summary": f"{m['channel']} {m['status']}" + (f": {m['subject']}" if m["subject"] else "")
                                    + (f" ({m['campaign']})" if m["campaign"] else "")})
    for t in tracking:
        timeline.append({"at": t["occurred_at"], "kind": "tracking",
                         "summary": t["kind"] + (" (machine)" if t["machine"] else "")
                                    + (f" {t['link']}" if t["link"] else "")})
    for s in segments:
        timeline.append({"at": s["entered_at"], "kind": "segment", "summary": f"entered segment {s['name']}"})
    timeline.sort(key=lambda x: x["at"], reverse=True)
    return {"customer": record, "scores": scores, "segments": segments, "enrollments": enrollments,
            "events": events, "messages": messages, "tracking": tracking, "timeline": timeline}
