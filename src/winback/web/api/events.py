"""Live events from products: ``POST /events`` (track), ``/events/batch`` and ``/identify``.

Events are idempotent by ``event_id`` and durably committed before the answer (group commit, see
:mod:`winback.web.api.writer`). Role: marketer or admin.

Identify merge rule (the customer record is owned by ingest): identify changes only the fields it
names, and only to non-empty values. The record keeps its import ``row_hash``, so the change lasts
until an import brings a *changed* source row for that customer - then the source of record wins
again. An opt-out (``unsubscribed: true``) is one-way here: identify never lifts it and never grants
consent to an opted-out customer.
"""

from __future__ import annotations

import datetime as dt
import time

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import select, update

from winback.kit.db import write_transaction
from winback.web.api.schemas import (MAX_AGE, MAX_FUTURE, MAX_PROPERTIES_BYTES, EventAck, EventBatchAck,
                                     EventBatchIn, EventIn, IdentifyAck, IdentifyIn, Problem)
from winback.web.api.writer import CUSTOMERS, EventWriter, Outcome, PendingEvent, canonical_json, create_customer
from winback.web.auth import KEY_CACHE_SECONDS, Principal, require

router = APIRouter(tags=["events"])
ERRORS = {401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}}


def key_is_cached(cache: dict, key: str) -> bool:
    """Whether checking ``key`` needs no query (its row is in the app's cache and fresh)."""
    parts = key.split("_")
    cached = cache.get(parts[1]) if len(parts) >= 3 else None
    return bool(cached) and time.monotonic() - cached[1] < KEY_CACHE_SECONDS - 1


def fast_require(role: str):
    """``require(role)`` without a thread hop when the API key is already in the app's cache."""
    sync_dependency = require(role)

    async def dependency(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key")
        if key and key_is_cached(request.app.state.api_key_cache, key):
            return sync_dependency(request)  # no I/O: the key's row is cached
        return await run_in_threadpool(sync_dependency, request)

    return dependency


def writer_of(request: Request) -> EventWriter:
    return writer_of_state(request.app.state)


def writer_of_state(state) -> EventWriter:
    writer = getattr(state, "event_writer", None)
    if writer is None:
        writer = state.event_writer = EventWriter(state.engine)
    return writer


def _invalid(loc: tuple, message: str, value=None):
    return RequestValidationError([{"type": "value_error", "loc": ("body", *loc), "msg": message,
                                    "input": value}])


def _pending(e: EventIn, now: dt.datetime, loc: tuple = ()) -> PendingEvent:
    if e.occurred_at > now + MAX_FUTURE:
        raise _invalid((*loc, "occurred_at"), f"is more than {int(MAX_FUTURE.total_seconds() // 60)} minutes in "
                                              f"the future (server time {now.isoformat()})", e.occurred_at.isoformat())
    if e.occurred_at < now - MAX_AGE:
        raise _invalid((*loc, "occurred_at"), f"is more than {MAX_AGE.days} days in the past", e.occurred_at.isoformat())
    try:
        props = canonical_json(e.properties)
    except (ValueError, TypeError):
        raise _invalid((*loc, "properties"), "must be plain JSON (no NaN or Infinity)") from None
    if len(props.encode("utf-8")) > MAX_PROPERTIES_BYTES:
        raise _invalid((*loc, "properties"), f"is larger than {MAX_PROPERTIES_BYTES // 1024} KB as JSON")
    ref = e.customer
    return PendingEvent(event_id=e.event_id, type=e.type, occurred_at=e.occurred_at, properties=props,
                        received_at=now, customer_id=e.customer_id, external_id=ref.id if ref else None,
                        customer_source=ref.source if ref else None, email=ref.email if ref else None,
                        create=e.create)


@router.post("/events", response_model=EventAck, summary="Record one event (idempotent by event_id)",
             responses={**ERRORS, 409: {"model": Problem, "description": "The event id was already stored with "
                                                                         "different content."},
                        503: {"model": Problem}})
async def track(event: EventIn, request: Request, who: Principal = Depends(fast_require("marketer"))):
    """Stores the event and answers once it is committed. The same `event_id` again answers
    `duplicate: true` and changes nothing; the same id with different content is a 409."""
    status, payload = await accept_event(request.app.state, event)
    return JSONResponse(payload, status_code=status)


async def accept_event(state, event: EventIn) -> tuple[int, dict]:
    """Store one validated event: (HTTP status, JSON body). Shared by the route and the fast path."""
    pending = _pending(event, state.clock.now())
    outcome: Outcome = (await writer_of_state(state).submit([pending]))[0]
    return answer_of(event, outcome)


def answer_of(event: EventIn, outcome: Outcome) -> tuple[int, dict]:
    """The answer (HTTP status, JSON body) to one event's outcome."""
    if outcome.status in ("stored", "duplicate"):
        return 200, {"event_id": event.event_id, "duplicate": outcome.status == "duplicate",
                     "customer_id": outcome.customer_id}
    if outcome.status == "conflict":
        return 409, {"detail": outcome.detail}
    if outcome.status == "rejected":
        return 422, {"detail": [{"type": "value_error", "loc": ["body", *outcome.field.split(".")],
                                 "msg": outcome.detail}]}
    return 503, {"detail": outcome.detail or "could not store the event"}


@router.post("/events/batch", response_model=EventBatchAck, summary="Record up to 500 events",
             responses={**ERRORS, 503: {"model": Problem}})
async def track_batch(batch: EventBatchIn, request: Request, who: Principal = Depends(fast_require("marketer"))):
    """All events are validated first (any invalid event: 422 for the whole batch, naming its index);
    then they are stored in one transaction. Each item says `stored`, `duplicate`, `conflict` (same id,
    different content) or `rejected` (unknown customer)."""
    now = request.app.state.clock.now()
    pending = [_pending(e, now, ("events", i)) for i, e in enumerate(batch.events)]
    outcomes = await writer_of(request).submit(pending)
    if any(o.status == "error" for o in outcomes):
        return JSONResponse({"detail": "could not store the events; retry the batch (it is idempotent)"},
                            status_code=503)
    items = []
    for i, (e, o) in enumerate(zip(batch.events, outcomes)):
        items.append({"index": i, "event_id": e.event_id, "status": o.status, "customer_id": o.customer_id,
                      "detail": o.detail})
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("stored", "duplicate")}
    return JSONResponse({"stored": counts["stored"], "duplicates": counts["duplicate"],
                         "rejected": len(outcomes) - counts["stored"] - counts["duplicate"], "items": items})


CONTACT_FIELDS = ("email", "name", "company", "phone", "locale", "timezone", "country")


@router.post("/identify", response_model=IdentifyAck, summary="Update a customer's contact fields",
             responses={**ERRORS, 404: {"model": Problem}})
def identify(body: IdentifyIn, request: Request, who: Principal = Depends(require("marketer"))):
    """Sets the contact fields given (non-empty values only). The next import that brings a changed
    source row for the customer overwrites them (ingest owns the record). `unsubscribed: true` opts
    the customer out; nothing here lifts an opt-out."""
    state = request.app.state
    now = state.clock.now()
    ref = body.customer
    given = {f: getattr(body, f) for f in CONTACT_FIELDS if getattr(body, f) not in (None, "")}
    if "email" in given:
        given["email"] = given["email"].strip()
    if "country" in given:
        given["country"] = given["country"].upper()
    ignored: list[str] = []
    with write_transaction(state.engine) as conn:
        q = select(CUSTOMERS).where(CUSTOMERS.c.external_id == ref.id)
        if ref.source:
            q = q.where(CUSTOMERS.c.source == ref.source)
        rows = [dict(r) for r in conn.execute(q).mappings()]
        if len(rows) > 1:
            raise HTTPException(422, f"external id {ref.id!r} exists in several sources "
                                     f"({', '.join(sorted(r['source'] for r in rows))}); give customer.source")
        created = False
        if not rows:
            if not body.create:
                raise HTTPException(404, f"unknown customer {ref.id!r}; send \"create\": true to create it")
            cid = create_customer(conn, ref.source or "api", ref.id, now=now, email=ref.email)
            created = True
            row = dict(conn.execute(select(CUSTOMERS).where(CUSTOMERS.c.id == cid)).mappings().one())
        else:
            row = rows[0]
        values = {k: v for k, v in given.items() if row.get(k) != v}
        if body.unsubscribed and not row["marketing_opt_out"]:
            values.update(marketing_opt_out=True, opted_out_at=now)
        if body.marketing_consent is not None:
            basis = "consent" if body.marketing_consent else "none"
            if row["marketing_opt_out"] or body.unsubscribed:
                ignored.append("marketing_consent: the customer opted out")
            elif row["marketing_basis"] != basis:
                values["marketing_basis"] = basis
        if values:
            conn.execute(update(CUSTOMERS).where(CUSTOMERS.c.id == row["id"]).values(updated_at=now, **values))
    writer = getattr(state, "event_writer", None)
    if writer is not None and created:
        writer.customers.put((row["source"], ref.id), row["id"])
    return JSONResponse(jsonable_encoder({"customer_id": row["id"], "created": created,
                                          "changed": sorted(k for k in values if k != "opted_out_at"),
                                          "ignored": ignored}))
