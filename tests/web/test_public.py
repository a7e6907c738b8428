"""The recipient pages: open pixel, tracked clicks, unsubscribe (RFC 8058), preference centre, exit
survey and card-update placeholder - on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.web.public_fixtures import *  # noqa: F403
from tests.web.public_fixtures import EMAIL, HUMAN, MESSAGE, NOW, SCANNER, Public, csrf_of, state_snapshot
from winback.campaigns import links
from winback.kit.signing import sign
from winback.models.campaigns import CustomerEvent
from winback.models.customer import Customer
from winback.models.delivery import Suppression
from winback.models.tracking import CustomerPreference, SurveyResponse, TrackingEvent
from winback.web.public.routes import GIF

# --- the open pixel --------------------------------------------------------------------------------------


def test_pixel_records_an_open_and_always_answers_the_gif(public: Public):
    r = public.client.get(public.pixel(), headers={"user-agent": HUMAN})
    assert r.status_code == 200 and r.content == GIF and r.headers["content-type"] == "image/gif"
    assert "no-store" in r.headers["cache-control"]
    opens = public.rows(TrackingEvent, kind="open")
    assert len(opens) == 1 and opens[0]["message_id"] == public.outbox_id and not opens[0]["machine"]
    assert opens[0]["customer_id"] == public.customer_id and opens[0]["campaign_id"] == public.campaign_id

    # Apple Mail Privacy Protection prefetch: recorded, flagged as machine
    public.client.get(public.pixel(), headers={"user-agent": "Mozilla/5.0"})
    machine = [e for e in public.rows(TrackingEvent, kind="open") if e["machine"]]
    assert len(machine) == 1 and machine[0]["machine_reason"] == "apple-mpp"

    # HEAD answers the image's headers and records nothing
    before = state_snapshot(public)
    head = public.client.head(public.pixel(), headers={"user-agent": HUMAN})
    assert head.status_code == 200 and head.headers["content-type"] == "image/gif"
    assert state_snapshot(public) == before

    # a pixel of an unknown message: still the gif, nothing recorded
    r = public.client.get(public.pixel("<unknown@winback.test>"), headers={"user-agent": HUMAN})
    assert r.status_code == 200 and r.content == GIF
    assert state_snapshot(public) == before


def test_every_email_ends_with_the_open_pixel_in_html_only():
    from winback.campaigns.rendering import render_message, sample_context

    pixel = links.open_pixel_url(b"k" * 32, "https://win.example.com", message="<m@x>")
    assert pixel.startswith("https://win.example.com/o/") and pixel.endswith(".gif")
    msg = render_message("winback/reminder", "en", sample_context("en"), open_pixel=pixel)
    assert msg.html.count(pixel) == 1 and pixel not in msg.text
    tail = msg.html[msg.html.index(pixel):]
    assert "</body>" in tail and "<table" not in tail  # after the content, at the very end
    assert 'width="1" height="1"' in msg.html and 'alt=""' in msg.html
    assert pixel not in render_message("winback/reminder", "en", sample_context("en")).html


# --- clicks ----------------------------------------------------------------------------------------------


def test_click_records_and_redirects_to_the_signed_target(public: Public):
    target = "https://shop.example.com/reactivate?coupon=X&utm=1"
    r = public.client.get(public.click(target), headers={"user-agent": HUMAN}, follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == target
    (event,) = public.rows(TrackingEvent, kind="click")
    assert not event["machine"] and event["link"] == "cta" and event["target"] == target
    assert event["message_id"] == public.outbox_id


def test_link_scanners_are_machine_clicks_and_head_records_nothing(public: Public):
    r = public.client.get(public.click(), headers={"user-agent": SCANNER}, follow_redirects=False)
    assert r.status_code == 302  # the scanner still gets the redirect (it checks the target)
    clicks = public.rows(TrackingEvent, kind="click")
    assert len(clicks) == 1 and clicks[0]["machine"] and clicks[0]["machine_reason"] == "scanner"
    assert not [c for c in clicks if not c["machine"]]  # no human click counted

    before = state_snapshot(public)
    head = public.client.head(public.click(), headers={"user-agent": HUMAN}, follow_redirects=False)
    assert head.status_code == 302 and head.headers["location"] == "https://shop.example.com/reactivate?coupon=X"
    assert state_snapshot(public) == before


@pytest.mark.parametrize("target", ["javascript:alert(1)", "ftp://files.example.com/x", "//evil.example/x",
                                    "https:///nohost", "https://evil.example/\x00x", "data:text/html,hi", ""])
def test_click_never_redirects_to_a_non_http_target_even_when_signed(public: Public, target: str):
    r = public.client.get(public.click(target), headers={"user-agent": HUMAN}, follow_redirects=False)
    assert r.status_code == 400 and "location" not in r.headers
    assert not public.rows(TrackingEvent)


# --- unsubscribe ----------------------------------------------------------------------------------------


def _unsubscribed(public: Public) -> bool:
    (customer,) = public.rows(Customer, id=public.customer_id)
    return customer["marketing_opt_out"]


def test_one_click_unsubscribe_rfc8058(public: Public):
    url = public.unsubscribe()
    r = public.client.post(url, content=b"List-Unsubscribe=One-Click",
                           headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "location" not in r.headers
    (sup,) = public.rows(Suppression)
    assert sup["address"] == EMAIL and sup["scope"] == "commercial" and sup["reason"] == "unsubscribed"
    assert _unsubscribed(public)
    assert len(public.rows(CustomerEvent, type="unsubscribed")) == 1
    (event,) = public.rows(TrackingEvent, kind="unsubscribe")
    assert event["message_id"] == public.outbox_id and event["campaign_id"] == public.campaign_id

    # twice is fine (and a multipart body, as some mail providers send it)
    again = public.client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert again.status_code == 200
    assert len(public.rows(Suppression)) == 1 and len(public.rows(TrackingEvent, kind="unsubscribe")) == 1
    assert len(public.rows(CustomerEvent, type="unsubscribed")) == 1
    # any body (or none) is accepted
    assert public.client.post(url).status_code == 200


def test_unsubscribe_page_is_localised_and_get_changes_nothing(public: Public):
    public.set_locale("ja-JP")
    before = state_snapshot(public)
    page = public.client.get(public.unsubscribe(), headers={"accept-language": "en-US"})
    assert page.status_code == 200 and 'lang="ja"' in page.text and "配信を停止する" in page.text
    assert 'name="confirm" value="1"' in page.text and 'method="post"' in page.text
    assert 'href="/p/' in page.text  # the preference centre
    assert state_snapshot(public) == before and not _unsubscribed(public)

    public.set_locale(None)  # no locale: the browser's language
    page = public.client.get(public.unsubscribe(), headers={"accept-language": "fr;q=0.9, ko-KR;q=0.8, en;q=0.5"})
    assert "수신 거부" in page.text
    assert state_snapshot(public) == before

    done = public.client.post(public.unsubscribe(), data={"confirm": "1", "lang": "uk"})
    assert done.status_code == 200 and "Ви відписалися" in done.text and done.headers["content-type"].startswith(
        "text/html")
    assert _unsubscribed(public) and len(public.rows(Suppression)) == 1


def test_unsubscribe_with_unknown_customer_or_message(public: Public):
    # unknown message, known customer: the customer's address is suppressed
    r = public.client.post(public.unsubscribe(message="<gone@winback.test>"), content=b"List-Unsubscribe=One-Click")
    assert r.status_code == 200 and _unsubscribed(public)
    assert [s["address"] for s in public.rows(Suppression)] == [EMAIL]
    # neither known: 200, nothing to change, no error
    before = state_snapshot(public)
    r = public.client.post(public.unsubscribe(customer_id=987654, message="<nope@x>"),
                           content=b"List-Unsubscribe=One-Click")
    assert r.status_code == 200
    after = state_snapshot(public)
    assert after["suppressions"] == before["suppressions"] and after["opted_out"] == before["opted_out"]


# --- preference centre ----------------------------------------------------------------------------------


def test_preference_centre_topics_pause_resume_and_unsubscribe_all(public: Public):
    url = public.preferences()
    page = public.client.get(url + "?lang=uk")
    assert page.status_code == 200 and "Налаштування розсилки" in page.text
    assert page.text.count('type="checkbox"') == 4 and page.text.count(" checked") == 4
    csrf = csrf_of(page.text)

    r = public.client.post(url, data={"csrf": csrf, "action": "save", "topics": ["offers", "tips"], "lang": "en"})
    assert r.status_code == 200 and "Your preferences were saved." in r.text
    (prefs,) = public.rows(CustomerPreference)
    assert json.loads(prefs["topics_off"]) == ["product_updates", "surveys"] and prefs["paused_until"] is None

    public.client.post(url, data={"csrf": csrf, "action": "pause30"})
    (prefs,) = public.rows(CustomerPreference)
    assert prefs["paused_until"] == NOW + dt.timedelta(days=30)
    assert json.loads(prefs["topics_off"]) == ["product_updates", "surveys"]  # a pause keeps the topics
    assert "February 14, 2026" in public.client.get(url).text
    public.client.post(url, data={"csrf": csrf, "action": "pause90"})
    assert public.rows(CustomerPreference)[0]["paused_until"] == NOW + dt.timedelta(days=90)
    public.client.post(url, data={"csrf": csrf, "action": "resume"})
    assert public.rows(CustomerPreference)[0]["paused_until"] is None
    kinds = [e["detail"] for e in public.rows(TrackingEvent, kind="preferences")]
    assert len(kinds) == 4

    assert not _unsubscribed(public)
    r = public.client.post(url, data={"csrf": csrf, "action": "unsubscribe_all"})
    assert r.status_code == 200 and 'id="opted-out"' in r.text
    assert _unsubscribed(public) and public.rows(Suppression)[0]["source"] == "preferences"


def test_preference_form_needs_its_token_bound_field(public: Public):
    url = public.preferences()
    before = state_snapshot(public)
    for data in ({"action": "unsubscribe_all"}, {"csrf": "0" * 32, "action": "unsubscribe_all"},
                 {"csrf": csrf_of(public.client.get(url).text), "action": "drop_tables"}):
        r = public.client.post(url, data=data)
        assert r.status_code == 400
    # a field made for another customer's page does not work here either
    other = public.client.get(public.preferences(customer_id=public.customer_id + 1))
    assert other.status_code == 404
    assert state_snapshot(public) == before


# --- exit survey ----------------------------------------------------------------------------------------


def _answers(page: str, **values) -> dict:
    data = {"csrf": csrf_of(page), "main_reason": "price", "detail": "", "return_likelihood": "6",
            "would_return_if": "lower_price", "comment": "Too expensive for a team of three."}
    data.update(values)
    return data


def test_survey_stores_answers_events_and_updates_on_resubmit(public: Public):
    url = public.survey()
    page = public.client.get(url, headers={"accept-language": "zh-CN,zh;q=0.9"})
    assert page.status_code == 200 and "您为什么离开" in page.text
    for choice in ("price", "missing_feature", "usability", "support", "competitor", "other"):
        assert f'value="{choice}"' in page.text
    assert 'value="involuntary"' not in page.text

    r = public.client.post(url, data=_answers(page.text, lang="zh"))
    assert r.status_code == 200 and "感谢您的反馈" in r.text
    (resp,) = public.rows(SurveyResponse)
    assert resp["reason"] == "price" and resp["comment"] == "Too expensive for a team of three."
    assert resp["message"] == MESSAGE and resp["survey"] == "exit" and resp["locale"] == "zh"
    assert json.loads(resp["answers"]) == {"main_reason": "price", "detail": None, "return_likelihood": 6,
                                           "would_return_if": "lower_price"}
    (event,) = public.rows(CustomerEvent, type="survey_answered")
    assert event["event_id"] == f"survey:{resp['id']}:1"
    props = json.loads(event["properties"])
    assert props["reason"] == "price" and props["return_likelihood"] == 6 and props["comment"].startswith("Too")
    (tracked,) = public.rows(TrackingEvent, kind="survey")
    assert tracked["message_id"] == public.outbox_id

    # the page shows the previous answers; re-submitting updates the same row
    page = public.client.get(url)
    assert 'value="price" required checked' in page.text and "Too expensive" in page.text
    public.client.post(url, data=_answers(page.text, main_reason="competitor", detail="Tableau", comment=""))
    (resp,) = public.rows(SurveyResponse)
    assert resp["reason"] == "competitor" and resp["comment"] is None
    assert json.loads(resp["answers"])["detail"] == "Tableau"
    assert sorted(e["event_id"] for e in public.rows(CustomerEvent, type="survey_answered")) == [
        f"survey:{resp['id']}:1", f"survey:{resp['id']}:2"]


@pytest.mark.parametrize("field,value", [("main_reason", "involuntary"), ("main_reason", ""),
                                         ("return_likelihood", "11"), ("return_likelihood", "five"),
                                         ("would_return_if", "free_money")])
def test_survey_rejects_unknown_choices_naming_the_field(public: Public, field: str, value: str):
    url = public.survey()
    page = public.client.get(url)
    before = state_snapshot(public)
    r = public.client.post(url, data=_answers(page.text, **{field: value}))
    assert r.status_code == 400 and f'data-field="{field}"' in r.text
    assert state_snapshot(public) == before


def test_survey_text_is_capped_and_cleaned(public: Public):
    url = public.survey()
    page = public.client.get(url)
    comment = "A\x00B\x1b[31mC\u202eD\nline two " + "x" * 5000
    public.client.post(url, data=_answers(page.text, comment=comment, detail="\x07Looker\x7f"))
    (resp,) = public.rows(SurveyResponse)
    assert resp["comment"].startswith("AB[31mCD\nline two x") and len(resp["comment"]) == 2000
    assert json.loads(resp["answers"])["detail"] == "Looker"
    # without the token-bound field nothing is stored
    before = state_snapshot(public)
    r = public.client.post(url, data={"main_reason": "price"})
    assert r.status_code == 400 and state_snapshot(public) == before


def test_expired_links_get_a_friendly_localised_page(public: Public):
    public.set_locale("ja")
    old = NOW - dt.timedelta(days=links.SURVEY_LINK_DAYS + 1)
    r = public.client.get(public.survey(now=old), headers={"accept-language": "ja"})
    assert r.status_code == 410 and "有効期限が切れています" in r.text
    r = public.client.get(public.card(now=NOW - dt.timedelta(days=links.CARD_LINK_DAYS + 1)) + "?lang=ko")
    assert r.status_code == 410 and "링크가 만료되었습니다" in r.text


def test_card_update_placeholder_verifies_its_token(public: Public):
    public.set_locale("uk-UA")
    r = public.client.get(public.card())
    assert r.status_code == 200 and "Оновлення платіжних даних" in r.text and "hello@example.com" in r.text


# --- tampering ------------------------------------------------------------------------------------------


def _flip(text: str, i: int) -> str:
    return text[:i] + ("B" if text[i] != "B" else "C") + text[i + 1:]


ROUTES = {  # prefix -> (purpose, path template, methods)
    "o": ("open", "/o/{}.gif", ("GET", "HEAD")),
    "c": ("click", "/c/{}", ("GET", "HEAD")),
    "u": ("unsubscribe", "/u/{}", ("GET", "POST")),
    "p": ("preferences", "/p/{}", ("GET", "POST")),
    "s": ("survey", "/s/{}", ("GET", "POST")),
    "b": ("card_update", "/b/{}", ("GET",)),
}


def _payload(pub: Public, purpose: str) -> dict:
    return {"open": {"m": MESSAGE}, "click": {"m": MESSAGE, "t": "https://evil.example/phish", "l": "cta"},
            "unsubscribe": {"c": pub.customer_id, "m": MESSAGE, "k": pub.campaign_id},
            "preferences": {"c": pub.customer_id}, "survey": {"c": pub.customer_id, "m": MESSAGE, "s": "exit"},
            "card_update": {"c": pub.customer_id, "m": MESSAGE}}[purpose]


def _bad_tokens(pub: Public, purpose: str) -> dict[str, tuple[str, int]]:
    payload = _payload(pub, purpose)
    good = sign(pub.key, purpose, payload)
    body, mac = good.split(".")
    other = "survey" if purpose != "survey" else "unsubscribe"
    return {
        "payload": (f"{_flip(body, len(body) // 2)}.{mac}", 400),
        "mac": (f"{body}.{_flip(mac, 7)}", 400),
        "other purpose": (sign(pub.key, other, payload), 400),
        "other key": (sign(b"not-our-key" * 3, purpose, payload), 400),
        "expired": (sign(pub.key, purpose, payload, expires_at=NOW - dt.timedelta(seconds=1)), 410),
        "over-long": (good + "A" * 5000, 400),
        "non-ascii": ("ü€✓" + good, 400),
        "junk": ("a.b.c", 400),
    }


@pytest.mark.parametrize("prefix", list(ROUTES))
def test_tampered_tokens_change_nothing_and_never_redirect(public: Public, prefix: str):
    purpose, path, methods = ROUTES[prefix]
    before = state_snapshot(public)
    for name, (token, status) in _bad_tokens(public, purpose).items():
        for method in methods:
            kwargs = {"headers": {"user-agent": HUMAN}, "follow_redirects": False}
            if method == "POST":
                kwargs["data"] = {"List-Unsubscribe": "One-Click", "confirm": "1", "action": "unsubscribe_all",
                                  "main_reason": "price", "csrf": "0" * 32}
            r = public.client.request(method, path.format(token), **kwargs)
            assert "location" not in r.headers, (prefix, name, method)
            if prefix == "o":
                assert r.status_code == 200 and r.headers["content-type"] == "image/gif", (name, method)
            else:
                assert r.status_code == status, (prefix, name, method, r.status_code)
    assert state_snapshot(public) == before
    assert not _unsubscribed(public)


# --- survey answers reach the next analysis -----------------------------------------------------------------


def test_survey_answers_feed_reasons_and_themes_of_the_next_analysis(tmp_path, monkeypatch):
    """SQLite only (a generated history): a customer who never said why they left answers the survey
    "price" with a comment; the copy that starts ``winback analyze`` puts it into the history, where
    the reason step decides price and the comment is in the themes' input."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    import winback.analytics.service as analytics_service
    from winback.history.store import ibis_connection
    from winback.ingest.service import IngestOptions, ingest
    from winback.insights.evidence import assign_reasons, churn_evidence
    from winback.insights.themes import feedback_from_history
    from winback.kit.clock import FixedClock
    from winback.kit.db import make_engine
    from winback.reports.analysis_report import copy_state_feedback, run_analysis
    from winback.synth import generate
    from winback.web.app import create_app
    from winback.workspace import init_workspace

    generate("saas", 300, 3, tmp_path / "saas", fmt="parquet")
    settings = init_workspace(tmp_path / "ws", now="2026-01-15T00:00:00Z")
    ingest(settings, tmp_path / "saas", IngestOptions(source="saas"))
    truth = pq.read_table(tmp_path / "saas" / "ground_truth.parquet").to_pylist()
    with duckdb.connect(str(settings.history_path), read_only=True) as con:
        said = {r[0] for r in con.execute(
            "SELECT customer_id FROM subscriptions WHERE cancel_reason_code IS NOT NULL "
            "OR cancel_reason_text IS NOT NULL UNION SELECT customer_id FROM survey_responses").fetchall()}
    silent = [t for t in truth if t["churned"] and not t["reactivated"] and t["true_reason"] not in (
        "price", "involuntary") and t["customer_id"] not in said and t["churned_at"] is not None]
    assert silent, "the generated history has churned customers who never said why"
    chosen = silent[0]
    churned = pa.table({"source": ["saas"], "customer_id": [chosen["customer_id"]],
                        "churned_at": pa.array([chosen["churned_at"].replace(tzinfo=None)], pa.timestamp("us")),
                        "involuntary": [False]})

    def reason_now():
        con = ibis_connection(settings.history_path)
        decided = assign_reasons(churned, churn_evidence(con, churned)).to_pylist()[0]
        return decided["reason"], decided["reason_evidence"], con

    assert reason_now()[0] == "unknown"  # nothing stated before the survey

    engine = make_engine(settings.resolved_state_url)
    customers = Customer.__table__
    with engine.connect() as conn:
        state_id = conn.execute(select(customers.c.id).where(
            customers.c.external_id == chosen["customer_id"])).scalar_one()
    engine.dispose()
    answered_at = chosen["churned_at"].replace(tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
    comment = "Way too expensive after the price increase, we cannot justify the cost any more."
    url = links.survey_url(settings.signing_key(), "", customer_id=state_id, message="<m@ws>", now=answered_at)
    with TestClient(create_app(settings, clock=FixedClock(answered_at))) as client:
        page = client.get(url)
        assert client.post(url, data=_answers(page.text, comment=comment)).status_code == 200

    # `winback analyze` copies the answers first (stopped right after that step here: the full
    # analysis is covered elsewhere and takes ~15 s)
    class Stop(Exception):
        pass

    def stop(*_a, **_k):
        raise Stop

    monkeypatch.setattr(analytics_service, "analyze", stop)
    with pytest.raises(Stop):
        run_analysis(settings, write_report=False, refresh_segments=False)
    assert copy_state_feedback(settings) == 4  # main_reason, would_return_if, return_likelihood, comment
    with duckdb.connect(str(settings.history_path), read_only=True) as con:  # idempotent: replaced, not added
        assert con.execute("SELECT count(*) FROM survey_responses WHERE response_id LIKE 'web-%'").fetchone()[0] == 4

    reason, evidence, con = reason_now()
    assert reason == "price" and "survey_choice" in evidence and "too_expensive" in evidence
    feedback = feedback_from_history(con, dt.datetime(2026, 1, 15, tzinfo=dt.timezone.utc)).to_pylist()
    mine = [f for f in feedback if f["customer_id"] == chosen["customer_id"] and f["origin"] == "exit_comment"]
    assert [f["text"] for f in mine] == [comment]
