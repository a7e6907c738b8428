"""Win-back propensity at scale: fit + predict on N generated SaaS customers, timed, with quality figures.

Prints figures; asserts nothing. Quality: time-split and cross-validated AUC / ECE of the return
model, and the Spearman correlation of the predictions with the generator's true no-offer return
probability of the churned customers (an upper bound for AUC on such data is about 0.675: the
generator's own probabilities score that on simulated returns).

    python benchmarks/bench_propensity.py [--customers 50000] [--seed 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

AS_OF = dt.datetime(2025, 12, 31)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="reuse/keep the workspace in this folder")
    args = ap.parse_args()
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from scipy.stats import spearmanr

    from winback.analytics.propensity import fit_propensity
    from winback.history.store import ibis_connection
    from winback.ingest.service import IngestOptions, ingest
    from winback.synth import generate
    from winback.workspace import init_workspace

    root = args.keep or Path(tempfile.mkdtemp())
    ws = root / "ws"
    if not (ws / "winback.toml").exists():
        t = time.perf_counter()
        gen = generate("saas", args.customers, args.seed, root / "data", fmt="parquet")
        print(f"generated {args.customers:,} SaaS customers, {gen.total_rows:,} rows in "
              f"{time.perf_counter() - t:.1f}s")
        settings = init_workspace(ws, now="2026-01-15T00:00:00Z")
        t = time.perf_counter()
        result = ingest(settings, root / "data", IngestOptions(source="saas"))
        print(f"ingested {result.rows_read:,} rows in {time.perf_counter() - t:.1f}s")
    history = ws / "history.duckdb"
    con = ibis_connection(history)
    try:
        t = time.perf_counter()
        model = fit_propensity(con, AS_OF)
        fit_s = time.perf_counter() - t
    finally:
        con.disconnect()
    t = time.perf_counter()
    p = model.predict(model.churned)
    predict_s = time.perf_counter() - t

    r = model.report
    v, cv = r.get("validation", {}), r.get("cross_validation", {})
    print(f"mode {r['mode']}: {r['churn_events']:,} churn events, {r['eligible_events']:,} with a full "
          f"{r['horizon_days']:g}-day horizon, {r['positives']:,} returns ({(r['base_rate'] or 0):.3f})")
    print(f"fit {fit_s:.2f}s (query {r['seconds']['query']:.2f}s, model {r['seconds']['fit']:.2f}s); "
          f"predict {model.churned.num_rows:,} churned customers {predict_s:.3f}s; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    if v.get("auc") is not None:
        print(f"time split: train {v['train_events']:,} ({v['train_returns']} returns) up to {v['train_until'][:10]}, "
              f"test {v['test_events']:,} ({v['test_returns']} returns): AUC {v['auc']:.3f}, Brier {v['brier']:.4f} "
              f"(base rate {v['brier_base_rate']:.4f}), ECE {v['ece']:.4f} (equal-mass {v['ece_equal_mass']:.4f}), "
              f"mean predicted {v['mean_predicted']:.3f} vs observed {v['observed_rate']:.3f}")
        print(f"  prior mode on the same split: AUC {v['prior_mode']['auc']:.3f}, ECE {v['prior_mode']['ece']:.4f}")
        print("  reliability (equal-mass bins): " + ", ".join(
            f"{row['mean_predicted']:.3f}->{row['observed_rate']:.3f}" for row in v["reliability"]))
    if cv.get("auc") is not None:
        print(f"cross-validated ({cv['folds']} folds, {cv['events']:,} churns): AUC {cv['auc']:.3f}, "
              f"ECE {cv['ece']:.4f} (equal-mass {cv['ece_equal_mass']:.4f})")
    for row in r.get("recency_check", []):
        print(f"  away {row['months_away']:>2} months: {row['customers']:,} churners, predicted "
              f"{row['mean_predicted']:.4f}, observed {row['observed_rate']:.4f}")
    truth = pq.read_table(root / "data" / "ground_truth.parquet", columns=["customer_id", "p_return_none"])
    index = {c: i for i, c in enumerate(truth.column("customer_id").to_pylist())}
    rows = pa.array([index[c] for c in model.churned.column("customer_id").to_pylist()])
    p_true = truth.column("p_return_none").take(rows).to_numpy()
    ok = ~np.isnan(p_true)
    print(f"Spearman vs true p_return_none: {spearmanr(p[ok], p_true[ok])[0]:.3f} "
          f"(at churn time {spearmanr(model.predict_at_churn(model.churned)[ok], p_true[ok])[0]:.3f}); "
          f"mean p_return {p.mean():.4f}")


if __name__ == "__main__":
    main()
