"""Open the history store, create its schema from the canonical specs, and read it with Ibis.

Only batch jobs (ingest, analyze) open the history; DuckDB allows one writing process at a
time, so a second writer gets a clear "history store is busy" error instead of a hang.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from winback.kit.errors import WinbackError
from winback.models.history import TABLES, Column, Table

SQL_TYPES = {
    "id": "VARCHAR", "string": "VARCHAR", "text": "VARCHAR", "email": "VARCHAR", "phone": "VARCHAR",
    "timestamp": "TIMESTAMP", "integer": "BIGINT", "money": "BIGINT", "currency": "VARCHAR",
    "boolean": "BOOLEAN", "enum": "VARCHAR", "locale": "VARCHAR", "timezone": "VARCHAR",
    "country": "VARCHAR", "json": "VARCHAR",
}
META_COLUMNS = (("source", "VARCHAR NOT NULL"), ("_row_hash", "BIGINT NOT NULL"),
                ("_import_id", "BIGINT"), ("_ingested_at", "TIMESTAMP"))


def sql_type(column: Column) -> str:
    return SQL_TYPES[column.kind]


def create_table_sql(table: Table, name: str | None = None, temp: bool = False) -> str:
    cols = [f'"{c.name}" {sql_type(c)}' for c in table.columns]
    cols += [f"{n} {t}" for n, t in META_COLUMNS]
    kind = "TEMP TABLE" if temp else "TABLE"
    return f'CREATE {kind} IF NOT EXISTS "{name or table.name}" ({", ".join(cols)})'


def connect(path: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(path), read_only=read_only)
        con.execute("SET enable_progress_bar = false")  # it would print into --json output
        return con
    except duckdb.IOException as exc:
        message = " ".join(str(exc).split())
        if "lock" in message.lower():
            raise WinbackError(f"history store {path} is busy (another winback process has it open)") from exc
        raise WinbackError(f"cannot open history store {path}: {message}") from exc


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every history table that is missing (idempotent)."""
    for table in TABLES:
        con.execute(create_table_sql(table))


@contextmanager
def open_history(path: Path | str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    if read_only and not Path(path).exists():
        raise WinbackError(f"history store {path} does not exist; run `winback init` first")
    con = connect(path, read_only=read_only)
    try:
        if not read_only:
            ensure_schema(con)
        yield con
    finally:
        con.close()


def row_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    existing = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    return {t.name: (con.execute(f'SELECT count(*) FROM "{t.name}"').fetchone()[0] if t.name in existing else 0)
            for t in TABLES}


def ibis_connection(path: Path | str, read_only: bool = True):
    """An Ibis DuckDB backend on the history file: the way analytics read facts."""
    import ibis

    con = ibis.duckdb.connect(str(path), read_only=read_only)
    con.raw_sql("SET enable_progress_bar = false")  # it would print into --json output
    return con
