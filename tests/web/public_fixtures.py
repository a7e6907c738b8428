"""Fixtures of the recipient-page tests (/o /c /u /p /s /b): a workspace on each backend with one
customer, one sent message, the app and a client. Import with ``from tests.web.public_fixtures import *``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from tests.delivery.factories import add_campaign, add_customer, insert_messages, message_row
from winback.campaigns import links
from winback.config import Settings
from winback.kit.db import write_transaction
from winback.models.campaigns import CustomerEvent
from winback.models.customer import Customer
from winback.models.delivery import Suppression
from winback.models.tracking import CustomerPreference, SurveyResponse, TrackingEvent
from winback.web.app import create_app

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # tests/conftest.py TEST_NOW
EMAIL = "maya@example.net"
MESSAGE = "<m-1.t@winback.test>"
HUMAN = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel; +https://barracuda.com)"

__all__ = ["Public", "public", "NOW", "EMAIL", "MESSAGE", "HUMAN", "SCANNER", "UTC", "state_snapshot", "csrf_of"]


@dataclass
class Public:
    settings: Settings
    client: TestClient
    engine: object
    key: bytes
    customer_id: int
    campaign_id: int
    outbox_id: int

    # signed paths (relative: the client talks to the app directly)
    def pixel(self, message: str = MESSAGE) -> str:
        return links.open_pixel_url(self.key, "", message=message)

    def click(self, target: str = "https://shop.example.com/reactivate?coupon=X", message: str = MESSAGE) -> str:
        return links.tracked_url(self.key, "", message=message, target=target, link="cta")

    def unsubscribe(self, customer_id: int | None = None, message: str = MESSAGE) -> str:
        return links.unsubscribe_url(self.key, "", customer_id=self.customer_id if customer_id is None else customer_id,
                                     message=message, campaign_id=self.campaign_id)

    def preferences(self, customer_id: int | None = None) -> str:
        return links.preferences_url(self.key, "", customer_id=customer_id or self.customer_id)

    def survey(self, now: dt.datetime = NOW, message: str = MESSAGE) -> str:
        return links.survey_url(self.key, "", customer_id=self.customer_id, message=message, now=now)

    def card(self, now: dt.datetime = NOW) -> str:
        return links.card_update_url(self.key, "", customer_id=self.customer_id, message=MESSAGE, now=now)

    def set_locale(self, locale: str | None) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(update(Customer.__table__).where(Customer.__table__.c.id == self.customer_id)
                         .values(locale=locale))

    def rows(self, table, **where) -> list[dict]:
        t = table.__table__
        query = select(t)
        for k, v in where.items():
            query = query.where(t.c[k] == v)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


def state_snapshot(pub: Public) -> dict:
    """Everything a recipient link could change."""
    with pub.engine.connect() as conn:
        counts = {t.__tablename__: conn.execute(select(func.count()).select_from(t.__table__)).scalar_one()
                  for t in (TrackingEvent, Suppression, CustomerPreference, SurveyResponse, CustomerEvent)}
        counts["opted_out"] = conn.execute(select(func.count()).select_from(Customer.__table__).where(
            Customer.__table__.c.marketing_opt_out.is_(True))).scalar_one()
    return counts


def csrf_of(page: str) -> str:
    import re

    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match, "the form carries its token-bound field"
    return match.group(1)


@pytest.fixture
def public(workspace: Settings):
    app = create_app(workspace)
    engine = app.state.engine
    with write_transaction(engine) as conn:
        customer_id = add_customer(conn, EMAIL)
        campaign_id = add_campaign(conn)
        outbox_id = insert_messages(conn, [message_row(
            "m:1", EMAIL, customer_id=customer_id, campaign_id=campaign_id, status="sent",
            sent_at=NOW - dt.timedelta(hours=2), message_id=MESSAGE)])[0]
    with TestClient(app, base_url="https://win.example.com") as client:
        yield Public(workspace, client, engine, workspace.signing_key(), customer_id, campaign_id, outbox_id)

