"""Test helpers: write small files and take snapshots of both stores."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import text

from winback.config import Settings
from winback.history.store import open_history
from winback.kit.db import make_engine
from winback.models.history import TABLES
from winback.models.state import Base


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def snapshot(settings: Settings) -> dict[str, str]:
    """A digest of every row of every table in both stores: equal snapshots mean nothing changed."""
    digests: dict[str, str] = {}
    engine = make_engine(settings.resolved_state_url)
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(text(f'SELECT * FROM "{table.name}" ORDER BY 1')).fetchall()
            digests[f"state.{table.name}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    engine.dispose()
    with open_history(settings.history_path, read_only=True) as con:
        for table in TABLES:
            rows = con.execute(f'SELECT * FROM "{table.name}" ORDER BY ALL').fetchall()
            digests[f"history.{table.name}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return digests


def history_rows(settings: Settings, sql: str) -> list[tuple]:
    with open_history(settings.history_path, read_only=True) as con:
        return con.execute(sql).fetchall()


def state_rows(settings: Settings, sql: str) -> list[tuple]:
    engine = make_engine(settings.resolved_state_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql)).fetchall()]
    finally:
        engine.dispose()
