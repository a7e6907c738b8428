"""Inbound webhooks from e-mail providers: bounces and complaints -> the suppression list.

``POST /webhooks/email/{provider}`` (ses, sendgrid, postmark, mailgun). Providers cannot log in:
authenticate with a marketer (or admin) API key, as ``Authorization: Bearer wbk_...``,
``X-API-Key``, or as the password of HTTP Basic auth in the webhook URL
(``https://winback:wbk_...@host/webhooks/email/sendgrid`` - what SendGrid, Postmark and SNS
support). The raw body is stored in ``webhook_events`` first (unique per provider and event id;
a delivery seen before answers ``duplicate``), then normalised by
:func:`winback.tracking.bounces.parse_provider` and applied by ``ingest_reports``. An SNS
``SubscriptionConfirmation`` is stored and its ``SubscribeURL`` returned for an operator to open:
winback never fetches URLs named by a request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import update
from starlette.concurrency import run_in_threadpool

from winback.kit.db import insert_ignore, write_transaction
from winback.models.tracking import WebhookEvent
from winback.tracking.bounces import PROVIDERS, ReportError, ingest_reports, parse_provider
from winback.web.auth import check_api_key, role_at_least

router = APIRouter(tags=["webhooks"])
EVENTS = WebhookEvent.__table__
MAX_BODY = 1024 * 1024


def _key_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return request.headers.get("x-api-key")


def _event_id(provider: str, payload, body: bytes) -> str:
    """The provider's own id of this delivery when it has one, else a hash of the body."""
    if isinstance(payload, dict):
        for key in ("MessageId", "ID", "id"):
            if isinstance(payload.get(key), (str, int)) and str(payload[key]).strip():
                return f"{provider}:{str(payload[key])[:200]}"
        data = payload.get("event-data")
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            return f"{provider}:{data['id'][:200]}"
    return f"{provider}:sha256:{hashlib.sha256(body).hexdigest()}"


@router.post("/webhooks/email/{provider}", summary="Bounce and complaint webhooks of e-mail providers",
             responses={401: {"description": "no or bad API key"}, 403: {"description": "role too low"},
                        413: {"description": "body over 1 MB"}, 422: {"description": "not a usable payload"}})
async def email_webhook(provider: str, request: Request) -> JSONResponse:
    state = request.app.state
    if provider not in PROVIDERS:
        raise HTTPException(404, f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    row = check_api_key(state.engine, _key_from(request) or "", state.api_key_cache)
    if row is None:
        raise HTTPException(401, "send a marketer API key (Bearer, X-API-Key or Basic auth password)",
                            headers={"WWW-Authenticate": 'Basic realm="winback webhooks"'})
    if not role_at_least(row["role"], "marketer"):
        raise HTTPException(403, f"the {row['role']} role may not post webhooks (needs marketer)")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, "the body is over 1 MB")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(422, f"{provider}: the body is not JSON") from None
    return JSONResponse(await run_in_threadpool(_store_and_apply, state, provider, payload, body,
                                                dict(request.headers)))


def _store_and_apply(state, provider: str, payload, body: bytes, headers: dict) -> dict:
    now = state.clock.now()
    event_id = _event_id(provider, payload, body)
    kind = payload.get("Type") if isinstance(payload, dict) else None
    with write_transaction(state.engine) as conn:
        stored = insert_ignore(conn, EVENTS, [{
            "provider": provider, "event_id": event_id, "type": str(kind or "notification")[:128],
            "payload": body.decode("utf-8", errors="replace"), "status": "received", "received_at": now,
            "headers": json.dumps({k: v for k, v in headers.items()
                                   if k.lower() in ("content-type", "user-agent", "x-amz-sns-message-type")}),
        }], ["provider", "event_id"])
    if not stored:
        return {"ok": True, "duplicate": True, "event_id": event_id}
    if kind == "SubscriptionConfirmation":
        _finish(state.engine, provider, event_id, "ignored", "SNS subscription: open SubscribeURL to confirm", now)
        return {"ok": True, "duplicate": False, "event_id": event_id, "subscription_confirmation": True,
                "subscribe_url": str(payload.get("SubscribeURL") or "")[:2000]}
    try:
        records = parse_provider(provider, payload)
    except ReportError as exc:
        _finish(state.engine, provider, event_id, "failed", str(exc), now)
        raise HTTPException(422, str(exc)) from None
    counts = ingest_reports(state.settings, records, source=f"provider:{provider}", now=now, engine=state.engine)
    _finish(state.engine, provider, event_id, "failed" if counts["errors"] else "processed",
            json.dumps(counts["errors"])[:2000] if counts["errors"] else None, now)
    return {"ok": True, "duplicate": False, "event_id": event_id, **counts}


def _finish(engine, provider: str, event_id: str, status: str, error: str | None, now) -> None:
    with write_transaction(engine) as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.provider == provider, EVENTS.c.event_id == event_id)
                     .values(status=status, error=error, processed_at=now))
