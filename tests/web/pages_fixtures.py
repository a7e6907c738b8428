"""A small analysed workspace that has sent campaigns, for the dashboard tests (tests/web/test_pages.py)
and the browser tests (tests/e2e/): 1,500 generated SaaS customers, ingested, analysed, planned and
21 simulated days of sending (the pattern of tests/campaigns/conftest.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from winback.config import Settings
from winback.web import auth

DEMO_NOW = "2025-12-31T10:00:00Z"
PASSWORD = "correct horse battery"
ROLES = ("viewer", "marketer", "admin")


def build_sent_workspace(root: Path, state_url: str | None = None) -> Settings:
    from winback.campaigns.planner import plan
    from winback.delivery.service import run_simulated
    from winback.ingest.service import ingest
    from winback.reports.analysis_report import run_analysis
    from winback.synth import generate
    from winback.workspace import init_workspace

    files = root / "generated"
    generate("saas", 1500, 3, files, fmt="parquet", observation_end=dt.date(2025, 12, 31))
    settings = init_workspace(root / "ws", state_url=state_url, now=DEMO_NOW)
    ingest(settings, files)
    run_analysis(settings, write_report=False)
    plan(settings, schedule=False)
    run_simulated(settings, start=settings.clock().now(), days=21)
    return settings


def add_users(engine, now: dt.datetime) -> None:
    for role in ROLES:
        auth.create_user(engine, f"{role}@example.com", PASSWORD, role, now=now)
