"""Last-touch attribution (pure) and ``attribute`` on the state store."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from tests.tracking.conftest import T0, add_campaign, add_customers, add_enrollments, add_event, sent_message
from winback.models.tracking import Conversion
from winback.tracking.attribution import Touch, last_touch
from winback.tracking.conversions import attribute, parse_revenue

D = dt.timedelta(days=1)
W = dt.timedelta(days=14)


def test_last_touch_edges():
    touches = [Touch(1, "a", T0), Touch(2, "a", T0 + 3 * D), Touch(3, "b", T0 + D), Touch(4, "a", T0 + 3 * D)]
    got = last_touch([
        ("a", T0 + 3 * D + W),            # exactly at the window's end: counts; tie at 3 d goes to id 4
        ("a", T0 + 3 * D + W + dt.timedelta(seconds=1)),  # one second later: too late
        ("a", T0 - D),                    # every message came after the conversion
        ("a", T0 + D),                    # only message 1 was before
        ("b", T0 + D),                    # same instant as the send: counts
        ("c", T0),                        # never messaged
    ], touches, W)
    assert [t.id if t else None for t in got] == [4, None, None, 1, 3, None]
    with pytest.raises(ValueError):
        last_touch([], [], -D)


def test_last_touch_across_campaigns_takes_the_latest():
    touches = [Touch(10, 7, T0), Touch(11, 7, T0 + 2 * D), Touch(12, 7, T0 + 5 * D)]
    assert last_touch([(7, T0 + 4 * D)], touches, W)[0].id == 11


@pytest.mark.parametrize("props, expected", [
    ({"revenue_minor": 4900, "currency": "usd"}, (4900, "USD", None)),
    ({"amount_minor": "1200", "currency": "EUR"}, (1200, "EUR", None)),
    ({"mrr_minor": 2900.0}, (2900, "USD", None)),
    ({}, (0, None, None)),
    ({"revenue_minor": -500, "currency": "USD"}, (0, "USD", "revenue_minor is negative (-500)")),
    ({"revenue_minor": "12.50", "currency": "USD"}, (0, "USD", "revenue_minor is not an integer amount of minor "
                                                               "units ('12.50')")),
    ({"revenue_minor": True}, (0, None, "revenue_minor is not a number (True)")),
    ({"revenue_minor": float("nan")}, (0, None, "revenue_minor is not an integer amount of minor units (nan)")),
    ({"revenue_minor": 100, "currency": "dollars"}, (0, None, "currency is not an ISO 4217 code ('dollars')")),
])
def test_revenue_properties(props, expected):
    assert parse_revenue(props, "USD") == expected


def test_revenue_garbage_json():
    assert parse_revenue("{not json", "USD") == (0, None, None)
    assert parse_revenue("[1, 2]", "USD") == (0, None, None)


def test_attribute_writes_each_conversion_once(workspace, engine):
    with engine.begin() as conn:
        a, b, c = add_customers(conn, ["a@example.com", "b@example.com", "c@example.com"])
        camp = add_campaign(conn, "winback_price")
        ea, eb = add_enrollments(conn, camp, [a, b])
        m1, _ = sent_message(conn, "enr:1:step:0", a, "a@example.com", camp, ea, step=0, sent_at=T0)
        m2, _ = sent_message(conn, "enr:1:step:1", a, "a@example.com", camp, ea, step=1, sent_at=T0 + 3 * D)
        sent_message(conn, "enr:2:step:0", b, "b@example.com", camp, eb, sent_at=T0, status="bounced")
        sent_message(conn, "enr:2:step:1", b, "b@example.com", camp, eb, step=1, sent_at=T0 + 20 * D,
                     status="pending")
        add_event(conn, a, "returned", T0 + 5 * D, "e1", mrr_minor=4900, currency="USD")
        add_event(conn, b, "purchased", T0 + 2 * D, "e2", amount_minor=-3, currency="USD")  # garbage revenue
        add_event(conn, c, "purchased", T0 + 2 * D, "e3", amount_minor=1000, currency="EUR")
        add_event(conn, a, "checkout_abandoned", T0 + 4 * D, "e4", amount_minor=999)  # not a conversion type
        add_event(conn, a, "purchased", T0 + 30 * D, "e5", amount_minor=999)  # after the clock: not yet
    first = attribute(workspace, engine=engine)
    assert first["conversions"] == 3 and first["attributed"] == 1 and first["unattributed"] == 2
    assert first["revenue_minor_by_currency"] == {"EUR": 1000, "USD": 4900}
    assert first["ignored_revenue"] == [{"event_id": "e2", "reason": "amount_minor is negative (-3)"}]
    with engine.connect() as conn:
        rows = {r.type + str(r.customer_id): r for r in conn.execute(select(Conversion.__table__))}
    ret = rows[f"returned{a}"]
    assert (ret.message_id, ret.campaign_id, ret.enrollment_id, ret.step, ret.revenue_minor) == (m2, camp, ea, 1, 4900)
    assert rows[f"purchased{b}"].message_id is None  # the bounced message never arrived
    again = attribute(workspace, engine=engine)
    assert again == {"conversions": 0, "attributed": 0, "unattributed": 0, "revenue_minor_by_currency": {},
                     "ignored_revenue": []}
