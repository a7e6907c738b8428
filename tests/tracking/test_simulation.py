"""The demo's SIMULATED recipients (winback.tracking.simulation) on a small generated company.

One planned workspace per backend (1,500 SaaS customers, 21 simulated days of sending), reused by
every test: the simulation's rows are removed between runs with ``delete_simulated``.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select, text

from tests.campaigns.conftest import CAMPAIGN_TABLES, DEMO_NOW, analysed, saas_files  # noqa: F401
from winback.kit.db import make_engine, write_transaction
from winback.models.campaigns import Coupon, CustomerEvent, Enrollment
from winback.models.tracking import TrackingEvent
from winback.tracking.conversions import attribute
from winback.tracking.results import campaign_results
from winback.tracking.simulation import SOURCE, delete_simulated, simulate_recipients

EVENTS = TrackingEvent.__table__
CEVENTS = CustomerEvent.__table__
ENROLLMENTS = Enrollment.__table__
COUPONS = Coupon.__table__


@pytest.fixture(scope="module")
def sent(analysed, saas_files):  # noqa: F811
    """The analysed workspace, planned and sent for 21 simulated days (campaign tables emptied first)."""
    from winback.campaigns.planner import plan
    from winback.delivery.service import run_simulated

    engine = make_engine(analysed.resolved_state_url)
    with engine.begin() as conn:
        for table in CAMPAIGN_TABLES:
            conn.execute(text(f'DELETE FROM "{table}"'))
    analysed.now = DEMO_NOW
    plan(analysed, schedule=False)
    run_simulated(analysed, start=analysed.clock().now(), days=21)
    yield analysed, saas_files / "ground_truth.parquet", engine
    with engine.begin() as conn:
        delete_simulated(conn)
    engine.dispose()


def _reset(engine) -> None:
    with write_transaction(engine) as conn:
        delete_simulated(conn)


def _snapshot(engine) -> tuple[set, set, set]:
    with engine.connect() as conn:
        tracking = {tuple(r) for r in conn.execute(select(
            EVENTS.c.event_key, EVENTS.c.kind, EVENTS.c.message_id, EVENTS.c.machine, EVENTS.c.machine_reason,
            EVENTS.c.occurred_at).where(EVENTS.c.source == SOURCE))}
        events = {tuple(r) for r in conn.execute(select(CEVENTS.c.event_id, CEVENTS.c.type, CEVENTS.c.customer_id,
                                                        CEVENTS.c.occurred_at, CEVENTS.c.properties)
                                                 .where(CEVENTS.c.source == SOURCE))}
        coupons = {tuple(r) for r in conn.execute(select(COUPONS.c.id, COUPONS.c.redeemed_at)
                                                  .where(COUPONS.c.status == "redeemed"))}
    return tracking, events, coupons


def test_simulation_writes_labelled_events_deterministically_and_once(sent):
    settings, truth, engine = sent
    _reset(engine)
    first = simulate_recipients(settings, truth_path=truth, seed=11, engine=engine)
    w = first.written
    assert w["opens_human"] > 50 and w["opens_machine"] > 50 and w["clicks"] > 5 and w["returned"] > 20
    assert first.returns["treatment"] > first.returns["holdout"] >= 0
    snap = _snapshot(engine)
    tracking, events, _coupons = snap
    # every row is labelled simulated
    assert all(json.loads(e[4])["simulated"] is True for e in events)
    assert {e[1] for e in events} <= {"returned", "coupon_redeemed"}
    # Apple MPP opens are machine opens; people's opens and clicks are not
    assert {(t[1], t[3], t[4]) for t in tracking} == {("open", True, "apple-mpp"), ("open", False, None),
                                                      ("click", False, None)}
    # re-running adds nothing
    again = simulate_recipients(settings, truth_path=truth, seed=11, engine=engine)
    assert sum(again.written.values()) == 0 and _snapshot(engine) == snap
    # the same seed gives the same events; another seed other ones
    _reset(engine)
    assert _snapshot(engine) == (set(), set(), set())
    simulate_recipients(settings, truth_path=truth, seed=11, engine=engine)
    assert _snapshot(engine) == snap
    _reset(engine)
    simulate_recipients(settings, truth_path=truth, seed=12, engine=engine)
    assert _snapshot(engine)[1] != snap[1]


def test_holdout_gets_nothing_and_returns_fall_in_the_window(sent):
    settings, truth, engine = sent
    _reset(engine)
    result = simulate_recipients(settings, truth_path=truth, seed=5, engine=engine)
    window = dt.timedelta(days=settings.tracking.holdout_window_days)
    with engine.connect() as conn:
        held = {r.customer_id for r in conn.execute(select(ENROLLMENTS.c.customer_id).where(
            ENROLLMENTS.c.arm == "holdout"))}
        treated = {r.customer_id for r in conn.execute(select(ENROLLMENTS.c.customer_id).where(
            ENROLLMENTS.c.arm == "treatment"))}
        only_held = held - treated
        assert only_held
        touched = {r.customer_id for r in conn.execute(select(EVENTS.c.customer_id).where(
            EVENTS.c.source == SOURCE))}
        assert not touched & only_held
        enrolled_at = {r.customer_id: r.enrolled_at for r in conn.execute(
            select(ENROLLMENTS.c.customer_id, ENROLLMENTS.c.enrolled_at))}
        returns = conn.execute(select(CEVENTS.c.customer_id, CEVENTS.c.occurred_at, CEVENTS.c.properties)
                               .where(CEVENTS.c.source == SOURCE, CEVENTS.c.type == "returned")).all()
        held_returns = [r for r in returns if r.customer_id in only_held]
        assert held_returns, "the holdout returns at its natural rate"
        for r in returns:
            assert enrolled_at[r.customer_id] <= r.occurred_at <= enrolled_at[r.customer_id] + window
            assert r.occurred_at <= result.until
            assert json.loads(r.properties)["revenue_minor"] > 0
        # coupons: redeemed once, with no revenue of their own (the money is on the returned event)
        redeemed = conn.execute(select(func.count()).select_from(COUPONS).where(COUPONS.c.status == "redeemed")
                                ).scalar_one()
        coupon_events = conn.execute(select(CEVENTS.c.properties).where(
            CEVENTS.c.source == SOURCE, CEVENTS.c.type == "coupon_redeemed")).scalars().all()
        assert redeemed == len(coupon_events) == result.written["coupons_redeemed"]
        assert all(json.loads(p)["revenue_minor"] == 0 for p in coupon_events)
    # the results count the money once: treatment revenue = the returned events' revenue
    results = campaign_results(settings, now=result.until, engine=engine)
    measured = results["total"]["holdout"]
    assert measured["treatment"]["revenue_minor"] + measured["holdout"]["revenue_minor"] == result.revenue_minor


def test_measured_lift_contains_the_true_lift(sent):
    settings, truth, engine = sent
    _reset(engine)
    sim = simulate_recipients(settings, truth_path=truth, seed=7, engine=engine)
    assert 0.0 < sim.true_lift < 0.5
    done = attribute(settings, now=sim.until, engine=engine)
    assert done["attributed"] > 0
    results = campaign_results(settings, now=sim.until, engine=engine)
    lift = results["total"]["holdout"]["lift"]
    lo, hi = lift["rate_ci"]
    assert lo <= sim.true_lift <= hi
    rlo, rhi = lift["incremental_revenue_ci_minor"]
    assert rlo <= sim.true_incremental_revenue_minor <= rhi
    funnel = results["total"]["funnel"]
    assert funnel["opens_human"] > 0 and funnel["opens_machine"] > 0 and funnel["clicks_human"] > 0
    assert funnel["conversions"] > 0


def test_interval_coverage_over_seeds(sent):
    """The estimator's 95% interval covers the simulated truth in >= 80% of 20 independent runs."""
    settings, truth, engine = sent
    covered = covered_revenue = 0
    per_campaign = [0, 0]
    runs = 20
    for seed in range(100, 100 + runs):
        _reset(engine)
        sim = simulate_recipients(settings, truth_path=truth, seed=seed, engine=engine)
        results = campaign_results(settings, now=sim.until, engine=engine)
        lift = results["total"]["holdout"]["lift"]
        covered += lift["rate_ci"][0] <= sim.true_lift <= lift["rate_ci"][1]
        ci = lift["incremental_revenue_ci_minor"]
        covered_revenue += ci[0] <= sim.true_incremental_revenue_minor <= ci[1]
        for c in results["campaigns"]:
            ci = c["holdout"]["lift"]["rate_ci"]
            if ci and c["holdout"]["holdout"]["n"] >= 5:
                per_campaign[1] += 1
                per_campaign[0] += ci[0] <= sim.campaigns[c["key"]]["true_lift"] <= ci[1]
    assert covered / runs >= 0.8, (covered, runs)
    assert covered_revenue / runs >= 0.8, (covered_revenue, runs)
    assert per_campaign[1] >= runs and per_campaign[0] / per_campaign[1] >= 0.8, per_campaign
