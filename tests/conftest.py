"""Shared fixtures: every state-store test runs on SQLite and, when WINBACK_TEST_DATABASE_URL is
set (CI sets it), on PostgreSQL too - each test in a schema of its own that is dropped after."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from winback.config import Settings
from winback.workspace import init_workspace

PG_URL = os.environ.get("WINBACK_TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
TEST_NOW = "2026-01-15T12:00:00Z"  # the pinned clock of test workspaces


@pytest.fixture(params=BACKENDS)
def state_url(request, tmp_path: Path):
    """A state-store URL on each backend under test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def workspace(tmp_path: Path, state_url: str) -> Settings:
    """A fresh workspace with its clock pinned to TEST_NOW."""
    return init_workspace(tmp_path / "ws", state_url=state_url, now=TEST_NOW)


@pytest.fixture
def sqlite_workspace(tmp_path: Path) -> Settings:
    """A fresh embedded-default workspace (for tests that are not about the state backend)."""
    return init_workspace(tmp_path / "ws", now=TEST_NOW)
