"""``/segments``: every segment with its stored state, and one segment with its members (paged)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from sqlalchemy import select

from winback.models.customer import Customer
from winback.models.segments import SegmentMembership
from winback.segments import repository as seg_repo
from winback.segments.service import list_segments as catalog_segments
from winback.web.api.customers import parse_cursor
from winback.web.api.schemas import Problem, SegmentDetail, SegmentOut, Text
from winback.web.auth import require

router = APIRouter(tags=["segments"])
ERRORS = {401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}}


@router.get("/segments", response_model=list[SegmentOut], summary="List segments", responses=ERRORS)
def list_segments(request: Request, _who=Depends(require("viewer"))):
    """Every segment of the workspace's catalog (built-in and workspace files) and any the state store
    still holds, with version, member count and the last refresh."""
    return [s.model_dump() for s in catalog_segments(request.app.state.settings)]


@router.get("/segments/{name}", response_model=SegmentDetail, summary="One segment and its members",
            responses={**ERRORS, 404: {"model": Problem}})
def get_segment(request: Request, name: Annotated[Text, Path(max_length=64)],
                limit: Annotated[int, Query(ge=1, le=500)] = 100,
                cursor: Annotated[Text | None, Query(max_length=20, description="`next_cursor` of the previous "
                                                                                "page.")] = None,
                _who=Depends(require("viewer"))):
    after = parse_cursor(cursor)
    with request.app.state.engine.connect() as conn:
        row = seg_repo.segment_by_name(conn, name)
        if row is None:
            raise HTTPException(404, f"segment {name!r} has not been refreshed yet (or does not exist)")
        c = Customer.__table__
        m = SegmentMembership.__table__
        members = [dict(r) for r in conn.execute(
            select(c.c.id.label("customer_id"), c.c.source, c.c.external_id, c.c.email, c.c.name, m.c.entered_at,
                   m.c.version).join(c, c.c.id == m.c.customer_id)
            .where(m.c.segment_id == row["id"], m.c.customer_id > after)
            .order_by(m.c.customer_id).limit(limit + 1)).mappings()]
    more = len(members) > limit
    members = members[:limit]
    try:
        spec = json.loads(row["spec"]) if row["spec"] else None
    except ValueError:
        spec = None
    return {"name": row["name"], "title": row["title"], "origin": row["origin"], "defined": True,
            "description": row["description"], "spec": spec if isinstance(spec, dict) else None,
            "version": row["version"], "member_count": row["member_count"], "refreshed_at": row["refreshed_at"],
            "as_of": row["as_of"], "refresh_error": row["refresh_error"], "members": members, "limit": limit,
            "next_cursor": str(members[-1]["customer_id"]) if more and members else None}
