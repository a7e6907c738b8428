"""A small hand-built tracking dataset on each state backend (see ``tests/conftest.py``)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import insert

from tests.delivery.factories import add_customers, insert_messages, message_row
from winback.kit.db import make_engine
from winback.models.campaigns import Campaign, Coupon, CustomerEvent, Enrollment

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, 9, 0, tzinfo=UTC)  # enrolments; the workspace clock is 2026-01-15 12:00


@pytest.fixture
def engine(workspace):
    eng = make_engine(workspace.resolved_state_url)
    yield eng
    eng.dispose()


def add_campaign(conn, key: str, *, experiments: dict | None = None, holdout: float = 0.1) -> int:
    spec = {"experiments": {ek: {"variants": {vk: {"weight": 1.0} for vk in vs}} for ek, vs in
                            (experiments or {}).items()}}
    return conn.execute(insert(Campaign.__table__).returning(Campaign.__table__.c.id), {
        "key": key, "title": key.replace("_", " ").title(), "sequence": "s", "playbook_name": "default",
        "playbook_version": 1, "status": "active", "category": "commercial", "priority": 50,
        "holdout_share": holdout, "committed_cost_minor": 0, "currency": "USD", "spec": json.dumps(spec),
        "created_at": T0, "updated_at": T0}).scalar_one()


def add_enrollments(conn, campaign_id: int, customer_ids: list[int], *, arm: str = "treatment",
                    variants: dict | None = None, enrolled_at: dt.datetime = T0) -> list[int]:
    rows = [{"campaign_id": campaign_id, "customer_id": cid, "dedupe_key": f"d-{campaign_id}-{cid}",
             "trigger": "test", "arm": arm, "variants": json.dumps(variants or {}),
             "status": "active" if arm == "treatment" else "held_out", "playbook_version": 1,
             "enrolled_at": enrolled_at, "next_step": 0} for cid in customer_ids]
    t = Enrollment.__table__
    return conn.execute(insert(t).returning(t.c.id, sort_by_parameter_order=True), rows).scalars().all()


def add_event(conn, customer_id: int, type_: str, at: dt.datetime, key: str, **props) -> int:
    t = CustomerEvent.__table__
    return conn.execute(insert(t).returning(t.c.id), {
        "event_id": key, "customer_id": customer_id, "type": type_, "occurred_at": at, "received_at": at,
        "source": "api", "properties": json.dumps(props)}).scalar_one()


def add_coupon(conn, customer_id: int, campaign_id: int, value: int, status: str = "redeemed") -> int:
    t = Coupon.__table__
    return conn.execute(insert(t).returning(t.c.id), {
        "code": f"C{customer_id}-{campaign_id}", "customer_id": customer_id, "campaign_id": campaign_id,
        "offer_key": "discount", "offer_kind": "discount", "terms": "{}", "value_minor": value, "currency": "USD",
        "status": status, "issued_at": T0, "expires_at": T0 + dt.timedelta(days=30)}).scalar_one()


def sent_message(conn, key: str, customer_id: int, email: str, campaign_id: int | None, enrollment_id: int | None,
                 *, step: int = 0, sent_at: dt.datetime = T0, status: str = "sent", channel: str = "email",
                 variant: str | None = None) -> tuple[int, str]:
    row = message_row(key, email, customer_id=customer_id, campaign_id=campaign_id, enrollment_id=enrollment_id,
                      step=step, status=status, sent_at=sent_at, channel=channel, variant=variant)
    return insert_messages(conn, [row])[0], row["message_id"]


__all__ = ["add_campaign", "add_customers", "add_enrollments", "add_event", "add_coupon", "sent_message", "T0", "UTC"]
