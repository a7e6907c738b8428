"""Delivery throughput: outbox -> worker process(es) -> a local SMTP sink, beside a bare aiosmtplib client.

The sink is aiosmtpd in a separate process that accepts and discards every message. For each
state backend (SQLite file; PostgreSQL at 127.0.0.1:5432 db ``test`` in a schema of its own,
dropped after) and for 1 and 2 worker processes, N compliant commercial messages (one per
consenting customer) are written into the outbox and drained with ``winback worker
--until-idle``; the rate is N / the longest worker's own run time (process start-up excluded).
The bare client sends the same N messages (built with the standard library from the same rows)
over the same number of connections per process. Then the same N messages are drained again into
the workspace's maildir (the embedded default channel, one fsynced file per message). Prints
figures; asserts nothing.

    python benchmarks/bench_delivery.py [--messages 10000] [--connections 4] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_URL = os.environ.get("WINBACK_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

SINK = r"""
import sys, time
from aiosmtpd.controller import Controller
class Discard:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
c = Controller(Discard(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"""


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_workspace(root: Path, backend: str, n: int):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.delivery.factories import seed_simple
    from winback.delivery.outbox import delivery_engine
    from winback.workspace import init_workspace

    schema = None
    if backend == "sqlite":
        settings = init_workspace(root / f"ws-{uuid.uuid4().hex[:6]}")
    else:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        settings = init_workspace(root / f"ws-{schema}", state_url=url.render_as_string(hide_password=False))
    engine = delivery_engine(settings.resolved_state_url)
    with engine.begin() as conn:
        seed_simple(conn, n, due_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    engine.dispose()
    return settings, schema


def drop_schema(schema: str | None) -> None:
    if schema:
        from sqlalchemy import create_engine, text
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run_workers(settings, port: int, workers: int, connections: int, channel: str = "smtp") -> tuple[float, list[dict]]:
    env = dict(os.environ, WINBACK_NOW="", WINBACK_DELIVERY__EMAIL_CHANNEL=channel,
               WINBACK_DELIVERY__SMTP_PORT=str(port), WINBACK_DELIVERY__SMTP_CONNECTIONS=str(connections),
               WINBACK_DELIVERY__QUIET_HOURS_START="0", WINBACK_DELIVERY__QUIET_HOURS_END="0",
               WINBACK_DELIVERY__FREQUENCY_CAP_MESSAGES="100")
    procs = [subprocess.Popen([sys.executable, "-m", "winback", "worker", "-w", str(settings.workspace),
                               "--until-idle", "--json", "--id", f"bench-{i}"], env=env, stdout=subprocess.PIPE,
                              text=True) for i in range(workers)]
    summaries = [json.loads(p.communicate()[0]) for p in procs]
    return max(s["seconds"] for s in summaries), summaries


def bare_client(settings, port: int, connections: int) -> tuple[float, int]:
    import aiosmtplib
    from sqlalchemy import select

    from winback.kit.db import make_engine
    from winback.models.delivery import OutboxMessage

    table = OutboxMessage.__table__
    engine = make_engine(settings.resolved_state_url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id))]
    engine.dispose()

    async def main() -> int:
        queue = list(reversed(rows))
        sent = 0

        async def one() -> None:
            nonlocal sent
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
            await client.connect()
            while queue:
                row = queue.pop()
                msg = EmailMessage()
                msg["From"] = row["from_address"]
                msg["To"] = row["to_address"]
                msg["Subject"] = row["subject"]
                msg["Message-ID"] = row["message_id"]
                for k, v in json.loads(row["headers"]).items():
                    msg[k] = v
                msg.set_content(row["text_body"])
                msg.add_alternative(row["html_body"], subtype="html")
                await client.sendmail(row["from_address"], [row["to_address"]], msg.as_bytes())
                sent += 1
            await client.quit()

        await asyncio.gather(*(one() for _ in range(connections)))
        return sent

    t = time.perf_counter()
    sent = asyncio.run(main())
    return time.perf_counter() - t, sent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-maildir", action="store_true", help="skip the maildir runs")
    args = parser.parse_args()
    n = args.messages
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert sink.stdout.readline().strip() == "ready"
    print(f"delivery benchmark: {n:,} messages, {args.connections} SMTP connections per process, sink pid {sink.pid}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for backend in args.backends.split(","):
                for workers in (1, 2):
                    settings, schema = make_workspace(Path(tmp), backend, n)
                    try:
                        bare_seconds, bare_sent = bare_client(settings, port, args.connections * workers)
                        seconds, summaries = run_workers(settings, port, workers, args.connections)
                    finally:
                        drop_schema(schema)
                    sent = sum(s["sent"] for s in summaries)
                    rate, bare_rate = sent / seconds, bare_sent / bare_seconds
                    maildir = ""
                    if not args.no_maildir:
                        settings, schema = make_workspace(Path(tmp), backend, n)
                        try:
                            m_seconds, m_summaries = run_workers(settings, port, workers, args.connections, "maildir")
                        finally:
                            drop_schema(schema)
                        m_sent = sum(s["sent"] for s in m_summaries)
                        maildir = f"  maildir {m_sent / m_seconds:7.0f} msg/s ({m_sent:,} in {m_seconds:.1f}s)"
                    print(f"{backend:10s} workers={workers}  outbox {rate:7.0f} msg/s ({sent:,} in {seconds:.1f}s)  "
                          f"bare aiosmtplib x{args.connections * workers} {bare_rate:7.0f} msg/s  "
                          f"ratio {rate / bare_rate:.2f}{maildir}", flush=True)
    finally:
        sink.stdin.close()
        sink.wait(timeout=10)


if __name__ == "__main__":
    main()
