"""Hand-built histories for segment tests: a customer profile plus event rows in a DuckDB file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from winback.history.store import open_history
from winback.insights.profile import PROFILE_SCHEMA, write_profile
from winback.models.history import TABLES_BY_NAME
from winback.segments.compiler import compile_segment
from winback.segments.spec import parse_spec

AS_OF = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.timezone.utc)  # = tests.conftest.TEST_NOW
TIME_COLUMNS = {c.name for t in TABLES_BY_NAME.values() for c in t.columns if c.kind == "timestamp"}
PROFILE_TIME_COLUMNS = {f.name for f in PROFILE_SCHEMA if pa.types.is_timestamp(f.type)}


def ts(value):
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(value)


def profile_table(rows: list[dict]) -> pa.Table:
    """Profile rows as dicts (``source`` defaults to ``s``; timestamps as ISO text)."""
    names = sorted({k for r in rows for k in r} | {"source"})
    unknown = set(names) - set(PROFILE_SCHEMA.names)
    assert not unknown, f"unknown profile columns {unknown}"
    data = {}
    for name in names:
        values = [r.get(name, "s" if name == "source" else None) for r in rows]
        if name in PROFILE_TIME_COLUMNS:
            values = [ts(v) for v in values]
        data[name] = pa.array(values, type=PROFILE_SCHEMA.field(name).type)
    return pa.table(data)


def write_events(con, **tables: list[dict]) -> None:
    for name, rows in tables.items():
        spec = TABLES_BY_NAME[name]
        names = [c.name for c in spec.columns] + ["source", "_row_hash"]
        for i, row in enumerate(rows):
            full = {"source": "s", "_row_hash": i, **row}
            unknown = set(full) - set(names)
            assert not unknown, f"{name}: unknown columns {unknown}"
            values = [ts(full.get(n)) if n in TIME_COLUMNS else full.get(n) for n in names]
            cols = ", ".join(f'"{n}"' for n in names)
            con.execute(f'INSERT INTO "{name}" ({cols}) VALUES ({", ".join("?" * len(names))})', values)


def write_store(path: Path, profile: list[dict], **events: list[dict]) -> Path:
    """Create (or replace the profile and add events to) a history file."""
    with open_history(path) as con:
        write_profile(con, profile_table(profile))
        write_events(con, **events)
    return path


def spec_of(doc) -> object:
    if isinstance(doc, str):
        doc = yaml.safe_load(doc)
    if "match" not in doc:
        doc = {"name": "t", "match": doc}
    return parse_spec(doc)


def select_ids(path: Path, doc, as_of: dt.datetime = AS_OF, resolver=None) -> list[str]:
    """Run a spec (a full document, or just its match tree) and return the sorted customer ids."""
    spec = doc if hasattr(doc, "match") else spec_of(doc)
    compiled = compile_segment(spec, as_of, resolver)
    with open_history(path, read_only=True) as con:
        return sorted(r[1] for r in con.execute(compiled.sql, compiled.params).fetchall())


@pytest.fixture
def store(tmp_path):
    """A factory: ``store(profile_rows, orders=[...], ...)`` -> a history path."""
    count = {"n": 0}

    def make(profile: list[dict], **events: list[dict]) -> Path:
        count["n"] += 1
        return write_store(tmp_path / f"history_{count['n']}.duckdb", profile, **events)

    return make
