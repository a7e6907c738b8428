"""``generate()``: write a realistic dataset plus its ground truth into a folder."""

from __future__ import annotations

import datetime as dt
import json
import numbers
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq

from winback.synth.arrays import START, seconds
from winback.synth.writer import EXTENSIONS, TableWriter

KINDS = ("saas", "ecommerce")
FORMATS = tuple(EXTENSIONS)
EARLIEST_END = dt.date(2023, 3, 1)
MAX_CUSTOMERS = 50_000_000
GROUND_TRUTH_PARQUET = "ground_truth.parquet"
GROUND_TRUTH_JSON = "ground_truth.json"


@dataclass
class GenerateResult:
    kind: str
    customers: int
    seed: int
    fmt: str
    observation_end: dt.date
    files: dict[str, Path]
    rows: dict[str, int]
    ground_truth: Path
    seconds: float
    facts: dict = field(default_factory=dict, repr=False)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> dict:
        """JSON-able facts about the dataset (row counts, churn, reasons, model parameters ...)."""
        out = {
            "kind": self.kind,
            "customers": self.customers,
            "seed": self.seed,
            "format": self.fmt,
            "observation_end": self.observation_end.isoformat(),
            "rows": dict(self.rows),
            "total_rows": self.total_rows,
            "seconds": round(self.seconds, 3),
        }
        out.update(self.facts)
        return out


def generate(kind: str, customers: int, seed: int, out_dir: Path, fmt: str = "csv",
             observation_end: dt.date = dt.date(2025, 12, 31),
             progress: Callable[[str], None] | None = None) -> GenerateResult:
    """Generate ``customers`` customers of a ``kind`` business into ``out_dir`` as ``fmt`` files.

    Writes one ``<table>.<ext>`` per table of the kind (columns exactly as the table spec in
    :mod:`winback.models.history`), ``ground_truth.parquet`` (one row per customer) and
    ``ground_truth.json`` (the summary). Same arguments give byte-identical files.
    """
    _check(kind, customers, seed, fmt, observation_end)
    began = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    horizon = seconds(observation_end)
    if kind == "saas":
        from winback.synth import saas as model
    else:
        from winback.synth import ecommerce as model
    writer = TableWriter(out_dir, fmt, progress)
    try:
        tables, truth_table, facts = model.build(int(customers), int(seed), horizon, progress, writer.submit)
    except BaseException:
        writer.abort()
        raise
    written = writer.finish()
    files = {name: written[name] for name in tables}
    rows = {name: tables[name].num_rows for name in tables}
    truth_path = out_dir / GROUND_TRUTH_PARQUET
    tmp = truth_path.with_name(truth_path.name + ".tmp")
    pq.write_table(truth_table, tmp, compression="zstd")
    tmp.replace(truth_path)
    result = GenerateResult(kind=kind, customers=int(customers), seed=int(seed), fmt=fmt,
                            observation_end=observation_end, files=files, rows=rows, ground_truth=truth_path,
                            seconds=0.0, facts=facts)
    summary = result.summary()
    summary.pop("seconds")  # keep the file byte-identical between runs
    summary["ground_truth_columns"] = truth_table.column_names
    json_path = out_dir / GROUND_TRUTH_JSON
    json_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    result.seconds = time.perf_counter() - began
    if progress:
        progress(f"{kind}: {result.total_rows:,} rows in {result.seconds:.1f} s")
    return result


def _check(kind, customers, seed, fmt, observation_end) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if isinstance(customers, bool) or not isinstance(customers, numbers.Integral):
        raise ValueError(f"customers must be a whole number, got {customers!r}")
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    if customers > MAX_CUSTOMERS:
        raise ValueError(f"customers must be at most {MAX_CUSTOMERS:,}, got {customers:,}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if isinstance(observation_end, dt.datetime) or not isinstance(observation_end, dt.date):
        raise ValueError(f"observation_end must be a datetime.date, got {observation_end!r}")
    if observation_end < EARLIEST_END:
        raise ValueError(f"observation_end must be on or after {EARLIEST_END.isoformat()} "
                         f"(history starts {dt.datetime.fromtimestamp(START, dt.timezone.utc).date()})")
    if observation_end > dt.date(2100, 1, 1):
        raise ValueError("observation_end must be before 2100")
