"""An analysed SaaS workspace on each state backend, shared by the campaign tests of a module.

``analysed`` generates 1,500 customers once per session, then per backend ingests and analyses
them (scores, reasons, segments) and yields a factory that copies nothing: tests that write
enrollments get a fresh state via ``fresh_campaign_state`` (campaign tables emptied).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("WINBACK_TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
DEMO_NOW = "2025-12-31T10:00:00Z"
CAMPAIGN_TABLES = ("dunning_attempts", "dunning_cases", "billing_payment_methods", "billing_subscriptions",
                   "sandbox_charges", "sandbox_cards", "conversions", "tracking_events", "survey_responses", "customer_preferences", "experiment_decisions",
                   "webhook_events", "delivery_attempts", "call_tasks", "outbox_messages", "enrollments", "coupons", "customer_events",
                   "send_counters", "suppressions", "campaigns", "playbook_versions")


@pytest.fixture(scope="session")
def saas_files(tmp_path_factory) -> Path:
    from winback.synth import generate

    root = tmp_path_factory.mktemp("campaigns_generated")
    generate("saas", 1500, 3, root / "saas", fmt="parquet", observation_end=__import__("datetime").date(2025, 12, 31))
    return root / "saas"


@pytest.fixture(scope="module", params=BACKENDS)
def analysed(request, tmp_path_factory, saas_files):
    """Settings of an ingested and analysed workspace (clock pinned to DEMO_NOW)."""
    from winback.ingest.service import ingest
    from winback.reports.analysis_report import run_analysis
    from winback.workspace import init_workspace

    root = tmp_path_factory.mktemp(f"campaigns_{request.param}")
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'state.db'}"
    else:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    settings = init_workspace(root / "ws", state_url=url, now=DEMO_NOW)
    ingest(settings, saas_files)
    run_analysis(settings, write_report=False)
    try:
        yield settings
    finally:
        if schema:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


@pytest.fixture
def fresh(analysed):
    """The analysed workspace with every campaign/delivery table emptied (and the clock reset)."""
    from winback.kit.db import make_engine

    engine = make_engine(analysed.resolved_state_url)
    with engine.begin() as conn:
        for table in CAMPAIGN_TABLES:
            conn.execute(text(f'DELETE FROM "{table}"'))
    engine.dispose()
    for folder in ("playbooks", "templates"):
        for f in (analysed.workspace / folder).glob("*"):
            if f.is_file():
                f.unlink()
    analysed.now = DEMO_NOW
    return analysed
