"""Dunning throughput: billing webhooks in, events applied, retries charged.

A temporary workspace gets N customers, each with a sandbox subscription and card. Then:

1. **intake** - N/5 Stripe ``invoice.payment_failed`` events signed with the stripe SDK's own helper
   are POSTed to ``/webhooks/billing/stripe`` in-process (Starlette's TestClient, one at a time):
   requests/s and latency percentiles of verify + store + 2xx;
2. **apply** - N failure events (sandbox, Standard Webhooks body) stored raw, then the worker's
   ``process_webhooks`` parses and applies them: events/s;
3. **retries** - one day later ``run_due`` charges every case through the sandbox gateway (lease,
   per-card cap, idempotency key committed before the call, answer recorded): charges/s;
4. **notices** - ``schedule_notices`` queues the failed-payment e-mails: cases/s.

    python benchmarks/bench_dunning.py [--customers 5000]
                                       [--state-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

With a PostgreSQL URL the workspace uses a schema of its own (dropped after). Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SECRET = "whsec_bench_0123456789"


def _workspace(tmp: Path, state_url: str | None):
    from winback.workspace import init_workspace

    if not state_url:
        return init_workspace(tmp / "ws", now=NOW.isoformat().replace("+00:00", "Z")), None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(state_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(state_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)
    settings = init_workspace(tmp / "ws", state_url=url, now=NOW.isoformat().replace("+00:00", "Z"))

    def drop():
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return settings, drop


def _seed(engine, n: int) -> None:
    from sqlalchemy import insert

    from winback.models.customer import Customer
    from winback.models.dunning import BillingPaymentMethod, BillingSubscription, SandboxCard

    customers = [dict(source="bench", external_id=f"cus_{i}", email=f"c{i}@example.com", name=f"Customer {i}",
                      locale="en", marketing_basis="none", marketing_opt_out=False, row_hash=0, first_seen_at=NOW,
                      updated_at=NOW) for i in range(n)]
    with engine.begin() as conn:
        ids = conn.execute(insert(Customer.__table__).returning(Customer.__table__.c.id, sort_by_parameter_order=True),
                           customers).scalars().all()
        conn.execute(insert(BillingSubscription.__table__), [dict(
            provider="sandbox", external_id=f"sub_{i}", customer_ref=f"cus_{i}", customer_id=cid, plan_id="pro",
            mrr_minor=4900, currency="USD", status="active", payment_method_ref=f"pm_{i}", updated_at=NOW)
            for i, cid in enumerate(ids)])
        conn.execute(insert(BillingPaymentMethod.__table__), [dict(
            provider="sandbox", external_id=f"pm_{i}", customer_ref=f"cus_{i}", customer_id=cid, brand="visa",
            last4="4242", exp_month=12, exp_year=2030, fingerprint=f"fp_{i}", status="active", updated_via="import",
            updated_at=NOW) for i, cid in enumerate(ids)])
        conn.execute(insert(SandboxCard.__table__), [dict(
            payment_method_ref=f"pm_{i}", customer_ref=f"cus_{i}", brand="visa", last4="4242", exp_month=12,
            exp_year=2030, fingerprint=f"fp_{i}", behaviour="insufficient_funds" if i % 2 else "ok",
            recovers_at=None, created_at=NOW) for i in range(n)])


def _stripe_event(i: int) -> bytes:
    return json.dumps({"id": f"evt_bench_{i}", "object": "event", "type": "invoice.payment_failed",
                       "created": int(NOW.timestamp()), "data": {"object": {
                           "id": f"in_stripe_{i}", "object": "invoice", "customer": f"cus_{i}",
                           "subscription": f"sub_{i}", "amount_due": 4900, "currency": "usd", "status": "open",
                           "attempt_count": 1}}}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--state-url", default=None)
    args = parser.parse_args()

    import stripe
    from fastapi.testclient import TestClient

    from winback.dunning.gateways.sandbox import SandboxGateway
    from winback.dunning.service import process_webhooks, run_due, schedule_notices, store_sandbox_event
    from winback.kit.clock import FixedClock
    from winback.kit.db import make_engine
    from winback.web.app import create_app

    n = args.customers
    with tempfile.TemporaryDirectory() as tmp:
        settings, drop = _workspace(Path(tmp), args.state_url)
        settings = settings.model_copy(update={"dunning": settings.dunning.model_copy(
            update={"stripe_webhook_secrets": [SECRET]})})
        engine = make_engine(settings.resolved_state_url)
        try:
            _seed(engine, n)
            backend = engine.dialect.name
            print(f"bench_dunning: {n:,} customers, state store {backend}")

            # 1. intake over HTTP (in-process)
            app = create_app(settings, clock=FixedClock(NOW), engine=engine)
            m = max(200, n // 5)
            bodies = [_stripe_event(i) for i in range(m)]
            latencies = []
            with TestClient(app) as client:
                t0 = time.perf_counter()
                for body in bodies:
                    header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET,
                                                                               timestamp=int(NOW.timestamp()))
                    t = time.perf_counter()
                    r = client.post("/webhooks/billing/stripe", content=body, headers={"Stripe-Signature": header})
                    latencies.append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
                intake = time.perf_counter() - t0
            q = statistics.quantiles(latencies, n=100)
            print(f"  intake   {m:,} signed Stripe webhooks: {m / intake:,.0f} requests/s, p50 {q[49] * 1000:.1f} ms, "
                  f"p99 {q[98] * 1000:.1f} ms (verify + store raw + 2xx, in-process)")

            # 2. apply stored events (the Stripe ones above and n sandbox failures)
            for i in range(n):
                store_sandbox_event(engine, {"id": f"evt_sbx_{i}", "type": "invoice.payment_failed",
                                             "timestamp": NOW.isoformat(), "data": {
                                                 "invoice_id": f"in_{i}", "customer_id": f"cus_{i}",
                                                 "subscription_id": f"sub_{i}", "amount_due": 4900, "currency": "USD",
                                                 "decline_code": "insufficient_funds", "payment_method_id": f"pm_{i}"}},
                                    now=NOW)
            t = time.perf_counter()
            counts = process_webhooks(settings, engine=engine, now=NOW)
            applied = time.perf_counter() - t
            events = sum(counts.values())
            print(f"  apply    {events:,} events: {events / applied:,.0f} events/s ({counts})")

            # 3. the first retry of every case, one day later
            clock = FixedClock(NOW + dt.timedelta(days=1))
            gateway = SandboxGateway(engine, clock=clock)
            t = time.perf_counter()
            outcome = run_due(settings, engine=engine, gateway=gateway, clock=clock, worker="bench")
            charged = time.perf_counter() - t
            total = sum(outcome.values())
            print(f"  retries  {total:,} charges: {total / charged:,.0f} charges/s ({outcome})")

            # 4. notices
            t = time.perf_counter()
            queued = schedule_notices(settings, engine=engine, now=NOW + dt.timedelta(days=1))
            noticed = time.perf_counter() - t
            print(f"  notices  {queued['case_notices']:,} failed-payment e-mails queued in {noticed:.1f} s "
                  f"({queued['case_notices'] / max(noticed, 1e-9):,.0f}/s)")
        finally:
            engine.dispose()
            if drop:
                drop()


if __name__ == "__main__":
    main()
