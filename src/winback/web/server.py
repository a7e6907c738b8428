"""Run the app with uvicorn (``winback serve``)."""

from __future__ import annotations

import os

from winback.config import Settings, load_settings

ENV_WORKSPACE = "WINBACK_SERVE_WORKSPACE"
ENV_WORKER = "WINBACK_SERVE_WITH_WORKER"


def app_factory():
    """For uvicorn's ``--factory`` (several worker processes): the workspace comes from the environment."""
    from winback.web.app import create_app, served

    settings = load_settings(os.environ.get(ENV_WORKSPACE, "."))
    return served(create_app(settings, with_worker=os.environ.get(ENV_WORKER) == "1"))


def serve(settings: Settings, *, host: str | None = None, port: int | None = None, with_worker: bool = False,
          workers: int | None = None, log_level: str = "info", access_log: bool = True) -> None:
    import uvicorn

    host = host or settings.web.host
    port = port or settings.web.port
    workers = workers or settings.web.workers
    if workers > 1:
        if settings.resolved_state_url.startswith("sqlite"):
            # measured: two processes contending for SQLite's write lock served fewer events than one
            # process with group commit (benchmarks/bench_events.py --workers 2); PostgreSQL scales out
            workers = 1
    if workers > 1:
        os.environ[ENV_WORKSPACE] = str(settings.workspace)
        os.environ[ENV_WORKER] = "0"  # several processes: run `winback worker` next to them instead
    if workers > 1:
        uvicorn.run("winback.web.server:app_factory", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, access_log=access_log, proxy_headers=True)
        return
    from winback.web.app import create_app, served

    uvicorn.run(served(create_app(settings, with_worker=with_worker)), host=host, port=port, log_level=log_level,
                access_log=access_log, proxy_headers=True)
