"""``campaign_results`` on a hand-built dataset whose every number is known."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.tracking.conftest import (T0, add_campaign, add_coupon, add_customers, add_enrollments, add_event,
                                     sent_message)
from winback.kit.errors import WinbackError
from winback.tracking.conversions import attribute
from winback.tracking.results import campaign_results
from winback.tracking.service import message_by_key, record_event

D = dt.timedelta(days=1)
NOW = T0 + 60 * D
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


@pytest.fixture
def dataset(workspace, engine):
    emails = [f"t{i}@example.com" for i in range(1, 7)] + [f"h{i}@example.com" for i in range(1, 4)] + \
        ["u1@example.com", "u2@example.com"]
    with engine.begin() as conn:
        ids = dict(zip([e.split("@")[0] for e in emails], add_customers(conn, emails)))
        a = add_campaign(conn, "winback_price", experiments={"subject_reminder": ["a", "b"]})
        b = add_campaign(conn, "winback_feature")
        enr = {}
        for name in ("t1", "t2", "t3", "t4", "t5", "t6"):
            v = "a" if name in ("t1", "t2", "t3") else "b"
            enr[name] = add_enrollments(conn, a, [ids[name]], variants={"subject_reminder": v})[0]
        add_enrollments(conn, a, [ids["h1"], ids["h2"], ids["h3"]], arm="holdout",
                        variants={"subject_reminder": "a"})
        ub = add_enrollments(conn, b, [ids["u1"], ids["u2"]])
        keys = {}
        for name in ("t1", "t2", "t3", "t4", "t5", "t6"):
            v = "a" if name in ("t1", "t2", "t3") else "b"
            _id, keys[(name, 0)] = sent_message(conn, f"{name}:0", ids[name], f"{name}@example.com", a, enr[name],
                                                step=0, sent_at=T0)
            _id, keys[(name, 1)] = sent_message(conn, f"{name}:1", ids[name], f"{name}@example.com", a, enr[name],
                                                step=1, sent_at=T0 + 2 * D, variant=f"subject_reminder={v}",
                                                status="bounced" if name == "t6" else "sent")
        sent_message(conn, "t1:2", ids["t1"], "t1@example.com", a, enr["t1"], step=2, sent_at=T0 + 3 * D,
                     channel="task")
        sent_message(conn, "t1:3", ids["t1"], "t1@example.com", a, enr["t1"], step=3, sent_at=None,
                     status="pending")
        sent_message(conn, "u1:0", ids["u1"], "u1@example.com", b, ub[0], sent_at=T0)

        def ev(name, step, kind, machine, n=1):
            row = message_by_key(conn, keys[(name, step)])
            for _ in range(n):
                record_event(conn, kind=kind, outbox_row=row, customer_id=None, source="test", now=T0 + 4 * D,
                             machine=machine, machine_reason="apple-mpp" if machine else None, user_agent=CHROME)

        ev("t1", 0, "open", False)
        ev("t1", 0, "open", True)
        ev("t2", 0, "open", True)
        ev("t3", 1, "open", False, n=2)
        ev("t4", 1, "click", False)
        ev("t4", 1, "click", True)
        ev("t5", 1, "click", True)
        ev("t2", 0, "unsubscribe", False)
        add_event(conn, ids["t1"], "returned", T0 + 5 * D, "c1", mrr_minor=4900, currency="USD")
        add_event(conn, ids["t4"], "purchased", T0 + 10 * D, "c2", amount_minor=10000, currency="USD")
        add_event(conn, ids["t5"], "purchased", T0 + 40 * D, "c3", amount_minor=777, currency="USD")  # > 30 d
        add_event(conn, ids["h1"], "returned", T0 + 3 * D, "c4", mrr_minor=4900, currency="USD")
        add_event(conn, ids["t1"], "purchased", T0 - D, "c5", amount_minor=123, currency="USD")  # before enrolling
        add_event(conn, ids["t3"], "checkout_abandoned", T0 + 2 * D, "c6", amount_minor=5000)  # not a conversion
        add_coupon(conn, ids["t1"], a, 2000)                      # redeemed by a converter: an offer cost
        add_coupon(conn, ids["t2"], a, 500)                       # redeemed, but t2 did not convert
        add_coupon(conn, ids["t4"], a, 700, status="active")      # not redeemed
    attribute(workspace, engine=engine, now=NOW)
    return ids


def test_exact_numbers(workspace, engine, dataset):
    r = campaign_results(workspace, engine=engine, now=NOW)
    assert r["currency"] == "USD" and r["window_days"] == 30 and r["generated_at"].startswith("2026-03-02")
    price = next(c for c in r["campaigns"] if c["key"] == "winback_price")
    assert price["title"] == "Winback Price" and price["category"] == "commercial"
    assert price["funnel"] == {"enrolled": 6, "held_out": 3, "sent": 13, "delivered": 12, "bounced": 1,
                               "opens_human": 2, "opens_machine": 1, "clicks_human": 1, "clicks_machine": 1,
                               "unsubscribes": 1, "conversions": 2, "revenue_minor": 14900}
    assert price["steps"] == [
        {"step": 0, "channel": "email", "sent": 6, "delivered": 6, "opens_human": 1, "opens_machine": 1,
         "clicks_human": 0, "conversions": 0, "revenue_minor": 0},
        {"step": 1, "channel": "email", "sent": 6, "delivered": 5, "opens_human": 1, "opens_machine": 0,
         "clicks_human": 1, "conversions": 1, "revenue_minor": 10000},
        {"step": 2, "channel": "task", "sent": 1, "delivered": 1, "opens_human": 0, "opens_machine": 0,
         "clicks_human": 0, "conversions": 1, "revenue_minor": 4900},
    ]
    assert price["variants"] == [
        {"experiment": "subject_reminder", "variant": "a", "enrolled": 3, "sent": 3, "opens_human": 1,
         "clicks_human": 0, "conversions": 1, "revenue_minor": 4900, "conversion_rate": pytest.approx(1 / 3)},
        {"experiment": "subject_reminder", "variant": "b", "enrolled": 3, "sent": 3, "opens_human": 0,
         "clicks_human": 1, "conversions": 1, "revenue_minor": 10000, "conversion_rate": pytest.approx(1 / 3)},
    ]
    (exp,) = price["experiments"]
    assert exp["variants"] == ["a", "b"] and exp["metric"] == "conversions" and exp["p_value"] == pytest.approx(1.0)
    assert exp["prob_best"] == pytest.approx({"a": 0.5, "b": 0.5}) and exp["winner"] is None
    assert exp["rolled_out"] is None and exp["significant"] is False and exp["srm"]["mismatch"] is False
    h = price["holdout"]
    assert h["treatment"] == {"n": 6, "conversions": 2, "revenue_minor": 14900, "rate": pytest.approx(2 / 6)}
    assert h["holdout"] == {"n": 3, "conversions": 1, "revenue_minor": 4900, "rate": pytest.approx(1 / 3)}
    assert h["lift"]["rate"] == pytest.approx(0.0) and h["lift"]["incremental_conversions"] == pytest.approx(0.0)
    assert h["lift"]["incremental_revenue_minor"] == 5100
    lo, hi = h["lift"]["incremental_revenue_ci_minor"]
    assert lo < 5100 < hi and h["lift"]["rate_ci"][0] < 0 < h["lift"]["rate_ci"][1]
    assert h["offer_cost_minor"] == 2000 and h["sending_cost_minor"] == 12 * 1 + 1 * 500
    assert h["roi"] == pytest.approx((5100 - 2512) / 2512)

    feature = next(c for c in r["campaigns"] if c["key"] == "winback_feature")
    assert feature["funnel"]["enrolled"] == 2 and feature["funnel"]["sent"] == 1 and feature["experiments"] == []
    assert feature["holdout"]["lift"]["rate"] is None and feature["holdout"]["holdout"]["n"] == 0

    total = r["total"]
    assert total["funnel"]["sent"] == 14 and total["funnel"]["enrolled"] == 8 and total["funnel"]["conversions"] == 2
    assert total["holdout"]["treatment"]["n"] == 8 and total["holdout"]["holdout"]["conversions"] == 1
    assert total["holdout"]["lift"]["rate"] == pytest.approx(2 / 8 - 1 / 3)
    assert total["holdout"]["lift"]["incremental_revenue_minor"] == round((14900 / 8 - 4900 / 3) * 8)
    assert total["holdout"]["sending_cost_minor"] == 13 * 1 + 500


def test_one_campaign_and_unknown(workspace, engine, dataset):
    r = campaign_results(workspace, engine=engine, now=NOW, campaign="winback_feature")
    assert [c["key"] for c in r["campaigns"]] == ["winback_feature"]
    with pytest.raises(WinbackError, match="unknown campaign 'nope'"):
        campaign_results(workspace, engine=engine, campaign="nope")


def test_empty_store(workspace, engine):
    r = campaign_results(workspace, engine=engine)
    assert r["campaigns"] == [] and r["total"]["funnel"]["sent"] == 0 and r["total"]["holdout"]["roi"] is None
