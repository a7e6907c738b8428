"""Dunning e-mails: the failed-payment sequence, the final notice, the receipt and card-expiry
reminders - timing with an injected clock, content, idempotency, cancellation, no promotion."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from sqlalchemy import select, update

from tests.dunning.factories import T0, add_billing_customer, add_case, add_customer, add_payment_method, \
    add_subscription
from winback.campaigns import links
from winback.campaigns.rendering import check_templates
from winback.dunning import notices
from winback.kit.db import make_engine, write_transaction
from winback.kit.signing import verify
from winback.models.delivery import OutboxMessage
from winback.models.dunning import BillingPaymentMethod, DunningCase
from winback.playbooks.spec import LOCALES

OUTBOX = OutboxMessage.__table__
DAY = dt.timedelta(days=1)


def with_dunning(settings, **values):
    return settings.model_copy(update={"dunning": settings.dunning.model_copy(update=values)})


@pytest.fixture
def env(workspace):
    engine = make_engine(workspace.resolved_state_url)
    yield workspace, engine
    engine.dispose()


def schedule(settings, engine, now) -> int:
    with write_transaction(engine) as conn:
        return notices.schedule_case_notices(conn, settings, now)


def remind(settings, engine, now) -> int:
    with write_transaction(engine) as conn:
        return notices.schedule_expiry_reminders(conn, settings, now)


def outbox(engine, prefix: str = "dunning:") -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(OUTBOX).where(OUTBOX.c.idempotency_key.startswith(prefix)).order_by(OUTBOX.c.id))]


def keys(engine, prefix: str = "dunning:", status: str | None = None) -> list[str]:
    return [r["idempotency_key"] for r in outbox(engine, prefix) if status is None or r["status"] == status]


def new_case(engine, *, email="ada@example.com", locale="en", decline="insufficient_funds", **kwargs) -> tuple[int, dict]:
    with write_transaction(engine) as conn:
        who = add_billing_customer(conn, email, locale=locale)
        case_id = add_case(conn, f"in_{who['ref']}", customer_ref=who["ref"], customer_id=who["customer_id"],
                           subscription_ref=who["subscription"], decline_code=decline,
                           payment_method_ref=who["card"], **kwargs)
    return case_id, who


def card_token(row: dict) -> str:
    match = re.search(r"/b/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)", row["text_body"])
    assert match, "the notice carries the card-update link"
    return match.group(1)


# --- the failed-payment sequence --------------------------------------------------------------------------


def test_sequence_follows_notice_days_then_a_final_notice_before_the_grace_period_ends(env):
    settings, engine = env
    case_id, _ = new_case(engine)
    expected = {0: "0", 3: "1", 7: "2", 12: "final"}  # notice_days 0, 3, 7; grace 14 days -> final at day 12
    for day in range(0, 16):
        for hour in (0, 13):  # twice a day: re-runs add nothing
            now = T0 + day * DAY + dt.timedelta(hours=hour)
            written = schedule(settings, engine, now)
            if day in expected and hour == 0:
                assert written == 1, f"day {day}"
                assert keys(engine)[-1] == f"dunning:case:{case_id}:{expected[day]}"
            else:
                assert written == 0, f"day {day} hour {hour}"
    rows = outbox(engine)
    assert [r["idempotency_key"] for r in rows] == [f"dunning:case:{case_id}:{s}" for s in ("0", "1", "2", "final")]
    assert [r["due_at"] for r in rows] == [T0, T0 + 3 * DAY, T0 + 7 * DAY, T0 + 12 * DAY]
    for row in rows:
        assert row["category"] == "transactional" and row["channel"] == "email"
        assert row["campaign_id"] is None and row["enrollment_id"] is None and row["headers"] is None
        assert row["to_address"] == "ada@example.com" and row["from_address"] == settings.sender.from_address
        assert row["message_id"].startswith("<wb.") and row["priority"] > 50
        payload = json.loads(row["payload"])
        assert payload["dunning"]["case_id"] == case_id and payload["postal_address"]
        assert payload["links"]["card_update"].startswith(settings.sender.base_url.rstrip("/") + "/b/")
        assert settings.sender.postal_address in row["text_body"]
    assert json.loads(rows[-1]["payload"])["template"] == "dunning/final_notice"


def test_a_late_scheduler_sends_only_the_latest_due_notice_never_a_backlog(env):
    settings, engine = env
    case_id, _ = new_case(engine)
    assert schedule(settings, engine, T0 + 8 * DAY) == 1
    assert keys(engine) == [f"dunning:case:{case_id}:2"]
    assert schedule(settings, engine, T0 + 8 * DAY) == 0
    # past the grace period nothing is sent (the service ends the case)
    other, _ = new_case(engine, email="bob@example.com")
    assert schedule(settings, engine, T0 + 15 * DAY) == 0
    assert not keys(engine, f"dunning:case:{other}:")


def test_a_newer_notice_supersedes_one_still_waiting(env):
    settings, engine = env
    case_id, _ = new_case(engine)
    schedule(settings, engine, T0)
    schedule(settings, engine, T0 + 3 * DAY)
    rows = {r["idempotency_key"]: r for r in outbox(engine)}
    assert rows[f"dunning:case:{case_id}:0"]["status"] == "canceled"
    assert "superseded" in rows[f"dunning:case:{case_id}:0"]["status_reason"]
    assert rows[f"dunning:case:{case_id}:1"]["status"] == "pending"


def test_hard_decline_explains_the_bank_answer_and_asks_for_a_new_card(env):
    settings, engine = env
    case_id, _ = new_case(engine, decline="lost_card")
    schedule(settings, engine, T0)
    row = outbox(engine)[0]
    assert json.loads(row["payload"])["template"] == "dunning/payment_failed_hard"
    assert "declined" in row["subject"] and "please update your card" in row["subject"]
    for part in (row["text_body"], row["html_body"]):
        assert "$49.00" in part and "Pro" in part and "4242" in part
        assert "the bank has blocked this card" in part and "lost_card" not in part
        assert "We will not charge this card again" in part
        assert "January 29, 2026" in part  # the grace period's end
    assert "Hi Ada," in row["text_body"]


def test_soft_decline_says_when_we_try_again_and_that_nothing_is_needed(env):
    settings, engine = env
    case_id, _ = new_case(engine, decline="insufficient_funds", next_attempt_at=T0 + 3 * DAY)
    schedule(settings, engine, T0)
    row = outbox(engine)[0]
    assert json.loads(row["payload"])["template"] == "dunning/payment_failed_soft"
    assert "January 18, 2026" in row["subject"]
    for part in (row["text_body"], row["html_body"]):
        assert "$49.00" in part and "not have enough available funds" in part
        assert "You don't need to do anything" in part and "/b/" in part


def test_soft_decline_without_a_retry_left_asks_for_another_card(env):
    settings, engine = env
    with write_transaction(engine) as conn:
        who = add_billing_customer(conn, "cy@example.com")
        case_id = add_case(conn, "in_x", customer_ref=who["ref"], customer_id=who["customer_id"],
                           decline_code="do_not_honor", retry_index=3)
        conn.execute(update(DunningCase.__table__).where(DunningCase.__table__.c.id == case_id)
                     .values(next_attempt_at=None))
    schedule(settings, engine, T0)
    row = outbox(engine)[0]
    assert "try again" not in row["subject"] and "add another card" in row["text_body"]


@pytest.mark.parametrize("locale,amount,currency,needle", [
    ("ja-JP", 4900, "JPY", "￥4,900"), ("ko-KR", 39000, "KRW", "₩39,000"),
    ("uk-UA", 19900, "UAH", "199,00"), ("zh-CN", 9900, "CNY", "¥99.00"), ("en-GB", 4900, "GBP", "£49.00")])
def test_amounts_and_dates_are_localised(env, locale, amount, currency, needle):
    settings, engine = env
    with write_transaction(engine) as conn:
        who = add_billing_customer(conn, "loc@example.com", locale=locale)
        add_case(conn, "in_loc", customer_ref=who["ref"], customer_id=who["customer_id"], amount_minor=amount,
                 currency=currency, decline_code="insufficient_funds", subscription_ref=who["subscription"])
    schedule(settings, engine, T0)
    row = outbox(engine)[0]
    assert needle in row["text_body"]
    assert row["locale"] == locale.split("-")[0]
    if locale.startswith("ja"):
        assert "2026年1月16日" in row["text_body"]  # the retry date, in Japanese


def test_no_notice_while_a_gateway_error_is_retried_within_minutes(env):
    settings, engine = env
    case_id, _ = new_case(engine, decline="timeout", next_attempt_at=T0 + dt.timedelta(minutes=1),
                          quick_retries=1)
    assert schedule(settings, engine, T0) == 0
    with write_transaction(engine) as conn:  # the quick retries are over: the schedule took over
        conn.execute(update(DunningCase.__table__).where(DunningCase.__table__.c.id == case_id)
                     .values(quick_retries=0, next_attempt_at=T0 + DAY))
    assert schedule(settings, engine, T0 + dt.timedelta(hours=1)) == 1


def test_no_notice_without_an_address_a_failure_or_when_turned_off(env):
    settings, engine = env
    with write_transaction(engine) as conn:
        nobody = add_customer(conn, None)
        add_case(conn, "in_a", customer_ref="cus_a", customer_id=nobody)
        someone = add_customer(conn, "d@example.com")
        add_case(conn, "in_b", customer_ref="cus_b", customer_id=someone, first_failed_at=None)  # seen paid
        add_case(conn, "in_c", customer_ref="cus_c", customer_id=someone, status="recovered")
        add_case(conn, "in_d", customer_ref="cus_d", customer_id=None)
    assert schedule(settings, engine, T0) == 0
    new_case(engine, email="e@example.com")
    assert schedule(with_dunning(settings, notices=False), engine, T0) == 0
    assert schedule(settings, engine, T0) == 1


def test_opted_out_customers_still_get_transactional_notices(env):
    settings, engine = env
    with write_transaction(engine) as conn:
        cid = add_customer(conn, "out@example.com", opt_out=True, basis="none")
        add_case(conn, "in_out", customer_ref="cus_out", customer_id=cid)
    assert schedule(settings, engine, T0) == 1
    row = outbox(engine)[0]
    assert row["category"] == "transactional" and row["status"] == "pending"
    assert "Unsubscribe" not in row["text_body"]  # the service-message footer, not the marketing one


# --- cancel, recover, receipt -------------------------------------------------------------------------------


def test_cancel_on_recovery_keeps_sent_notices_and_writes_one_receipt(env):
    settings, engine = env
    case_id, _ = new_case(engine)
    schedule(settings, engine, T0)
    with write_transaction(engine) as conn:  # the first notice went out
        conn.execute(update(OUTBOX).where(OUTBOX.c.idempotency_key == f"dunning:case:{case_id}:0")
                     .values(status="sent", sent_at=T0))
    schedule(settings, engine, T0 + 3 * DAY)
    now = T0 + 3 * DAY + dt.timedelta(hours=2)
    with write_transaction(engine) as conn:
        assert notices.cancel_case_notices(conn, case_id, now, "recovered") == 1
        assert notices.cancel_case_notices(conn, case_id, now, "recovered") == 0
        conn.execute(update(DunningCase.__table__).where(DunningCase.__table__.c.id == case_id)
                     .values(status="recovered", recovered_at=now, recovered_by="retry"))
        assert notices.enqueue_recovered_notice(conn, settings, case_id, now) == 1
        assert notices.enqueue_recovered_notice(conn, settings, case_id, now) == 0
    status = {r["idempotency_key"].rsplit(":", 1)[1]: r["status"] for r in outbox(engine)}
    assert status == {"0": "sent", "1": "canceled", "recovered": "pending"}
    receipt = outbox(engine)[-1]
    assert receipt["subject"] == "Payment received - thank you"
    assert "$49.00" in receipt["text_body"] and "January 18, 2026" in receipt["text_body"]
    assert receipt["category"] == "transactional"
    # a recovered case gets no further notices; the receipt is never canceled by a later sweep
    assert schedule(settings, engine, T0 + 12 * DAY) == 0
    assert outbox(engine)[-1]["status"] == "pending"


def test_a_case_closed_without_cancel_loses_its_waiting_notices_on_the_next_run(env):
    settings, engine = env
    case_id, _ = new_case(engine)
    schedule(settings, engine, T0)
    with write_transaction(engine) as conn:
        conn.execute(update(DunningCase.__table__).where(DunningCase.__table__.c.id == case_id)
                     .values(status="closed", close_reason="voided"))
    schedule(settings, engine, T0 + DAY)
    assert outbox(engine)[0]["status"] == "canceled"


def test_receipt_needs_a_recovered_failure(env):
    settings, engine = env
    case_id, _ = new_case(engine)
    with write_transaction(engine) as conn:
        assert notices.enqueue_recovered_notice(conn, settings, case_id, T0) == 0  # still open
        assert notices.enqueue_recovered_notice(conn, settings, 999_999, T0) == 0


def test_final_notice_names_the_end_of_the_subscription(env):
    settings, engine = env
    new_case(engine, decline="expired_card")
    schedule(settings, engine, T0 + 12 * DAY)
    row = outbox(engine)[0]
    assert row["idempotency_key"].endswith(":final")
    assert "Last reminder" in row["subject"] and "January 29, 2026" in row["subject"]
    assert "the card has expired" in row["text_body"]


# --- the card-update link -----------------------------------------------------------------------------------


@pytest.mark.parametrize("days", [7, 3])
def test_the_link_verifies_and_expires_after_card_link_days(env, days):
    settings, engine = env
    settings = with_dunning(settings, card_link_days=days)
    new_case(engine)
    now = T0 + dt.timedelta(hours=5)
    schedule(settings, engine, now)
    row = outbox(engine)[0]
    data = verify(settings.signing_key(), "card_update", card_token(row))
    assert data["c"] == row["customer_id"] and data["m"] == row["message_id"]
    assert data["exp"] == int((now + dt.timedelta(days=days)).timestamp())
    assert card_token(row) in row["html_body"]
    # the link of the campaigns keeps its default lifetime
    plain = links.card_update_url(b"k" * 32, "", customer_id=1, message="<m@x>", now=now)
    assert verify(b"k" * 32, "card_update", plain.split("/b/")[1])["exp"] == \
        int((now + dt.timedelta(days=links.CARD_LINK_DAYS)).timestamp())


# --- no promotion, every language ---------------------------------------------------------------------------

BANNED = {
    "en": ["offer", "coupon", "discount", "% off", "upgrade", "promo", "deal", "save ", "free month", "upsell"],
    "ja": ["割引", "クーポン", "特典", "オフ", "キャンペーン", "アップグレード", "無料"],
    "ko": ["할인", "쿠폰", "혜택", "프로모션", "업그레이드", "무료"],
    "uk": ["знижк", "купон", "пропозиці", "акці", "безкоштов", "бонус"],
    "zh": ["折扣", "优惠", "优惠券", "促销", "升级", "免费", "打折"],
}


@pytest.mark.parametrize("locale", LOCALES)
def test_no_promotion_in_any_dunning_message(env, locale):
    settings, engine = env
    with write_transaction(engine) as conn:
        for i, decline in enumerate(("lost_card", "insufficient_funds")):
            who = add_billing_customer(conn, f"p{i}@example.com", locale=locale, exp=(2, 2026))
            add_case(conn, f"in_p{i}", customer_ref=who["ref"], customer_id=who["customer_id"],
                     decline_code=decline, subscription_ref=who["subscription"], payment_method_ref=who["card"])
    schedule(settings, engine, T0)  # hard and soft
    schedule(settings, engine, T0 + 12 * DAY)  # final notices
    remind(settings, engine, dt.datetime(2026, 2, 10, 9, tzinfo=dt.timezone.utc))  # card expiring
    with write_transaction(engine) as conn:
        case_id = conn.execute(select(DunningCase.__table__.c.id).limit(1)).scalar_one()
        conn.execute(update(DunningCase.__table__).where(DunningCase.__table__.c.id == case_id)
                     .values(status="recovered", recovered_at=T0 + DAY))
        notices.enqueue_recovered_notice(conn, settings, case_id, T0 + DAY)  # receipt
    rows = outbox(engine)
    templates = {json.loads(r["payload"])["template"] for r in rows}
    assert templates == set(notices.TEMPLATES)
    for row in rows:
        assert row["category"] == "transactional" and row["locale"] == locale
        text = " ".join((row["subject"], row["text_body"], row["html_body"])).lower()
        for word in BANNED[locale] + BANNED["en"]:
            assert word.lower() not in text, f"{json.loads(row['payload'])['template']} ({locale}) says {word!r}"
        assert "{{" not in text and "None" not in row["subject"] + row["text_body"]
        assert "coupon" not in json.loads(row["payload"]) and "offer" not in json.loads(row["payload"])


def test_the_templates_pass_the_tag_check_and_have_every_language():
    import yaml

    from winback.campaigns.rendering import SHIPPED_TEMPLATES

    assert check_templates(set(notices.TEMPLATES)) == []
    for key in notices.TEMPLATES:
        data = yaml.safe_load((SHIPPED_TEMPLATES / f"{key}.yaml").read_text(encoding="utf-8"))
        assert set(LOCALES) <= set(data)


def test_plain_reasons_exist_for_every_language_and_never_show_codes():
    from winback.dunning.policy import GATEWAY_ERRORS, HARD_DECLINES, SOFT_DECLINES

    for lang in LOCALES:
        assert set(notices.REASONS[lang]) == set(notices.REASONS["en"])
        for code in HARD_DECLINES | SOFT_DECLINES | GATEWAY_ERRORS | {"something_new", None}:
            text = notices.decline_reason(code, lang)
            assert text and "_" not in text
    assert notices.decline_reason("stolen_card", "ko-KR") == notices.REASONS["ko"]["blocked"]


# --- card-expiry reminders ----------------------------------------------------------------------------------

def _days(start: dt.datetime, end: dt.datetime):
    t = start
    while t <= end:
        yield t
        t += DAY


def test_expiry_reminders_at_30_15_and_7_days_exactly_once_each(env):
    settings, engine = env
    with write_transaction(engine) as conn:
        who = add_billing_customer(conn, "exp@example.com", exp=(2, 2026))  # valid through 2026-02-28
    sent = {}
    for now in _days(T0.replace(hour=8), dt.datetime(2026, 3, 10, 8, tzinfo=dt.timezone.utc)):
        for _ in range(2):  # re-runs add nothing
            if remind(settings, engine, now):
                sent[keys(engine)[-1]] = now.date()
    prefix = f"dunning:expiry:sandbox:{who['card']}:2026-02:"
    assert sent == {prefix + "30": dt.date(2026, 1, 29), prefix + "15": dt.date(2026, 2, 13),
                    prefix + "7": dt.date(2026, 2, 21)}
    rows = outbox(engine)
    assert [r["status"] for r in rows] == ["canceled", "canceled", "pending"]  # each newer one supersedes
    row = rows[-1]
    assert row["category"] == "transactional" and row["to_address"] == "exp@example.com"
    assert "expires soon" in row["subject"] and "4242" in row["text_body"] and "02/2026" in row["text_body"]
    assert verify(settings.signing_key(), "card_update", card_token(row))["c"] == who["customer_id"]


def test_a_late_run_sends_only_the_nearest_threshold(env):
    settings, engine = env
    with write_transaction(engine) as conn:
        who = add_billing_customer(conn, "late@example.com", exp=(2, 2026))
    assert remind(settings, engine, dt.datetime(2026, 2, 22, tzinfo=dt.timezone.utc)) == 1  # 6 days left
    assert keys(engine) == [f"dunning:expiry:sandbox:{who['card']}:2026-02:7"]


def test_reminders_stop_when_the_card_is_updated(env):
    settings, engine = env
    with write_transaction(engine) as conn:
        who = add_billing_customer(conn, "upd@example.com", exp=(2, 2026))
    jan29 = dt.datetime(2026, 1, 29, 9, tzinfo=dt.timezone.utc)
    assert remind(settings, engine, jan29) == 1
    # the card updater renews the card: a new expiry far away
    with write_transaction(engine) as conn:
        conn.execute(update(BillingPaymentMethod.__table__).where(
            BillingPaymentMethod.__table__.c.external_id == who["card"]).values(
            exp_month=2, exp_year=2029, updated_via="card_updater"))
        assert notices.cancel_expiry_reminders(conn, "sandbox", who["card"], jan29) == 1
        assert notices.cancel_expiry_reminders(conn, "sandbox", who["card"], jan29) == 0
    for now in _days(jan29, dt.datetime(2026, 3, 10, tzinfo=dt.timezone.utc)):
        assert remind(settings, engine, now) == 0
    assert [r["status"] for r in outbox(engine)] == ["canceled"]


def test_a_changed_expiry_gives_new_keys_and_stale_reminders_are_canceled_even_without_the_call(env):
    settings, engine = env
    with write_transaction(engine) as conn:
        who = add_billing_customer(conn, "chg@example.com", exp=(2, 2026))
    remind(settings, engine, dt.datetime(2026, 1, 29, tzinfo=dt.timezone.utc))
    with write_transaction(engine) as conn:  # a new card that also runs out soon (no cancel call)
        conn.execute(update(BillingPaymentMethod.__table__).where(
            BillingPaymentMethod.__table__.c.external_id == who["card"]).values(exp_month=3, exp_year=2026))
    assert remind(settings, engine, dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)) == 0  # 58 days: none yet
    assert outbox(engine)[0]["status"] == "canceled"
    assert remind(settings, engine, dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)) == 1
    assert keys(engine)[-1] == f"dunning:expiry:sandbox:{who['card']}:2026-03:30"


def test_only_default_cards_of_live_subscriptions_of_reachable_customers(env):
    settings, engine = env
    with write_transaction(engine) as conn:
        add_billing_customer(conn, "gone@example.com", exp=(2, 2026), status="canceled")
        add_billing_customer(conn, None, exp=(2, 2026))  # no address
        who = add_billing_customer(conn, "two@example.com", exp=(2, 2026))
        add_payment_method(conn, "pm_spare", customer_ref=who["ref"], customer_id=who["customer_id"], exp=(2, 2026))
        detached = add_billing_customer(conn, "det@example.com", exp=(2, 2026))
        conn.execute(update(BillingPaymentMethod.__table__).where(
            BillingPaymentMethod.__table__.c.external_id == detached["card"]).values(status="detached"))
        trial = add_customer(conn, "trial@example.com")
        add_payment_method(conn, "pm_trial", customer_ref="cus_trial", exp=(2, 2026))  # card without customer id
        add_subscription(conn, "sub_trial", customer_ref="cus_trial", customer_id=trial,
                         payment_method_ref="pm_trial", status="trialing")
    assert remind(settings, engine, dt.datetime(2026, 1, 29, tzinfo=dt.timezone.utc)) == 2
    assert sorted(k.split(":")[3] for k in keys(engine)) == sorted([who["card"], "pm_trial"])
    assert remind(with_dunning(settings, expiry_reminder_days=[]), engine,
                  dt.datetime(2026, 2, 21, tzinfo=dt.timezone.utc)) == 0


def test_expiry_helpers():
    assert notices.card_valid_through(2, 2028) == dt.date(2028, 2, 29)
    assert notices.card_valid_through(12, 2026) == dt.date(2026, 12, 31)
    assert [notices.due_threshold([7, 15, 30], d) for d in (45, 31, 30, 16, 15, 8, 7, 0, -1)] == \
        [None, None, 30, 30, 15, 15, 7, 7, None]
    assert notices.plan_name("plan_pro_monthly") == "Pro Monthly" and notices.plan_name(None) is None
    assert notices.expiry_key("stripe", "pm_1", 2026, 2, 15) == "dunning:expiry:stripe:pm_1:2026-02:15"
