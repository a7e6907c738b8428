"""Ingest throughput: N transaction rows (orders) from CSV and Parquet into the history store.

Prints figures; asserts nothing. Target from issue 2: >= 500,000 rows/s for 10 million rows.

    python benchmarks/bench_ingest.py [--rows 10000000] [--customers 200000] [--format csv|parquet|both]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from winback.ingest.service import ingest
from winback.workspace import init_workspace


def make_files(folder: Path, rows: int, customers: int, seed: int = 1) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    cust_ids = pa.array(np.char.add("c", np.arange(customers).astype(str)))
    created = np.datetime64("2023-01-01T00:00:00") + rng.integers(0, 365 * 86400, customers).astype("timedelta64[s]")
    customers_tbl = pa.table({
        "customer_id": cust_ids,
        "email": pa.array(np.char.add(np.char.add("u", np.arange(customers).astype(str)), "@example.com")),
        "created_at": pa.array(np.datetime_as_string(created, unit="s")).cast(pa.string()),
    })
    pick = rng.integers(0, customers, rows)
    ts = np.datetime64("2024-01-01T00:00:00") + rng.integers(0, 700 * 86400, rows).astype("timedelta64[s]")
    orders_tbl = pa.table({
        "order_id": pa.array(np.char.add("o", np.arange(rows).astype(str))),
        "customer_id": pa.array(np.char.add("c", pick.astype(str))),
        "ordered_at": pa.array(np.char.add(np.datetime_as_string(ts, unit="s"), "Z")),
        "total_amount": pa.array(rng.integers(100, 50_000, rows)),
        "currency": pa.array(np.full(rows, "USD")),
    })
    files = {}
    for fmt in ("csv", "parquet"):
        d = folder / fmt
        d.mkdir()
        if fmt == "csv":
            pacsv.write_csv(customers_tbl, d / "customers.csv")
            pacsv.write_csv(orders_tbl, d / "orders.csv")
        else:
            pq.write_table(customers_tbl, d / "customers.parquet")
            pq.write_table(orders_tbl, d / "orders.parquet")
        files[fmt] = d
    return files


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--format", choices=["csv", "parquet", "both"], default="both")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        t = time.perf_counter()
        files = make_files(tmp_path, args.rows, args.customers)
        print(f"made {args.rows:,} order rows + {args.customers:,} customers in {time.perf_counter() - t:.1f}s")
        for fmt in (["csv", "parquet"] if args.format == "both" else [args.format]):
            d = files[fmt]
            size = (d / f"orders.{fmt}").stat().st_size / 1e6
            settings = init_workspace(tmp_path / f"ws-{fmt}", now="2026-01-01T00:00:00Z")
            ingest(settings, d / f"customers.{fmt}")
            t = time.perf_counter()
            result = ingest(settings, d / f"orders.{fmt}")
            first = time.perf_counter() - t
            t = time.perf_counter()
            again = ingest(settings, d / f"orders.{fmt}")
            second = time.perf_counter() - t
            assert result.tables["orders"].inserted == args.rows and again.tables["orders"].unchanged == args.rows
            print(f"{fmt:8} orders file {size:,.0f} MB: first import {first:.1f}s = {args.rows / first:,.0f} rows/s; "
                  f"re-import (all unchanged) {second:.1f}s = {args.rows / second:,.0f} rows/s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main()
