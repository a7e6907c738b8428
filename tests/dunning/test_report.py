"""The recovery report (winback.dunning.report): every figure of a hand-built set of failed invoices,
on SQLite and PostgreSQL; Wilson intervals against published values and SciPy; the window; several
currencies; an empty store."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from scipy.stats import binomtest

from tests.dunning.report_fixtures import SINCE, UNTIL, insert_report_data
from winback.dunning.report import dunning_report, money_text, wilson_interval
from winback.kit.db import make_engine

TOP_KEYS = {"window", "currency", "currencies", "failed", "open", "recovered", "lost", "closed", "recovery_rate",
            "by_category", "by_decline_code", "time_to_recovery", "attempts", "notices", "weekly"}


@pytest.fixture
def engine(workspace):
    engine = make_engine(workspace.resolved_state_url)
    yield engine
    engine.dispose()


def minor(amounts: dict) -> dict:
    return {c: v["amount_minor"] for c, v in amounts.items()}


@pytest.mark.parametrize("x, n, low, high", [  # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])
def test_wilson_interval_matches_published_values(x, n, low, high):
    ci = wilson_interval(x, n)
    assert ci == pytest.approx((low, high), abs=5e-5)
    ref = binomtest(x, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert ci == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_every_figure_of_the_december_window(workspace, engine):
    insert_report_data(engine)
    r = dunning_report(workspace, engine=engine, since=SINCE, until=UNTIL)
    json.dumps(r)  # JSON-serialisable as it is
    assert set(r) == TOP_KEYS
    assert r["window"]["since"] == "2025-11-01T00:00:00+00:00" and r["window"]["until"] == "2026-01-01T00:00:00+00:00"
    assert r["window"]["now"] == "2026-01-15T12:00:00+00:00"  # the workspace's pinned clock
    assert r["currency"] == "USD" and r["currencies"] == ["USD", "EUR"]

    assert r["failed"]["invoices"] == 12
    assert minor(r["failed"]["amount"]) == {"USD": 41900, "EUR": 5700}
    assert r["failed"]["amount"]["USD"]["formatted"] == "$419.00"
    assert r["failed"]["amount"]["EUR"]["formatted"] == "€57.00"
    assert money_text(r["failed"]["amount"]) == "$419.00 + €57.00"
    op = r["open"]
    assert op["invoices"] == 3 and op["waiting_for_new_card"] == 1
    assert minor(op["amount_at_risk"]) == {"USD": 8500, "EUR": 1200}
    assert minor(op["mrr_at_risk"]) == {"USD": 8300, "EUR": 1100}
    rec = r["recovered"]
    assert rec["invoices"] == 6
    assert minor(rec["amount"]) == {"USD": 24000, "EUR": 4500}
    assert minor(rec["mrr"]) == {"USD": 4900 + 2900 + 1900 + 9900 + 3900, "EUR": 4400}  # MRR, not the invoices
    assert {k: v["invoices"] for k, v in rec["by"].items()} == {
        "retry": 3, "customer_update": 1, "card_updater": 1, "external": 1}
    assert {k: v["share"] for k, v in rec["by"].items()} == pytest.approx(
        {"retry": 0.5, "customer_update": 1 / 6, "card_updater": 1 / 6, "external": 1 / 6})
    assert minor(rec["by"]["retry"]["amount"]) == {"USD": 8000, "EUR": 4500}
    assert minor(rec["by"]["retry"]["mrr"]) == {"USD": 7800, "EUR": 4400}
    assert minor(rec["by"]["card_updater"]["mrr"]) == {"USD": 3900}
    lost = r["lost"]
    assert lost["invoices"] == 2 and lost["by_reason"] == {"canceled": 1, "paused": 1}
    assert minor(lost["amount"]) == {"USD": 8500} and minor(lost["mrr"]) == {"USD": 8300}
    assert r["closed"]["invoices"] == 1 and r["closed"]["by_reason"] == {"voided": 1, "uncollectible": 0}
    assert minor(r["closed"]["amount"]) == {"USD": 900}

    rate = r["recovery_rate"]
    assert (rate["recovered"], rate["failed"], rate["resolved"]) == (6, 12, 9)
    assert rate["rate"] == 0.5 and rate["rate_of_resolved"] == pytest.approx(6 / 9)
    ref = binomtest(6, 12).proportion_ci(method="wilson")
    assert (rate["ci_low"], rate["ci_high"]) == pytest.approx((ref.low, ref.high))

    cats = r["by_category"]
    assert set(cats) == {"hard", "soft", "gateway"}
    assert {k: (v["failed"], v["recovered"], v["open"], v["lost"], v["closed"]) for k, v in cats.items()} == {
        "soft": (7, 4, 1, 1, 1), "hard": (4, 2, 1, 1, 0), "gateway": (1, 0, 1, 0, 0)}
    assert cats["soft"]["rate"] == pytest.approx(4 / 7) and cats["hard"]["rate"] == 0.5 and cats["gateway"]["rate"] == 0
    assert cats["soft"]["rate_of_resolved"] == pytest.approx(4 / 6) and cats["gateway"]["rate_of_resolved"] is None
    for k, (x, n) in {"soft": (4, 7), "hard": (2, 4), "gateway": (0, 1)}.items():
        ref = binomtest(x, n).proportion_ci(method="wilson")
        assert (cats[k]["ci_low"], cats[k]["ci_high"]) == pytest.approx((ref.low, ref.high))
    assert minor(cats["hard"]["recovered_mrr"]) == {"USD": 9900 + 3900}

    codes = r["by_decline_code"]
    assert [(c["code"], c["category"], c["failed"], c["recovered"]) for c in codes] == [
        ("insufficient_funds", "soft", 5, 3), ("expired_card", "hard", 2, 1), ("do_not_honor", "soft", 1, 0),
        ("generic_decline", "soft", 1, 1), ("lost_card", "hard", 1, 0), ("stolen_card", "hard", 1, 1),
        ("timeout", "gateway", 1, 0)]
    assert codes[0]["rate"] == pytest.approx(0.6)
    ref = binomtest(3, 5).proportion_ci(method="wilson")
    assert (codes[0]["ci_low"], codes[0]["ci_high"]) == pytest.approx((ref.low, ref.high))

    ttr = r["time_to_recovery"]
    days = np.array([26 / 24, 3.5, 0.25, 8, 20, 5])
    assert ttr["recovered"] == 6
    assert ttr["median_days"] == pytest.approx(np.median(days), abs=1e-6)
    assert ttr["p75_days"] == pytest.approx(np.percentile(days, 75), abs=1e-6)
    assert ttr["p90_days"] == pytest.approx(np.percentile(days, 90), abs=1e-6)
    assert ttr["mean_days"] == pytest.approx(days.mean(), abs=1e-6)
    assert [(h["bucket"], h["invoices"]) for h in ttr["histogram"]] == [
        ("same day", 1), ("1-3 days", 2), ("4-7 days", 1), ("8-14 days", 1), ("15+ days", 1)]
    assert sum(h["share"] for h in ttr["histogram"]) == pytest.approx(1.0)

    att = r["attempts"]
    assert (att["charges"], att["retries"], att["succeeded"], att["skipped"]) == (18, 10, 4, 1)
    assert att["rate"] == pytest.approx(4 / 17)  # the started charge has no outcome yet
    assert [(a["number"], a["retry"], a["charges"], a["succeeded"], a["rate"]) for a in att["by_number"]] == [
        (1, 0, 8, 0, 0.0), (2, 1, 6, 3, 0.5), (3, 2, 3, 1, 0.5), (4, 3, 1, 0, 0.0)]
    assert [(a["trigger"], a["charges"], a["succeeded"]) for a in att["by_trigger"]] == [
        ("initial", 8, 0), ("schedule", 7, 3), ("quick", 2, 0), ("customer_update", 1, 1)]
    assert next(a for a in att["by_trigger"] if a["trigger"] == "quick")["rate"] == 0.0
    assert att["max_per_card_30d"] == 6 and att["cap_per_card_30d"] == 10  # card_A: six charges in 21 days

    assert r["notices"] == {
        "failed_payment_sent": 4, "final_notices_sent": 1, "recovered_confirmations_sent": 1,
        "expiry_reminders_sent": 5, "cards_reminded": 4,
        "cards_updated_after_reminder": {"total": 2, "customer": 1, "card_updater": 1},
        "card_updater_updates": 2}

    assert r["weekly"] == [
        {"week": "2025-12-01", "failed": 4, "recovered": 3}, {"week": "2025-12-08", "failed": 3, "recovered": 1},
        {"week": "2025-12-15", "failed": 2, "recovered": 1}, {"week": "2025-12-22", "failed": 3, "recovered": 0},
        {"week": "2025-12-29", "failed": 0, "recovered": 1}]


def test_default_window_takes_every_failed_invoice_and_every_currency(workspace, engine):
    insert_report_data(engine)
    r = dunning_report(workspace, engine=engine)
    assert r["window"]["since"] is None and r["window"]["until"] is None
    assert r["failed"]["invoices"] == 14  # the never-failed invoice is not a failed one
    assert r["currencies"] == ["USD", "EUR", "GBP"]
    assert minor(r["open"]["amount_at_risk"]) == {"USD": 8500, "EUR": 1200, "GBP": 800}
    assert minor(r["recovered"]["mrr"]) == {"USD": 23500 + 1000, "EUR": 4400}
    assert r["recovered"]["by"]["retry"]["invoices"] == 4
    assert r["by_category"]["hard"]["failed"] == 5
    assert r["attempts"]["charges"] == 20 and r["attempts"]["max_per_card_30d"] == 6
    assert r["time_to_recovery"]["median_days"] == pytest.approx(np.median([26 / 24, 3.5, 0.25, 8, 20, 5, 2]))
    assert r["notices"]["failed_payment_sent"] == 5 and r["notices"]["card_updater_updates"] == 3
    weeks = [w["week"] for w in r["weekly"]]
    assert weeks[0] == "2025-05-26" and weeks[-1] == "2026-01-05"
    assert len(weeks) == len(set(weeks)) == (dt.date(2026, 1, 5) - dt.date(2025, 5, 26)).days // 7 + 1
    assert sum(w["failed"] for w in r["weekly"]) == 14 and sum(w["recovered"] for w in r["weekly"]) == 7


def test_since_and_until_are_half_open(workspace, engine):
    insert_report_data(engine)
    first = dt.datetime(2025, 12, 1, 10, 0, tzinfo=dt.timezone.utc)
    only_first = dunning_report(workspace, engine=engine, since=first, until=first + dt.timedelta(days=1))
    assert only_first["failed"]["invoices"] == 1 and only_first["recovered"]["by"]["retry"]["invoices"] == 1
    assert only_first["attempts"]["charges"] == 2 and only_first["attempts"]["max_per_card_30d"] == 2
    none = dunning_report(workspace, engine=engine, since=first + dt.timedelta(seconds=1),
                          until=first + dt.timedelta(days=1))
    assert none["failed"]["invoices"] == 0
    late = dunning_report(workspace, engine=engine, since=UNTIL)
    assert late["failed"]["invoices"] == 1 and late["currencies"] == ["GBP"] and late["currency"] == "GBP"
    assert late["open"]["waiting_for_new_card"] == 1 and late["notices"]["failed_payment_sent"] == 1


def test_empty_store(workspace, engine):
    r = dunning_report(workspace, engine=engine)
    json.dumps(r)
    assert set(r) == TOP_KEYS
    assert r["failed"]["invoices"] == 0 and r["currency"] == "USD" and r["currencies"] == ["USD"]
    assert r["failed"]["amount"] == {"USD": {"amount_minor": 0, "formatted": "$0.00"}}
    assert r["recovery_rate"]["rate"] is None and r["recovery_rate"]["ci_low"] is None
    assert all(v["failed"] == 0 and v["rate"] is None for v in r["by_category"].values())
    assert r["by_decline_code"] == [] and r["weekly"] == []
    assert r["time_to_recovery"]["median_days"] is None and r["time_to_recovery"]["recovered"] == 0
    assert r["attempts"]["charges"] == 0 and r["attempts"]["max_per_card_30d"] == 0
    assert r["notices"]["expiry_reminders_sent"] == 0
    assert r["recovered"]["by"]["retry"] == {"invoices": 0, "share": None, "amount": r["failed"]["amount"],
                                             "mrr": r["failed"]["amount"]}


def test_engine_is_opened_and_disposed_when_not_given(workspace):
    r = dunning_report(workspace)
    assert r["failed"]["invoices"] == 0


def test_max_charges_per_card_pages_through_the_cards(workspace, engine, monkeypatch):
    """The per-card cap check visits cards page by page (keyset pagination), most attempt rows first."""
    import winback.dunning.report as report

    insert_report_data(engine)
    monkeypatch.setattr(report, "CHARGE_BATCH", 1)
    assert dunning_report(workspace, engine=engine)["attempts"]["max_per_card_30d"] == 6
    # card_A's December charges are out of this window; its June ones (2 in 2 days) are the most on a card
    june = dunning_report(workspace, engine=engine, until=SINCE)
    assert june["attempts"]["charges"] == 2 and june["attempts"]["max_per_card_30d"] == 2


def test_a_new_card_of_the_reminded_customer_counts_as_updated_after_the_reminder(workspace, engine):
    """The customer answered the expiry reminder with a new card (a new payment method), not an edit."""
    from sqlalchemy import insert

    from winback.models.delivery import OutboxMessage
    from winback.models.dunning import BillingPaymentMethod

    t = dt.datetime(2025, 12, 1, tzinfo=dt.timezone.utc)
    with engine.begin() as conn:
        conn.execute(insert(BillingPaymentMethod), [
            {"provider": "sandbox", "external_id": ref, "customer_ref": owner, "brand": "visa", "last4": "4242",
             "exp_month": 12, "exp_year": year, "status": "active", "updated_via": via, "event_at": at,
             "updated_at": at}
            for ref, owner, year, via, at in (
                ("pm_old", "cus_a", 2025, "import", t - dt.timedelta(days=300)),
                ("pm_new", "cus_a", 2029, "customer", t + dt.timedelta(days=2)),  # 2 days after the reminder
                ("pm_other", "cus_b", 2029, "customer", t + dt.timedelta(days=3)))])  # someone else's card
        conn.execute(insert(OutboxMessage), [{
            "idempotency_key": "dunning:expiry:sandbox:pm_old:2025-12:30", "message_id": "<r1@x>", "channel": "email",
            "category": "transactional", "priority": 90, "status": "sent", "due_at": t, "attempts": 1,
            "created_at": t, "sent_at": t}])
    n = dunning_report(workspace, engine=engine)["notices"]
    assert n["expiry_reminders_sent"] == 1 and n["cards_reminded"] == 1
    assert n["cards_updated_after_reminder"] == {"total": 1, "customer": 1, "card_updater": 0}
