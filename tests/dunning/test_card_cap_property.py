"""Property: whatever the schedule, faults, invoices and timing, no card is charged more than
``max_attempts_per_card`` (at most 10) times in any 30 days, counting the provider's own first
attempts - and no invoice is ever paid twice."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlalchemy import func, select, text

from tests.dunning.flow_helpers import ATTEMPTS, CHARGES, T0, World, with_dunning
from winback.dunning.policy import max_in_any_window
from winback.workspace import init_workspace

TABLES = ("dunning_attempts", "dunning_cases", "billing_payment_methods", "billing_subscriptions", "sandbox_charges",
          "sandbox_cards", "customer_events", "customers")


@pytest.fixture(scope="module")
def base_settings(tmp_path_factory):
    return init_workspace(tmp_path_factory.mktemp("cap") / "ws", now="2026-01-15T12:00:00Z")


schedules = st.lists(st.floats(min_value=0.01, max_value=20.0), min_size=1, max_size=25).map(
    lambda xs: sorted(set(round(x, 3) for x in xs)))
faults = st.lists(st.sampled_from(["timeout", "timeout_after_charge", "api_error", "rate_limit"]), max_size=12)


@hsettings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(days=schedules, limit=st.integers(min_value=1, max_value=10), invoices=st.integers(min_value=1, max_value=6),
       quick_limit=st.integers(min_value=0, max_value=8), fault_list=faults,
       step_hours=st.sampled_from([0.01, 1.0, 5.0, 24.0]), behaviour=st.sampled_from(
           ["insufficient_funds", "generic_decline", "try_again_later", "processing_error"]),
       gaps=st.lists(st.floats(min_value=0, max_value=40), min_size=6, max_size=6))
def test_no_card_is_charged_more_than_the_cap_in_any_30_days(base_settings, days, limit, invoices, quick_limit,
                                                              fault_list, step_hours, behaviour, gaps):
    settings = with_dunning(base_settings, notices=False, retry_days=days, max_attempts_per_card=limit,
                            quick_retry_limit=quick_limit, quick_retry_base_seconds=30, grace_days=3)
    world = World(settings)
    try:
        with world.engine.begin() as conn:
            for table in TABLES:
                conn.execute(text(f'DELETE FROM "{table}"'))
        people = [world.customer(f"cus_{i}", f"p{i}@example.com", card=f"pm_{i}", fingerprint="one-card",
                                 card_behaviour=behaviour) for i in range(invoices)]
        # the provider's first attempts spread over weeks, all on the same physical card
        starts = sorted(T0 + dt.timedelta(days=gaps[i]) for i in range(invoices))
        events = list(zip(starts, people))
        horizon = starts[-1] + dt.timedelta(days=max(days) + 5)
        t, k = T0, 0
        for i, _ in enumerate(people):
            world.gateway.inject(f"in_{i}", *fault_list)
        while t <= horizon:
            while k < len(events) and events[k][0] <= t:
                at, who = events[k]
                if limit > _recent(world, at):  # the cap binds our charges; the provider's are facts
                    world.fail(who, f"in_{k}", behaviour, at=at)
                k += 1
            world.run(t)
            t += dt.timedelta(hours=step_hours) if step_hours >= 1 else dt.timedelta(minutes=1 + 30 * (t.minute % 3))
            if step_hours < 1 and t > T0 + dt.timedelta(days=2):
                step_hours = 6.0
        with world.engine.connect() as conn:
            times = conn.execute(select(ATTEMPTS.c.started_at).where(ATTEMPTS.c.card_key == "fp:one-card")).scalars().all()
            paid_twice = conn.execute(select(CHARGES.c.invoice_ref).where(CHARGES.c.status == "succeeded")
                                      .group_by(CHARGES.c.invoice_ref).having(func.count() > 1)).all()
        assert max_in_any_window(times) <= limit
        assert paid_twice == []
    finally:
        world.dispose()


def _recent(world, at) -> int:
    with world.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(ATTEMPTS).where(
            ATTEMPTS.c.card_key == "fp:one-card", ATTEMPTS.c.started_at > at - dt.timedelta(days=30))).scalar_one()
