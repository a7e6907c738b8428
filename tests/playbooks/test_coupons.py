"""Coupons on SQLite and PostgreSQL: replace only when better, single use, expiry, unique codes, and two
concurrent callers for one customer."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time

import pytest
from sqlalchemy import func, select

from tests.playbooks.conftest import NOW, add_customer, facts
from winback.kit.db import make_engine
from winback.models.campaigns import Coupon
from winback.playbooks import coupons as cp
from winback.playbooks import repository as repo
from winback.playbooks.spec import Offer

COUPONS = Coupon.__table__
P25 = Offer.model_validate({"kind": "percent_off", "percent": 25, "months": 3, "coupon": True, "title": "25%"})
P50 = Offer.model_validate({"kind": "percent_off", "percent": 50, "months": 3, "coupon": True, "title": "50%"})
CODE = re.compile(r"^WB-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{4}-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{4}$")


@pytest.fixture
def engine(workspace):
    engine = make_engine(workspace.resolved_state_url)
    yield engine
    engine.dispose()


def issue(conn, customer_id, offer, value, now=NOW, key="p", currency="USD"):
    return cp.issue_coupon(conn, customer_id=customer_id, offer_key=key, offer=offer, value_minor=value,
                           currency=currency, campaign_id=None, now=now)


def statuses(conn, customer_id):
    return [(r.code, r.status, r.value_minor, r.replaced_by_id) for r in conn.execute(
        select(COUPONS).where(COUPONS.c.customer_id == customer_id).order_by(COUPONS.c.id))]


def test_generate_code_format_and_spread():
    codes = [cp.generate_code() for _ in range(50_000)]
    assert all(CODE.match(c) for c in codes[:1000])
    assert len(set(codes)) >= 49_999  # ~8.5e11 codes: two collisions in 50k would be a broken generator
    assert cp.generate_code("spring").startswith("SPRING-")


def test_replace_only_when_better(engine):
    with engine.begin() as conn:
        cid = add_customer(conn, "a")
        first = issue(conn, cid, P25, cp.coupon_value_minor(P25, facts()))
        assert first.outcome == "issued" and CODE.match(first.coupon["code"]) and first.coupon["value_minor"] == 3_750
        assert first.coupon["terms"]["percent"] == 25
        assert first.coupon["expires_at"].replace(tzinfo=dt.timezone.utc) == NOW + dt.timedelta(days=14)
        # 1. worth more: replaces
        better = issue(conn, cid, P50, cp.coupon_value_minor(P50, facts()), key="p50")
        assert better.outcome == "replaced" and better.replaced["id"] == first.coupon["id"]
        # 2. worth less: the customer keeps the better one, which is returned
        worse = issue(conn, cid, P25, 3_750)
        assert worse.outcome == "kept_existing" and worse.coupon["id"] == better.coupon["id"]
        # 3. worth the same: keeps the existing one too
        same = issue(conn, cid, P50, 7_500)
        assert same.outcome == "kept_existing" and same.coupon["code"] == better.coupon["code"]
        rows = statuses(conn, cid)
    assert [(s, v) for _, s, v, _ in rows] == [("replaced", 3_750), ("active", 7_500)]
    assert rows[0][3] is not None  # replaced_by_id points at the better coupon


def test_expired_coupon_is_marked_and_a_new_one_issued(engine):
    with engine.begin() as conn:
        cid = add_customer(conn, "b")
        old = issue(conn, cid, P50, 7_500)
        later = NOW + dt.timedelta(days=15)
        new = issue(conn, cid, P25, 3_750, now=later)
        assert new.outcome == "issued" and new.coupon["id"] != old.coupon["id"]
        assert [s for _, s, _, _ in statuses(conn, cid)] == ["expired", "active"]
        assert repo.expire_coupons(conn, later + dt.timedelta(days=30)) == 1


def test_single_use_redemption_and_clear_errors(engine):
    with engine.begin() as conn:
        cid = add_customer(conn, "c")
        code = issue(conn, cid, P25, 3_750).coupon["code"]
        redeemed = cp.redeem_coupon(conn, code.lower(), NOW + dt.timedelta(days=1))
        assert redeemed["status"] == "redeemed" and redeemed["redeemed_at"] is not None
    with engine.begin() as conn:
        with pytest.raises(cp.CouponError, match=f"coupon {code} was already redeemed on 2026-01-16"):
            cp.redeem_coupon(conn, code, NOW + dt.timedelta(days=2))
    with engine.begin() as conn:
        with pytest.raises(cp.CouponError, match="no such code"):
            cp.redeem_coupon(conn, "WB-XXXX-XXXX", NOW)
        cid2 = add_customer(conn, "d")
        expiring = issue(conn, cid2, P25, 3_750).coupon["code"]
        with pytest.raises(cp.CouponError, match=f"coupon {expiring} expired on 2026-01-29"):
            cp.redeem_coupon(conn, expiring, NOW + dt.timedelta(days=14))
        cid3 = add_customer(conn, "e")
        small = issue(conn, cid3, P25, 3_750).coupon["code"]
        big = issue(conn, cid3, P50, 7_500).coupon["code"]
        with pytest.raises(cp.CouponError, match=f"replaced by a better offer \\(use {big} instead\\)"):
            cp.redeem_coupon(conn, small, NOW)


def test_code_collision_retries(engine, monkeypatch):
    with engine.begin() as conn:
        cid = add_customer(conn, "f")
        taken = issue(conn, cid, P25, 3_750).coupon["code"]
        cid2 = add_customer(conn, "g")
    codes = iter([taken, taken, "WB-2222-3333"])
    monkeypatch.setattr(cp, "generate_code", lambda prefix="WB": next(codes))
    monkeypatch.setattr(repo, "code_exists", lambda conn, code: False)  # force the insert to hit the constraint
    with engine.begin() as conn:
        result = issue(conn, cid2, P25, 3_750)
    assert result.coupon["code"] == "WB-2222-3333"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(COUPONS)).scalar_one() == 2


def test_many_issues_have_unique_codes(engine):
    """1,000 customers x 3 ever better coupons: 3,000 rows, all codes distinct, one active per customer
    (the 50,000-code check of the generator itself is test_generate_code_format_and_spread)."""
    n_customers, rounds = 1_000, 3
    with engine.begin() as conn:
        ids = [add_customer(conn, f"m{i}") for i in range(n_customers)]
        for r in range(rounds):
            for cid in ids:
                assert issue(conn, cid, P25, 100 + r).outcome in ("issued", "replaced")
    with engine.connect() as conn:
        total, distinct, active = conn.execute(select(
            func.count(), func.count(COUPONS.c.code.distinct()),
            func.sum((COUPONS.c.status == "active").cast(COUPONS.c.id.type)))).one()
    assert total == distinct == n_customers * rounds and active == n_customers


def test_two_concurrent_issuers_end_with_one_active_coupon(engine, monkeypatch):
    """Each issuer pauses after reading the active coupons: without the customer lock both would see none
    and both insert; with it the second waits, sees the first's coupon and keeps or replaces it."""
    real = repo.active_coupons

    def slow_active(conn, customer_id):
        rows = real(conn, customer_id)
        time.sleep(0.3)
        return rows

    monkeypatch.setattr(repo, "active_coupons", slow_active)
    for round_ in range(3):
        with engine.begin() as conn:
            cid = add_customer(conn, f"race{round_}")
        barrier = threading.Barrier(2)
        outcomes, errors = [], []

        def worker(offer, value):
            try:
                barrier.wait()
                with engine.begin() as conn:
                    outcomes.append(issue(conn, cid, offer, value).outcome)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(P25, 3_750)),
                   threading.Thread(target=worker, args=(P50, 7_500))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        with engine.connect() as conn:
            rows = statuses(conn, cid)
        active = [r for r in rows if r[1] == "active"]
        assert len(active) == 1 and active[0][2] == 7_500, rows
        assert outcomes[0] == "issued" and outcomes[1] in ("replaced", "kept_existing")
