"""Segment refresh at scale: a 1M-customer profile plus a few million events, 20 segments.

The profile and the facts are synthesised directly in DuckDB (no generator, no ingest); the
state store is a SQLite file holding the same customers. The refresh runs in a child process so
its peak RSS is its own. Prints figures; asserts nothing. Target (issue: segments): the full
refresh of 20 segments over 1M customers within 10 s.

    python benchmarks/bench_segments.py [--customers 1000000] [--keep DIR [--reset]]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOW = "2026-01-15T12:00:00Z"

#: 13 workspace segments; with the 7 built-ins that makes 20
EXTRA_SEGMENTS = {
    "churned_price": "match: {all: [{status: churned}, {reason: price}]}",
    "lost_buyers_high_value": "match: {all: [{status: lost}, {value_tier: [high, top]}]}",
    "big_companies_churned": "match: {all: [{status: churned}, "
                             "{attribute: company_size, op: in, value: ['201-1000', '1000+']}]}",
    "many_seats_active": "match: {all: [{status: active}, {attribute: seats, op: gte, value: 50}]}",
    "logged_in_last_30_days": "match: {event: {type: login, within_days: 30}}",
    "power_users": "match: {event: {type: feature_used, within_days: 365, count: {gte: 2}}}",
    "stopped_logging_in": "match: {all: [{status: active}, "
                          "{stopped: {event: login, active_days: 90, inactive_days: 30}}]}",
    "restarted_buyers": "match: {restarted: {event: order, where: {status: completed}, gap_days: 60, "
                        "within_days: 30}}",
    "failed_payment_active": "match: {all: [{status: active}, "
                             "{event: {type: payment, where: {status: failed}, within_days: 60}}]}",
    "unhappy_with_support": "match: {event: {type: ticket, where: {csat: {lte: 2}}, within_days: 365}}",
    "exit_survey_price": "match: {event: {type: survey_response, where: {survey: exit, choice: too_expensive}}}",
    "all_active": "match: {status: active}",
    "valuable_not_price": "match: {all: [{segment: top_lost_value}, {not: {reason: price}}, "
                          "{field: marketing_opt_out, op: eq, value: false}]}",
}

PROFILE_SQL = """
INSERT INTO customer_profile BY NAME
SELECT
    'bench' AS source,
    'c' || lpad(CAST(i AS VARCHAR), 7, '0') AS customer_id,
    i AS customer_ref,
    'c' || CAST(i AS VARCHAR) || '@example.com' AS email,
    CASE WHEN u1 < 0.45 THEN 'active' WHEN u1 < 0.70 THEN 'churned' WHEN u1 < 0.85 THEN 'lost'
         WHEN u1 < 0.95 THEN 'trial_only' ELSE 'prospect' END AS status,
    CASE WHEN u1 >= 0.45 AND u1 < 0.95
         THEN TIMESTAMP '2024-01-01' + to_seconds(CAST(u2 * 730 * 86400 AS BIGINT)) END AS churned_at,
    CASE WHEN u1 >= 0.45 AND u1 < 0.95 THEN
         (['price', 'missing_feature', 'usability', 'support', 'competitor', 'other', 'involuntary',
           'unknown'])[1 + CAST(floor(u3 * 8) AS INTEGER)] END AS reason,
    (['bouncer', 'passive_browser', 'cart_abandoner', 'one_time_low_aov', 'one_time_high_aov',
      'repeat_buyer'])[1 + CAST(floor(u4 * 6) AS INTEGER)] AS persona,
    (['low', 'mid', 'high', 'top'])[1 + CAST(floor(u5 * 4) AS INTEGER)] AS value_tier,
    CASE WHEN u1 >= 0.45 AND u1 < 0.85 THEN CAST(exp(u6 * 12) AS BIGINT) END AS lost_value_minor,
    CASE WHEN u1 < 0.45 THEN (['healthy', 'watch', 'at_risk'])[1 + CAST(floor(u7 * 3) AS INTEGER)] END
        AS health_band,
    CASE WHEN u8 < 0.05 THEN ['integration_x'] WHEN u8 < 0.10 THEN ['sso', 'integration_x']
         WHEN u8 < 0.20 THEN ['sso'] ELSE [] END AS requested_features,
    u9 AS p_alive,
    u8 < 0.1 AS marketing_opt_out,
    '{"company_size": "' || (['1-10', '11-50', '51-200', '201-1000', '1000+'])[1 + CAST(floor(u3 * 5) AS INTEGER)]
        || '", "seats": ' || CAST(CAST(u7 * 200 AS INTEGER) AS VARCHAR) || '}' AS attributes,
    'USD' AS currency
FROM (
    SELECT i, hash(i, 1) % 1000000 / 1e6 AS u1, hash(i, 2) % 1000000 / 1e6 AS u2,
           hash(i, 3) % 1000000 / 1e6 AS u3, hash(i, 4) % 1000000 / 1e6 AS u4, hash(i, 5) % 1000000 / 1e6 AS u5,
           hash(i, 6) % 1000000 / 1e6 AS u6, hash(i, 7) % 1000000 / 1e6 AS u7, hash(i, 8) % 1000000 / 1e6 AS u8,
           hash(i, 9) % 1000000 / 1e6 AS u9
    FROM range(1, {n} + 1) t(i)
)
"""

# (table, rows per customer, SELECT list over j (row number), c (customer number), u (uniform), t (timestamp))
EVENT_SQL = {
    "product_events": (3.0, """'e' || j AS event_id, c AS customer_id, t AS occurred_at,
        (['login', 'login', 'feature_used', 'feature_used', 'feature_requested'])[1 + CAST(floor(u * 5) AS INTEGER)]
            AS event_type,
        (['integration_x', 'sso', 'reports', 'api'])[1 + CAST(floor(u * 97 % 4) AS INTEGER)] AS feature, 1 AS count"""),
    "orders": (1.5, """'o' || j AS order_id, c AS customer_id, t AS ordered_at,
        CASE WHEN u < 0.9 THEN 'completed' WHEN u < 0.95 THEN 'refunded' ELSE 'canceled' END AS status,
        CAST(u * 20000 AS BIGINT) AS total_amount, 'USD' AS currency"""),
    "checkouts": (0.3, """'k' || j AS checkout_id, c AS customer_id, t AS started_at,
        CASE WHEN u < 0.6 THEN 'completed' WHEN u < 0.85 THEN 'abandoned' ELSE 'incomplete' END AS status,
        CASE WHEN u < 0.8 THEN 'x@example.com' END AS email,
        CASE WHEN u >= 0.85 THEN 'card_declined' END AS decline_code"""),
    "tickets": (0.2, """'t' || j AS ticket_id, c AS customer_id, t AS opened_at, 'solved' AS status,
        1 + CAST(floor(u * 5) AS INTEGER) AS csat"""),
    "payment_attempts": (0.3, """'p' || j AS attempt_id, c AS customer_id, t AS attempted_at, 1000 AS amount,
        'USD' AS currency, CASE WHEN u < 0.8 THEN 'succeeded' ELSE 'failed' END AS status"""),
    "survey_responses": (0.1, """'r' || j AS response_id, c AS customer_id, t AS responded_at, 'exit' AS survey,
        'q1' AS question_id,
        (['too_expensive', 'missing_features', 'too_complex', 'other'])[1 + CAST(floor(u * 4) AS INTEGER)] AS choice"""),
}


def build(root: Path, n: int) -> Path:
    from sqlalchemy import text

    from winback.history.store import open_history
    from winback.insights.profile import empty_profile, write_profile
    from winback.kit.db import make_engine
    from winback.workspace import init_workspace

    settings = init_workspace(root / "ws", now=NOW)
    t = time.perf_counter()
    events = 0
    with open_history(settings.history_path) as con:
        write_profile(con, empty_profile())
        con.execute(PROFILE_SQL.replace("{n}", str(n)))
        for table, (per_customer, columns) in EVENT_SQL.items():
            rows = int(n * per_customer)
            con.execute(f"""
                INSERT INTO "{table}" BY NAME
                SELECT 'bench' AS source, 0 AS _row_hash, {columns}
                FROM (SELECT j, 'c' || lpad(CAST(1 + hash(j, 11) % {n} AS VARCHAR), 7, '0') AS c,
                             hash(j, 12) % 1000000 / 1e6 AS u,
                             TIMESTAMP '2024-01-15' + to_seconds(CAST(hash(j, 13) % (731 * 86400) AS BIGINT)) AS t
                      FROM range(1, {rows} + 1) r(j))""")
            events += rows
    print(f"history: {n:,} profile rows and {events:,} events in {time.perf_counter() - t:.1f}s")
    t = time.perf_counter()
    engine = make_engine(settings.resolved_state_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO customers (id, source, external_id, email, marketing_basis, marketing_opt_out, row_hash, "
            "first_seen_at, updated_at) VALUES (?, 'bench', ?, ?, 'consent', 0, 0, '2026-01-01', '2026-01-01')",
            [(i, f"c{i:07d}", f"c{i}@example.com") for i in range(1, n + 1)])
        assert conn.execute(text("SELECT count(*) FROM customers")).scalar_one() == n
    engine.dispose()
    print(f"state store: {n:,} customers in {time.perf_counter() - t:.1f}s")
    folder = settings.workspace / "segments"
    for name, body in EXTRA_SEGMENTS.items():
        (folder / f"{name}.yaml").write_text(f"name: {name}\n{body}\n", encoding="utf-8")
    return settings.workspace


CHILD = r"""
import json, resource, sys, time
from winback.config import load_settings
from winback.kit.resources import peak_rss_mb
from winback.segments.service import refresh
settings = load_settings(sys.argv[1])
t = time.perf_counter()
outcomes = refresh(settings)
total = time.perf_counter() - t
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": total, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_mb": peak_rss_mb(),
                  "segments": [o.model_dump(mode="json") for o in outcomes]}))
"""


def run_refresh(ws: Path, label: str) -> None:
    child = subprocess.run([sys.executable, "-c", CHILD, str(ws)], capture_output=True, text=True)
    if child.returncode:
        print(child.stderr[-3000:])
        raise SystemExit(1)
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    segments = figures["segments"]
    failed = [s for s in segments if not s["ok"]]
    members = sum(s["member_count"] or 0 for s in segments)
    entered = sum(s["entered"] for s in segments)
    exited = sum(s["exited"] for s in segments)
    print(f"\n{label}: {len(segments)} segments in {figures['seconds']:.2f}s (process CPU time "
          f"{figures['cpu_seconds']:.2f}s, load average {os.getloadavg()[0]:.1f}), peak RSS {figures['peak_mb']:,.0f} MB; "
          f"{members:,} memberships ({entered:,} entered, {exited:,} exited)"
          + (f", {len(failed)} FAILED" if failed else ""))
    query = sum(s["query_seconds"] for s in segments)
    print(f"  evaluating on DuckDB {query:.2f}s, applying to the state store {figures['seconds'] - query:.2f}s")
    print(f"  {'segment':<42} {'members':>10} {'entered':>10} {'exited':>10} {'seconds':>8} {'query':>7}")
    for s in sorted(segments, key=lambda s: -s["seconds"]):
        print(f"  {s['name']:<42} {s['member_count'] or 0:>10,} {s['entered']:>10,} {s['exited']:>10,} "
              f"{s['seconds']:>8.2f} {s['query_seconds']:>7.2f}" + (f"  ERROR {s['error']}" if s["error"] else ""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="reuse/keep the workspace in this folder")
    ap.add_argument("--reset", action="store_true", help="with --keep: forget earlier refreshes first")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp())
    ws = root / "ws"
    if not (ws / "winback.toml").exists():
        ws = build(root, args.customers)
    if args.reset:
        _reset(ws)
    run_refresh(ws, "first refresh (every member enters)")
    run_refresh(ws, "second refresh (nothing changed)")
    _shuffle_statuses(ws, share=0.02)
    run_refresh(ws, "third refresh (2% of the customers changed status)")


def _shuffle_statuses(ws: Path, share: float) -> None:
    """Move ``share`` of the customers to another status (as the next analyze would)."""
    from winback.config import load_settings
    from winback.history.store import open_history

    with open_history(load_settings(ws).history_path) as con:
        con.execute(f"""UPDATE customer_profile SET status = CASE status WHEN 'active' THEN 'churned'
                         WHEN 'churned' THEN 'active' WHEN 'lost' THEN 'active' ELSE status END
                         WHERE hash(customer_id, 99) % 1000000 < {int(share * 1_000_000)}""")


def _reset(ws: Path) -> None:
    """Forget every segment (and so every membership) so the next refresh is a first one."""
    from winback.config import load_settings
    from winback.kit.db import make_engine

    engine = make_engine(load_settings(ws).resolved_state_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM segments")
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM")
    engine.dispose()


if __name__ == "__main__":
    main()
