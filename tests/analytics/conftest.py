"""Fixtures for analytics tests: hand-built histories (rows written straight into a history file
created from the canonical DDL) and one generated SaaS + e-commerce history with ground truth."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from winback.history.store import ibis_connection, open_history
from winback.models.history import TABLES_BY_NAME

UTC = dt.timezone.utc


def ts(text: str | None) -> dt.datetime | None:
    """``2024-01-01`` or ``2024-01-01T10:00`` -> naive UTC datetime (the history stores zone-less UTC)."""
    if text is None:
        return None
    return dt.datetime.fromisoformat(text)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


DEFAULTS = {
    "subscriptions": {"status": "active", "currency": "USD", "plan_id": "plan_starter", "mrr": 0},
    "subscription_changes": {"currency": "USD", "change_type": "plan_change"},
    "invoices": {"currency": "USD", "status": "paid", "amount_due": 0, "attempt_count": 1},
    "orders": {"currency": "USD", "status": "completed"},
}
TIME_COLUMNS = {c.name for t in TABLES_BY_NAME.values() for c in t.columns if c.kind == "timestamp"}


def write_history(path: Path, **tables: list[dict]):
    """Create a history file holding exactly ``tables`` (name -> rows as dicts); returns an Ibis connection.

    Rows get ``source = 's'`` unless they say otherwise; timestamps are ISO text.
    """
    with open_history(path) as con:
        for name, rows in tables.items():
            spec = TABLES_BY_NAME[name]
            names = [c.name for c in spec.columns] + ["source", "_row_hash"]
            for i, row in enumerate(rows):
                full = {**DEFAULTS.get(name, {}), "source": "s", "_row_hash": i, **row}
                unknown = set(full) - set(names)
                assert not unknown, f"{name}: unknown columns {unknown}"
                values = [ts(full.get(n)) if n in TIME_COLUMNS else full.get(n) for n in names]
                cols = ", ".join(f'"{n}"' for n in names)
                con.execute(f'INSERT INTO "{name}" ({cols}) VALUES ({", ".join("?" * len(names))})', values)
    return ibis_connection(path)


@pytest.fixture
def history(tmp_path):
    """A factory: ``history(subscriptions=[...], invoices=[...], ...)`` -> Ibis connection."""
    count = {"n": 0}
    cons = []

    def make(**tables):
        count["n"] += 1
        con = write_history(tmp_path / f"history_{count['n']}.duckdb", **tables)
        cons.append(con)
        return con

    yield make
    for con in cons:
        con.disconnect()


GENERATED_NOW = "2026-01-15T00:00:00Z"
OBSERVATION_END = utc("2025-12-31")  # the generator's default observation end (00:00 UTC)


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """A workspace with 3,000 generated SaaS customers (source ``saas``) and 800 e-commerce
    customers (source ``shop``, same customer ids: only ``source`` tells them apart).

    Returns a dict: ``history`` (path), ``saas_truth`` / ``shop_truth`` (ground-truth folders).
    """
    from winback.ingest.service import IngestOptions, ingest
    from winback.synth import generate
    from winback.workspace import init_workspace

    root = tmp_path_factory.mktemp("generated")
    generate("saas", 3000, 1, root / "saas", fmt="parquet")
    generate("ecommerce", 800, 2, root / "shop", fmt="parquet")
    settings = init_workspace(root / "ws", now=GENERATED_NOW)
    ingest(settings, root / "saas", IngestOptions(source="saas"))
    ingest(settings, root / "shop", IngestOptions(source="shop"))
    return {"history": settings.history_path, "saas": root / "saas", "shop": root / "shop"}


@pytest.fixture
def generated_con(generated):
    con = ibis_connection(generated["history"])
    yield con
    con.disconnect()
