"""Retention metrics on a hand-built history whose numbers are worked out by hand below."""

from __future__ import annotations

import pytest

from winback.analytics import metrics
from winback.analytics.metrics import churn_by_reason, churn_rate, crr, paid_spells, retention
from winback.analytics.periods import parse_period

from .conftest import utc

# ---------------------------------------------------------------------------------------------
# The story, for the period 2024-Q1 = [2024-01-01, 2024-04-01); source "s" unless said otherwise.
#
#  cust  spells                                                 at start  at end   note
#  A     2023-06-01 -> open, USD 1000, upgraded 2024-02-10 -> 1500   yes      yes   expansion +500
#  B     2023-03-01 -> 2024-03-01, too_expensive, USD 2000           yes      no    lost, price
#  C     2023-09-01 -> 2024-02-13, no code, last invoice uncollectible yes    no    lost, involuntary
#  D     trial 2024-01-10..24, canceled 2024-01-20                    never paying
#  E     trial 2024-02-01..15 -> open, USD 700 (pro)                  no       yes   new, first time
#  F     2023-01-01 -> 2023-10-01 (business); 2024-03-01 -> open 900  no       yes   reactivated
#  G     2023-02-01 -> 2023-12-01 (pro)                               no       no    churned before: pool
#  H     2023-05-01 -> ends 2024-05-01 (after the period), USD 600    yes      yes
#  I     2023-01-15 -> open; downgrade 2024-03-20 business 800 -> starter 300   yes yes  contraction 500
#  J     2023-07-01 -> open, EUR 4000 (business)                      yes      yes   other currency
#  K     2023-08-01 -> 2024-03-10, payment_failed, USD 1200 (pro)     yes      no    lost, involuntary
#  L     status trialing                                              never paying
#  M     2024-01-15 -> 2024-02-15 (unused)                            no       no    in and out: not counted
#  t/A   source "t", same id "A": 2023-12-01 -> open, USD 100          yes      yes
#  P     2023-11-01 -> open, cancel scheduled (canceled_at set), 400   yes      yes
#  Q     2023-04-01 -> open; price increase 2023-10-01 2900 -> 3500   yes      yes   start MRR 3500
#  R     2023-10-01 -> exactly 2024-04-01, too_complex, USD 250        yes      no    lost at the end instant
#  T     exactly 2024-01-01 -> open, USD 50                            yes      yes
#  U     2023-06-01 -> 2024-01-20, code other; failed invoice 2023-11 then paid 2023-12   yes no  voluntary
#  V     v1 2023-02-01 -> open 300 (pro); v2 2023-03-01 -> 2024-02-01 200 (business)   yes yes  contraction 200
#
# S = A B C H I J K tA P Q R T U V = 14; E = A E F H I J tA P Q T V = 11; N = E F = 2
# lost = B C K R U = 5 (involuntary C K); pool = F G (F reactivated)
# USD start: 1000+2000+500+600+800+1200+100+400+3500+250+50+150+500 = 11050
# USD lost: 2000+500+1200+250+150 = 4100; expansion 500 (A); contraction 500 (I) + 200 (V) = 700
# USD retained (end MRR of S): 1500+600+300+100+400+3500+50+300 = 6750 = 11050-4100-700+500
# USD new: 700+900 = 1600; end: 8350.  EUR: 4000 throughout.
# ---------------------------------------------------------------------------------------------

SUBS = [
    dict(subscription_id="a1", customer_id="A", started_at="2023-06-01", mrr=1500, plan_id="plan_pro"),
    dict(subscription_id="b1", customer_id="B", started_at="2023-03-01", status="canceled", mrr=2000,
         canceled_at="2024-02-15", ended_at="2024-03-01", cancel_reason_code="too_expensive"),
    dict(subscription_id="c1", customer_id="C", started_at="2023-09-01", status="canceled", mrr=500,
         canceled_at="2024-02-13", ended_at="2024-02-13"),
    dict(subscription_id="d1", customer_id="D", started_at="2024-01-10", trial_start="2024-01-10",
         trial_end="2024-01-24", status="canceled", canceled_at="2024-01-20", ended_at="2024-01-20", mrr=0,
         cancel_reason_code="too_complex"),
    dict(subscription_id="e1", customer_id="E", started_at="2024-02-01", trial_start="2024-02-01",
         trial_end="2024-02-15", mrr=700, plan_id="plan_pro"),
    dict(subscription_id="f1", customer_id="F", started_at="2023-01-01", status="canceled", mrr=1900,
         canceled_at="2023-09-20", ended_at="2023-10-01", cancel_reason_code="switched_service",
         plan_id="plan_business"),
    dict(subscription_id="f2", customer_id="F", started_at="2024-03-01", mrr=900),
    dict(subscription_id="g1", customer_id="G", started_at="2023-02-01", status="canceled", mrr=800,
         canceled_at="2023-12-01", ended_at="2023-12-01", plan_id="plan_pro"),
    dict(subscription_id="h1", customer_id="H", started_at="2023-05-01", status="canceled", mrr=600,
         canceled_at="2024-03-30", ended_at="2024-05-01", cancel_reason_code="payment_failed", plan_id="plan_pro"),
    dict(subscription_id="i1", customer_id="I", started_at="2023-01-15", mrr=300),
    dict(subscription_id="j1", customer_id="J", started_at="2023-07-01", mrr=4000, currency="EUR",
         plan_id="plan_business"),
    dict(subscription_id="k1", customer_id="K", started_at="2023-08-01", status="canceled", mrr=1200,
         canceled_at="2024-03-10", ended_at="2024-03-10", cancel_reason_code="payment_failed", plan_id="plan_pro"),
    dict(subscription_id="l1", customer_id="L", started_at="2024-03-20", trial_start="2024-03-20",
         trial_end="2024-04-03", status="trialing", mrr=0),
    dict(subscription_id="m1", customer_id="M", started_at="2024-01-15", status="canceled", mrr=100,
         canceled_at="2024-02-15", ended_at="2024-02-15", cancel_reason_code="unused"),
    dict(source="t", subscription_id="a1", customer_id="A", started_at="2023-12-01", mrr=100),
    dict(subscription_id="p1", customer_id="P", started_at="2023-11-01", mrr=400, canceled_at="2024-03-25",
         cancel_at_period_end=True, cancel_reason_code="too_expensive"),
    dict(subscription_id="q1", customer_id="Q", started_at="2023-04-01", mrr=3500),
    dict(subscription_id="r1", customer_id="R", started_at="2023-10-01", status="canceled", mrr=250,
         canceled_at="2024-03-05", ended_at="2024-04-01", cancel_reason_code="too_complex"),
    dict(subscription_id="t1", customer_id="T", started_at="2024-01-01", mrr=50),
    dict(subscription_id="u1", customer_id="U", started_at="2023-06-01", status="canceled", mrr=150,
         canceled_at="2024-01-20", ended_at="2024-01-20", cancel_reason_code="other"),
    dict(subscription_id="v1", customer_id="V", started_at="2023-02-01", mrr=300, plan_id="plan_pro"),
    dict(subscription_id="v2", customer_id="V", started_at="2023-03-01", status="canceled", mrr=200,
         canceled_at="2024-02-01", ended_at="2024-02-01", plan_id="plan_business"),
]
CHANGES = [
    dict(change_id="ch1", subscription_id="a1", customer_id="A", changed_at="2024-02-10", change_type="upgrade",
         from_plan_id="plan_starter", to_plan_id="plan_pro", old_mrr=1000, new_mrr=1500),
    dict(change_id="ch2", subscription_id="i1", customer_id="I", changed_at="2024-03-20", change_type="downgrade",
         from_plan_id="plan_business", to_plan_id="plan_starter", old_mrr=800, new_mrr=300),
    dict(change_id="ch3", subscription_id="q1", customer_id="Q", changed_at="2023-10-01",
         change_type="price_increase", from_plan_id="plan_starter", to_plan_id="plan_starter", old_mrr=2900,
         new_mrr=3500),
]
INVOICES = [
    dict(invoice_id="in_c1", customer_id="C", subscription_id="c1", created_at="2024-01-05", status="paid",
         amount_due=500, amount_paid=500),
    dict(invoice_id="in_c2", customer_id="C", subscription_id="c1", created_at="2024-02-05",
         status="uncollectible", amount_due=500, amount_paid=0, attempt_count=4),
    dict(invoice_id="in_u1", customer_id="U", subscription_id="u1", created_at="2023-11-01",
         status="uncollectible", amount_due=150, amount_paid=0, attempt_count=4),
    dict(invoice_id="in_u2", customer_id="U", subscription_id="u1", created_at="2023-12-01", status="paid",
         amount_due=150, amount_paid=150),
    # an invoice after the end does not count (and B's is paid anyway)
    dict(invoice_id="in_b1", customer_id="B", subscription_id="b1", created_at="2024-02-01", status="paid",
         amount_due=2000, amount_paid=2000),
    dict(invoice_id="in_b2", customer_id="B", subscription_id="b1", created_at="2024-03-02",
         status="uncollectible", amount_due=2000, amount_paid=0, attempt_count=4),
]
Q1 = "2024-Q1"


@pytest.fixture
def con(history):
    return history(subscriptions=SUBS, subscription_changes=CHANGES, invoices=INVOICES)


# ------------------------------------------------------------------------- pure arithmetic

def test_worked_examples_from_the_brief():
    assert crr(2000, 2400, 600) == pytest.approx(90.0)
    assert churn_rate(50, 500) == pytest.approx(10.0)


def test_arithmetic_edges():
    assert churn_rate(0, 0) is None
    assert crr(0, 5, 5) is None
    with pytest.raises(ValueError):
        churn_rate(6, 5)
    with pytest.raises(ValueError):
        churn_rate(-1, 5)
    with pytest.raises(ValueError):
        crr(10, 5, 6)  # more new customers than customers at the end
    with pytest.raises(ValueError):
        crr(10, 20, 5)  # retained (15) more than the start (10)


# ------------------------------------------------------------------------- spells

def test_paid_spells(con):
    rows = {(r["source"], r["subscription_id"]): r for r in paid_spells(con).to_pyarrow().to_pylist()}
    # trial-only and trialing subscriptions never pay
    assert ("s", "d1") not in rows and ("s", "l1") not in rows
    assert len(rows) == len(SUBS) - 2
    e1 = rows[("s", "e1")]
    assert e1["paid_start"].isoformat() == "2024-02-15T00:00:00" and e1["paid_end"] is None
    assert rows[("s", "p1")]["paid_end"] is None  # cancel scheduled, still paying
    assert rows[("s", "b1")]["paid_end"].isoformat() == "2024-03-01T00:00:00"
    assert rows[("s", "b1")]["reason"] == "price" and rows[("s", "b1")]["involuntary"] is False
    assert rows[("s", "c1")]["reason"] == "involuntary" and rows[("s", "c1")]["involuntary"] is True
    assert rows[("s", "k1")]["involuntary"] is True
    assert rows[("s", "u1")]["involuntary"] is False and rows[("s", "u1")]["reason"] == "other"
    assert rows[("s", "g1")]["reason"] == "unknown"
    assert rows[("s", "f1")]["reason"] == "competitor"
    assert rows[("s", "a1")]["reason"] is None and rows[("s", "a1")]["involuntary"] is False
    # H's code says payment_failed although the spell ends after the period: still involuntary
    assert rows[("s", "h1")]["involuntary"] is True


def test_state_at_uses_changes(con):
    spells = paid_spells(con)
    start = {(r["source"], r["subscription_id"]): r for r in
             metrics.state_at(con, spells, utc("2024-01-01")).to_pyarrow().to_pylist()}
    end = {(r["source"], r["subscription_id"]): r for r in
           metrics.state_at(con, spells, utc("2024-04-01")).to_pyarrow().to_pylist()}
    assert start[("s", "a1")]["mrr_at"] == 1000 and start[("s", "a1")]["plan_at"] == "plan_starter"
    assert end[("s", "a1")]["mrr_at"] == 1500 and end[("s", "a1")]["plan_at"] == "plan_pro"
    assert start[("s", "i1")]["mrr_at"] == 800 and end[("s", "i1")]["mrr_at"] == 300
    assert start[("s", "q1")]["mrr_at"] == 3500  # the change before the instant is in force
    assert ("s", "b1") in start and ("s", "b1") not in end
    assert ("s", "r1") not in end  # ended exactly at the instant
    assert ("s", "t1") in start  # started exactly at the instant


# ------------------------------------------------------------------------- retention

def test_retention_overall(con):
    [r] = retention(con, Q1)
    assert r["group"] is None and r["period"] == "2024-Q1"
    assert r["start_customers"] == 14
    assert r["end_customers"] == 11
    assert r["new_customers"] == 2
    assert r["first_time_customers"] == 1
    assert r["reactivated_customers"] == 1
    assert r["lost_customers"] == 5
    assert r["lost_customers"] == r["start_customers"] - (r["end_customers"] - r["new_customers"])
    assert r["involuntary_lost"] == 2 and r["voluntary_lost"] == 3
    assert r["churn_rate"] == pytest.approx(5 / 14 * 100)
    assert r["crr"] == pytest.approx(9 / 14 * 100)
    assert r["involuntary_share"] == pytest.approx(40.0)
    assert r["reactivation_pool"] == 2
    assert r["reactivation_rate"] == pytest.approx(50.0)
    usd = r["mrr"]["USD"]
    assert usd["start_mrr"] == 11050
    assert usd["lost_mrr"] == 4100
    assert usd["expansion_mrr"] == 500
    assert usd["contraction_mrr"] == 700
    assert usd["retained_mrr"] == 6750
    assert usd["new_mrr"] == 1600
    assert usd["end_mrr"] == 8350
    assert usd["mrr_churn_rate"] == pytest.approx((4100 + 700) / 11050 * 100)
    assert usd["nrr"] == pytest.approx(6750 / 11050 * 100)
    eur = r["mrr"]["EUR"]
    assert eur == {"start_mrr": 4000, "end_mrr": 4000, "new_mrr": 0, "lost_mrr": 0, "contraction_mrr": 0,
                   "expansion_mrr": 0, "retained_mrr": 4000, "mrr_churn_rate": 0.0, "nrr": 100.0}


def test_retention_by_plan(con):
    rows = {r["group"]: r for r in retention(con, Q1, by="plan")}
    assert set(rows) == {"plan_starter", "plan_pro", "plan_business"}
    starter, pro, business = rows["plan_starter"], rows["plan_pro"], rows["plan_business"]
    # starter: A (starter at the start), B C tA P Q R T U
    assert (starter["start_customers"], starter["end_customers"], starter["lost_customers"],
            starter["new_customers"]) == (9, 5, 4, 0)
    # pro: H K V (V's larger spell is pro), E new; G in the pool
    assert (pro["start_customers"], pro["end_customers"], pro["lost_customers"], pro["new_customers"],
            pro["first_time_customers"], pro["reactivation_pool"]) == (3, 3, 1, 1, 1, 1)
    # business: I (business at the start), J; F left business and came back: counted under business
    assert (business["start_customers"], business["end_customers"], business["new_customers"],
            business["reactivated_customers"], business["reactivation_pool"]) == (2, 3, 1, 1, 1)
    assert business["reactivation_rate"] == pytest.approx(100.0)
    assert sum(r["start_customers"] for r in rows.values()) == 14
    assert sum(r["end_customers"] for r in rows.values()) == 11
    assert starter["mrr"]["USD"]["start_mrr"] == 1000 + 2000 + 500 + 100 + 400 + 3500 + 250 + 50 + 150
    assert business["mrr"]["EUR"]["start_mrr"] == 4000
    assert business["mrr"]["USD"]["contraction_mrr"] == 500  # I: 800 -> 300


def test_retention_by_cohort(con):
    rows = {r["group"]: r for r in retention(con, Q1, by="cohort")}
    jan23 = rows["2023-01"]  # F (reactivated) and I
    assert (jan23["start_customers"], jan23["end_customers"], jan23["new_customers"],
            jan23["reactivated_customers"]) == (1, 2, 1, 1)
    jun23 = rows["2023-06"]  # A (kept) and U (lost)
    assert (jun23["start_customers"], jun23["end_customers"], jun23["lost_customers"]) == (2, 1, 1)
    assert rows["2024-02"]["first_time_customers"] == 1  # E: paid from the end of the trial
    assert rows["2024-01"]["start_customers"] == 1  # T
    assert sum(r["start_customers"] for r in rows.values()) == 14


def test_retention_by_segment(con):
    import pyarrow as pa

    mapping = pa.table({"source": ["s", "s", "s", "t", "s"], "customer_id": ["A", "B", "J", "A", "E"],
                        "segment": ["vip", "vip", "vip", "small", "small"]})
    rows = {r["group"]: r for r in retention(con, Q1, by="segment", segments=mapping)}
    vip, small = rows["vip"], rows["small"]
    assert (vip["start_customers"], vip["end_customers"], vip["lost_customers"]) == (3, 2, 1)
    assert vip["mrr"]["USD"]["start_mrr"] == 3000 and vip["mrr"]["EUR"]["start_mrr"] == 4000
    assert (small["start_customers"], small["end_customers"], small["new_customers"]) == (1, 2, 1)
    with pytest.raises(ValueError, match="segments"):
        retention(con, Q1, by="segment")


def test_retention_unknown_grouping(con):
    with pytest.raises(ValueError, match="grouping"):
        retention(con, Q1, by="country")


def test_retention_of_an_empty_period(con):
    [r] = retention(con, "2020-05")
    assert r["start_customers"] == 0 and r["churn_rate"] is None and r["mrr"] == {}


def test_retention_series_chains_periods(con):
    rows = metrics.retention_series(con, "2024-01", "2024-03", "month")
    assert [r["period"] for r in rows] == ["2024-01", "2024-02", "2024-03"]
    for before, after in zip(rows, rows[1:]):
        assert before["end_customers"] == after["start_customers"]
    # customers lost in the quarter = lost in its months, minus those who came back within it (none here)
    assert sum(r["lost_customers"] for r in rows) == 5 + 1  # M joins in January and leaves in February
    [q] = retention(con, Q1)
    assert rows[0]["start_customers"] == q["start_customers"] and rows[-1]["end_customers"] == q["end_customers"]


# ------------------------------------------------------------------------- reasons

def test_churn_by_reason(con):
    rows = churn_by_reason(con, Q1)
    assert [(r["reason"], r["lost_customers"], r["lost_mrr"]) for r in rows] == [
        ("involuntary", 2, {"USD": 1700}),
        ("other", 1, {"USD": 150}),
        ("price", 1, {"USD": 2000}),
        ("usability", 1, {"USD": 250}),
    ]


def test_lost_mrr_over_time(con):
    rows = metrics.lost_mrr_over_time(con, "2024-01", "2024-03", "month")
    got = {(r["period"], r["reason"]): (r["lost_customers"], r["lost_mrr"]) for r in rows}
    assert got == {
        ("2024-01", "other"): (1, {"USD": 150}),  # U
        ("2024-02", "involuntary"): (1, {"USD": 500}),  # C
        ("2024-02", "other"): (1, {"USD": 100}),  # M (unused)
        ("2024-02", "price"): (1, {"USD": 2000}),  # B ends exactly 03-01: gone at the end of February
        ("2024-03", "involuntary"): (1, {"USD": 1200}),  # K
        ("2024-03", "usability"): (1, {"USD": 250}),  # R ends exactly 04-01
    }


def test_reason_map_is_configurable(con):
    spells = paid_spells(con, reason_map={"too_expensive": "pricing!"})
    rows = {r["reason"]: r for r in churn_by_reason(con, Q1, spells=spells)}
    assert rows["pricing!"]["lost_customers"] == 1
    assert rows["other"]["lost_customers"] == 2  # too_complex is not in this map: other


def test_period_objects_and_text_agree(con):
    assert retention(con, parse_period(Q1)) == retention(con, Q1)
