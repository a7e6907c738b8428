"""The e-commerce dataset: valid against the specs, personas, BG/NBD purchasing, checkouts."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict

import numpy as np
import pytest

from tests.synth.synth_checks import (
    SHOP_TABLES, header, key_problems, load_csv, load_truth, reference_problems, spec_problems, values,
)
from winback.models.history import TABLES_BY_NAME
from winback.synth import generate

END = dt.date(2025, 12, 31)
CUSTOMERS = 4000
PERSONAS = ("bouncer", "passive_browser", "cart_abandoner", "one_time_low_aov", "one_time_high_aov", "repeat_buyer")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("shop")
    return generate("ecommerce", CUSTOMERS, 11, out, fmt="csv", observation_end=END), out


@pytest.fixture(scope="module")
def t(run):
    return load_csv(run[1], SHOP_TABLES)


@pytest.fixture(scope="module")
def truth(run):
    return load_truth(run[1]).to_pylist()


def test_files_columns_and_cells(run, t):
    result, out = run
    assert set(result.files) == set(SHOP_TABLES)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.csv" for n in SHOP_TABLES] + ["ground_truth.parquet", "ground_truth.json"])
    for name in SHOP_TABLES:
        assert header(out / f"{name}.csv") == TABLES_BY_NAME[name].column_names
        assert t[name].num_rows > 0, name
    assert [p for name in SHOP_TABLES for p in spec_problems(name, t[name], END)] == []
    assert key_problems(t) == []
    assert reference_problems(t) == []
    emails = values(t["customers"], "email")
    assert len(set(emails)) == len(emails)


def test_orders_add_up(t):
    items = t["order_items"]
    subtotal = defaultdict(int)
    categories = set()
    for oid, qty, price, cat in zip(values(items, "order_id"), values(items, "quantity"), values(items, "unit_price"),
                                    values(items, "category")):
        subtotal[oid] += int(qty) * int(price)
        categories.add(cat)
    assert categories >= {"apparel", "electronics", "home", "beauty", "books", "toys", "grocery", "sports"}
    orders = t["orders"]
    for oid, total, discount, coupon in zip(values(orders, "order_id"), values(orders, "total_amount"),
                                            values(orders, "discount_amount"), values(orders, "coupon_code")):
        assert int(total) == subtotal[oid] - int(discount) and int(total) > 0
        assert (int(discount) > 0) == (coupon is not None)
    # every order went through a completed checkout pointing at it
    ck = t["checkouts"]
    completed = [o for o, s in zip(values(ck, "order_id"), values(ck, "status")) if s == "completed"]
    assert sorted(completed) == sorted(values(orders, "order_id"))


def test_all_personas_present_and_behaving(t, truth):
    persona = {r["customer_id"]: r["persona"] for r in truth}
    counts = Counter(persona.values())
    assert set(counts) == set(PERSONAS) and min(counts.values()) >= 40
    ev = t["product_events"]
    kinds = defaultdict(Counter)
    for cust, typ in zip(values(ev, "customer_id"), values(ev, "event_type")):
        kinds[cust][typ] += 1
    orders = Counter(values(t["orders"], "customer_id"))
    ck = defaultdict(Counter)
    for cust, st in zip(values(t["checkouts"], "customer_id"), values(t["checkouts"], "status")):
        ck[cust][st] += 1
    totals = defaultdict(int)
    for cust, total in zip(values(t["orders"], "customer_id"), values(t["orders"], "total_amount")):
        totals[cust] += int(total)
    for cust, p in persona.items():
        if p == "bouncer":
            assert kinds[cust] == Counter(session_start=1) and not orders[cust] and not ck[cust]
        elif p == "passive_browser":
            assert kinds[cust]["product_view"] >= 1 and not kinds[cust]["add_to_cart"] and not orders[cust]
        elif p == "cart_abandoner":
            assert kinds[cust]["add_to_cart"] >= 1 and not orders[cust]
            assert ck[cust]["abandoned"] + ck[cust]["incomplete"] >= 1 and not ck[cust]["completed"]
        elif p == "one_time_low_aov":
            assert orders[cust] == 1 and totals[cust] < 10_000
        elif p == "one_time_high_aov":
            assert orders[cust] == 1 and totals[cust] >= 10_000
        else:
            assert orders[cust] >= 2


def test_incomplete_and_abandoned_checkouts(t):
    ck = t["checkouts"]
    status = Counter(values(ck, "status"))
    assert status["abandoned"] > 50 and status["incomplete"] > 50
    for st, code, email, done, oid in zip(values(ck, "status"), values(ck, "decline_code"), values(ck, "email"),
                                          values(ck, "completed_at"), values(ck, "order_id")):
        assert email
        assert (code is not None) == (st == "incomplete")
        assert (done is not None) == (oid is not None) == (st == "completed")


def test_bgnbd_ground_truth(run, truth):
    summary = run[0].summary()
    params = summary["bgnbd"]
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    buyers = [x for x in truth if x["persona"] in PERSONAS[3:]]
    rates = np.array([x["purchase_rate_per_week"] for x in buyers])
    drops = np.array([x["dropout_probability"] for x in buyers])
    assert abs(rates.mean() - r / alpha) < 0.2 * (r / alpha)
    assert abs(drops.mean() - a / (a + b)) < 0.1 * (a / (a + b))
    assert all(x["purchase_rate_per_week"] is None for x in truth if x["persona"] in PERSONAS[:3])
    # repeat buyers drop out; only buyers who made a repeat purchase can have (BG/NBD)
    churned = [x for x in truth if x["churned"]]
    assert churned and all(x["persona"] == "repeat_buyer" and x["true_reason"] for x in churned)
    assert {x["true_reason"] for x in churned} == {"price", "missing_feature", "usability", "support", "competitor",
                                                   "other"}
    # frequent buyers buy more: the true rate predicts the observed order count
    lo = np.median(rates)
    many = np.mean([x["orders"] for x in buyers if x["purchase_rate_per_week"] > lo])
    few = np.mean([x["orders"] for x in buyers if x["purchase_rate_per_week"] <= lo])
    assert many > 2 * few
    # the brief's case: a sizeable share stop after about three months
    assert summary["stopped_within_3_months_share"] >= 0.15


def test_lapsed_survey_text_and_tickets(t, truth):
    sr = t["survey_responses"]
    by_lang = defaultdict(set)
    for q, lang, text in zip(values(sr, "question_id"), values(sr, "language"), values(sr, "text")):
        if q == "comment":
            by_lang[lang].add(text)
    assert set(by_lang) == {"en", "ja", "ko", "uk", "zh-Hans", "zh-Hant"}
    assert any(re.search(r"[\u3040-\u30ff]", x) for x in by_lang["ja"])
    assert all(re.search(r"[\uac00-\ud7af]", x) for x in by_lang["ko"])
    assert all(re.search(r"[\u0400-\u04ff]", x) for x in by_lang["uk"])
    commenters = {c for c, q in zip(values(sr, "customer_id"), values(sr, "question_id")) if q == "comment"}
    assert commenters == {x["customer_id"] for x in truth if x["comment_reason"]}
    scores = [int(s) for s, q in zip(values(sr, "score"), values(sr, "question_id")) if q == "order_satisfaction"]
    assert scores and set(scores) <= {1, 2, 3, 4, 5}
    topics = Counter(values(t["tickets"], "topic"))
    assert set(topics) <= {"delivery", "returns", "refund", "product_question", "payment", "account"}
    reason = {x["customer_id"]: x["true_reason"] for x in truth}
    csat = defaultdict(list)
    for cust, score in zip(values(t["tickets"], "customer_id"), values(t["tickets"], "csat")):
        if score:
            csat[reason.get(cust) == "support"].append(int(score))
    assert np.mean(csat[True]) < np.mean(csat[False])


def test_return_probabilities(truth):
    offers = ("none", "discount", "lower_tier", "annual_incentive", "pause", "extended_trial", "expert_session",
              "account_credit", "feature_announcement", "payment_update")
    for x in truth:
        ps = [x[f"p_return_{o}"] for o in offers]
        assert all(p is not None and 0 <= p <= 1 for p in ps)
    price = [x for x in truth if x["churned"] and x["true_reason"] == "price"]
    assert np.mean([x["p_return_discount"] for x in price]) > 3 * np.mean([x["p_return_none"] for x in price])
    abandoners = [x for x in truth if x["persona"] == "cart_abandoner"]
    declined = [x for x in abandoners if x["declined_at_checkout"]]
    assert declined and np.mean([x["p_return_payment_update"] for x in declined]) > np.mean(
        [x["p_return_payment_update"] for x in abandoners if not x["declined_at_checkout"]])
    high = [x for x in truth if x["persona"] == "one_time_high_aov"]
    low = [x for x in truth if x["persona"] == "one_time_low_aov"]
    lift = lambda rows: np.mean([x["p_return_discount"] - x["p_return_none"] for x in rows])  # noqa: E731
    assert lift(high) < lift(low)  # high-AOV buyers want service, not discounts
