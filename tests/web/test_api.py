"""The REST API (winback.web.api) on SQLite and PostgreSQL: reads, paging, filters, writes, live
events (idempotency, conflicts, durability, concurrency), permissions per role and CSRF."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from sqlalchemy import func, select

from tests.web.api_fixtures import *  # noqa: F401,F403 - fixtures
from tests.web.api_fixtures import EMAILS, NOW, PASSWORD, event
from winback.kit.db import make_engine
from winback.kit.signing import verify
from winback.models.campaigns import Campaign, CustomerEvent


def count_events(settings, **where) -> int:
    engine = make_engine(settings.resolved_state_url)  # a separate engine: what another process sees
    try:
        with engine.connect() as conn:
            q = select(func.count()).select_from(CustomerEvent)
            for k, v in where.items():
                q = q.where(getattr(CustomerEvent, k) == v)
            return conn.execute(q).scalar_one()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------- reads


def test_customers_list_paging_and_filters(api):
    h = api.as_("viewer")
    first = api.get("/api/v1/customers?limit=2", headers=h).json()
    assert [c["email"] for c in first["items"]] == EMAILS[:2]
    assert first["next_cursor"] == str(api.seed.ids[1])
    second = api.get(f"/api/v1/customers?limit=2&cursor={first['next_cursor']}", headers=h).json()
    assert [c["email"] for c in second["items"]] == EMAILS[2:4]
    last = api.get(f"/api/v1/customers?limit=2&cursor={second['next_cursor']}", headers=h).json()
    assert [c["email"] for c in last["items"]] == EMAILS[4:] and last["next_cursor"] is None
    by_offset = api.get("/api/v1/customers?limit=2&offset=2", headers=h).json()
    assert [c["email"] for c in by_offset["items"]] == EMAILS[2:4]

    churned = api.get("/api/v1/customers?status=churned", headers=h).json()["items"]
    assert {c["email"] for c in churned} == {EMAILS[0], EMAILS[1], EMAILS[4]}
    assert churned[0]["status"] == "churned" and churned[0]["churn_reason"] == "price"
    seg = api.get("/api/v1/customers?segment=lost_high_value&status=churned&limit=500", headers=h).json()["items"]
    assert len(seg) == 3
    assert api.get("/api/v1/customers?segment=nope", headers=h).json()["items"] == []
    assert [c["email"] for c in api.get("/api/v1/customers?q=BOB", headers=h).json()["items"]] == [EMAILS[1]]
    assert len(api.get("/api/v1/customers?q=example.com", headers=h).json()["items"]) == 3
    assert api.get("/api/v1/customers?q=x-carol", headers=h).json()["items"][0]["email"] == EMAILS[2]
    assert api.get("/api/v1/customers?q=%25", headers=h).json()["items"] == []  # % is literal

    for bad, field in (("limit=501", "limit"), ("limit=0", "limit"), ("offset=-1", "offset")):
        r = api.get(f"/api/v1/customers?{bad}", headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field
    r = api.get("/api/v1/customers?cursor=abc", headers=h)
    assert r.status_code == 422 and "cursor" in r.json()["detail"]
    assert api.get("/api/v1/customers?cursor=1&offset=1", headers=h).status_code == 422
    assert api.get("/api/v1/customers?q=a%00b", headers=h).status_code == 422


def test_customer_detail_is_a_timeline(api):
    h = api.as_("viewer")
    cid = api.seed.ids[0]
    body = api.get(f"/api/v1/customers/{cid}", headers=h).json()
    assert body["customer"]["email"] == EMAILS[0] and body["customer"]["external_id"] == f"x-{EMAILS[0]}"
    assert body["scores"]["status"] == "churned" and body["scores"]["reason_evidence"] == ["cancel code"]
    assert [s["name"] for s in body["segments"]] == ["lost_high_value"]
    assert body["enrollments"][0]["campaign"] == "winback"
    assert body["events"][0]["type"] == "subscription_canceled" and body["events"][0]["properties"] == {"plan": "pro"}
    assert body["messages"][0]["campaign"] == "winback" and body["messages"][0]["status"] == "pending"
    assert body["tracking"][0]["kind"] == "open"
    kinds = [t["kind"] for t in body["timeline"]]
    assert set(kinds) == {"event", "enrollment", "message", "tracking", "segment"}
    ats = [t["at"] for t in body["timeline"]]
    assert ats == sorted(ats, reverse=True)
    assert api.get("/api/v1/customers/999999", headers=h).status_code == 404
    assert api.get("/api/v1/customers/0", headers=h).status_code == 422
    assert api.get("/api/v1/customers/99999999999999999999", headers=h).status_code == 422
    assert api.get("/api/v1/customers/abc", headers=h).status_code == 422


def test_segments(api):
    h = api.as_("viewer")
    listed = {s["name"]: s for s in api.get("/api/v1/segments", headers=h).json()}
    assert listed["lost_high_value"]["member_count"] == 3
    page = api.get("/api/v1/segments/lost_high_value?limit=2", headers=h).json()
    assert page["title"] == "Lost high-value" and page["spec"]["all"] == [{"status": "churned"}]
    assert [m["email"] for m in page["members"]] == EMAILS[:2] and page["next_cursor"]
    rest = api.get(f"/api/v1/segments/lost_high_value?limit=2&cursor={page['next_cursor']}", headers=h).json()
    assert [m["email"] for m in rest["members"]] == [EMAILS[4]] and rest["next_cursor"] is None
    assert api.get("/api/v1/segments/unknown", headers=h).status_code == 404


def test_campaigns_pause_resume_and_results(api):
    v, m = api.as_("viewer"), api.as_("marketer")
    camps = {c["key"]: c for c in api.get("/api/v1/campaigns", headers=v).json()}
    assert set(camps) == {"winback", "dunning"} and camps["winback"]["enrolled"] == 1
    detail = api.get("/api/v1/campaigns/winback", headers=v).json()
    assert detail["breakdown"][0]["count"] == 1 and detail["recent_enrollments"][0]["customer_id"] == api.seed.ids[0]
    assert detail["messages"] == {"pending": 1}
    assert api.get("/api/v1/campaigns/nope", headers=v).status_code == 404

    assert api.post("/api/v1/campaigns/winback/pause", headers=m).json()["status"] == "paused"
    assert api.post("/api/v1/campaigns/winback/pause", headers=m).json()["status"] == "paused"  # idempotent
    engine = make_engine(api.seed.settings.resolved_state_url)
    with engine.connect() as conn:
        assert conn.execute(select(Campaign.status).where(Campaign.key == "winback")).scalar_one() == "paused"
    engine.dispose()
    assert api.post("/api/v1/campaigns/winback/resume", headers=m).json()["status"] == "active"
    assert api.post("/api/v1/campaigns/nope/pause", headers=m).status_code == 404

    results = api.get("/api/v1/results", headers=v)
    assert results.status_code == 200, results.text
    assert {c["key"] for c in results.json()["campaigns"]} >= {"winback"}
    one = api.get("/api/v1/campaigns/winback/results", headers=v)
    assert one.status_code == 200 and [c["key"] for c in one.json()["campaigns"]] == ["winback"]
    assert api.get("/api/v1/campaigns/nope/results", headers=v).status_code == 404


def test_suppressions(api):
    m, a = api.as_("marketer"), api.as_("admin")
    assert [s["address"] for s in api.get("/api/v1/suppressions", headers=m).json()] == ["bounced@example.com"]
    r = api.post("/api/v1/suppressions", headers=m, json={"address": " Someone@Example.COM ", "reason": "objected"})
    assert r.status_code == 201 and r.json() == {"address": "someone@example.com", "scope": "all", "created": True}
    again = api.post("/api/v1/suppressions", headers=m, json={"address": "someone@example.com", "reason": "objected"})
    assert again.status_code == 200 and again.json()["created"] is False
    unsub = api.post("/api/v1/suppressions", headers=m, json={"address": EMAILS[1], "reason": "unsubscribed"})
    assert unsub.status_code == 201
    detail = api.get(f"/api/v1/customers/{api.seed.ids[1]}", headers=m).json()
    assert detail["customer"]["marketing_opt_out"] is True  # unsubscribed opts the customer out too
    assert api.get("/api/v1/suppressions?address=SOMEONE@example.com", headers=m).json()[0]["reason"] == "objected"
    bad = api.post("/api/v1/suppressions", headers=m, json={"address": "not an address", "reason": "manual"})
    assert bad.status_code == 422 and "address" in bad.json()["detail"]
    bad = api.post("/api/v1/suppressions", headers=m, json={"address": "a@b.example", "reason": "because"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "reason"]
    assert api.delete("/api/v1/suppressions/someone@example.com", headers=a).json()["removed"] == 1
    assert api.delete("/api/v1/suppressions/someone@example.com", headers=a).status_code == 404


# --------------------------------------------------------------------------------- events


def test_event_is_durable_when_acknowledged_and_idempotent(api):
    m = api.as_("marketer")
    r = api.post("/api/v1/events", headers=m, json=event("e-1"))
    assert r.status_code == 200, r.text
    assert r.json() == {"event_id": "e-1", "duplicate": False, "customer_id": api.seed.ids[0]}
    assert count_events(api.seed.settings, event_id="e-1") == 1  # committed before the answer
    again = api.post("/api/v1/events", headers=m, json=event("e-1"))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    # the same content written differently (another offset, key order) is still the same event
    same = event("e-1", at=(NOW - dt.timedelta(minutes=5)).astimezone(dt.timezone(dt.timedelta(hours=9))))
    assert api.post("/api/v1/events", headers=m, json=same).json()["duplicate"] is True
    conflict = api.post("/api/v1/events", headers=m, json=event("e-1", properties={"amount": 1}))
    assert conflict.status_code == 409 and "properties" in conflict.json()["detail"]
    other = api.post("/api/v1/events", headers=m, json=event("e-1", type_="returned"))
    assert other.status_code == 409 and "type" in other.json()["detail"]
    assert count_events(api.seed.settings, event_id="e-1") == 1
    engine = make_engine(api.seed.settings.resolved_state_url)
    with engine.connect() as conn:
        row = conn.execute(select(CustomerEvent).where(CustomerEvent.event_id == "e-1")).mappings().one()
    engine.dispose()
    assert row["source"] == "api" and row["type"] == "purchased" and json.loads(row["properties"]) == {"amount": 1200}
    assert row["received_at"] == NOW

    by_internal = {"event_id": "e-2", "type": "login", "customer_id": api.seed.ids[2],
                   "occurred_at": "2026-01-15T11:00:00+00:00"}
    assert api.post("/api/v1/events", headers=m, json=by_internal).json()["customer_id"] == api.seed.ids[2]
    source = event("e-3", customer="x-bob@example.org")
    source["customer"]["source"] = "test"
    assert api.post("/api/v1/events", headers=m, json=source).json()["customer_id"] == api.seed.ids[1]
    custom = event("e-4", type_="app.opened_v2")
    assert api.post("/api/v1/events", headers=m, json=custom).status_code == 200


@pytest.mark.parametrize("change, field", [
    ({"event_id": ""}, "event_id"),
    ({"event_id": "x" * 256}, "event_id"),
    ({"type": "Bad Type"}, "type"),
    ({"type": "9lives"}, "type"),
    ({"occurred_at": "2026-01-15T12:00:00"}, "occurred_at"),
    ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"occurred_at": "2026-01-15T12:11:00Z"}, "occurred_at"),
    ({"occurred_at": "2024-11-01T00:00:00Z"}, "occurred_at"),
    ({"properties": {"blob": "x" * 17000}}, "properties"),
    ({"properties": [1, 2]}, "properties"),
    ({"unknown": 1}, "unknown"),
    ({"customer": {"id": ""}}, "id"),
])
def test_event_validation_names_the_field(api, change, field):
    # the first request goes through the FastAPI route (the key is not cached yet), the second through
    # the fast path (winback.web.api.fastpath): both answer alike
    for _ in range(2):
        r = api.post("/api/v1/events", headers=api.as_("marketer"), json={**event("v-1"), **change})
        assert r.status_code == 422, r.text
        locs = [e["loc"] for e in r.json()["detail"]]
        assert any(loc[-1] == field or field in loc for loc in locs), locs
        assert r.headers["x-content-type-options"] == "nosniff"
    assert count_events(api.seed.settings, event_id="v-1") == 0
    bad_json = api.post("/api/v1/events", headers={**api.as_("marketer"), "Content-Type": "application/json"},
                        content=b'{"event_id": "v-1", ')
    assert bad_json.status_code == 422


def test_event_customer_resolution(api):
    m = api.as_("marketer")
    unknown = api.post("/api/v1/events", headers=m, json=event("c-1", customer="ghost"))
    assert unknown.status_code == 422 and "unknown customer 'ghost'" in unknown.json()["detail"][0]["msg"]
    assert unknown.json()["detail"][0]["loc"] == ["body", "customer", "id"]
    created = api.post("/api/v1/events", headers=m, json=event("c-1", customer="ghost", create=True))
    assert created.status_code == 200
    cid = created.json()["customer_id"]
    assert api.post("/api/v1/events", headers=m, json=event("c-2", customer="ghost")).json()["customer_id"] == cid
    none = api.post("/api/v1/events", headers=m, json={**event("c-3"), "customer": None, "customer_id": 999999})
    assert none.status_code == 422 and none.json()["detail"][0]["loc"] == ["body", "customer_id"]
    both = api.post("/api/v1/events", headers=m, json={**event("c-4"), "customer_id": api.seed.ids[0]})
    assert both.status_code == 422


def test_event_batch(api):
    m = api.as_("marketer")
    api.post("/api/v1/events", headers=m, json=event("b-0"))
    events = [event(f"b-{i}") for i in range(5)] + [event("b-1"), event("b-2", properties={"x": 1}),
                                                     event("b-9", customer="ghost")]
    r = api.post("/api/v1/events/batch", headers=m, json={"events": events})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["status"] for i in body["items"]] == ["duplicate", "stored", "stored", "stored", "stored",
                                                    "duplicate", "conflict", "rejected"]
    assert (body["stored"], body["duplicates"], body["rejected"]) == (4, 2, 2)
    assert count_events(api.seed.settings, source="api") == 5
    invalid = api.post("/api/v1/events/batch", headers=m, json={"events": [event("b-10"), event("b-11", type_="X")]})
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"][:4] == ["body", "events", 1, "type"]
    assert count_events(api.seed.settings, event_id="b-10") == 0  # all or nothing at validation
    too_many = api.post("/api/v1/events/batch", headers=m, json={"events": [event(f"t-{i}") for i in range(501)]})
    assert too_many.status_code == 422
    assert api.post("/api/v1/events/batch", headers=m, json={"events": []}).status_code == 422


def test_concurrent_duplicate_event_ids_make_one_row(api):
    m = api.as_("marketer")
    answers: list[int] = []
    duplicates: list[bool] = []
    lock = threading.Lock()

    def send(i: int):
        r = api.post("/api/v1/events", headers=m, json=event("same-id"))
        with lock:
            answers.append(r.status_code)
            duplicates.append(r.json().get("duplicate"))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 12
    assert duplicates.count(False) == 1
    assert count_events(api.seed.settings, event_id="same-id") == 1


def test_identify_merge_rule(api):
    m = api.as_("marketer")
    ref = {"id": "x-carol@example.net"}
    r = api.post("/api/v1/identify", headers=m, json={"customer": ref, "name": "Carol C", "locale": "de-DE",
                                                      "timezone": "Europe/Berlin", "marketing_consent": False})
    assert r.status_code == 200, r.text
    assert r.json()["changed"] == ["locale", "marketing_basis", "name", "timezone"]
    again = api.post("/api/v1/identify", headers=m, json={"customer": ref, "name": "Carol C"}).json()
    assert again["changed"] == []
    out = api.post("/api/v1/identify", headers=m, json={"customer": ref, "unsubscribed": True}).json()
    assert out["changed"] == ["marketing_opt_out"]
    back = api.post("/api/v1/identify", headers=m, json={"customer": ref, "marketing_consent": True}).json()
    assert back["changed"] == [] and back["ignored"]  # an opt-out is not lifted here
    detail = api.get(f"/api/v1/customers/{api.seed.ids[2]}", headers=m).json()["customer"]
    assert detail["name"] == "Carol C" and detail["marketing_opt_out"] is True and detail["timezone"] == "Europe/Berlin"
    assert api.post("/api/v1/identify", headers=m, json={"customer": {"id": "new-1"}}).status_code == 404
    new = api.post("/api/v1/identify", headers=m, json={"customer": {"id": "new-1", "email": "n@example.com"},
                                                        "create": True}).json()
    assert new["created"] is True
    ev = api.post("/api/v1/events", headers=m, json=event("i-1", customer="new-1"))
    assert ev.json()["customer_id"] == new["customer_id"]
    bad = api.post("/api/v1/identify", headers=m, json={"customer": ref, "timezone": "Mars/Base"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "timezone"]


# --------------------------------------------------------------------------------- permissions


ROUTES = [  # method, path, body, least role
    ("GET", "/api/v1/customers", None, "viewer"),
    ("GET", "/api/v1/customers/{cid}", None, "viewer"),
    ("GET", "/api/v1/segments", None, "viewer"),
    ("GET", "/api/v1/segments/lost_high_value", None, "viewer"),
    ("GET", "/api/v1/campaigns", None, "viewer"),
    ("GET", "/api/v1/campaigns/winback", None, "viewer"),
    ("GET", "/api/v1/campaigns/winback/results", None, "viewer"),
    ("GET", "/api/v1/results", None, "viewer"),
    ("GET", "/api/v1/suppressions", None, "marketer"),
    ("POST", "/api/v1/suppressions", {"address": "p@example.com", "reason": "manual"}, "marketer"),
    ("DELETE", "/api/v1/suppressions/p@example.com", None, "admin"),
    ("POST", "/api/v1/campaigns/winback/pause", None, "marketer"),
    ("POST", "/api/v1/campaigns/winback/resume", None, "marketer"),
    ("POST", "/api/v1/events", "event", "marketer"),
    ("POST", "/api/v1/events/batch", "batch", "marketer"),
    ("POST", "/api/v1/identify", {"customer": {"id": "x-dave@example.com"}, "name": "D"}, "marketer"),
]
ORDER = ["viewer", "marketer", "admin"]


def test_every_route_checks_the_role(api):
    n = 0
    for who in ("none", "revoked", "viewer", "marketer", "admin"):
        for method, path, body, least in ROUTES:
            n += 1
            if body == "event":
                body = event(f"perm-{n}")
            elif body == "batch":
                body = {"events": [event(f"perm-{n}")]}
            headers = {} if who == "none" else api.as_(who)
            r = api.request(method, path.replace("{cid}", str(api.seed.ids[0])), headers=headers, json=body)
            if who in ("none", "revoked"):
                expected = {401}
            elif ORDER.index(who) < ORDER.index(least):
                expected = {403}
            else:
                expected = {200, 201, 404}  # 404: the DELETE of an address another role lifted first
            assert r.status_code in expected, (who, method, path, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/json")
    assert api.get("/api/v1/customers", headers={"X-API-Key": api.seed.keys["viewer"]}).status_code == 200
    assert api.get("/api/v1/customers", headers={"Authorization": "Bearer wbk_nope_nope"}).status_code == 401


def test_session_cookie_needs_the_csrf_token_for_writes(api):
    r = api.post("/login", data={"email": "boss@example.com", "password": PASSWORD, "next": "/"},
                 follow_redirects=False)
    assert r.status_code == 303
    token = api.cookies.get("winback_session")
    csrf = verify(api.seed.settings.signing_key(), "session", token, now=NOW)["x"]
    assert api.get("/api/v1/customers").status_code == 200  # reads need no token
    no_token = api.post("/api/v1/campaigns/winback/pause")
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["detail"]
    assert api.post("/api/v1/events", json=event("csrf-1")).status_code == 403
    assert count_events(api.seed.settings, event_id="csrf-1") == 0
    wrong = api.post("/api/v1/campaigns/winback/pause", headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    ok = api.post("/api/v1/campaigns/winback/pause", headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["status"] == "paused"
    assert api.post("/api/v1/events", json=event("csrf-2"), headers={"X-CSRF-Token": csrf}).status_code == 200
