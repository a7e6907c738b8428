"""Fixtures of the REST API tests: a seeded workspace on each backend, the app, one key per role.

Import them into a test module with ``from tests.web.api_fixtures import *``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from tests.delivery.factories import add_campaign, add_customers, add_enrollment, insert_messages, message_row
from winback.config import Settings
from winback.kit.db import make_engine
from winback.models.campaigns import CustomerEvent
from winback.models.delivery import Suppression
from winback.models.scores import AnalysisRun, CustomerScore
from winback.models.segments import Segment, SegmentMembership
from winback.models.tracking import TrackingEvent
from winback.web.app import create_app
from winback.web.auth import create_api_key, create_user, revoke_api_key

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # tests/conftest.py TEST_NOW
EMAILS = ["alice@example.com", "bob@example.org", "carol@example.net", "dave@example.com", "erin@example.com"]
PASSWORD = "correct horse battery"

__all__ = ["Seeded", "api", "seeded", "NOW", "EMAILS", "PASSWORD", "event"]


@dataclass
class Seeded:
    settings: Settings
    ids: list[int]  # customer ids in EMAILS order
    campaign_id: int
    enrollment_id: int
    message_id: int
    keys: dict[str, str]  # role (viewer, marketer, admin, revoked) -> key


def seed(settings: Settings) -> Seeded:
    engine = make_engine(settings.resolved_state_url)
    try:
        with engine.begin() as conn:
            ids = add_customers(conn, EMAILS, now=NOW - dt.timedelta(days=30))
            run = conn.execute(insert(AnalysisRun.__table__).returning(AnalysisRun.__table__.c.id), {
                "started_at": NOW, "finished_at": NOW, "observation_end": NOW, "customers_scored": 3}).scalar_one()
            statuses = ["churned", "churned", "active", "active", "churned"]
            for i, (cid, status) in enumerate(zip(ids, statuses)):
                conn.execute(insert(CustomerScore.__table__), {
                    "customer_id": cid, "analysis_id": run, "status": status, "value_tier": "high",
                    "churn_reason": "price" if status == "churned" else None, "priority_rank": i + 1,
                    "reason_evidence": json.dumps(["cancel code"]), "health_band": "at_risk"})
            seg = conn.execute(insert(Segment.__table__).returning(Segment.__table__.c.id), {
                "name": "lost_high_value", "title": "Lost high-value", "origin": "builtin",
                "spec": json.dumps({"title": "Lost high-value", "all": [{"status": "churned"}]}),
                "spec_hash": "x", "version": 1, "member_count": 3, "refreshed_at": NOW, "as_of": NOW,
                "created_at": NOW, "updated_at": NOW}).scalar_one()
            for cid in (ids[0], ids[1], ids[4]):
                conn.execute(insert(SegmentMembership.__table__), {"segment_id": seg, "customer_id": cid,
                                                                   "entered_at": NOW - dt.timedelta(days=2),
                                                                   "version": 1})
            camp = add_campaign(conn, "winback", "Come back")
            add_campaign(conn, "dunning", "Update your card")
            enr = add_enrollment(conn, ids[0], camp, enrolled_at=NOW - dt.timedelta(days=1))
            msg = insert_messages(conn, [message_row("enr:1:step:0", EMAILS[0], customer_id=ids[0],
                                                     campaign_id=camp, enrollment_id=enr,
                                                     due_at=NOW - dt.timedelta(hours=20))])[0]
            conn.execute(insert(CustomerEvent.__table__), {
                "event_id": "hist:1", "customer_id": ids[0], "type": "subscription_canceled",
                "occurred_at": NOW - dt.timedelta(days=3), "received_at": NOW, "source": "history",
                "properties": json.dumps({"plan": "pro"})})
            conn.execute(insert(TrackingEvent.__table__), {
                "kind": "open", "message_id": msg, "customer_id": ids[0], "campaign_id": camp,
                "enrollment_id": enr, "machine": False, "source": "web",
                "occurred_at": NOW - dt.timedelta(hours=10)})
            conn.execute(insert(Suppression.__table__), {
                "address": "bounced@example.com", "scope": "all", "reason": "hard_bounce", "source": "smtp",
                "created_at": NOW - dt.timedelta(days=5)})
        keys = {role: create_api_key(engine, role, role, now=NOW)["key"] for role in ("viewer", "marketer", "admin")}
        revoked = create_api_key(engine, "old", "admin", now=NOW)
        revoke_api_key(engine, revoked["prefix"], now=NOW)
        keys["revoked"] = revoked["key"]
        create_user(engine, "boss@example.com", PASSWORD, "admin", now=NOW)
    finally:
        engine.dispose()
    return Seeded(settings, ids, camp, enr, msg, keys)


@pytest.fixture
def seeded(workspace: Settings) -> Seeded:
    return seed(workspace)


@pytest.fixture
def api(seeded: Seeded):
    """A TestClient (lifespan running: one event loop for the event writer) and the seed."""
    app = create_app(seeded.settings)
    with TestClient(app) as client:
        client.seed = seeded
        client.as_ = lambda role: {"Authorization": f"Bearer {seeded.keys[role]}"}
        yield client


def event(event_id: str, customer: str = "x-alice@example.com", type_: str = "purchased", *,
          at: dt.datetime | None = None, **extra) -> dict:
    body = {"event_id": event_id, "type": type_, "customer": {"id": customer},
            "occurred_at": (at or NOW - dt.timedelta(minutes=5)).isoformat(), "properties": {"amount": 1200}}
    body.update(extra)
    return body
