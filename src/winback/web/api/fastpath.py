"""A fast path for ``POST /api/v1/events`` (a pure ASGI layer, the outermost one of the app).

FastAPI's routing (every route of the app is tried in order), dependency solving, request parsing
and its middleware stack (server errors, telemetry, body limit, exception handlers - each wraps
``send``) cost more CPU per request than the event's share of the group-committed write. This layer
wraps the whole stack (``create_app`` installs it through ``build_middleware_stack``) and answers
``POST /api/v1/events`` when the request carries an API key whose row is in the app's key cache (the
steady state of a product sending events); the answer is the same as the route's: the same model
validates the body (422 with FastAPI's error format), the same role check, the same outcome -> answer
mapping, the app's security headers. A cache entry that went stale is refreshed in a thread here (no
detour through FastAPI every ``KEY_CACHE_SECONDS``). Anything else - no key, a session cookie (CSRF),
a key not seen yet, another path - goes through FastAPI unchanged, so the route stays the one
documented in the OpenAPI schema. An unexpected error answers 500 like Starlette's
``ServerErrorMiddleware`` and is re-raised for the server to log.
"""

from __future__ import annotations

import asyncio
import json
import time

import orjson
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from winback.web.api.events import _pending, answer_of, writer_of_state
from winback.web.api.schemas import EventIn
from winback.web.auth import KEY_CACHE_SECONDS, check_api_key, role_at_least

PATH = "/api/v1/events"
MAX_BODY = 1024 * 1024
_FRESH = KEY_CACHE_SECONDS - 1  # as winback.web.api.events.key_is_cached
_NOT_CACHED = object()
_validate = EventIn.model_validate_json


class EventsFastPath:
    def __init__(self, app, owner, headers: tuple = ()):
        self.app = app  # the rest of the stack (FastAPI's middleware and routes)
        self.owner = owner  # the FastAPI app: its state
        self.headers = tuple(headers)  # added to every answer (the app's security headers)
        self._json = [(b"content-type", b"application/json"), *self.headers]
        self._verified: dict[str, tuple] = {}  # full key -> (prefix, the key-cache entry it was checked against)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        key = None
        length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                text = value.decode("latin-1")
                if text[:7].lower() == "bearer ":
                    key = text[7:].strip()
            elif name == b"x-api-key" and key is None:
                key = value.decode("latin-1")
            elif name == b"content-length":
                length = int(value) if value.isdigit() else None
        if not key or length is None or length > MAX_BODY:
            return await self.app(scope, receive, send)  # the regular route
        state = self.owner.state
        row = self._cached_row(state, key)
        if row is _NOT_CACHED:
            parts = key.split("_")
            if len(parts) < 3 or state.api_key_cache.get(parts[1]) is None:
                return await self.app(scope, receive, send)  # a key not seen yet: the route queries it
            # a known key whose cache entry went stale: refresh it here (one query, in a thread)
            row = await asyncio.to_thread(check_api_key, state.engine, key, state.api_key_cache)
            if row is None:
                return await self.app(scope, receive, send)  # revoked or wrong meanwhile: the route answers
        try:
            status, body, extra = await self._handle(state, row, receive)
        except Exception:
            # as Starlette's ServerErrorMiddleware: a plain 500, then the server logs the error
            await self._answer(send, 500, b"Internal Server Error", b"text/plain; charset=utf-8")
            raise
        if status:  # 0: the client went away before its body arrived
            await self._answer(send, status, body, extra=extra)

    def _cached_row(self, state, key: str):
        """The key's row when the app's key cache holds it fresh (no I/O), ``None`` for a bad key,
        ``_NOT_CACHED`` when a query is needed."""
        cache = state.api_key_cache
        seen = self._verified.get(key)
        if seen is not None:
            entry = cache.get(seen[0])
            if entry is seen[1] and time.monotonic() - entry[1] < _FRESH:
                return entry[0]  # the same cached row this key was verified against
        parts = key.split("_")
        prefix = parts[1] if len(parts) >= 3 else None
        entry = cache.get(prefix) if prefix else None
        if not entry or time.monotonic() - entry[1] >= _FRESH:
            return _NOT_CACHED
        row = check_api_key(state.engine, key, cache)  # cached: no I/O
        if row is not None:
            if len(self._verified) > 1000:
                self._verified.clear()
            self._verified[key] = (prefix, entry)
        return row

    async def _handle(self, state, row, receive) -> tuple[int, bytes, tuple]:
        """The answer: (status, JSON body, extra headers)."""
        if row is None:
            return 401, _json({"detail": "authentication required: log in or send an API key"}), \
                ((b"www-authenticate", b"Bearer"),)
        if not role_at_least(row["role"], "marketer"):
            return 403, _json({"detail": f"the {row['role']} role may not do this (needs marketer)"}), ()
        message = await receive()
        if message["type"] == "http.disconnect":
            return 0, b"", ()
        body = message.get("body", b"")
        if message.get("more_body"):
            chunks = [body]
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return 0, b"", ()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)
        try:
            event = _validate(body)
        except ValidationError as exc:
            return 422, _json({"detail": [_plain(e) for e in exc.errors(include_url=False)]}), ()
        try:
            pending = _pending(event, state.clock.now())
        except RequestValidationError as exc:
            return 422, _json({"detail": jsonable_encoder(exc.errors())}), ()
        writer = getattr(state, "event_writer", None) or writer_of_state(state)
        outcome = (await writer.submit([pending]))[0]
        if outcome.status == "stored" or outcome.status == "duplicate":
            cid = outcome.customer_id
            return 200, b"".join((b'{"event_id":', _json_str(event.event_id), b',"duplicate":',
                                  b"true" if outcome.status == "duplicate" else b"false", b',"customer_id":',
                                  b"null" if cid is None else str(cid).encode(), b"}")), ()
        status, answer = answer_of(event, outcome)
        return status, _json(answer), ()

    async def _answer(self, send, status: int, body: bytes, content_type: bytes | None = None,
                      extra: tuple = ()) -> None:
        headers = [(b"content-type", content_type), *self.headers] if content_type else list(self._json)
        headers.append((b"content-length", str(len(body)).encode()))
        if extra:
            headers += extra
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _json(payload) -> bytes:
    """As Starlette's JSONResponse renders it (errors are rare: the standard library is fine)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


def _json_str(text: str) -> bytes:
    try:
        return orjson.dumps(text)
    except TypeError:  # e.g. a lone surrogate: escaped as json does
        return json.dumps(text).encode()


def _plain(error: dict) -> dict:
    """A pydantic error as FastAPI shows it (``loc`` under ``body``), with JSON-safe values."""
    out = {**error, "loc": ["body", *error["loc"]]}
    if isinstance(out.get("input"), (bytes, bytearray)):
        out["input"] = bytes(out["input"]).decode("utf-8", "replace")[:200]
    if "ctx" in out:
        out["ctx"] = {k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
                      for k, v in out["ctx"].items()}
    return jsonable_encoder(out)
