"""The SaaS dataset: valid against the specs, and telling the story the product brief describes."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict

import numpy as np
import pyarrow.compute as pc
import pytest

from tests.synth.synth_checks import (
    SAAS_TABLES, epoch, header, instant, key_problems, load_csv, load_truth, reference_problems, spec_problems,
    values,
)
from winback.models.history import TABLES_BY_NAME
from winback.synth import generate

END = dt.date(2025, 12, 31)
CUSTOMERS = 5000
DAY = 86400.0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("saas")
    messages: list[str] = []
    result = generate("saas", CUSTOMERS, 7, out, fmt="csv", observation_end=END, progress=messages.append)
    return result, out, messages


@pytest.fixture(scope="module")
def t(run):
    return load_csv(run[1], SAAS_TABLES)


@pytest.fixture(scope="module")
def truth(run):
    return load_truth(run[1]).to_pylist()


# ------------------------------------------------------------------------------- shape and validity

def test_result_describes_the_files(run):
    result, out, messages = run
    assert result.kind == "saas" and result.customers == CUSTOMERS and result.fmt == "csv"
    assert set(result.files) == set(SAAS_TABLES)
    for name, path in result.files.items():
        assert path == out / f"{name}.csv" and path.exists()
    assert result.rows["customers"] == CUSTOMERS
    assert result.ground_truth == out / "ground_truth.parquet" and result.ground_truth.exists()
    assert result.seconds > 0 and messages
    summary = result.summary()
    json.dumps(summary)  # JSON-able
    assert summary["rows"] == result.rows and summary["total_rows"] == sum(result.rows.values())
    on_disk = json.loads((out / "ground_truth.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in summary.items() if k != "seconds"}.items() <= on_disk.items()
    # only the SaaS tables and the ground truth are written; no leftovers
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.csv" for n in SAAS_TABLES] + ["ground_truth.parquet", "ground_truth.json"])


def test_every_file_has_exactly_the_spec_columns(run, t):
    for name in SAAS_TABLES:
        assert header(run[1] / f"{name}.csv") == TABLES_BY_NAME[name].column_names
        assert t[name].num_rows > 0, name


def test_cells_follow_the_conventions(t):
    problems = [p for name in SAAS_TABLES for p in spec_problems(name, t[name], END)]
    assert problems == []


def test_ids_are_unique_and_references_resolve(t):
    assert key_problems(t) == []
    assert reference_problems(t) == []


def test_emails_unique_and_reserved(t):
    emails = values(t["customers"], "email")
    assert len(set(emails)) == len(emails)
    assert all(re.fullmatch(r"[a-z0-9._]+@example\.(com|org|net)", e) for e in emails)


def test_money_is_consistent(t):
    inv = t["invoices"]
    due = np.array(values(inv, "amount_due"), dtype=np.int64)
    paid = np.array(values(inv, "amount_paid"), dtype=np.int64)
    status = np.array(values(inv, "status"))
    assert (due > 0).all() and (paid >= 0).all()
    assert (paid[status == "paid"] == due[status == "paid"]).all()
    assert (paid[status != "paid"] == 0).all()
    assert set(values(t["plans"], "amount")) == {"3500", "9500", "19900", "99900"}


def test_locales_are_multilingual_with_matching_places(t):
    c = t["customers"]
    locales = Counter(values(c, "locale"))
    assert set(locales) == {"en", "ja", "ko", "uk", "zh-Hans", "zh-Hant"}
    assert 0.4 < locales["en"] / CUSTOMERS < 0.6
    countries = {"en": {"US", "GB", "CA", "AU"}, "ja": {"JP"}, "ko": {"KR"}, "uk": {"UA"},
                 "zh-Hans": {"CN", "SG"}, "zh-Hant": {"TW", "HK"}}
    scripts = {"ja": r"[\u4e00-\u9fff\u3040-\u30ff]", "ko": r"[\uac00-\ud7af]", "uk": r"[\u0400-\u04ff]",
               "zh-Hans": r"[\u4e00-\u9fff]", "zh-Hant": r"[\u4e00-\u9fff]", "en": r"^[A-Za-z' ]+$"}
    for locale, country, name in zip(values(c, "locale"), values(c, "country"), values(c, "name")):
        assert country in countries[locale]
        assert re.search(scripts[locale], name), (locale, name)
    opt_out = Counter(values(c, "marketing_opt_out"))
    assert 0.01 < opt_out["true"] / CUSTOMERS < 0.06
    assert set(values(c, "marketing_basis")) == {"consent", "soft_opt_in", "none"}
    opted = [(o, at) for o, at in zip(values(c, "marketing_opt_out"), values(c, "opted_out_at"))]
    assert all((o == "true") == (at is not None) for o, at in opted)


# ------------------------------------------------------------------------------- churn story

def test_involuntary_share_of_churn(run, truth):
    churned = [r for r in truth if r["churned"]]
    paid = [r for r in churned if r["lifecycle"] == "churned"]
    for group in (churned, paid):
        share = sum(r["true_reason"] == "involuntary" for r in group) / len(group)
        assert 0.20 <= share <= 0.40, share
    assert 0.20 <= run[0].summary()["involuntary_share_of_churn"] <= 0.40
    reasons = Counter(r["true_reason"] for r in churned)
    assert set(reasons) == {"price", "missing_feature", "usability", "support", "competitor", "other", "involuntary"}


def test_involuntary_churn_in_the_billing_data(t):
    subs = t["subscriptions"]
    ended = pc.is_valid(subs.column("ended_at")).to_pylist()
    codes = values(subs, "cancel_reason_code")
    paid_ended = [c for c, e, trial_end, cancel in zip(codes, ended, values(subs, "trial_end"),
                                                     values(subs, "canceled_at"))
                  if e and not (trial_end and cancel and cancel < trial_end)]
    share = sum(c == "payment_failed" for c in paid_ended) / len(paid_ended)
    assert 0.20 <= share <= 0.40, share
    att = t["payment_attempts"]
    soft = {"insufficient_funds", "do_not_honor", "try_again_later", "processing_error", "generic_decline",
            "card_velocity_exceeded"}
    hard = {"expired_card", "lost_card", "stolen_card", "pickup_card", "fraudulent", "incorrect_number",
            "do_not_try_again"}
    failed = [(c, s) for c, s in zip(values(att, "decline_code"), values(att, "status")) if s == "failed"]
    codes_seen = {c for c, _ in failed}
    assert codes_seen <= soft | hard and len(codes_seen & soft) >= 4 and len(codes_seen & hard) >= 3
    assert all(c is None for c, s in zip(values(att, "decline_code"), values(att, "status")) if s == "succeeded")
    # retries: uncollectible invoices after 4 failed attempts, and failures recovered by a retry
    inv = t["invoices"]
    statuses = values(inv, "status")
    counts = [int(x) for x in values(inv, "attempt_count")]
    assert any(s == "uncollectible" and n == 4 for s, n in zip(statuses, counts))
    assert sum(s == "paid" and n >= 2 for s, n in zip(statuses, counts)) >= 20
    # retries happen 1, 3 and 7 days after the first failure
    times = defaultdict(list)
    for inv_id, at in zip(values(att, "invoice_id"), epoch(att, "attempted_at")):
        times[inv_id].append(at)
    gaps = Counter(round((ts[i] - ts[0]) / DAY) for ts in times.values() if len(ts) == 4 for i in (1, 2, 3))
    assert {1, 3, 7} <= set(gaps)
    # card details on every attempt
    assert all(re.fullmatch(r"\d{4}", x) for x in values(att, "card_last4"))
    assert set(values(att, "card_brand")) >= {"visa", "mastercard", "amex"}


def test_expired_cards_are_really_expired(t):
    att = t["payment_attempts"]
    at = epoch(att, "attempted_at")
    for code, when, year, month in zip(values(att, "decline_code"), at, values(att, "card_exp_year"),
                                       values(att, "card_exp_month")):
        moment = dt.datetime.fromtimestamp(when, dt.timezone.utc)
        valid = (int(year), int(month)) >= (moment.year, moment.month)
        assert valid == (code != "expired_card"), (code, moment, year, month)


def test_some_active_cards_expire_soon(t, truth):
    att = t["payment_attempts"]
    subs = t["subscriptions"]
    live = {c for c, s in zip(values(subs, "customer_id"), values(subs, "status")) if s in ("active", "past_due")}
    latest = {}
    for cust, when, y, m in zip(values(att, "customer_id"), epoch(att, "attempted_at"), values(att, "card_exp_year"),
                                values(att, "card_exp_month")):
        if cust not in latest or when >= latest[cust][0]:
            latest[cust] = (when, int(y) * 12 + int(m) - 1)
    end_month = END.year * 12 + END.month - 1
    soon = {c for c, (_, exp) in latest.items() if c in live and 1 <= exp - end_month <= 3}
    assert len(soon) >= 0.03 * len(live)
    flagged = {r["customer_id"] for r in truth if r["card_expiring_soon"]}
    assert soon == flagged


def test_q4_2024_price_increase_and_the_churn_after_it(t, truth):
    pcs = t["price_changes"]
    assert sorted(values(pcs, "plan_id")) == ["plan_pro", "plan_starter"]
    assert set(values(pcs, "effective_at")) == {"2024-10-01T00:00:00Z"}
    assert all(int(n) > int(o) for o, n in zip(values(pcs, "old_amount"), values(pcs, "new_amount")))
    ch = t["subscription_changes"]
    inc = [(o, n, at) for typ, o, n, at in zip(values(ch, "change_type"), values(ch, "old_mrr"), values(ch, "new_mrr"),
                                               values(ch, "changed_at")) if typ == "price_increase"]
    assert len(inc) >= 100
    assert all(int(n) > int(o) and "2024-10-01" <= at < "2024-11-01" for o, n, at in inc)

    subs = t["subscriptions"]
    started, ended = epoch(subs, "started_at"), epoch(subs, "ended_at")

    def active_at(day):
        x = instant(day)
        return int(((started <= x) & ~(ended <= x)).sum())

    def price_churn(lo, hi):
        return sum(1 for r in truth if r["true_reason"] == "price" and r["churned"]
                   and instant(lo) <= r["churned_at"].timestamp() < instant(hi))

    before = price_churn(dt.date(2024, 7, 1), dt.date(2024, 10, 1)) / active_at(dt.date(2024, 7, 1))
    after = price_churn(dt.date(2024, 10, 1), dt.date(2025, 1, 1)) / active_at(dt.date(2024, 10, 1))
    assert after > 2 * before, (before, after)
    # the stated reasons show it too
    codes = [(c, e) for c, e in zip(values(subs, "cancel_reason_code"), values(subs, "ended_at")) if c]
    q3 = sum(c == "too_expensive" and "2024-07" <= e < "2024-10" for c, e in codes if e)
    q4 = sum(c == "too_expensive" and "2024-10" <= e < "2025-01" for c, e in codes if e)
    assert q4 > q3


def test_integration_x_requesters_churn_in_h1_2025(t, truth):
    ev = t["product_events"]
    requested = {c for c, typ, f in zip(values(ev, "customer_id"), values(ev, "event_type"), values(ev, "feature"))
                 if typ == "feature_requested" and f == "integration_x"}
    assert len(requested) >= 30
    rows = [r for r in truth if r["requested_feature"] == "integration_x"]
    assert {r["customer_id"] for r in rows} == requested
    churned = [r for r in rows if r["churned"]]
    h1 = [r for r in churned if dt.date(2025, 1, 1) <= r["churned_at"].date() < dt.date(2025, 7, 1)]
    assert len(h1) > 0.5 * len(churned)
    assert sum(r["true_reason"] == "missing_feature" for r in h1) > 0.7 * len(h1)
    rel = t["releases"]
    shipped = dict(zip(values(rel, "feature"), values(rel, "released_at")))
    assert shipped["integration_x"] == "2025-07-15T16:00:00Z"
    assert set(values(rel, "kind")) >= {"feature", "improvement", "integration", "support"}


def test_trials_never_converted_citing_complexity(t):
    subs = t["subscriptions"]
    billed = set(values(t["invoices"], "subscription_id"))
    trial_lost = [(sid, code, text) for sid, st, ts, te, cancel, code, text in zip(
        values(subs, "subscription_id"), values(subs, "status"), values(subs, "trial_start"), values(subs, "trial_end"),
        values(subs, "canceled_at"), values(subs, "cancel_reason_code"), values(subs, "cancel_reason_text"))
        if st == "canceled" and ts and cancel and cancel <= te]
    assert all(sid not in billed for sid, _, _ in trial_lost)
    complex_ = [x for x in trial_lost if x[1] == "too_complex"]
    assert len(complex_) >= 30
    # and exit surveys answering "too complex", with free-text comments
    sr = t["survey_responses"]
    choices = Counter(c for q, c in zip(values(sr, "question_id"), values(sr, "choice")) if q == "main_reason")
    assert choices["too_complex"] >= 20


def test_reactivations_are_second_subscriptions(t, truth):
    subs = t["subscriptions"]
    per_customer = Counter(values(subs, "customer_id"))
    twice = {c for c, n in per_customer.items() if n == 2}
    assert max(per_customer.values()) == 2
    back = {r["customer_id"] for r in truth if r["reactivated"]}
    assert twice == back
    churned_paid = sum(r["lifecycle"] in ("churned", "trial_lost") for r in truth)
    assert 0.01 < len(back) / (churned_paid + len(back)) < 0.15


def test_stated_reasons_mostly_match_the_truth(truth):
    mapping = {"too_expensive": "price", "missing_features": "missing_feature", "too_complex": "usability",
               "low_quality": "usability", "customer_service": "support", "switched_service": "competitor",
               "unused": "other", "other": "other"}
    stated = [(r["stated_reason"], r["true_reason"]) for r in truth
              if r["stated_reason"] and r["true_reason"] not in (None, "involuntary")]
    agree = sum(mapping[s] == true for s, true in stated) / len(stated)
    assert 0.80 <= agree <= 0.97, agree


def test_survey_free_text_in_every_language(t):
    sr = t["survey_responses"]
    texts = defaultdict(set)
    for q, lang, text in zip(values(sr, "question_id"), values(sr, "language"), values(sr, "text")):
        if q == "comment":
            texts[lang].add(text)
    subs = t["subscriptions"]
    assert sum(1 for x in values(subs, "cancel_reason_text") if x) > 50
    assert set(texts) == {"en", "ja", "ko", "uk", "zh-Hans", "zh-Hant"}
    kana, hangul, cyrillic, cjk = r"[\u3040-\u30ff]", r"[\uac00-\ud7af]", r"[\u0400-\u04ff]", r"[\u4e00-\u9fff]"
    for text in texts["en"]:
        assert re.search(r"[A-Za-z]", text) and not re.search(f"{kana}|{hangul}|{cyrillic}|{cjk}", text)
    for text in texts["ja"]:
        assert re.search(f"{kana}|{cjk}", text) and not re.search(hangul, text)
    assert any(re.search(kana, text) for text in texts["ja"])
    for text in texts["ko"]:
        assert re.search(hangul, text)
    for text in texts["uk"]:
        assert re.search(cyrillic, text)
    for lang in ("zh-Hans", "zh-Hant"):
        for text in texts[lang]:
            assert re.search(cjk, text) and not re.search(f"{kana}|{hangul}", text)
    assert any(re.search("[们这个说为还对时么网离没]", text) for text in texts["zh-Hans"])
    assert any(re.search("[們這個說為還對時麼網離沒]", text) for text in texts["zh-Hant"])
    assert not any(re.search("[們這說為還對時麼網離沒]", text) for text in texts["zh-Hans"])
    for lang, pool in texts.items():  # varied, not one sentence repeated
        assert len(pool) >= 15, (lang, len(pool))


def test_engagement_decays_before_churn(t, truth):
    ev = t["product_events"]
    gone = {r["customer_id"]: r["churned_at"].timestamp() for r in truth
            if r["churned"] and not r["reactivated"] and r["paid_months"] >= 4}
    week = 7 * DAY
    sums = defaultdict(lambda: np.zeros(12))
    at = epoch(ev, "occurred_at")
    for cust, typ, when, count in zip(values(ev, "customer_id"), values(ev, "event_type"), at, values(ev, "count")):
        if typ == "login" and cust in gone:
            # weeks before the churn week (roll-ups sit on Monday 00:00 UTC)
            d = int((np.floor((gone[cust] - 4 * DAY) / week) - np.floor((when - 4 * DAY) / week)))
            if 0 <= d < 12:
                sums[cust][d] += int(count)
    last4 = np.mean([s[:4].mean() for s in sums.values()])
    first4 = np.mean([s[8:].mean() for s in sums.values()])
    assert last4 < 0.8 * first4, (last4, first4)
    # some active customers are decaying too
    assert sum(r["engagement_decaying"] for r in truth if r["lifecycle"] in ("active", "past_due")) > 50


def test_support_churners_had_bad_tickets(t, truth):
    tk = t["tickets"]
    reason = {r["customer_id"]: r["true_reason"] for r in truth}
    csat = defaultdict(list)
    unresolved = defaultdict(int)
    for cust, score, status in zip(values(tk, "customer_id"), values(tk, "csat"), values(tk, "status")):
        group = "support" if reason.get(cust) == "support" else "rest"
        if score:
            csat[group].append(int(score))
        unresolved[group] += status in ("new", "open", "pending", "on_hold")
    assert np.mean(csat["support"]) < 2.5 < np.mean(csat["rest"])
    assert unresolved["support"] > 20


def test_checkouts_completed_abandoned_and_declined(t, truth):
    ck = t["checkouts"]
    status = Counter(values(ck, "status"))
    assert status["completed"] > status["abandoned"] > 0 and status["incomplete"] > 0
    for st, code, done, email in zip(values(ck, "status"), values(ck, "decline_code"), values(ck, "completed_at"),
                                     values(ck, "email")):
        assert email
        assert (code is not None) == (st == "incomplete")
        assert (done is not None) == (st == "completed")
    life = Counter(r["lifecycle"] for r in truth)
    assert life["prospect_abandoned"] > 0 and life["prospect_declined"] > 0


def test_ground_truth_columns_and_response_model(truth):
    offers = ("none", "discount", "lower_tier", "annual_incentive", "pause", "extended_trial", "expert_session",
              "account_credit", "feature_announcement", "payment_update")
    row = truth[0]
    for key in ("customer_id", "churned", "churned_at", "true_reason", "persona", "requested_feature"):
        assert key in row
    assert len(truth) == CUSTOMERS
    for r in truth:
        ps = [r[f"p_return_{o}"] for o in offers]
        lost = r["churned"] or r["lifecycle"].startswith("prospect")
        assert all(p is not None and 0 <= p <= 1 for p in ps) if lost else all(p is None for p in ps)
        assert (r["churned_at"] is not None) == r["churned"]

    def mean(reason, offer):
        return np.mean([r[f"p_return_{offer}"] for r in truth if r["churned"] and r["true_reason"] == reason])

    assert mean("price", "discount") > mean("price", "feature_announcement") > 0
    assert mean("price", "lower_tier") > mean("price", "none")
    assert mean("involuntary", "payment_update") > max(mean("involuntary", o) for o in offers[:-1])
    assert mean("support", "expert_session") > mean("support", "discount")
    shipped = [r["p_return_feature_announcement"] for r in truth
               if r["churned"] and r["true_reason"] == "missing_feature" and r["requested_feature"] == "integration_x"]
    assert np.mean(shipped) > 2 * mean("competitor", "feature_announcement")
    by_tier = defaultdict(list)
    for r in truth:
        if r["churned"] and r["true_reason"] == "price":
            by_tier[r["plan_id"]].append(r["p_return_discount"])
    assert np.mean(by_tier["plan_business"] + by_tier["plan_enterprise"]) > np.mean(by_tier["plan_starter"])


def test_timestamps_respect_an_earlier_observation_end(tmp_path):
    end = dt.date(2024, 6, 30)
    result = generate("saas", 400, 3, tmp_path, observation_end=end)
    tables = load_csv(tmp_path, SAAS_TABLES)
    assert [p for name in SAAS_TABLES for p in spec_problems(name, tables[name], end)] == []
    assert reference_problems(tables) == []
    assert result.rows["price_changes"] == 0  # announced after the horizon


def test_comment_reasons_label_the_free_text(t, truth):
    rows = [r for r in truth if r["comment_reason"]]
    assert len(rows) > 100
    agree = sum(r["comment_reason"] == r["true_reason"] for r in rows) / len(rows)
    assert 0.9 <= agree < 1.0, agree  # ~5% of comments talk about something else
    # every customer with an exit comment or cancellation comment of their latest churn is labelled
    labelled = {r["customer_id"] for r in truth if r["comment_reason"] or r["previous_comment_reason"]}
    sr = t["survey_responses"]
    commenters = {c for c, q in zip(values(sr, "customer_id"), values(sr, "question_id")) if q == "comment"}
    assert commenters <= labelled
    back = [r for r in truth if r["reactivated"]]
    assert all(r["previous_reason"] and r["previous_churned_at"] < r["reactivated_at"] for r in back)
