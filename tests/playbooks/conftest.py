"""Shared helpers for playbook tests: the shipped playbook, customer facts, customers in a state store."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from sqlalchemy import insert

from winback.models.customer import Customer
from winback.playbooks.facts import CustomerFacts
from winback.playbooks.spec import PlaybookSpec, builtin_playbook_path, load_playbook_file

NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.timezone.utc)  # = tests.conftest.TEST_NOW


@pytest.fixture(scope="session")
def default_playbook() -> PlaybookSpec:
    return load_playbook_file(builtin_playbook_path())


BASE_FACTS = CustomerFacts(customer_id=1, external_id="cus_1", status="churned", reason="price", value_tier="mid",
                           persona=None, locale="en", segments=frozenset(), plan_id="pro", country="US",
                           suggested_channel="email", has_phone=False, can_email=True, p_return=0.12,
                           value_after_return_minor=124_000, mrr_minor=5_000, currency="USD", tenure_days=400)


def facts(**changes) -> CustomerFacts:
    return replace(BASE_FACTS, **changes)


def add_customer(conn, external_id: str, **values) -> int:
    row = dict(source="test", external_id=external_id, email=f"{external_id}@example.com", locale="en",
               marketing_basis="consent", marketing_opt_out=False, row_hash=0, first_seen_at=NOW, updated_at=NOW)
    row.update(values)
    return conn.execute(insert(Customer.__table__).values(**row).returning(Customer.__table__.c.id)).scalar_one()
