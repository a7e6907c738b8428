"""Helpers for the generator tests: read a generated dataset back and check it against the specs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from winback.models.history import TABLES_BY_NAME

SAAS_TABLES = ("customers", "plans", "price_changes", "subscriptions", "subscription_changes", "invoices",
               "payment_attempts", "checkouts", "product_events", "tickets", "survey_responses", "releases")
SHOP_TABLES = ("customers", "orders", "order_items", "checkouts", "product_events", "tickets", "survey_responses")
ISO_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
# plan / order ids that must resolve although the spec declares no reference
EXTRA_REFERENCES = {
    ("customers", "plan_id"): ("plans", "plan_id"),
    ("checkouts", "plan_id"): ("plans", "plan_id"),
    ("checkouts", "order_id"): ("orders", "order_id"),
    ("subscription_changes", "from_plan_id"): ("plans", "plan_id"),
    ("subscription_changes", "to_plan_id"): ("plans", "plan_id"),
}


def header(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        first = f.readline().rstrip("\n")
    return [c.strip('"') for c in first.split(",")]


def read_csv(path: Path, name: str) -> pa.Table:
    """Every column as text; empty cells are null."""
    names = TABLES_BY_NAME[name].column_names
    return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
        column_types={c: pa.string() for c in names}, strings_can_be_null=True, quoted_strings_can_be_null=False))


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_csv(directory: Path, tables: tuple[str, ...]) -> dict[str, pa.Table]:
    return {name: read_csv(directory / f"{name}.csv", name) for name in tables}


def load_truth(directory: Path) -> pa.Table:
    return pq.read_table(directory / "ground_truth.parquet")


def values(table: pa.Table, column: str) -> list:
    return table.column(column).to_pylist()


def non_null(table: pa.Table, column: str) -> pa.ChunkedArray:
    col = table.column(column)
    return col.filter(pc.is_valid(col))


def epoch(table: pa.Table, column: str) -> np.ndarray:
    """Epoch seconds of an ISO text column (NaN for nulls)."""
    col = table.column(column)
    parsed = pc.strptime(col, format="%Y-%m-%dT%H:%M:%SZ", unit="s", error_is_null=False)
    ints = parsed.cast(pa.int64())
    return np.array([np.nan if v is None else float(v) for v in ints.to_pylist()])


def instant(value: dt.date | dt.datetime) -> float:
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    return value.replace(tzinfo=dt.timezone.utc).timestamp()


def spec_problems(name: str, table: pa.Table, observation_end: dt.date) -> list[str]:
    """Cell-level checks of one table (all text columns) against its spec."""
    spec = TABLES_BY_NAME[name]
    problems: list[str] = []
    if table.column_names != spec.column_names:
        problems.append(f"{name}: columns {table.column_names} != {spec.column_names}")
        return problems
    horizon = instant(observation_end)
    start = instant(dt.date(2023, 1, 1))
    for col in spec.columns:
        data = table.column(col.name)
        present = data.filter(pc.is_valid(data))
        where = f"{name}.{col.name}"
        if col.required and col.default is None and data.null_count:
            problems.append(f"{where}: {data.null_count} empty required cells")
        if len(present) == 0:
            continue
        if col.kind == "timestamp":
            if not pc.all(pc.match_substring_regex(present, ISO_PATTERN)).as_py():
                problems.append(f"{where}: not ISO 8601 UTC")
                continue
            secs = pc.strptime(present, format="%Y-%m-%dT%H:%M:%SZ", unit="s").cast(pa.int64())
            lo, hi = pc.min(secs).as_py(), pc.max(secs).as_py()
            if lo < start:
                problems.append(f"{where}: {lo} before 2023-01-01")
            if hi > horizon and not col.future_ok:
                problems.append(f"{where}: after the observation end")
        elif col.kind in ("integer", "money"):
            if not pc.all(pc.match_substring_regex(present, r"^-?\d+$")).as_py():
                problems.append(f"{where}: not whole numbers")
                continue
            ints = present.cast(pa.int64())
            if col.min is not None and pc.min(ints).as_py() < col.min:
                problems.append(f"{where}: below {col.min}")
            if col.max is not None and pc.max(ints).as_py() > col.max:
                problems.append(f"{where}: above {col.max}")
        elif col.kind == "boolean":
            if not pc.all(pc.is_in(present, pa.array(["true", "false"]))).as_py():
                problems.append(f"{where}: booleans must be true/false")
        elif col.kind == "enum":
            if not pc.all(pc.is_in(present, pa.array(list(col.choices)))).as_py():
                problems.append(f"{where}: value outside {col.choices}")
        elif col.kind == "currency":
            if not pc.all(pc.equal(present, "USD")).as_py():
                problems.append(f"{where}: currency other than USD")
        elif col.kind == "json":
            for text in present.to_pylist():
                if not isinstance(json.loads(text), dict):
                    problems.append(f"{where}: not a JSON object")
                    break
        elif col.kind == "email":
            emails = present.to_pylist()
            if any(e != e.lower() or e.rsplit("@", 1)[-1] not in EMAIL_DOMAINS for e in emails):
                problems.append(f"{where}: e-mail outside the reserved example domains")
        elif col.kind == "phone":
            if not pc.all(pc.match_substring_regex(present, r"^\+[1-9]\d{6,14}$")).as_py():
                problems.append(f"{where}: not E.164")
        elif col.kind == "country":
            if not pc.all(pc.match_substring_regex(present, r"^[A-Z]{2}$")).as_py():
                problems.append(f"{where}: not ISO 3166 alpha-2")
        elif col.kind in ("id", "string"):
            if pc.max(pc.utf8_length(present)).as_py() > 255:
                problems.append(f"{where}: longer than 255")
    return problems


def reference_problems(tables: dict[str, pa.Table]) -> list[str]:
    problems = []
    refs = dict(EXTRA_REFERENCES)
    for name, table in tables.items():
        for col in TABLES_BY_NAME[name].columns:
            if col.references:
                refs[(name, col.name)] = col.references
    for (name, column), (target, target_col) in refs.items():
        if name not in tables or target not in tables:
            continue
        wanted = pc.unique(non_null(tables[name], column))
        known = tables[target].column(target_col)
        missing = pc.sum(pc.invert(pc.is_in(wanted, known))).as_py() or 0
        if missing:
            problems.append(f"{name}.{column}: {missing} values not in {target}.{target_col}")
    return problems


def key_problems(tables: dict[str, pa.Table]) -> list[str]:
    problems = []
    for name, table in tables.items():
        key = TABLES_BY_NAME[name].key
        if len(key) == 1:
            col = table.column(key[0])
            if len(pc.unique(col)) != len(col):
                problems.append(f"{name}: duplicate {key[0]}")
        else:
            joined = pc.binary_join_element_wise(*[table.column(k) for k in key], "|")
            if len(pc.unique(joined)) != len(joined):
                problems.append(f"{name}: duplicate key {key}")
    return problems
