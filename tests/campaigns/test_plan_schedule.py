"""``winback plan`` and the scheduler on an analysed workspace, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter

import pytest
from sqlalchemy import text

from tests.helpers import state_rows
from winback.campaigns.planner import plan
from winback.campaigns.scheduler import schedule_due
from winback.kit.db import make_engine
from winback.playbooks.spec import builtin_playbook_path, load_playbook_file

UTC = dt.timezone.utc
NOW = dt.datetime(2025, 12, 31, 10, 0, tzinfo=UTC)
DEFAULT = load_playbook_file(builtin_playbook_path())


def _rows(settings, sql):
    return state_rows(settings, sql)


def test_plan_routes_each_lost_customer_by_reason_with_a_holdout(fresh):
    result = plan(fresh, explain=50)
    # every treated or held-out winback enrollment sits in the campaign of its reason's strategy
    rows = _rows(fresh, "SELECT c.key, e.strategy, e.arm, e.status, s.churn_reason, s.status FROM enrollments e "
                        "JOIN campaigns c ON c.id = e.campaign_id JOIN customer_scores s ON s.customer_id = e.customer_id "
                        "WHERE e.trigger = 'winback'")
    assert len(rows) > 200
    for key, strategy, arm, status, reason, lifecycle in rows:
        assert lifecycle in ("churned", "lost", "trial_only")
        expected = DEFAULT.strategies[reason if reason in DEFAULT.strategies else "unknown"].campaign
        if strategy == (reason if reason in DEFAULT.strategies else "unknown"):
            assert key == expected
        assert status == ("active" if arm == "treatment" else "held_out") or status in ("completed", "exited")
    assert {r[0] for r in rows} >= {"winback_price", "winback_involuntary", "winback_general"}
    # holdout: about 10% of each campaign (binomial: n ~ hundreds, 3 sigma)
    arms = Counter(r[2] for r in rows)
    share = arms["holdout"] / sum(arms.values())
    n = sum(arms.values())
    assert abs(share - 0.10) < 3 * (0.1 * 0.9 / n) ** 0.5 + 0.01
    # every decision explains itself
    assert result.decisions and all(d["explanation"] for d in result.decisions)
    assert sum(result.enrolled.values()) + sum(result.held_out.values()) == len(
        _rows(fresh, "SELECT id FROM enrollments"))


def test_plan_is_idempotent_and_dry_run_writes_nothing(fresh):
    dry = plan(fresh, dry_run=True)
    assert sum(dry.enrolled.values()) > 0
    assert _rows(fresh, "SELECT count(*) FROM enrollments") == [(0,)]
    assert _rows(fresh, "SELECT count(*) FROM outbox_messages") == [(0,)]
    first = plan(fresh)
    assert sum(first.enrolled.values()) == sum(dry.enrolled.values())
    count = _rows(fresh, "SELECT count(*) FROM enrollments")[0][0]
    outbox = _rows(fresh, "SELECT count(*) FROM outbox_messages")[0][0]
    second = plan(fresh)
    assert sum(second.enrolled.values()) == 0
    assert _rows(fresh, "SELECT count(*) FROM enrollments")[0][0] == count
    assert _rows(fresh, "SELECT count(*) FROM outbox_messages")[0][0] == outbox


def test_first_steps_are_rendered_into_the_outbox_with_unsubscribe_headers(fresh):
    plan(fresh)
    rows = _rows(fresh, "SELECT o.idempotency_key, o.subject, o.text_body, o.html_body, o.headers, o.payload, "
                        "o.category, o.to_address, o.locale FROM outbox_messages o WHERE o.channel = 'email'")
    assert rows
    postal = fresh.sender.postal_address
    for key, subject, body, html, headers, payload, category, to, locale in rows:
        assert key.startswith("enr:") and ":step:" in key
        assert subject and "\n" not in subject and to
        assert postal in body and postal.split(",")[0] in html
        if category == "commercial":
            h = json.loads(headers)
            assert h["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            url = h["List-Unsubscribe"].strip("<>").split(">")[0]
            assert url.startswith(fresh.sender.base_url + "/u/")
            assert url in body
            assert json.loads(payload)["exit_on"]
            assert json.loads(payload)["topic"] in ("offers", "product_updates", "surveys", "tips", None)
        # the open pixel closes the HTML part; the plain text has none
        assert html.count(fresh.sender.base_url + "/o/") == 1 and "/o/" not in body
    locales = Counter(r[8][:2] for r in rows if r[8])
    assert len(locales) >= 3  # the generator's customers write in several languages


def test_steps_follow_their_delays_and_stop_at_an_exit_event(fresh):
    plan(fresh, campaigns=["winback_price"])
    engine = make_engine(fresh.resolved_state_url)
    try:
        with engine.begin() as conn:
            enr = conn.execute(text("SELECT id, customer_id, enrolled_at FROM enrollments WHERE arm='treatment' "
                                    "ORDER BY id")).all()
        assert len(enr) >= 4
        leaver, stayer = enr[0], enr[1]
        steps = [s for s in DEFAULT.sequences["winback_four_step"].steps]
        # nothing more is due until the next step's delay has passed
        before = schedule_due(fresh, engine=engine, now=NOW + dt.timedelta(hours=1))
        assert sum(before.messages.values()) == 0
        # the leaver comes back: an exit event after the trigger
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO customer_events (event_id, customer_id, type, occurred_at, received_at, "
                              "source) VALUES ('t-returned', :c, 'returned', :at, :at, 'api')"),
                         {"c": leaver.customer_id, "at": NOW + dt.timedelta(days=2)})
        elapsed = dt.timedelta(0)
        for step in steps[1:]:
            elapsed += step.after
        late = schedule_due(fresh, engine=engine, now=NOW + elapsed + dt.timedelta(minutes=1))
        assert late.exited["returned"] == 1
        with engine.connect() as conn:
            leaver_msgs = conn.execute(text("SELECT step FROM outbox_messages WHERE enrollment_id=:e"),
                                       {"e": leaver.id}).scalars().all()
            from winback.models.delivery import OutboxMessage
            from sqlalchemy import select
            stayer_msgs = conn.execute(select(OutboxMessage.step, OutboxMessage.due_at).where(
                OutboxMessage.enrollment_id == stayer.id).order_by(OutboxMessage.step)).all()
            status = conn.execute(text("SELECT status, exit_reason FROM enrollments WHERE id=:e"),
                                  {"e": leaver.id}).one()
        assert leaver_msgs == [0]  # only the first email went out before the return
        assert tuple(status) == ("exited", "returned")
        # the stayer got every email step, each due its delay after the previous one
        email_steps = [i for i, s in enumerate(steps) if s.channel == "email"]
        assert [m.step for m in stayer_msgs if m.step in email_steps] == email_steps
        due = {m.step: m.due_at for m in stayer_msgs}
        offsets = {}
        acc = dt.timedelta(0)
        for i, s in enumerate(steps):
            acc += s.after if i else dt.timedelta(0)
            offsets[i] = acc
        for i in email_steps:
            assert due[i] - due[0] == offsets[i] - offsets[0]
    finally:
        engine.dispose()


def test_concurrent_schedulers_never_write_a_step_twice(fresh):
    plan(fresh, schedule=False)
    engine = make_engine(fresh.resolved_state_url)
    errors: list[BaseException] = []

    def run():
        try:
            schedule_due(fresh, engine=engine, now=NOW + dt.timedelta(days=30))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert not errors, errors
    dup = _rows(fresh, "SELECT enrollment_id, step, count(*) FROM outbox_messages GROUP BY enrollment_id, step "
                       "HAVING count(*) > 1")
    assert dup == []
    # and every treated enrollment finished its whole sequence (nothing lost in the race)
    left = _rows(fresh, "SELECT count(*) FROM enrollments WHERE status = 'active'")[0][0]
    assert left == 0


def test_an_invalid_workspace_playbook_stops_plan_with_its_line(fresh):
    from winback.kit.errors import WinbackError

    text_ = builtin_playbook_path().read_text(encoding="utf-8").replace("holdout: 0.10", "holdout: 1.5", 1)
    (fresh.workspace / "playbooks" / "default.yaml").write_text(text_, encoding="utf-8")
    with pytest.raises(WinbackError) as info:
        plan(fresh)
    assert "holdout" in str(info.value) and "line" in str(info.value)
    assert _rows(fresh, "SELECT count(*) FROM enrollments") == [(0,)]


def test_a_broken_workspace_template_holds_its_enrollments_and_writes_nothing(fresh):
    plan(fresh, campaigns=["winback_support"], schedule=False)
    broken = fresh.workspace / "templates" / "winback"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "reminder.yaml").write_text('en:\n  subject: "Hi {{ customer.nickname }}"\n  text: "x"\n  html: "x"\n',
                                          encoding="utf-8")
    try:
        result = schedule_due(fresh, now=NOW)
        assert result.skipped["render error"] > 0 and "nickname" in result.errors[0]
        assert sum(result.messages.values()) == 0
        assert _rows(fresh, "SELECT count(*) FROM outbox_messages") == [(0,)]
        assert _rows(fresh, "SELECT count(*) FROM coupons") == [(0,)]
        waiting = _rows(fresh, "SELECT count(*) FROM enrollments WHERE arm='treatment' AND status='active' "
                               "AND next_step=0")[0][0]
        assert waiting == result.skipped["render error"]
    finally:
        (broken / "reminder.yaml").unlink()
    fixed = schedule_due(fresh, now=NOW)
    assert fixed.messages["email"] > 0 and not fixed.errors


def test_segment_entry_and_event_triggers(fresh):
    result = plan(fresh, campaigns=["at_risk_check_in", "exit_survey"], schedule=False)
    members = _rows(fresh, "SELECT count(*) FROM segment_memberships m JOIN segments s ON s.id = m.segment_id "
                           "JOIN customer_scores c ON c.customer_id = m.customer_id "
                           "WHERE s.name = 'active_at_risk' AND c.status = 'active'")[0][0]
    at_risk = result.enrolled["at_risk_check_in"] + result.held_out["at_risk_check_in"]
    assert members > 0 and at_risk == members
    # the exit survey goes to recent voluntary cancellations only
    rows = _rows(fresh, "SELECT s.churn_reason, e.trigger FROM enrollments e JOIN campaigns c ON c.id = e.campaign_id "
                        "JOIN customer_scores s ON s.customer_id = e.customer_id WHERE c.key = 'exit_survey'")
    assert rows and all(t == "event:subscription_canceled" for _r, t in rows)
    assert "involuntary" not in {r for r, _t in rows}
    cancels = _rows(fresh, "SELECT count(DISTINCT customer_id) FROM customer_events WHERE type = "
                           "'subscription_canceled' AND occurred_at >= '2025-12-17'")[0][0]
    assert len(rows) <= cancels


def test_crm_handoff_webhook_for_top_value_only_when_configured(fresh):
    plan(fresh, campaigns=["winback_price", "winback_general"], schedule=False)
    skipped = schedule_due(fresh, now=NOW)
    assert skipped.skipped["no webhook configured (delivery.webhook_url)"] > 0
    assert _rows(fresh, "SELECT count(*) FROM outbox_messages WHERE channel = 'webhook'") == [(0,)]
    # the same plan with a CRM webhook configured
    from tests.campaigns.conftest import CAMPAIGN_TABLES

    engine = make_engine(fresh.resolved_state_url)
    with engine.begin() as conn:
        for table in CAMPAIGN_TABLES:
            conn.execute(text(f'DELETE FROM "{table}"'))
    engine.dispose()
    settings = fresh.model_copy(deep=True)
    settings.delivery.webhook_url = "http://127.0.0.1:9/crm"
    plan(settings, campaigns=["winback_price", "winback_general"], schedule=False)
    schedule_due(settings, now=NOW)
    rows = _rows(settings, "SELECT o.payload, s.value_tier FROM outbox_messages o JOIN customer_scores s "
                           "ON s.customer_id = o.customer_id WHERE o.channel = 'webhook'")
    assert rows and {tier for _p, tier in rows} == {"top"}
    body = json.loads(rows[0][0])["webhook"]
    assert body["event"] == "winback.step" and body["customer"]["id"] and body["reason"]
    assert body["decision"]["explanation"]


def test_a_small_budget_goes_to_the_most_valuable_customers_first(fresh):
    text_ = builtin_playbook_path().read_text(encoding="utf-8").replace(
        "    budget: {amount_minor: 10000000}   # $100,000 of expected offer cost\n",
        "    budget: {amount_minor: 20000}\n", 1)  # winback_price: $200
    (fresh.workspace / "playbooks" / "default.yaml").write_text(text_, encoding="utf-8")
    plan(fresh, campaigns=["winback_price"], schedule=False)
    rows = _rows(fresh, "SELECT s.priority_rank, e.offer_cost_minor, e.offer_key FROM enrollments e "
                        "JOIN customer_scores s ON s.customer_id = e.customer_id WHERE e.arm = 'treatment' "
                        "ORDER BY s.priority_rank")
    committed = _rows(fresh, "SELECT committed_cost_minor, budget_minor FROM campaigns WHERE key='winback_price'")[0]
    assert committed[0] <= committed[1] == 20000
    assert sum(r[1] or 0 for r in rows) == committed[0]
    offered = [r[0] for r in rows if r[1]]
    without = [r[0] for r in rows if not r[1] and r[0] is not None]
    assert offered and without
    # offers went to the top of the priority list: the median offered rank is ahead of the median without
    assert sorted(offered)[len(offered) // 2] < sorted(without)[len(without) // 2]
    ranks = sorted(r[0] for r in rows if r[0] is not None)
    top_third = ranks[len(ranks) // 3]
    spent_on_top = sum(r[1] or 0 for r in rows if r[0] is not None and r[0] <= top_third)
    assert spent_on_top >= 0.8 * committed[0]  # the budget went to the top third by priority


def test_an_edited_playbook_is_a_new_version_and_enrollments_keep_theirs(fresh):
    plan(fresh, campaigns=["winback_support"])
    assert {r[0] for r in _rows(fresh, "SELECT playbook_version FROM enrollments")} == {1}
    edited = builtin_playbook_path().read_text(encoding="utf-8").replace(
        "{key: whats_new, after: 5d,", "{key: whats_new, after: 1h,", 1)
    assert edited != builtin_playbook_path().read_text(encoding="utf-8")
    (fresh.workspace / "playbooks" / "default.yaml").write_text(edited, encoding="utf-8")
    result = plan(fresh, campaigns=["winback_support"])
    assert result.playbook_version == 2
    assert _rows(fresh, "SELECT playbook_version FROM campaigns WHERE key = 'winback_support'") == [(2,)]
    # enrolled under version 1: the second email still waits its 5 days (1 day of steps + 5), not 1 hour
    steps = DEFAULT.sequences["winback_four_step"].steps
    whats_new = next(i for i, s in enumerate(steps) if s.key == "whats_new")
    schedule_due(fresh, now=NOW + dt.timedelta(days=3))
    assert _rows(fresh, f"SELECT count(*) FROM outbox_messages WHERE step = {whats_new}") == [(0,)]
    schedule_due(fresh, now=NOW + dt.timedelta(days=6, hours=1))
    assert _rows(fresh, f"SELECT count(*) FROM outbox_messages WHERE step = {whats_new}")[0][0] > 0


def test_a_paused_campaign_enrolls_schedules_and_sends_nothing_until_resumed(fresh):
    from winback.delivery.outbox import claim

    plan(fresh, campaigns=["winback_price"])
    engine = make_engine(fresh.resolved_state_url)
    try:
        def one(sql, **params):
            with engine.connect() as conn:
                return conn.execute(text(sql), params).scalar_one()

        enrolled = one("SELECT count(*) FROM enrollments e JOIN campaigns c ON c.id = e.campaign_id "
                       "WHERE c.key = 'winback_price'")
        queued = one("SELECT count(*) FROM outbox_messages o JOIN campaigns c ON c.id = o.campaign_id "
                     "WHERE c.key = 'winback_price'")
        assert enrolled >= 4 and queued >= 1
        with engine.begin() as conn:  # what POST /api/v1/campaigns/winback_price/pause does
            conn.execute(text("UPDATE campaigns SET status = 'paused' WHERE key = 'winback_price'"))
        later = NOW + dt.timedelta(days=60)
        assert sum(schedule_due(fresh, engine=engine, now=later).messages.values()) == 0
        camp_id = one("SELECT id FROM campaigns WHERE key = 'winback_price'")
        assert not [m for m in claim(engine, "w1", later, 60, 10_000) if m["campaign_id"] == camp_id]
        # a re-plan keeps the pause (the playbook's `enabled` did not change) and enrolls nobody new
        fresh.now = (NOW + dt.timedelta(days=1)).isoformat()
        plan(fresh, campaigns=["winback_price"])
        assert one("SELECT status FROM campaigns WHERE key = 'winback_price'") == "paused"
        assert one("SELECT count(*) FROM enrollments e JOIN campaigns c ON c.id = e.campaign_id "
                   "WHERE c.key = 'winback_price'") == enrolled
        with engine.begin() as conn:
            conn.execute(text("UPDATE campaigns SET status = 'active' WHERE key = 'winback_price'"))
        assert sum(schedule_due(fresh, engine=engine, now=later).messages.values()) > 0
        assert [m for m in claim(engine, "w2", later, 60, 10_000) if m["campaign_id"] == camp_id]
    finally:
        engine.dispose()
