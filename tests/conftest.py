"""Shared fixtures: every state-store test runs on SQLite and, when WINBACK_TEST_DATABASE_URL is
set (CI sets it), on PostgreSQL too - each test in a schema of its own that is dropped after.

Under pytest-xdist (``make test`` runs two workers) each worker also gets a PostgreSQL database of
its own, made from WINBACK_TEST_DATABASE_URL's server when the worker starts and dropped when it
ends: schemas keep the tables apart, but advisory locks (the send gate's) are per database."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

# pytest imports readline in the controlling process (capture.py), and GNU readline exports
# COLUMNS=80 to the process environment, which xdist workers inherit: rich would then fix the width
# of the CLI's consoles (made at import) to 80 columns and ignore the COLUMNS that tests pass to
# CliRunner. The tests' terminal is not the one pytest runs in.
for _var in ("COLUMNS", "LINES"):
    os.environ.pop(_var, None)

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from winback.config import Settings
from winback.workspace import init_workspace

PG_URL = os.environ.get("WINBACK_TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
TEST_NOW = "2026-01-15T12:00:00Z"  # the pinned clock of test workspaces
_WORKER_DATABASE: dict[str, str] = {}  # xdist worker: the admin URL and the name of its database


def pytest_configure(config):
    """An xdist worker points WINBACK_TEST_DATABASE_URL at a fresh database of its own (before any
    test module reads it), named after the worker and the run (two runs may share the server)."""
    global PG_URL
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not PG_URL or not worker:
        return
    admin_url = make_url(PG_URL)
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]
    name = f"{admin_url.database or 'test'}_{worker}_{run}"[:63]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
    finally:
        admin.dispose()
    _WORKER_DATABASE.update(admin=PG_URL, name=name)
    PG_URL = admin_url.set(database=name).render_as_string(hide_password=False)
    os.environ["WINBACK_TEST_DATABASE_URL"] = PG_URL


# `make test` runs the suite on two pytest-xdist workers with ``--dist loadfile`` (one test file is one
# unit of work, so a module's fixtures are built once), refined here: the browser tests are one unit,
# and the longest files are handed out first so that neither worker is left with one at the end.
# The list only orders the work; it never selects tests. (Not loadgroup + xdist_group marks: with
# pytest 9.2 xdist 3.8's loadgroup ignores the marks, pytest-dev/pytest-xdist#1386.)
E2E = "tests/e2e/"  # package-scoped server and Playwright browser: its tests stay on one worker
LONG_FIRST = (  # measured: 60-120 s each on 2 cores
    "tests/analytics/test_backends.py",  # PySpark (WINBACK_TEST_SPARK=1)
    "tests/cli/test_generate_demo.py",
    "tests/tracking/test_simulation.py",
    "tests/analytics/test_service.py",
    "tests/delivery/test_crash.py",
    "tests/campaigns/test_plan_schedule.py",
    E2E,
    "tests/web/test_pages.py",
    "tests/playbooks/test_coupons.py",
)


def pytest_collection_modifyitems(config, items):
    """Every test has an id of its own. Schemathesis names its generated tests
    ``test_x[GET /path]``, but under pytest 9.2 their ids all lose the bracket; xdist's loadfile
    keys the work by id and would run one test of each such set."""
    for item in items:
        name, node_id = item.name, getattr(item, "_id", None)
        if name.endswith("]") and "[" in name and not item.nodeid.endswith("]") and hasattr(node_id, "with_params"):
            item._id = node_id.with_params(name[name.index("[") + 1:-1])
    if os.environ.get("PYTEST_XDIST_WORKER"):
        seen: set[str] = set()
        twice = sorted({i.nodeid for i in items if i.nodeid in seen or seen.add(i.nodeid)})
        if twice:
            raise pytest.UsageError(f"tests sharing one id would run once on pytest-xdist: {twice[:5]}")


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return E2E if scope.startswith(E2E) else scope

        def _assign_work_unit(self, node) -> None:
            for scope in LONG_FIRST:  # the longest unit not yet handed out goes next
                if scope in self.workqueue:
                    self.workqueue.move_to_end(scope, last=False)
                    break
            super()._assign_work_unit(node)

    return FileScheduling(config, log)


def pytest_unconfigure(config):
    if not _WORKER_DATABASE:
        return
    admin = create_engine(_WORKER_DATABASE["admin"], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:  # FORCE: a connection a test left open must not keep it
            conn.execute(text(f'DROP DATABASE IF EXISTS "{_WORKER_DATABASE["name"]}" WITH (FORCE)'))
    finally:
        admin.dispose()


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
