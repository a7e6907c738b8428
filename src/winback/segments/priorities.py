"""The win-back priority list: lost customers ranked by expected recoverable value, with their
reason, the segments they are in and the suggested channel (the ranking itself is computed by
:mod:`winback.insights.priorities` when the profile is built)."""

from __future__ import annotations

from sqlalchemy import select

from winback.config import Settings
from winback.insights.repository import priority_list as ranked_customers
from winback.kit.db import make_engine
from winback.models.segments import Segment, SegmentMembership


def segment_names(settings: Settings, customer_refs: list[int]) -> dict[int, list[str]]:
    """customers.id -> names of the segments they are currently in (alphabetical)."""
    if not customer_refs:
        return {}
    engine = make_engine(settings.resolved_state_url)
    out: dict[int, list[str]] = {}
    try:
        with engine.connect() as conn:
            q = (select(SegmentMembership.customer_id, Segment.name)
                 .join(Segment, Segment.id == SegmentMembership.segment_id)
                 .where(SegmentMembership.customer_id.in_(customer_refs)).order_by(Segment.name))
            for cid, name in conn.execute(q):
                out.setdefault(cid, []).append(name)
    finally:
        engine.dispose()
    return out


def priority_list(settings: Settings, limit: int = 50, *, phone_only: bool = False) -> list[dict]:
    rows = ranked_customers(settings, limit, phone_only=phone_only)
    names = segment_names(settings, [r["customer_ref"] for r in rows])
    for r in rows:
        r["segments"] = names.get(r["customer_ref"], [])
    return rows
