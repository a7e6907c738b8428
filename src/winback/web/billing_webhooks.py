"""Inbound billing webhooks: Stripe and Standard Webhooks, stored raw and answered at once.

* ``POST /webhooks/billing/stripe`` - a Stripe webhook endpoint (``Stripe-Signature`` checked
  against ``[dunning] stripe_webhook_secrets``);
* ``POST /webhooks/billing/standard`` - any other billing system, signed with Standard Webhooks
  (``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature`` against
  ``[dunning] standard_webhook_secrets``), body in the format of
  :mod:`winback.dunning.providers.standard_events`.

The signature is the only authentication (senders hold no API key): it is checked over the raw
body against the app's clock with ``[dunning] webhook_tolerance_seconds`` (default 300 s either
way). A verified body is stored as received in ``webhook_events`` (unique per provider and event
id: Stripe's ``evt_...``, the ``webhook-id`` header) with status ``received`` and answered
``200 {"ok": true, "duplicate": false}`` at once - a redelivery answers ``duplicate: true`` and
stores nothing. Nothing is applied here: the worker
(:func:`winback.dunning.service.process_webhooks`) parses and applies stored events, so a slow or
failing step never makes the sender time out and retry.

Answers: 400 bad or missing signature, stale or future timestamp, or a signed body that is not an
event (the reason is in ``detail``); 413 body over 1 MiB; 503 no secret configured (the sender
retries later; configure the secret).
"""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from winback.dunning.signatures import BadWebhookSignature, WebhookSecretMissing, verify_standard, verify_stripe
from winback.kit.db import insert_ignore, write_transaction
from winback.models.tracking import WebhookEvent

router = APIRouter(tags=["webhooks"])
EVENTS = WebhookEvent.__table__
MAX_BODY = 1024 * 1024
MAX_EVENT_ID = 255  # webhook_events.event_id
STRIPE_HEADERS = ("stripe-signature", "content-type", "user-agent")
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent")
RESPONSES = {400: {"description": "bad or missing signature, timestamp outside tolerance, or not an event"},
             413: {"description": "body over 1 MiB"},
             503: {"description": "no webhook secret configured"}}


async def _read_body(request: Request) -> bytes:
    """The raw body, refused with 413 as soon as it passes 1 MiB (announced or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPException(413, "the body is over 1 MiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(413, "the body is over 1 MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes, what: str) -> dict:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, f"the body is not JSON (expected {what})") from None
    if not isinstance(payload, dict):
        raise HTTPException(400, f"the body is not a JSON object (expected {what})")
    return payload


def _event_type(payload: dict, what: str) -> str:
    kind = payload.get("type")
    if not isinstance(kind, str) or not kind.strip():
        raise HTTPException(400, f"the body has no type (expected {what})")
    return kind.strip()[:128]


def _checked_id(value, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HTTPException(400, f"{what} is missing")
    if len(value) > MAX_EVENT_ID:
        raise HTTPException(400, f"{what} is longer than {MAX_EVENT_ID} characters")
    return value.strip()


def _verify(check):
    try:
        return check()
    except WebhookSecretMissing as exc:
        raise HTTPException(503, f"billing webhooks are not configured: {exc.reason}") from None
    except BadWebhookSignature as exc:
        raise HTTPException(400, exc.reason) from None


@router.post("/webhooks/billing/stripe", summary="Stripe webhook endpoint (Stripe-Signature)", responses=RESPONSES)
async def stripe_webhook(request: Request) -> JSONResponse:
    state = request.app.state
    dunning = state.settings.dunning
    signature = request.headers.get("stripe-signature")
    if not signature:  # unsigned: refused whatever is configured
        raise HTTPException(400, "missing Stripe-Signature header")
    body = await _read_body(request)
    _verify(lambda: verify_stripe(body, signature, dunning.stripe_webhook_secrets, now=state.clock.now(),
                                  tolerance=dunning.webhook_tolerance_seconds))
    payload = _json_object(body, "a Stripe event")
    event_id = _checked_id(payload.get("id"), "the event id")
    kind = _event_type(payload, "a Stripe event")
    headers = {name: request.headers[name] for name in STRIPE_HEADERS if name in request.headers}
    duplicate = await run_in_threadpool(_store, state, "stripe", event_id, kind, body, headers)
    return JSONResponse({"ok": True, "duplicate": duplicate, "event_id": event_id})


@router.post("/webhooks/billing/standard", summary="Billing webhooks signed with Standard Webhooks",
             responses=RESPONSES)
async def standard_webhook(request: Request) -> JSONResponse:
    state = request.app.state
    dunning = state.settings.dunning
    if not any(name in request.headers for name in ("webhook-signature", "svix-signature")):
        raise HTTPException(400, "missing webhook-signature header")
    body = await _read_body(request)
    headers = dict(request.headers)
    event_id = _verify(lambda: verify_standard(body, headers, dunning.standard_webhook_secrets,
                                               now=state.clock.now(), tolerance=dunning.webhook_tolerance_seconds))
    event_id = _checked_id(event_id, "the webhook-id header")
    payload = _json_object(body, "a billing event: see docs/dunning-webhooks.md")
    kind = _event_type(payload, "a billing event: see docs/dunning-webhooks.md")
    stored = {name: headers[name] for name in STANDARD_HEADERS if name in headers}
    for name in ("id", "timestamp", "signature"):  # Svix's names of the same headers
        if f"svix-{name}" in headers and f"webhook-{name}" not in stored:
            stored[f"webhook-{name}"] = headers[f"svix-{name}"]
    duplicate = await run_in_threadpool(_store, state, "standard", event_id, kind, body, stored)
    return JSONResponse({"ok": True, "duplicate": duplicate, "event_id": event_id})


def _store(state, provider: str, event_id: str, kind: str, body: bytes, headers: dict) -> bool:
    """Insert the raw event (status received) unless it is there already; True when it was."""
    with write_transaction(state.engine) as conn:
        stored = insert_ignore(conn, EVENTS, [{
            "provider": provider, "event_id": event_id, "type": kind, "payload": body.decode("utf-8"),
            "headers": json.dumps(headers), "status": "received", "received_at": state.clock.now(),
        }], ["provider", "event_id"])
    return not stored
