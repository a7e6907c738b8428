"""The dashboard (winback.web.pages): every page for every role, login redirects, role limits on
actions, CSRF, escaping, and the empty states - on an analysed workspace that has sent campaigns
(SQLite) and on empty workspaces on each backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import re
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from tests.web.pages_fixtures import PASSWORD, ROLES, add_users, build_sent_workspace
from winback.models.campaigns import Campaign
from winback.models.delivery import OutboxMessage, Suppression
from winback.models.tracking import ExperimentDecision
from winback.models.web import ApiKey
from winback.web import auth
from winback.web.app import create_app

PG_URL = os.environ.get("WINBACK_TEST_DATABASE_URL", "").strip()
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    yield from _sent(tmp_path_factory, None)


@pytest.fixture(scope="module")
def sent_pg(tmp_path_factory):
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)
    try:
        yield from _sent(tmp_path_factory, url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _sent(tmp_path_factory, url):
    settings = build_sent_workspace(tmp_path_factory.mktemp("pages"), url)
    app = create_app(settings)
    add_users(app.state.engine, app.state.clock.now())
    with app.state.engine.connect() as conn:
        msg = conn.execute(select(OutboxMessage.id, OutboxMessage.customer_id, OutboxMessage.subject)
                           .where(OutboxMessage.status == "sent", OutboxMessage.channel == "email")
                           .order_by(OutboxMessage.id).limit(1)).one()
        ext = conn.execute(text("SELECT external_id FROM customers WHERE id = :i"), {"i": msg.customer_id}).scalar()
    yield {"settings": settings, "app": app, "message": msg, "external_id": ext}
    app.state.engine.dispose()


def client_as(app, role: str | None) -> TestClient:
    client = TestClient(app)
    if role:
        r = client.post("/login", data={"email": f"{role}@example.com", "password": PASSWORD, "next": "/"},
                        follow_redirects=False)
        assert r.status_code == 303, r.text
    return client


def csrf_of(client: TestClient, path: str = "/") -> str:
    found = CSRF.search(client.get(path).text)
    assert found, "no CSRF field on the page"
    return found.group(1)


def pages(s: dict) -> dict[str, str]:
    """Every viewer page and a heading or figure a person would look for on it."""
    m = s["message"]
    return {
        "/": "Customer retention rate (CRR)",
        "/churn": "Reasons: stated vs inferred",
        "/at-risk": "At-risk customers",
        "/at-risk?band=watch": "Churn risk (90 d)",
        "/segments": "Win-back priorities",
        "/segments/top_lost_value": "Members",
        "/campaigns": "All campaigns",
        "/campaigns/winback_price": "Holdout",
        f"/messages/{m.id}": "What the recipient did",
        "/experiments": "Experiments",
        "/themes": "Feedback themes",
        "/customers": "Customers",
        f"/customers?q={s['external_id']}": s["external_id"],
        f"/customers/{m.customer_id}": "Campaigns",
        "/suppressions": "Suppressions",
    }


@pytest.mark.parametrize("role", ROLES)
def test_every_page_renders_for_every_role(sent, role):
    with client_as(sent["app"], role) as client:
        for path, expected in pages(sent).items():
            r = client.get(path)
            assert r.status_code == 200, (path, r.status_code, r.text[:500])
            assert expected in r.text, path
            assert f"{role}@example.com" in r.text and 'action="/logout"' in r.text
            assert "script-src 'self'" in r.headers["content-security-policy"]
            assert "cdn" not in r.text.lower()
        preview = client.get(f"/campaigns/winback_price/preview?customer={sent['external_id']}")
        admin = client.get("/admin")
    assert preview.status_code == (403 if role == "viewer" else 200)
    assert admin.status_code == (200 if role == "admin" else 403)
    if role != "viewer":
        assert "Message preview" in preview.text and 'sandbox=""' in preview.text
    if role == "admin":
        assert "API keys" in admin.text and "marketer@example.com" in admin.text


if PG_URL:  # like every backend-parametrised test: PostgreSQL where WINBACK_TEST_DATABASE_URL is set (CI)
    def test_pages_on_postgresql(sent_pg):
        """The SQL of every page (GROUP BY, month buckets, LIKE) on PostgreSQL, and one action."""
        with client_as(sent_pg["app"], "marketer") as client:
            for path, expected in pages(sent_pg).items():
                r = client.get(path)
                assert r.status_code == 200, (path, r.text[:500])
                assert expected in r.text, path
            assert "Billing" in client.get("/churn").text
            token = csrf_of(client, "/campaigns/winback_price")
            assert client.post("/campaigns/winback_price/pause", data={"csrf_token": token},
                               follow_redirects=False).status_code == 303
        assert _status(sent_pg["app"], "winback_price") == "paused"


def test_overview_shows_the_figures_and_charts(sent):
    with client_as(sent["app"], "viewer") as client:
        r = client.get("/")
    assert "Churn rate" in r.text and "MRR churn" in r.text and "Recovered revenue" in r.text
    assert "Incremental revenue vs holdout" in r.text
    assert '<script src="/static/plotly.min.js"></script>' in r.text
    figure = re.search(r'<script type="application/json" id="chart-churn-data">(.*?)</script>', r.text, re.S)
    assert figure and json.loads(figure.group(1))["data"][0]["type"] == "bar"
    sent_total = re.search(r"Messages sent</div><div class=\"kpi-value\">([\d,]+)<", r.text)
    assert sent_total and int(sent_total.group(1).replace(",", "")) > 100


def test_pages_redirect_to_login_without_a_session(sent):
    with client_as(sent["app"], None) as client:
        for path in [*pages(sent), "/admin", "/campaigns/winback_price/preview"]:
            r = client.get(path, follow_redirects=False)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/login?next=/"), path
        assert client.post("/campaigns/winback_price/pause", data={"csrf_token": "x"},
                           follow_redirects=False).status_code == 303


def test_unknown_things_are_404(sent):
    with client_as(sent["app"], "viewer") as client:
        for path in ("/campaigns/nope", "/segments/nope", "/customers/999999", "/messages/999999"):
            assert client.get(path).status_code == 404, path


def _status(app, key: str) -> str:
    with app.state.engine.connect() as conn:
        return conn.execute(select(Campaign.status).where(Campaign.key == key)).scalar_one()


def test_pause_and_resume_need_a_marketer_and_the_csrf_token(sent):
    app = sent["app"]
    with client_as(app, "viewer") as viewer:
        token = csrf_of(viewer)
        r = viewer.post("/campaigns/winback_price/pause", data={"csrf_token": token}, follow_redirects=False)
        assert r.status_code == 403
        assert "Pause</button>" not in viewer.get("/campaigns/winback_price").text  # no button for a viewer
    assert _status(app, "winback_price") == "active"
    with client_as(app, "marketer") as marketer:
        for bad in ({}, {"csrf_token": ""}, {"csrf_token": "forged-token"}):
            r = marketer.post("/campaigns/winback_price/pause", data=bad, follow_redirects=False)
            assert r.status_code == 403, bad
        assert _status(app, "winback_price") == "active"
        token = csrf_of(marketer, "/campaigns/winback_price")
        r = marketer.post("/campaigns/winback_price/pause", data={"csrf_token": token}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/campaigns/winback_price")
        assert _status(app, "winback_price") == "paused"
        page = marketer.get(r.headers["location"]).text
        assert "campaign winback_price paused" in page and "Resume</button>" in page
        r = marketer.post("/campaigns/winback_price/resume", data={"csrf_token": token}, follow_redirects=False)
        assert r.status_code == 303
    assert _status(app, "winback_price") == "active"


def _suppressed(app, address: str) -> list[dict]:
    with app.state.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(Suppression).where(Suppression.address == address))]


def test_suppressions_add_by_a_marketer_remove_by_an_admin(sent):
    app, address = sent["app"], "someone.else@example.org"
    with client_as(app, "viewer") as viewer:
        r = viewer.post("/suppressions/add", data={"address": address, "csrf_token": csrf_of(viewer)},
                        follow_redirects=False)
        assert r.status_code == 403 and not _suppressed(app, address)
    with client_as(app, "marketer") as marketer:
        token = csrf_of(marketer, "/suppressions")
        r = marketer.post("/suppressions/add", data={"address": address, "csrf_token": "wrong"},
                          follow_redirects=False)
        assert r.status_code == 403 and not _suppressed(app, address)
        r = marketer.post("/suppressions/add", data={"address": address.upper(), "reason": "manual", "scope": "all",
                                                     "detail": "<script>alert('x')</script>", "csrf_token": token})
        assert r.status_code == 200 and f"{address} suppressed" in r.text
        assert "<script>alert('x')</script>" not in r.text and "&lt;script&gt;alert(" in r.text  # escaped
        rows = _suppressed(app, address)
        assert len(rows) == 1 and rows[0]["source"] == "web:marketer@example.com"
        bad = marketer.post("/suppressions/add", data={"address": "not an address", "csrf_token": token})
        assert "not an e-mail address" in bad.text
        # a marketer sees no remove button and may not remove
        assert "/suppressions/remove" not in marketer.get("/suppressions").text
        r = marketer.post("/suppressions/remove", data={"address": address, "csrf_token": token},
                          follow_redirects=False)
        assert r.status_code == 403 and _suppressed(app, address)
    with client_as(app, "admin") as admin:
        token = csrf_of(admin, "/suppressions")
        assert admin.post("/suppressions/remove", data={"address": address},
                          follow_redirects=False).status_code == 403
        assert _suppressed(app, address)
        r = admin.post("/suppressions/remove", data={"address": address, "csrf_token": token},
                       follow_redirects=False)
        assert r.status_code == 303
    assert not _suppressed(app, address)


def test_admin_creates_and_revokes_api_keys(sent):
    app = sent["app"]
    with client_as(app, "marketer") as marketer:
        r = marketer.post("/admin/keys", data={"name": "x", "role": "admin", "csrf_token": csrf_of(marketer)},
                          follow_redirects=False)
        assert r.status_code == 403
    with client_as(app, "admin") as admin:
        token = csrf_of(admin, "/admin")
        assert admin.post("/admin/keys", data={"name": "ci", "role": "viewer"}).status_code == 403
        r = admin.post("/admin/keys", data={"name": "ci <b>bot</b>", "role": "viewer", "csrf_token": token})
        assert r.status_code == 200
        key = re.search(r'<pre class="code" id="new-key">(wbk_[^<]+)</pre>', r.text).group(1)
        assert "ci &lt;b&gt;bot&lt;/b&gt;" in r.text
        assert auth.check_api_key(app.state.engine, key) is not None
        assert key not in admin.get("/admin").text  # shown once
        prefix = key.split("_")[1]
        assert admin.post(f"/admin/keys/{prefix}/revoke", data={"csrf_token": "nope"}).status_code == 403
        assert auth.check_api_key(app.state.engine, key) is not None
        r = admin.post(f"/admin/keys/{prefix}/revoke", data={"csrf_token": token}, follow_redirects=False)
        assert r.status_code == 303
    assert auth.check_api_key(app.state.engine, key) is None
    with app.state.engine.connect() as conn:
        assert conn.execute(select(ApiKey.revoked_at).where(ApiKey.prefix == prefix)).scalar_one() is not None


def test_message_page_sandboxes_the_html_part(sent):
    m = sent["message"]
    with client_as(sent["app"], "viewer") as client:
        r = client.get(f"/messages/{m.id}")
    assert r.status_code == 200
    frame = re.search(r'<iframe class="email-frame"[^>]*sandbox=""[^>]*srcdoc="([^"]*)"', r.text)
    assert frame, "the HTML part is in a sandboxed srcdoc frame"
    assert "<" not in frame.group(1) and "&lt;" in frame.group(1)  # escaped into the attribute
    assert "List-Unsubscribe" in r.text  # the headers
    csp = r.headers["content-security-policy"]
    assert "img-src data:" in csp and "frame-src 'none'" in csp  # no pixel fetch, no click from the preview


def test_customer_search_and_timeline(sent):
    m = sent["message"]
    with client_as(sent["app"], "viewer") as client:
        found = client.get("/customers", params={"q": sent["external_id"]})
        assert f'href="/customers/{m.customer_id}"' in found.text
        none = client.get("/customers", params={"q": "%_<zzz>"})
        assert "No customer matches" in none.text and "&lt;zzz&gt;" in none.text
        page = client.get(f"/customers/{m.customer_id}").text
    assert f'href="/messages/{m.id}"' in page
    assert "winback_" in page  # the enrollment


def test_pagination(sent):
    with client_as(sent["app"], "viewer") as client:
        first = client.get("/segments").text
        second = client.get("/segments?page=2").text
        huge = client.get("/segments?page=99999")
        junk = client.get("/segments?page=abc")
    assert "page 1 of" in first and 'rel="next"' in first
    assert "page 2 of" in second and 'rel="prev"' in second
    assert huge.status_code == 200 and junk.status_code == 200


def test_rollout_without_a_winner_changes_nothing(sent):
    app = sent["app"]
    with client_as(app, "viewer") as viewer:
        r = viewer.post("/experiments/rollout", data={"campaign": "winback_price", "experiment": "offer_test",
                                                      "csrf_token": csrf_of(viewer)}, follow_redirects=False)
        assert r.status_code == 403
    with client_as(app, "marketer") as marketer:
        token = csrf_of(marketer, "/experiments")
        r = marketer.post("/experiments/rollout", data={"campaign": "winback_price", "experiment": "offer_test"},
                          follow_redirects=False)
        assert r.status_code == 403
        r = marketer.post("/experiments/rollout", data={"campaign": "winback_price", "experiment": "offer_test",
                                                        "csrf_token": token})
        assert r.status_code == 200 and "has no winner yet" in r.text
        r = marketer.post("/experiments/rollout", data={"campaign": "winback_price", "experiment": "nope",
                                                        "csrf_token": token})
        assert r.status_code == 404
    with app.state.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ExperimentDecision)).scalar_one() == 0


# --------------------------------------------------------------------------- empty workspaces, both backends

@pytest.fixture
def empty_app(workspace):
    app = create_app(workspace)
    add_users(app.state.engine, app.state.clock.now())
    yield app
    app.state.engine.dispose()


def test_empty_workspace_pages_say_what_to_run(empty_app):
    with client_as(empty_app, "admin") as client:
        overview = client.get("/")
        assert overview.status_code == 200
        assert "Nothing has been analysed yet" in overview.text and "winback analyze" in overview.text
        assert "No campaign has sent anything yet" in overview.text and "winback plan" in overview.text
        for path in ("/churn", "/at-risk", "/segments", "/campaigns", "/experiments", "/themes", "/customers",
                     "/suppressions", "/admin"):
            r = client.get(path)
            assert r.status_code == 200, (path, r.text[:300])
        assert "No campaigns yet" in client.get("/campaigns").text


def test_suppression_form_and_csrf_on_each_backend(empty_app):
    with client_as(empty_app, "marketer") as client:
        token = csrf_of(client, "/suppressions")
        r = client.post("/suppressions/add", data={"address": "x@example.com", "csrf_token": token + "x"})
        assert r.status_code == 403 and not _suppressed(empty_app, "x@example.com")
        r = client.post("/suppressions/add", data={"address": "x@example.com", "scope": "commercial",
                                                   "csrf_token": token})
        assert r.status_code == 200 and "x@example.com" in r.text
    rows = _suppressed(empty_app, "x@example.com")
    assert [(s["scope"], s["reason"]) for s in rows] == [("commercial", "manual")]
