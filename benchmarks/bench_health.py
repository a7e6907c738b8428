"""Health score at scale, and the churn-risk model against the health score.

1. Synthesises N active SaaS customers straight into a DuckDB history (SQL ``range()`` and hashes,
   no Python loops: a subscription each, six monthly paid invoices, two payment attempts, fortnightly
   login / feature-use roll-ups over 126 days - 18 rows each - plus tickets and NPS answers for some),
   then times :func:`winback.analytics.features.customer_features` and
   :func:`winback.analytics.health.health_scores` in a fresh process and prints seconds and peak RSS
   (target: well under 30 s for 1M customers, query included).
2. Generates a moderate SaaS history (default 20,000 customers) with ``winback.synth``, ingests it,
   and prints the churn-risk model's AUC / Brier / ECE against the health score's on the same
   test customers - with every feature, and without the product-engagement ones (the generator
   writes engagement only for each subscription's last 12 weeks, which gives engagement columns an
   unrealistically easy tell; see the report).

Prints figures; asserts nothing.

    python benchmarks/bench_health.py [--customers 1000000] [--model-customers 20000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AS_OF = "2025-12-31 00:00:00"

# fractions in per-mille of customers
SYNTH_SQL = [
    # customers: created up to ~2.5 years before AS_OF
    """INSERT INTO customers (customer_id, created_at, marketing_basis, marketing_opt_out, source, _row_hash)
       SELECT 'c' || lpad(i::VARCHAR, 8, '0'),
              TIMESTAMP '{as_of}' - INTERVAL 150 DAY - to_days((hash(i, 1) % 800)::INTEGER),
              'none', false, 'bench', i
       FROM range({n}) t(i)""",
    # one active subscription each; 2% with a cancellation scheduled
    """INSERT INTO subscriptions (subscription_id, customer_id, plan_id, status, started_at, current_period_end,
                                  mrr, currency, quantity, cancel_at_period_end, canceled_at, source, _row_hash)
       SELECT 'sub' || lpad(i::VARCHAR, 8, '0'), 'c' || lpad(i::VARCHAR, 8, '0'), 'plan_pro', 'active',
              TIMESTAMP '{as_of}' - INTERVAL 150 DAY - to_days((hash(i, 1) % 800)::INTEGER),
              TIMESTAMP '{as_of}' + to_days((1 + hash(i, 2) % 30)::INTEGER),
              (2900 + 1000 * (hash(i, 3) % 5))::BIGINT, 'USD', 1,
              hash(i, 4) % 1000 < 20,
              CASE WHEN hash(i, 4) % 1000 < 20 THEN TIMESTAMP '{as_of}' - to_days((hash(i, 5) % 20)::INTEGER) END,
              'bench', i
       FROM range({n}) t(i)""",
    # six monthly paid invoices
    """INSERT INTO invoices (invoice_id, customer_id, subscription_id, created_at, amount_due, amount_paid, currency,
                             status, paid_at, attempt_count, source, _row_hash)
       SELECT 'in' || i || '_' || k, 'c' || lpad(i::VARCHAR, 8, '0'), 'sub' || lpad(i::VARCHAR, 8, '0'),
              TIMESTAMP '{as_of}' - to_days((k * 30 + hash(i, 2) % 30)::INTEGER),
              3900, 3900, 'USD', 'paid', TIMESTAMP '{as_of}' - to_days((k * 30 + hash(i, 2) % 30)::INTEGER), 1,
              'bench', i * 8 + k
       FROM range({n}) t(i), range(6) u(k)""",
    # the last two payment attempts; 3% of the latest failed; 5% of cards expire within ~2 months
    """INSERT INTO payment_attempts (attempt_id, customer_id, attempted_at, amount, currency, status, decline_code,
                                     card_exp_month, card_exp_year, source, _row_hash)
       SELECT 'py' || i || '_' || k, 'c' || lpad(i::VARCHAR, 8, '0'),
              TIMESTAMP '{as_of}' - to_days((k * 30 + hash(i, 2) % 30)::INTEGER),
              3900, 'USD',
              CASE WHEN k = 0 AND hash(i, 6) % 1000 < 30 THEN 'failed' ELSE 'succeeded' END,
              CASE WHEN k = 0 AND hash(i, 6) % 1000 < 30 THEN 'insufficient_funds' END,
              CASE WHEN hash(i, 7) % 1000 < 50 THEN 1 + (hash(i, 8) % 2)::INTEGER
                   ELSE 1 + (hash(i, 8) % 12)::INTEGER END,
              CASE WHEN hash(i, 7) % 1000 < 50 THEN 2026 ELSE 2027 + (hash(i, 9) % 4)::INTEGER END,
              'bench', i * 2 + k
       FROM range({n}) t(i), range(2) u(k)""",
    # fortnightly roll-ups of logins and feature uses over 126 days; 8% decaying in the last 30 days
    """INSERT INTO product_events (event_id, customer_id, occurred_at, event_type, feature, count, source, _row_hash)
       SELECT 'ev' || i || '_' || k || '_' || e, 'c' || lpad(i::VARCHAR, 8, '0'),
              TIMESTAMP '{as_of}' - to_days((k * 14 + 1 + hash(i, 10) % 13)::INTEGER),
              CASE WHEN e = 0 THEN 'login' ELSE 'feature_used' END,
              CASE WHEN e = 1 THEN 'feature_' || (hash(i, k, 11) % 6)::VARCHAR END,
              greatest(1, ((1 + hash(i, 12) % 20) * (e + 1)
                           * CASE WHEN k < 2 AND hash(i, 13) % 1000 < 80 THEN 0.2 ELSE 1 END)::BIGINT),
              'bench', i * 18 + k * 2 + e
       FROM range({n}) t(i), range(9) u(k), range(2) v(e)""",
    # tickets for 30%: a quarter still open, CSAT on the rest
    """INSERT INTO tickets (ticket_id, customer_id, opened_at, resolved_at, status, priority, csat, source, _row_hash)
       SELECT 'tk' || i, 'c' || lpad(i::VARCHAR, 8, '0'),
              TIMESTAMP '{as_of}' - to_days((hash(i, 14) % 200)::INTEGER),
              CASE WHEN hash(i, 15) % 4 > 0 THEN TIMESTAMP '{as_of}' - to_days((hash(i, 14) % 200)::INTEGER)
                                                 + INTERVAL 2 DAY END,
              CASE WHEN hash(i, 15) % 4 > 0 THEN 'solved' ELSE 'open' END, 'normal',
              CASE WHEN hash(i, 15) % 4 > 0 THEN 1 + (hash(i, 16) % 5)::INTEGER END,
              'bench', i
       FROM range({n}) t(i) WHERE hash(i, 17) % 1000 < 300""",
    # NPS answers for 20%
    """INSERT INTO survey_responses (response_id, customer_id, responded_at, survey, question_id, score, source,
                                     _row_hash)
       SELECT 'r' || i, 'c' || lpad(i::VARCHAR, 8, '0'), TIMESTAMP '{as_of}' - to_days((hash(i, 18) % 300)::INTEGER),
              'nps', 'nps', (hash(i, 19) % 11)::INTEGER, 'bench', i
       FROM range({n}) t(i) WHERE hash(i, 20) % 1000 < 200""",
]

SCORE_CHILD = r"""
import datetime as dt, json, resource, sys, time
import pyarrow.compute as pc
from winback.kit.resources import peak_rss_mb
from winback.history.store import ibis_connection
from winback.analytics.features import customer_features
from winback.analytics.health import health_scores
con = ibis_connection(sys.argv[1])
as_of = dt.datetime.fromisoformat(sys.argv[2])
t0 = time.perf_counter()
features = customer_features(con, as_of)
t1 = time.perf_counter()
health = health_scores(features)
t2 = time.perf_counter()
bands = health.group_by("health_band").aggregate([("health_band", "count")]).to_pylist()
peak = peak_rss_mb()
print(json.dumps({"features_s": t1 - t0, "score_s": t2 - t1, "rows": features.num_rows, "peak_mb": peak,
                  "bands": {r["health_band"]: r["health_band_count"] for r in bands},
                  "examples": [health.filter(pc.equal(health.column("health_band"), band)).slice(0, 1).to_pylist()
                               for band in ("watch", "at_risk")]}, default=str))
"""


def synthesise(path: Path, customers: int) -> dict[str, int]:
    from winback.history.store import open_history, row_counts

    with open_history(path) as con:
        for sql in SYNTH_SQL:
            con.execute(sql.format(n=customers, as_of=AS_OF))
        return {k: v for k, v in row_counts(con).items() if v}


def bench_scoring(root: Path, customers: int) -> None:
    path = root / f"health_{customers}.duckdb"
    if not path.exists():
        t = time.perf_counter()
        counts = synthesise(path, customers)
        print(f"synthesised {customers:,} customers, {sum(counts.values()):,} rows in {time.perf_counter() - t:.1f}s: "
              + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    child = subprocess.run([sys.executable, "-c", SCORE_CHILD, str(path), AS_OF], capture_output=True, text=True)
    if child.returncode:
        print(child.stderr[-3000:])
        raise SystemExit(1)
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    total = figures["features_s"] + figures["score_s"]
    print(f"health of {figures['rows']:,} customers: features {figures['features_s']:.1f}s + score "
          f"{figures['score_s']:.1f}s = {total:.1f}s, peak RSS {figures['peak_mb']:,.0f} MB; bands {figures['bands']}")
    for example in figures["examples"]:
        print(f"  e.g. {example}")


def bench_model(root: Path, customers: int) -> None:
    import datetime as dt

    from winback.analytics.churn_risk import ENGAGEMENT_FEATURES, MODEL_FEATURES, train_and_evaluate
    from winback.history.store import ibis_connection
    from winback.ingest.service import ingest
    from winback.synth import generate
    from winback.workspace import init_workspace

    ws = root / f"model_ws_{customers}"
    if not (ws / "winback.toml").exists():
        t = time.perf_counter()
        generate("saas", customers, 7, root / f"model_data_{customers}", fmt="parquet")
        settings = init_workspace(ws, now="2026-01-15T00:00:00Z")
        ingest(settings, root / f"model_data_{customers}")
        print(f"generated and ingested {customers:,} SaaS customers in {time.perf_counter() - t:.1f}s")
    from winback.config import load_settings

    con = ibis_connection(load_settings(ws).history_path)
    as_of = dt.datetime(2025, 12, 31)
    try:
        for label, columns in (("all features", MODEL_FEATURES),
                               ("without engagement", [c for c in MODEL_FEATURES if c not in ENGAGEMENT_FEATURES])):
            t = time.perf_counter()
            r = train_and_evaluate(con, as_of, feature_columns=columns).report
            print(f"churn risk ({label}, {time.perf_counter() - t:.1f}s): n_train {r['n_train']:,} "
                  f"n_test {r['n_test']:,} churned {r['positives']}; "
                  f"model AUC {r['auc']:.3f} Brier {r['brier']:.4f} ECE {r['ece']:.4f} ({r['calibration']}) | "
                  f"health score AUC {r['baseline_auc']:.3f} Brier {r['baseline_brier']:.4f} "
                  f"ECE {r['baseline_ece']:.4f}")
            print("  top features: " + ", ".join(f"{f['feature']} {f['auc_drop']:.3f}"
                                                 for f in r["feature_importance"][:5]))
    finally:
        con.disconnect()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--model-customers", type=int, default=20_000)
    ap.add_argument("--keep", type=Path, help="reuse/keep the data in this folder")
    ap.add_argument("--skip-model", action="store_true")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp())
    root.mkdir(parents=True, exist_ok=True)
    bench_scoring(root, args.customers)
    if not args.skip_model:
        bench_model(root, args.model_customers)


if __name__ == "__main__":
    main()
