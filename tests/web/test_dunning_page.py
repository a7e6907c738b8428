"""The /dunning page: the recovery report of the last 90 days (or a chosen period), the open cases
and the recent charges, for every role, on SQLite and PostgreSQL; its place in the navigation; the
recovered MRR on the overview; the empty state."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import insert, update

from tests.dunning.report_fixtures import d, insert_report_data
from tests.web.pages_fixtures import PASSWORD, ROLES, add_users
from winback.models.customer import Customer
from winback.models.dunning import DunningCase
from winback.web.app import create_app


def _app(settings, with_data: bool):
    app = create_app(settings)
    add_users(app.state.engine, app.state.clock.now())
    if with_data:
        insert_report_data(app.state.engine)
        with app.state.engine.begin() as conn:
            conn.execute(insert(Customer), {"id": 501, "source": "test", "external_id": "cus_9",
                                            "name": "Ada <Lovelace>", "row_hash": 1, "first_seen_at": d(),
                                            "updated_at": d()})
            conn.execute(update(DunningCase).where(DunningCase.id == 9).values(customer_id=501))
            conn.execute(update(DunningCase).where(DunningCase.id == 8).values(next_trigger="quick"))
    return app


@pytest.fixture
def app(workspace):
    app = _app(workspace, True)
    yield app
    app.state.engine.dispose()


@pytest.fixture
def empty_app(workspace):
    app = _app(workspace, False)
    yield app
    app.state.engine.dispose()


def client_as(app, role):
    from fastapi.testclient import TestClient

    client = TestClient(app)
    if role:
        r = client.post("/login", data={"email": f"{role}@example.com", "password": PASSWORD, "next": "/"},
                        follow_redirects=False)
        assert r.status_code == 303, r.text
    return client


def kpi(page: str, title: str) -> str:
    found = re.search(rf'<div class="kpi-title">{re.escape(title)}</div><div class="kpi-value">([^<]*)</div>', page)
    assert found, title
    return found.group(1)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_page_of_the_last_90_days(app, role):
    with client_as(app, role) as client:
        r = client.get("/dunning")
    assert r.status_code == 200, r.text[:500]
    page = r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert '<a href="/dunning" aria-current="page">Dunning</a>' in page
    assert "Dunning: failed payments and recovery" in page
    # the clock is pinned to 2026-01-15: the last 90 days start on 2025-10-17 (December and January cases)
    assert 'name="since" value="2025-10-17"' in page
    assert kpi(page, "Failed invoices") == "13"
    assert kpi(page, "Recovered") == "6"
    assert kpi(page, "Recovered MRR") == "$235.00 + €44.00"
    assert kpi(page, "Recovery rate") == "46.2%"  # 6 of 13
    assert kpi(page, "Open: at risk") == "$85.00 + €12.00 + £8.00"
    assert kpi(page, "MRR lost") == "$83.00"
    for text in ("Recovery by decline category", "Recovered by how", "Card updater", "Customer update",
                 "Time to recovery", "Top first decline codes", "<code>insufficient_funds</code>", "Charges",
                 "Card-expiry reminders"):
        assert text in page, text
    figure = re.search(r'<script type="application/json" id="chart-dunning-weekly-data">(.*?)</script>', page, re.S)
    assert figure and [t["name"] for t in json.loads(figure.group(1))["data"]] == ["failed invoices", "recovered"]
    assert 'id="chart-dunning-category-data"' in page and '<script src="/static/charts.js"></script>' in page


def test_open_cases_and_recent_attempts(app):
    with client_as(app, "viewer") as client:
        page = client.get("/dunning").text
    open_section = page[page.index("<h2>Open cases</h2>"):page.index("<h2>Recent attempts</h2>")]
    rows = re.findall(r"<code>(in_\d+)</code>", open_section)
    assert rows == ["in_8", "in_12", "in_9", "in_15"]  # the next charge first, the cases waiting for a card last
    assert '<a href="/customers/501">Ada &lt;Lovelace&gt;</a>' in open_section  # escaped
    assert "waiting for a new card" in open_section and "<code>expired_card</code>" in open_section
    assert "2025-12-19 10:00" in open_section and "(Quick)" in open_section  # case 8's next charge
    assert "$25.00" in open_section and "£8.00" in open_section
    recent = page[page.index("<h2>Recent attempts</h2>"):]
    assert re.findall(r"<code>(in_\d+)</code>", recent)[:4] == ["in_7", "in_7", "in_8", "in_8"]  # newest first
    assert "2025-12-22 10:00" in recent and "<code>card_A</code>" in recent


def test_period_filter(app):
    with client_as(app, "viewer") as client:
        december = client.get("/dunning?since=2025-11-01&until=2026-01-01").text
        everything = client.get("/dunning?since=").text
        bad = client.get("/dunning?since=yesterday")
        backwards = client.get("/dunning?since=2026-01-01&until=2025-01-01").text
    assert kpi(december, "Failed invoices") == "12" and kpi(december, "Recovery rate") == "50.0%"
    assert "95% CI 25.4% to 74.6%" in december
    assert kpi(everything, "Failed invoices") == "14" and 'name="since" value=""' in everything
    assert bad.status_code == 200 and "since: not a date" in bad.text
    assert kpi(bad.text, "Failed invoices") == "14"
    assert "the start must be before the end" in backwards


def test_overview_shows_the_recovered_mrr(app):
    with client_as(app, "viewer") as client:
        page = client.get("/").text
    # recovered in the last 90 days: cases 1-5 and 11 (the June case was recovered in June)
    assert kpi(page, "Recovered MRR (dunning, 90 days)") == "$235.00 + €44.00"
    assert 'href="/dunning"' in page


def test_empty_state_and_login(empty_app):
    with client_as(empty_app, None) as anonymous:
        r = anonymous.get("/dunning", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/dunning")
    with client_as(empty_app, "viewer") as client:
        page = client.get("/dunning").text
        overview = client.get("/").text
    assert "No failed payments recorded" in page and "<h2>Open cases</h2>" not in page
    assert "chart-dunning" not in page
    assert "Recovered MRR (dunning" not in overview and '<a href="/dunning">Dunning</a>' in overview
