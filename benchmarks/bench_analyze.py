"""`winback analyze` at scale: N SaaS customers (1M -> ~10M invoices/payments), timed step by step.

Prints figures; asserts nothing. Target from issue 3: the whole analyze within 60 s and 4 GB
peak memory on a 2-core machine with 1M customers and 10M transactions.

    python benchmarks/bench_analyze.py [--customers 1000000] [--kind saas|ecommerce] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from winback.config import load_settings
from winback.kit.resources import peak_rss_mb
from winback.reports.analysis_report import run_analysis
t = time.perf_counter()
outcome, path = run_analysis(load_settings(sys.argv[1]))
total = time.perf_counter() - t
peak = peak_rss_mb()
print(json.dumps({"seconds": total, "peak_mb": peak, "steps": {k: round(v, 2) for k, v in outcome.seconds.items()
                  if k != "started"}, "scored": outcome.summary["customers_scored"]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--kind", choices=["saas", "ecommerce"], default="saas")
    ap.add_argument("--keep", type=Path, help="reuse/keep the workspace in this folder")
    args = ap.parse_args()
    from winback.ingest.service import ingest
    from winback.synth import generate
    from winback.workspace import init_workspace

    root = args.keep or Path(tempfile.mkdtemp())
    ws = root / "ws"
    if not (ws / "winback.toml").exists():
        t = time.perf_counter()
        gen = generate(args.kind, args.customers, 1, root / "data", fmt="parquet")
        print(f"generated {args.customers:,} {args.kind} customers, {gen.total_rows:,} rows in "
              f"{time.perf_counter() - t:.1f}s")
        settings = init_workspace(ws, now="2025-12-31T23:59:59Z")
        t = time.perf_counter()
        result = ingest(settings, root / "data")
        print(f"ingested {result.rows_read:,} rows in {time.perf_counter() - t:.1f}s "
              f"({result.rows_read / (time.perf_counter() - t):,.0f} rows/s)")
    child = subprocess.run([sys.executable, "-c", CHILD, str(ws)], capture_output=True, text=True)
    if child.returncode:
        print(child.stderr[-3000:])
        raise SystemExit(1)
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"analyze: {figures['seconds']:.1f}s, peak RSS {figures['peak_mb']:,.0f} MB, "
          f"{figures['scored']:,} customers scored")
    print("steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in figures["steps"].items()))


if __name__ == "__main__":
    main()
