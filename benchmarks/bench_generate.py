"""Benchmark the data generator: seconds, rows and rows/s per kind and format.

    python benchmarks/bench_generate.py [--customers 1000000] [--kind saas|ecommerce|both]
                                        [--fmt csv|parquet|jsonl] [--seed 1] [--keep DIR]

Generates into a temporary directory (removed afterwards unless ``--keep`` names a folder) and
prints one line per run plus the biggest tables. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from winback.synth import generate


def _disk_bytes(paths) -> int:
    return sum(Path(p).stat().st_size for p in paths)


def run(kind: str, customers: int, fmt: str, seed: int, keep: Path | None) -> dict:
    target = keep / f"{kind}-{fmt}" if keep else Path(tempfile.mkdtemp(prefix=f"winback-bench-{kind}-"))
    try:
        began = time.perf_counter()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        result = generate(kind, customers, seed, target, fmt=fmt)
        seconds = time.perf_counter() - began
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "kind": kind, "fmt": fmt, "customers": customers, "seconds": seconds, "rows": result.total_rows,
            "rows_per_s": result.total_rows / seconds, "bytes": _disk_bytes(result.files.values()),
            "user_s": cpu1.ru_utime - cpu0.ru_utime, "sys_s": cpu1.ru_stime - cpu0.ru_stime,
            "tables": dict(sorted(result.rows.items(), key=lambda kv: -kv[1])),
        }
    finally:
        if keep is None:
            shutil.rmtree(target, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--kind", choices=("saas", "ecommerce", "both"), default="both")
    parser.add_argument("--fmt", choices=("csv", "parquet", "jsonl"), default="parquet")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="write into this folder and keep the files")
    parser.add_argument("--no-header", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.no_header:
        print(f"winback.synth benchmark: {args.customers:,} customers, format {args.fmt}, seed {args.seed}, "
              f"each kind in a fresh process")
        print(f"{'kind':<10} {'seconds':>8} {'rows':>12} {'rows/s':>12} {'MB':>8} {'user s':>7} {'sys s':>7}",
              flush=True)
    if args.kind == "both":
        # a fresh interpreter per kind: the second run would otherwise reuse the first one's heap
        for kind in ("saas", "ecommerce"):
            cmd = [sys.executable, __file__, "--kind", kind, "--customers", str(args.customers), "--fmt", args.fmt,
                   "--seed", str(args.seed), "--no-header"]
            if args.keep:
                cmd += ["--keep", str(args.keep)]
            code = subprocess.run(cmd, check=False).returncode
            if code:
                return code
        return 0
    r = run(args.kind, args.customers, args.fmt, args.seed, args.keep)
    print(f"{r['kind']:<10} {r['seconds']:>8.1f} {r['rows']:>12,} {r['rows_per_s']:>12,.0f} "
          f"{r['bytes'] / 1e6:>8,.0f} {r['user_s']:>7.1f} {r['sys_s']:>7.1f}", flush=True)
    top = ", ".join(f"{name} {rows:,}" for name, rows in list(r["tables"].items())[:5])
    print(f"{'':<10} largest tables: {top}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
