"""`winback serve` pieces: the in-process delivery worker (``--with-worker``) and the uvicorn server."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import time
import urllib.request

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.delivery.factories import seed_simple
from winback.kit.db import make_engine
from winback.models.delivery import OutboxMessage
from winback.web.app import create_app


def test_with_worker_delivers_the_outbox_while_serving(sqlite_workspace):
    settings = sqlite_workspace
    settings.delivery.poll_seconds = 0.05
    engine = make_engine(settings.resolved_state_url)
    with engine.begin() as conn:
        ids, _ = seed_simple(conn, 3, due_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    with TestClient(create_app(settings, with_worker=True)) as client:
        assert client.get("/healthz").json()["ok"] is True
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                statuses = {r.status for r in conn.execute(select(OutboxMessage.status))}
            if statuses == {"sent"}:
                break
            time.sleep(0.1)
    assert statuses == {"sent"}
    assert len(list((settings.workspace / "outbox" / "maildir" / "new").iterdir())) == 3
    engine.dispose()


def test_winback_serve_answers_health_and_openapi(sqlite_workspace):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "winback", "serve", "-w", str(sqlite_workspace.workspace),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        body = None
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    body = json.loads(r.read())
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                time.sleep(0.1)
        assert body == {"ok": True, "version": body["version"], "schema": "0007"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=5) as r:
            spec = json.loads(r.read())
        assert "/api/v1/events" in spec["paths"] and "/api/v1/customers" in spec["paths"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
