"""The FastAPI application factory (`winback serve`).

One app serves four audiences, each from its own module:

* ``public``  - what recipients reach from a message, without logging in: the open pixel,
  tracked clicks, one-click unsubscribe, the preference centre and the exit survey;
* ``api``     - the REST API (API keys or a session), including the live events endpoint;
* ``pages``   - the dashboard (server-rendered Jinja2, Plotly served locally);
* ``login``   - sign in and out.

The app reads and writes only the state store (never the DuckDB history, see DESIGN.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import text

from winback import __version__
from winback.config import Settings
from winback.kit.db import make_engine
from winback.web.auth import LoginRequired

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")


def plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).with_name("package_data") / "plotly.min.js"


SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"))


class SecurityHeaders:
    """Adds the security headers to every HTTP response that does not set them itself."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def _install_events_fast_path(app: FastAPI) -> None:
    """``POST /api/v1/events`` with a cached API key is answered by the outermost ASGI layer, before
    Starlette's and FastAPI's own middleware (server errors, telemetry, body limit, exception
    handlers), the routing and dependency solving (``winback.web.api.fastpath``). It wraps what
    ``build_middleware_stack`` builds, so ``app`` stays the FastAPI app (state, TestClient, uvicorn)."""
    from winback.web.api.fastpath import EventsFastPath

    build = app.build_middleware_stack

    def build_middleware_stack():
        return EventsFastPath(build(), app, SECURITY_HEADERS)

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]


def served(app: FastAPI):
    """The ASGI callable the server runs: the events fast path in front of ``app`` (it answers
    ``POST /api/v1/events`` with a cached API key without entering ``FastAPI.__call__``, whose
    per-request telemetry check alone costs a tenth of that request's CPU; everything else, lifespan
    included, goes to ``app``). Tests use ``app`` itself: the same fast path sits outermost in its stack."""
    from winback.web.api.fastpath import EventsFastPath

    return EventsFastPath(app, app, SECURITY_HEADERS)


async def _dunning_loop(app: FastAPI, stop: asyncio.Event, poll_seconds: float = 5.0) -> None:
    """``--with-worker``: the dunning worker's rounds (billing webhooks, due retries, notices) in a thread."""
    from winback.dunning.gateways import make_gateway
    from winback.dunning.service import default_worker_id, tick

    settings, engine, clock = app.state.settings, app.state.engine, app.state.clock
    gateway, worker, state = None, default_worker_id(), {}
    while not stop.is_set():
        try:
            gateway = gateway or make_gateway(settings, engine=engine, clock=clock)
            await asyncio.to_thread(tick, settings, engine=engine, gateway=gateway, clock=clock, worker=worker,
                                    state=state)
        except Exception:  # a bad configuration or an outage must not stop the web app
            logging.getLogger("winback.dunning").exception("dunning round failed")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=poll_seconds)


def create_app(settings: Settings, *, clock=None, engine=None, with_worker: bool = False) -> FastAPI:
    """The app for one workspace. ``clock`` defaults to the workspace clock (``now`` pins it)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        worker_task = None
        stop = asyncio.Event()
        if with_worker:
            from winback.delivery.worker import Worker

            worker = Worker(settings, clock=app.state.clock)
            worker_task = asyncio.create_task(worker.run(stop=stop), name="winback-worker")
            dunning_task = asyncio.create_task(_dunning_loop(app, stop), name="winback-dunning")
        try:
            yield
        finally:
            if worker_task is not None:
                stop.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker_task, timeout=30)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(dunning_task, timeout=30)
            event_writer = getattr(app.state, "event_writer", None)  # the live events' group commit
            if event_writer is not None:
                with contextlib.suppress(Exception):
                    await event_writer.close()
            if app.state.own_engine:
                app.state.engine.dispose()

    app = FastAPI(title="winback", version=__version__, lifespan=lifespan,
                  description="Win-back and retention engine: customers, segments, campaigns, results and "
                              "live events. Authenticate with `Authorization: Bearer wbk_...` (an API key from "
                              "`winback apikeys create`).",
                  docs_url="/api/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.settings = settings
    app.state.clock = clock or settings.clock()
    app.state.own_engine = engine is None
    app.state.engine = engine or make_engine(settings.resolved_state_url)
    app.state.api_key_cache = {}

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)

    @app.get("/healthz", tags=["system"], summary="Liveness and state-store check")
    def healthz() -> JSONResponse:
        try:
            with app.state.engine.connect() as conn:
                revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
        except Exception as exc:  # the store is down: say so, do not crash
            return JSONResponse({"ok": False, "error": f"state store unavailable: {type(exc).__name__}"},
                                status_code=503)
        return JSONResponse({"ok": True, "version": __version__, "schema": revision})

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def _plotly() -> FileResponse:
        return FileResponse(plotly_js(), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/static/{name}", include_in_schema=False)
    def _static(name: str) -> Response:
        path = (STATIC / name).resolve()
        if path.parent != STATIC.resolve() or not path.is_file():
            return Response(status_code=404)
        return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})

    # a pure ASGI middleware: @app.middleware("http") (BaseHTTPMiddleware) cost ~1.5 ms per request
    # here, a third of the live events endpoint's budget (benchmarks/bench_events.py)
    app.add_middleware(SecurityHeaders)  # every answer of the stack gets the headers
    _install_events_fast_path(app)

    from winback.web import billing_webhooks, login, webhooks
    from winback.web.api import router as api_router
    from winback.web.pages import router as pages_router
    from winback.web.public import router as public_router

    app.include_router(public_router)
    app.include_router(login.router)
    app.include_router(webhooks.router)
    app.include_router(billing_webhooks.router)
    app.include_router(api_router)
    app.include_router(pages_router)
    return app
