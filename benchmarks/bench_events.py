"""Live events API throughput: POST /api/v1/events (one event per request) and /events/batch.

A temporary workspace gets N customers and a marketer API key; the app is served by uvicorn in a
subprocess on 127.0.0.1 (a free port; ``--server cli`` runs ``winback serve`` itself, with its access
log; the default runs the same app through uvicorn's factory with uvloop + httptools and no access
log). The load comes from a separate process: raw asyncio streams (HTTP/1.1 keep-alive, C
connections, one request in flight per connection), unique event ids, random known customers, for
S seconds after a 2 s warm-up. It prints events/s, latency percentiles and errors, then checks
that every acknowledged event id is in ``customer_events`` (read with a fresh engine).

    python benchmarks/bench_events.py [--customers 10000] [--seconds 20] [--connections 48]
                                      [--state-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

With a PostgreSQL URL the workspace uses a schema of its own in that database (dropped after).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WARMUP = 2.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------- the client process


async def _client(cfg: dict) -> dict:
    host, port, key = cfg["host"], cfg["port"], cfg["key"]
    batch = cfg["batch"]
    path = "/api/v1/events/batch" if batch else "/api/v1/events"
    customers = cfg["customers"]
    prefix = cfg["prefix"]
    deadline_start = time.perf_counter() + WARMUP
    deadline = deadline_start + cfg["seconds"]
    lat: list[float] = []
    acked: list[str] = []
    errors: dict[str, int] = {}
    answered = [0]  # requests answered 200, warm-up included
    rng = random.Random(7)
    import datetime as dt

    async def one_connection(c: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = 0
        try:
            while True:
                now = time.perf_counter()
                if now >= deadline:
                    return
                at = dt.datetime.now(dt.timezone.utc).isoformat()
                ids = []
                events = []
                for _ in range(batch or 1):
                    i += 1
                    eid = f"{prefix}-{c}-{i}"
                    ids.append(eid)
                    events.append({"event_id": eid, "type": "feature_used",
                                   "customer": {"id": customers[rng.randrange(len(customers))]},
                                   "occurred_at": at, "properties": {"feature": "export", "n": i}})
                body = json.dumps({"events": events} if batch else events[0]).encode()
                req = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
                t0 = time.perf_counter()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                payload = await reader.readexactly(length)
                t1 = time.perf_counter()
                if status == 200:
                    answered[0] += 1
                    if batch:
                        items = json.loads(payload)["items"]
                        acked.extend(it["event_id"] for it in items if it["status"] == "stored")
                    else:
                        acked.append(ids[0])
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1
                if t0 >= deadline_start:
                    lat.append(t1 - t0)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(one_connection(c) for c in range(cfg["connections"])))
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    with open(cfg["acked_file"], "w") as f:
        f.write("\n".join(acked))
    return {"requests": len(lat), "seconds": cfg["seconds"], "p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99),
            "max": lat[-1] * 1000 if lat else float("nan"), "errors": errors, "acked": len(acked),
            "acked_requests": answered[0]}


def client_main(cfg_json: str) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    cfg = json.loads(cfg_json)
    print(json.dumps(asyncio.run(_client(cfg))), flush=True)


# --------------------------------------------------------------------------------- the parent


def make_workspace(root: Path, state_url: str | None, n: int):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.delivery.factories import add_customers
    from winback.kit.db import make_engine
    from winback.web.auth import create_api_key
    from winback.workspace import init_workspace

    cleanup = None
    url = state_url
    if state_url and state_url.startswith("postgresql"):
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(state_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(state_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)

        def cleanup():
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()

    settings = init_workspace(root / "ws", state_url=url)
    engine = make_engine(settings.resolved_state_url)
    with engine.begin() as conn:
        add_customers(conn, [f"c{i}@example.com" for i in range(n)])
    import datetime as dt

    key = create_api_key(engine, "bench", "marketer", now=dt.datetime.now(dt.timezone.utc))["key"]
    engine.dispose()
    return settings, key, [f"x-c{i}@example.com" for i in range(n)], cleanup


def start_server(settings, port: int, mode: str, workers: int = 1) -> subprocess.Popen:
    env = {**os.environ, "WINBACK_SERVE_WORKSPACE": str(settings.workspace), "WINBACK_SERVE_WITH_WORKER": "0"}
    if mode == "cli":
        cmd = [sys.executable, "-m", "winback", "serve", "--workspace", str(settings.workspace), "--host",
               "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "winback.web.server:app_factory", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http",
               "httptools", "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import urllib.request

    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read().decode()[-2000:]}")
    raise SystemExit("the server did not come up")


def run_load(port: int, key: str, customers: list[str], *, seconds: float, connections: int, batch: int,
             prefix: str, acked_file: Path, server_pid: int | None = None) -> dict:
    cfg = {"host": "127.0.0.1", "port": port, "key": key, "customers": customers, "seconds": seconds,
           "connections": connections, "batch": batch, "prefix": prefix, "acked_file": str(acked_file)}
    before = cpu_seconds(server_pid) if server_pid else None
    started = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--client"], input=json.dumps(cfg), capture_output=True,
                         text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if before is not None:  # CPU per request (warm-up included): a figure that other load on the machine
        wall = time.perf_counter() - started  # distorts less than the rates
        result["server_cpu_ms"] = (cpu_seconds(server_pid) - before) * 1000 / max(1, result["acked_requests"])
        result["server_cpu_share"] = (cpu_seconds(server_pid) - before) / wall
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, its threads and its child processes (uvicorn workers; Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # fields[1] is the parent pid
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def verify(settings, acked_file: Path, prefix: str) -> tuple[int, int]:
    from sqlalchemy import select

    from winback.kit.db import make_engine
    from winback.models.campaigns import CustomerEvent

    acked = set(filter(None, acked_file.read_text().split("\n")))
    engine = make_engine(settings.resolved_state_url)
    with engine.connect() as conn:
        stored = set(conn.execute(select(CustomerEvent.event_id).where(CustomerEvent.event_id.like(f"{prefix}-%")))
                     .scalars())
    engine.dispose()
    return len(acked - stored), len(stored)


def report(label: str, r: dict, per_request: int, missing: int, stored: int) -> None:
    rate = r["requests"] * per_request / r["seconds"]
    print(f"{label:<34} {rate:>9,.0f} ev/s  {r['requests'] / r['seconds']:>7,.0f} req/s  "
          f"p50 {r['p50']:6.1f} ms  p95 {r['p95']:6.1f} ms  p99 {r['p99']:6.1f} ms  max {r['max']:7.1f} ms  "
          f"errors {sum(r['errors'].values())} {r['errors'] or ''}  acked {r['acked']:,}  stored {stored:,}  "
          f"acked-but-missing {missing}  server CPU {r.get('server_cpu_ms', float('nan')):.2f} ms/request "
          f"({r.get('server_cpu_share', float('nan')):.0%} of a core); load average {os.getloadavg()[0]:.1f}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--connections", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--batch-seconds", type=float, default=10)
    ap.add_argument("--batch-connections", type=int, default=8)
    ap.add_argument("--state-url", default=None, help="default: the workspace's SQLite file")
    ap.add_argument("--server", choices=("uvicorn", "cli"), default="uvicorn")
    ap.add_argument("--workers", type=int, default=1, help="server processes (uvicorn --workers; on SQLite two "
                    "processes contend for the write lock and serve fewer events than one)")
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)  # config on stdin
    args = ap.parse_args()
    if args.client:
        client_main(sys.stdin.read())
        return
    with tempfile.TemporaryDirectory(prefix="bench_events_") as tmp:
        settings, key, customers, cleanup = make_workspace(Path(tmp), args.state_url, args.customers)
        backend = "postgresql" if (args.state_url or "").startswith("postgresql") else "sqlite"
        port = free_port()
        proc = start_server(settings, port, args.server, args.workers)
        try:
            print(f"backend {backend}, {args.customers:,} customers, server {args.server} x{args.workers} processes, {os.cpu_count()} cores; "
                  f"load from a separate process", flush=True)
            prefix = f"s{uuid.uuid4().hex[:6]}"
            acked = Path(tmp) / "acked_single.txt"
            r = run_load(port, key, customers, seconds=args.seconds, connections=args.connections, batch=0,
                         prefix=prefix, acked_file=acked, server_pid=proc.pid)
            missing, stored = verify(settings, acked, prefix)
            report(f"POST /events x{args.connections} conns", r, 1, missing, stored)
            prefix = f"b{uuid.uuid4().hex[:6]}"
            acked = Path(tmp) / "acked_batch.txt"
            r = run_load(port, key, customers, seconds=args.batch_seconds, connections=args.batch_connections,
                         batch=args.batch_size, prefix=prefix, acked_file=acked, server_pid=proc.pid)
            missing, stored = verify(settings, acked, prefix)
            report(f"POST /events/batch ({args.batch_size}/req) x{args.batch_connections}", r, args.batch_size,
                   missing, stored)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            if cleanup:
                cleanup()


if __name__ == "__main__":
    main()
