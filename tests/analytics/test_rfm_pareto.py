from __future__ import annotations

import numpy as np
import pytest

from winback.analytics.pareto import pareto
from winback.analytics.rfm import DEFAULT_SEGMENTS, fm_score, quantile_scores, rfm_scores, rfm_segments, rfm_table

from .conftest import utc

# ------------------------------------------------------------------------- RFM table

ORDERS = [
    dict(order_id="o1", customer_id="A", ordered_at="2024-03-01", total_amount=1000),
    dict(order_id="o2", customer_id="A", ordered_at="2024-03-20T12:00", total_amount=2500),
    dict(order_id="o3", customer_id="A", ordered_at="2024-03-25", total_amount=999, status="refunded"),
    dict(order_id="o4", customer_id="A", ordered_at="2024-03-05", total_amount=7000, currency="JPY"),
    dict(order_id="o5", customer_id="B", ordered_at="2024-01-01", total_amount=300),
    dict(order_id="o6", customer_id="B", ordered_at="2024-04-02", total_amount=300),  # after the end
    dict(order_id="o7", customer_id="C", ordered_at="2024-02-01", total_amount=50, status="pending"),
    dict(order_id="o8", source="t", customer_id="A", ordered_at="2024-03-31", total_amount=10),
]
INVOICES = [
    dict(invoice_id="i1", customer_id="A", created_at="2024-02-01", paid_at="2024-02-03", status="paid",
         amount_due=500, amount_paid=500),
    dict(invoice_id="i2", customer_id="A", created_at="2024-03-01", status="uncollectible", amount_due=500,
         amount_paid=0),
    dict(invoice_id="i3", customer_id="B", created_at="2024-03-31", paid_at="2024-04-02", status="paid",
         amount_due=700, amount_paid=700),  # paid after the end: not yet a purchase
    dict(invoice_id="i4", customer_id="B", created_at="2024-01-15", status="paid", amount_due=700,
         amount_paid=700),  # no paid_at: its creation time counts
]
END = utc("2024-04-01")


def test_rfm_table_orders(history):
    con = history(orders=ORDERS)
    rows = [(r["source"], r["customer_id"], r["currency"], r["recency_days"], r["frequency"], r["monetary_minor"])
            for r in rfm_table(con, END).to_pylist()]
    assert rows == [
        ("s", "A", "JPY", 27.0, 1, 7000),
        ("s", "A", "USD", 11.5, 2, 3500),
        ("s", "B", "USD", 91.0, 1, 300),
        ("t", "A", "USD", 1.0, 1, 10),
    ]


def test_rfm_table_invoices(history):
    con = history(invoices=INVOICES)
    rows = [(r["customer_id"], r["recency_days"], r["frequency"], r["monetary_minor"])
            for r in rfm_table(con, END, kind="invoices").to_pylist()]
    assert rows == [("A", 58.0, 1, 500), ("B", 77.0, 1, 700)]
    with pytest.raises(ValueError, match="kind"):
        rfm_table(con, END, kind="visits")


# ------------------------------------------------------------------------- scores

def test_quantile_scores_without_ties_are_like_ntile():
    assert list(quantile_scores(np.arange(10))) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert list(quantile_scores([70, 10, 40, 20, 30, 60, 50])) == [5, 1, 3, 1, 2, 4, 3]


def test_quantile_scores_ties_share_a_score_whatever_the_order():
    values = np.array([1, 1, 1, 1, 1, 1, 2, 3, 5, 8])
    scores = quantile_scores(values)
    assert list(scores) == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]  # rank of 2 is 6: 1 + 5*6//10 = 4
    rng = np.random.default_rng(0)
    order = rng.permutation(values.size)
    assert list(quantile_scores(values[order])) == list(scores[order])


def test_rfm_scores_reverse_recency():
    s = rfm_scores(recency=[1, 100, 50, 10, 5], frequency=[5, 1, 2, 3, 4], monetary=[500, 10, 20, 30, 40])
    assert list(s.r) == [5, 1, 2, 3, 4]
    assert list(s.f) == [5, 1, 2, 3, 4]
    assert list(s.m) == [5, 1, 2, 3, 4]
    assert list(s.fm) == [5, 1, 2, 3, 4]
    assert list(quantile_scores([3, 1, 2], bins=3, higher_is_better=False)) == [1, 3, 2]
    with pytest.raises(ValueError):
        rfm_scores([1, 2], [1], [1, 2])
    with pytest.raises(ValueError):
        quantile_scores([1.0, float("nan")])
    with pytest.raises(ValueError):
        quantile_scores([1, 2], bins=0)


def test_fm_rounds_half_up():
    assert list(fm_score([1, 1, 4, 3], [2, 1, 5, 3])) == [2, 1, 5, 3]


def test_default_segments_cover_every_cell_once():
    r, fm = np.meshgrid(np.arange(1, 6), np.arange(1, 6), indexing="ij")
    names = rfm_segments(r.ravel(), fm.ravel(), fm.ravel())
    assert "unmatched" not in set(names)
    assert set(names) == {name for name, _, _ in DEFAULT_SEGMENTS}
    grid = dict(zip(zip(r.ravel(), fm.ravel()), names))
    assert grid[(5, 5)] == "Champions" and grid[(5, 4)] == "Champions"
    assert grid[(4, 5)] == "Loyal" and grid[(3, 4)] == "Loyal"
    assert grid[(5, 1)] == "New" and grid[(4, 1)] == "Promising"
    assert grid[(5, 2)] == "Potential loyalist" and grid[(4, 3)] == "Potential loyalist"
    assert grid[(3, 3)] == "Need attention" and grid[(3, 1)] == "About to sleep"
    assert grid[(2, 5)] == "Cannot lose them" and grid[(1, 3)] == "At risk"
    assert grid[(1, 1)] == "Lost" and grid[(1, 2)] == "Hibernating" and grid[(2, 1)] == "Hibernating"


def test_segments_are_configurable_and_first_match_wins():
    rules = [("Best", (4, 5), (4, 5)), ("Everyone recent", (4, 5), (1, 5))]
    names = rfm_segments([5, 4, 2], [5, 1, 5], [5, 1, 5], segments=rules)
    assert list(names) == ["Best", "Everyone recent", "unmatched"]
    with pytest.raises(ValueError, match="rule"):
        rfm_segments([1], [1], [1], segments=[("bad", 1, 2)])


# ------------------------------------------------------------------------- Pareto

def test_pareto_by_hand():
    values = [50, 10, 5, 5, 10, 5, 5, 4, 3, 3]  # total 100
    ids = list("abcdefghij")
    p = pareto(values, ids)
    assert list(p.ids[:2]) == ["a", "b"] and list(p.ids[2:4]) == ["e", "c"]  # ties by id
    assert p.top_count == 2 and p.top_share == pytest.approx(0.60)  # 50 + 10
    # 50, 60, 70, 75, 80: the top 5 of 10 hold 80%
    assert p.count_for_80pct == 5 and p.customers_for_80pct == pytest.approx(0.5)
    assert p.cumulative_share[-1] == pytest.approx(1.0)
    assert list(p.top_ids) == ["a", "b"]


def test_pareto_classic_80_20():
    values = [20] * 4 + [1] * 16  # 4 of 20 customers (20%) hold 80 of 96... not quite 80%
    p = pareto(values)
    assert p.top_count == 4 and p.top_share == pytest.approx(80 / 96)
    assert p.count_for_80pct == 4  # 80/96 = 83% >= 80%
    p = pareto([80] + [5] * 4, top_fraction=0.2)  # one customer of five holds exactly 80%
    assert p.top_share == pytest.approx(0.8) and p.count_for_80pct == 1 and p.customers_for_80pct == 0.2


def test_pareto_rounding_and_edges():
    p = pareto([3, 2, 1], top_fraction=0.2)  # ceil(0.6) = 1 customer
    assert p.top_count == 1 and p.top_share == pytest.approx(0.5)
    zero = pareto([0, 0])
    assert zero.top_share == 0 and zero.customers_for_80pct is None
    with pytest.raises(ValueError):
        pareto([])
    with pytest.raises(ValueError):
        pareto([1, -1])
    with pytest.raises(ValueError):
        pareto([1, 2], ids=["a"])
    with pytest.raises(ValueError):
        pareto([1, 2], top_fraction=0)
