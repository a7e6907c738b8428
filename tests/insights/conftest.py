"""Shared fixtures of the insights tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def generated_saas(tmp_path_factory):
    """3,000 generated SaaS customers (seed 1) ingested into one workspace as source ``saas``.

    Returns ``settings``, ``history`` (path) and ``folder`` (the generated files, with
    ``ground_truth.parquet`` / ``.json``). Generated once per test session.
    """
    from winback.ingest.service import IngestOptions, ingest
    from winback.synth import generate
    from winback.workspace import init_workspace

    root = tmp_path_factory.mktemp("insights_generated")
    generate("saas", 3000, 1, root / "saas", fmt="parquet")
    settings = init_workspace(root / "ws", now="2026-01-15T00:00:00Z")
    ingest(settings, root / "saas", IngestOptions(source="saas"))
    return {"settings": settings, "history": settings.history_path, "folder": root / "saas"}
