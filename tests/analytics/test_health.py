"""Behavioural features and the health score: hand-built histories with exact expected values
(including the 60-day rule and the no-leakage check), settings, and the generator's ground truth
(SaaS: decaying engagement, expiring cards, scheduled cancellations; shop: lapsed repeat buyers)."""

from __future__ import annotations

import math
import os
import uuid

import duckdb
import ibis
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from winback.analytics.features import FEATURE_COLUMNS, customer_features
from winback.analytics.health import FACTORS, baseline_risk, factor_penalties, health_scores, inactive_regular
from winback.config import HealthPenalties, HealthSettings, Settings
from winback.history.store import create_table_sql, ibis_connection
from winback.models.history import TABLES_BY_NAME

from .conftest import OBSERVATION_END, utc

AS_OF = utc("2025-12-31")


# ------------------------------------------------------------------------- a hand-built history

def _monthly_invoices(customer: str, sub: str, months: list[str], amount: int) -> list[dict]:
    return [dict(invoice_id=f"{customer}-{m}", customer_id=customer, subscription_id=sub, created_at=m, paid_at=m,
                 status="paid", amount_due=amount, amount_paid=amount) for m in months]


def build_rows(later: bool = False) -> dict[str, list[dict]]:
    """The test history; ``later=True`` adds facts after AS_OF and updates rows the way a later
    ingest would (a ticket resolved, subscriptions canceled, an upgrade) - none of it may show."""
    customers = [dict(customer_id=c, created_at="2025-01-01") for c in
                 ("steady", "decaying", "lapsed", "edge60", "edge59", "two_orders", "billing", "support",
                  "cancelling")]
    customers.append(dict(customer_id="steady", source="t", created_at="2025-01-01"))  # another source
    subscriptions = [
        dict(subscription_id="sub_steady", customer_id="steady", started_at="2025-01-01", mrr=5000),
        dict(subscription_id="sub_billing", customer_id="billing", started_at="2025-06-01", mrr=9900),
        dict(subscription_id="sub_cancel", customer_id="cancelling", started_at="2025-03-01", mrr=2900,
             cancel_at_period_end=True, canceled_at="2025-12-20", current_period_end="2026-01-15"),
    ]
    invoices = (_monthly_invoices("steady", "sub_steady",
                                  ["2025-07-01", "2025-08-01", "2025-09-01", "2025-10-01", "2025-11-01", "2025-12-01"],
                                  5000)
                + _monthly_invoices("billing", "sub_billing", ["2025-11-01"], 9900)
                + [dict(invoice_id="billing-dec", customer_id="billing", subscription_id="sub_billing",
                        created_at="2025-12-20", status="open", amount_due=9900, amount_paid=0)]
                + _monthly_invoices("cancelling", "sub_cancel", ["2025-12-01"], 2900))
    attempts = [
        dict(attempt_id="a1", customer_id="steady", attempted_at="2025-12-01", amount=5000, currency="USD",
             status="succeeded", card_exp_month=6, card_exp_year=2027),
        dict(attempt_id="a2", customer_id="billing", attempted_at="2025-11-01", amount=9900, currency="USD",
             status="succeeded", card_exp_month=1, card_exp_year=2026),
        dict(attempt_id="a3", customer_id="billing", attempted_at="2025-12-20", amount=9900, currency="USD",
             status="failed", decline_code="insufficient_funds", card_exp_month=1, card_exp_year=2026),
        dict(attempt_id="a4", customer_id="cancelling", attempted_at="2025-12-01", amount=2900, currency="USD",
             status="succeeded", card_exp_month=12, card_exp_year=2027),
    ]
    events = []
    for who, recent_logins in (("steady", 30), ("decaying", 9)):
        events += [
            dict(event_id=f"{who}-e0", customer_id=who, occurred_at="2025-08-01", event_type="login", count=1),
            dict(event_id=f"{who}-e1", customer_id=who, occurred_at="2025-10-15", event_type="login", count=90),
            dict(event_id=f"{who}-e2", customer_id=who, occurred_at="2025-12-15", event_type="login",
                 count=recent_logins),
            dict(event_id=f"{who}-e3", customer_id=who, occurred_at="2025-10-15", event_type="feature_used",
                 feature="reports", count=45),
            dict(event_id=f"{who}-e4", customer_id=who, occurred_at="2025-12-20", event_type="feature_used",
                 feature="reports", count=15),
            dict(event_id=f"{who}-e5", customer_id=who, occurred_at="2025-12-21", event_type="feature_used",
                 feature="export", count=5),
        ]
    orders = []
    for who, days in (("lapsed", ["2025-08-01", "2025-08-22", "2025-09-12", "2025-10-03"]),
                      ("edge60", ["2025-09-02", "2025-10-02", "2025-11-01"]),
                      ("edge59", ["2025-09-03", "2025-10-03", "2025-11-02"]),
                      ("two_orders", ["2025-09-02", "2025-11-01"])):
        orders += [dict(order_id=f"{who}-{d}", customer_id=who, ordered_at=d, total_amount=2000) for d in days]
    orders.append(dict(order_id="lapsed-refunded", customer_id="lapsed", ordered_at="2025-12-01", total_amount=2000,
                       status="refunded"))  # not a purchase
    tickets = [
        dict(ticket_id="t1", customer_id="support", opened_at="2025-12-10", status="open"),
        dict(ticket_id="t2", customer_id="support", opened_at="2025-11-20", status="pending"),
        dict(ticket_id="t3", customer_id="support", opened_at="2025-11-25", resolved_at="2025-12-03", status="solved",
             csat=1),
        dict(ticket_id="t4", customer_id="support", opened_at="2025-06-01", resolved_at="2025-06-03", status="closed",
             csat=2),
    ]
    surveys = [
        dict(response_id="r1", customer_id="support", responded_at="2025-06-01", survey="nps", question_id="nps",
             score=9),
        dict(response_id="r2", customer_id="support", responded_at="2025-11-02", survey="nps", question_id="nps",
             score=3),
    ]
    changes: list[dict] = []
    if later:
        customers.append(dict(customer_id="newcomer", created_at="2026-01-02"))
        subscriptions[0].update(status="canceled", canceled_at="2026-02-01", ended_at="2026-02-01")
        subscriptions[1].update(mrr=19900)  # upgraded after AS_OF (the change below)
        subscriptions[2].update(status="canceled", ended_at="2026-01-15")
        subscriptions.append(dict(subscription_id="sub_new", customer_id="newcomer", started_at="2026-01-02", mrr=100))
        changes.append(dict(change_id="c1", subscription_id="sub_billing", customer_id="billing",
                            changed_at="2026-01-10", change_type="upgrade", old_mrr=9900, new_mrr=19900))
        invoices.append(dict(invoice_id="billing-jan", customer_id="billing", subscription_id="sub_billing",
                             created_at="2026-01-03", paid_at="2026-01-03", status="paid", amount_due=9900,
                             amount_paid=9900))
        attempts.append(dict(attempt_id="a5", customer_id="billing", attempted_at="2026-01-03", amount=9900,
                             currency="USD", status="succeeded", card_exp_month=5, card_exp_year=2030))
        events.append(dict(event_id="decaying-late", customer_id="decaying", occurred_at="2026-01-05",
                           event_type="login", count=100))
        events.append(dict(event_id="new-e", customer_id="newcomer", occurred_at="2026-01-03", event_type="login"))
        orders += [dict(order_id="lapsed-jan", customer_id="lapsed", ordered_at="2026-01-02", total_amount=2000),
                   dict(order_id="edge59-late", customer_id="edge59", ordered_at="2025-12-31T00:00:01",
                        total_amount=2000)]
        tickets[0].update(status="solved", resolved_at="2026-01-02", csat=5)
        tickets.append(dict(ticket_id="t5", customer_id="support", opened_at="2026-01-04", status="open"))
        surveys += [dict(response_id="r3", customer_id="support", responded_at="2026-01-03", survey="nps",
                         question_id="nps", score=10),
                    dict(response_id="r4", customer_id="support", responded_at="2026-01-04", survey="csat",
                         question_id="csat", score=1)]
    return dict(customers=customers, subscriptions=subscriptions, subscription_changes=changes, invoices=invoices,
                payment_attempts=attempts, product_events=events, orders=orders, tickets=tickets,
                survey_responses=surveys)


@pytest.fixture
def hand_features(history):
    con = history(**build_rows())
    return customer_features(con, AS_OF, source="s")


def _by_id(table: pa.Table) -> dict[str, dict]:
    return {r["customer_id"]: r for r in table.to_pylist()}


EXPECTED_FEATURES = {
    "steady": dict(is_subscriber_active=True, mrr=5000, mrr_currency="USD", tenure_days=364.0, logins_30d=30,
                   login_baseline_per_day=1.0, logins_vs_baseline=1.0, feature_uses_30d=20,
                   feature_use_baseline_per_day=0.5, distinct_features_30d=2, distinct_features_baseline=1,
                   days_since_last_activity=10.0, purchases=6, days_since_last_purchase=30.0,
                   median_days_between_purchases=31.0, open_tickets=0, tickets_90d=0, lowest_csat_90d=None,
                   latest_nps=None, days_until_card_expiry=546, failed_payment_at=None, cancel_scheduled_for=None),
    "decaying": dict(is_subscriber_active=False, mrr=0, tenure_days=None, logins_30d=9, logins_vs_baseline=0.3,
                     purchases=0, days_since_last_purchase=None, days_until_card_expiry=None),
    "lapsed": dict(purchases=4, days_since_last_purchase=89.0, median_days_between_purchases=21.0,
                   tenure_days=152.0, logins_30d=0, login_baseline_per_day=None, last_activity_at=None),
    "edge60": dict(purchases=3, days_since_last_purchase=60.0, median_days_between_purchases=30.0),
    "edge59": dict(purchases=3, days_since_last_purchase=59.0, median_days_between_purchases=30.0),
    "two_orders": dict(purchases=2, days_since_last_purchase=60.0, median_days_between_purchases=60.0),
    "billing": dict(is_subscriber_active=True, mrr=9900, purchases=1, days_since_last_purchase=60.0,
                    median_days_between_purchases=None, days_until_card_expiry=31,
                    failed_payment_decline_code="insufficient_funds", days_since_failed_payment=11.0),
    "support": dict(open_tickets=2, tickets_90d=3, lowest_csat_90d=1, latest_nps=3, days_since_latest_nps=59.0),
    "cancelling": dict(is_subscriber_active=True, mrr=2900, days_until_cancel=15.0),
}


def test_features_have_exact_values(hand_features):
    assert hand_features.column_names == ["source", "customer_id", *FEATURE_COLUMNS]
    rows = _by_id(hand_features)
    assert sorted(rows) == sorted(EXPECTED_FEATURES)  # source "t" is filtered out
    for customer, expected in EXPECTED_FEATURES.items():
        for column, value in expected.items():
            got = rows[customer][column]
            if isinstance(value, float) and got is not None:
                assert got == pytest.approx(value), (customer, column)
            else:
                assert got == value, (customer, column, got)
    billing, support = rows["billing"], rows["support"]
    assert str(billing["card_expires_on"]) == "2026-01-31"
    assert str(billing["failed_payment_at"]) == "2025-12-20 00:00:00"
    assert str(support["lowest_csat_at"]) == "2025-12-03 00:00:00"
    assert str(rows["cancelling"]["cancel_scheduled_for"]) == "2026-01-15 00:00:00"
    assert rows["steady"]["feature_uses_vs_baseline"] == pytest.approx((20 / 30) / 0.5)


def test_features_ignore_everything_after_as_of(history):
    before = customer_features(history(**build_rows()), AS_OF)
    after = customer_features(history(**build_rows(later=True)), AS_OF)
    assert after.equals(before)
    # and the later facts do show once the instant moves past them
    moved = _by_id(customer_features(history(**build_rows(later=True)), utc("2026-01-06"), source="s"))
    assert moved["billing"]["failed_payment_at"] is None  # recovered on 2026-01-03
    assert moved["billing"]["mrr"] == 9900 and moved["lapsed"]["purchases"] == 5
    assert "newcomer" in moved and moved["support"]["latest_nps"] == 10


def test_baseline_needs_enough_observable_days(history):
    con = history(product_events=[
        dict(event_id="e1", customer_id="new", occurred_at="2025-11-25", event_type="login", count=10),
        dict(event_id="e2", customer_id="new", occurred_at="2025-12-20", event_type="login", count=1),
        dict(event_id="e3", customer_id="newish", occurred_at="2025-11-11", event_type="login", count=20),
        dict(event_id="e4", customer_id="newish", occurred_at="2025-12-20", event_type="login", count=3)])
    rows = _by_id(customer_features(con, AS_OF))
    assert rows["new"]["login_baseline_per_day"] is None  # 6 observable baseline days < 14
    assert rows["newish"]["login_baseline_per_day"] == pytest.approx(20 / 20)  # Nov 11 .. Dec 1
    assert rows["newish"]["logins_vs_baseline"] == pytest.approx(0.1)


EXPECTED_HEALTH = {
    "steady": (100.0, "healthy", []),
    "decaying": (82.5, "healthy", ["logins down 70% against their own baseline"]),
    "lapsed": (65.0, "watch", ["no purchase for 89 days (usually every 21)"]),
    "edge60": (65.0, "watch", ["no purchase for 60 days (usually every 30)"]),
    "edge59": (100.0, "healthy", []),
    "two_orders": (100.0, "healthy", []),
    "billing": (50.0, "watch", ["payment failed on 2025-12-20 (insufficient_funds)", "card expires on 2026-01-31"]),
    "support": (50.4, "watch", ["CSAT 1/5 on 2025-12-03", "2 unresolved tickets", "NPS 3/10 on 2025-11-02"]),
    "cancelling": (40.0, "watch", ["cancellation scheduled for 2026-01-15"]),
}


def test_health_scores_bands_and_factors(hand_features):
    health = health_scores(hand_features)
    assert health.column_names == ["source", "customer_id", "health_score", "health_band", "health_factors",
                                   "inactive_regular"]
    rows = _by_id(health)
    for customer, (score, band, factors) in EXPECTED_HEALTH.items():
        row = rows[customer]
        assert (row["health_score"], row["health_band"], row["health_factors"]) == (score, band, factors), customer
    # the 60-day rule: regular (>= 3 purchases) and 60 days without one, not 59; two purchases are not regular
    assert {c for c, r in rows.items() if r["inactive_regular"]} == {"lapsed", "edge60"}
    # the support customer has four factors; only the three largest are listed
    penalties = factor_penalties(hand_features)
    index = hand_features.column("customer_id").to_pylist().index("support")
    assert sum(penalties[f][index] > 0 for f in FACTORS) == 4
    assert penalties["many_tickets"][index] == 5.0


def test_settings_change_rules_and_bands(hand_features):
    def band(settings, customer):
        return _by_id(health_scores(hand_features, settings))[customer]

    assert band(HealthSettings(healthy_min=90), "decaying")["health_band"] == "watch"
    assert band(HealthSettings(watch_min=45), "cancelling")["health_band"] == "at_risk"
    assert band(HealthSettings(watch_min=30, healthy_min=60), "lapsed")["health_band"] == "healthy"
    relaxed = HealthSettings(penalties=HealthPenalties(cancel_scheduled=10))
    assert band(relaxed, "cancelling")["health_score"] == 90.0
    # the inactive rule's days; the purchase-gap rule still catches a customer 4x overdue
    assert band(HealthSettings(inactive_days=61), "edge60")["health_factors"] == []
    assert band(HealthSettings(inactive_days=90), "lapsed")["health_factors"] == [
        "no purchase for 89 days (usually every 21)"]
    assert not inactive_regular(hand_features, HealthSettings(inactive_days=90)).any()
    assert band(HealthSettings(card_expiry_days=30), "billing")["health_factors"] == [
        "payment failed on 2025-12-20 (insufficient_funds)"]
    assert band(HealthSettings(engagement_drop=0.8), "decaying")["health_factors"] == []
    assert band(HealthSettings(max_factors=1), "support")["health_factors"] == ["CSAT 1/5 on 2025-12-03"]
    with pytest.raises(ValidationError, match="watch_min"):
        HealthSettings(watch_min=80, healthy_min=70)


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("WINBACK_HEALTH__INACTIVE_DAYS", "45")
    monkeypatch.setenv("WINBACK_HEALTH__PENALTIES__CARD_EXPIRING", "5")
    settings = Settings()
    assert settings.health.inactive_days == 45 and settings.health.penalties.card_expiring == 5.0
    assert settings.health.healthy_min == 70.0


def test_p_alive_factor_and_empty_input(hand_features):
    ids = hand_features.column("customer_id").to_pylist()
    p_alive = np.full(len(ids), np.nan)
    p_alive[ids.index("steady")] = 0.31
    p_alive[ids.index("edge59")] = 0.9
    rows = _by_id(health_scores(hand_features, p_alive=p_alive))
    assert rows["steady"]["health_factors"] == ["P(alive) 0.31"]
    assert rows["steady"]["health_score"] == pytest.approx(100 - 40 * (0.5 - 0.31) / 0.5)
    assert rows["edge59"]["health_score"] == 100.0
    with pytest.raises(ValueError, match="p_alive"):
        health_scores(hand_features, p_alive=[0.5])
    empty = health_scores(hand_features.slice(0, 0))
    assert empty.num_rows == 0 and empty.schema.field("health_factors").type == pa.list_(pa.string())
    assert baseline_risk([100.0, 25.0]).tolist() == [0.0, 0.75]


# ------------------------------------------------------------------------- generated data vs ground truth

@pytest.fixture(scope="module")
def saas_scored(generated):
    con = ibis_connection(generated["history"])
    try:
        features = customer_features(con, OBSERVATION_END, source="saas")
    finally:
        con.disconnect()
    truth = pq.read_table(generated["saas"] / "ground_truth.parquet")
    order = {c: i for i, c in enumerate(truth.column("customer_id").to_pylist())}
    rows = np.array([order[c] for c in features.column("customer_id").to_pylist()])
    truth = truth.take(pa.array(rows))
    return features, truth


def _flags(truth: pa.Table, name: str) -> np.ndarray:
    return truth.column(name).to_numpy(zero_copy_only=False).astype(bool)


def _has(factors: list[list[str]], prefix: str) -> np.ndarray:
    return np.array([any(f.startswith(prefix) for f in row) for row in factors])


def test_generated_engagement_decay_is_flagged(saas_scored):
    features, truth = saas_scored
    health = health_scores(features)
    active = np.asarray(truth.column("lifecycle").to_pylist()) == "active"
    decaying = _flags(truth, "engagement_decaying")
    factors = health.column("health_factors").to_pylist()
    engaged_less = _has(factors, "logins down") | _has(factors, "feature use down")
    score = health.column("health_score").to_numpy()
    assert decaying[active].sum() > 50
    assert engaged_less[active & decaying].mean() >= 0.8
    assert engaged_less[active & ~decaying].mean() <= 0.2
    assert score[active & decaying].mean() < score[active & ~decaying].mean() - 15


def test_generated_expiring_cards_are_flagged(saas_scored):
    features, truth = saas_scored
    active = np.asarray(truth.column("lifecycle").to_pylist()) == "active"
    expiring = _flags(truth, "card_expiring_soon")
    # the generator's "soon" is the next three calendar months (up to 2026-03-31: 90 days)
    wide = health_scores(features, HealthSettings(card_expiry_days=92))
    card = _has(wide.column("health_factors").to_pylist(), "card expires on")
    penalties = factor_penalties(features, HealthSettings(card_expiry_days=92))["card_expiring"] > 0
    assert expiring[active].sum() > 50
    assert card[active & expiring].mean() >= 0.8 and penalties[active & expiring].all()
    assert penalties[active & ~expiring].mean() <= 0.02
    score = wide.column("health_score").to_numpy()
    assert score[active & expiring].mean() < score[active & ~expiring].mean()
    # the default month-long window flags only January expiries among active customers, every one of them
    # truly expiring; past-due subscribers whose card already expired (the ground truth leaves those in
    # dunning out) are flagged too, as "card expired on"
    default = factor_penalties(features)["card_expiring"] > 0
    assert default[active].sum() > 10 and expiring[default & active].all()
    lifecycle = np.asarray(truth.column("lifecycle").to_pylist())
    days = features.column("days_until_card_expiry").to_numpy(zero_copy_only=False)
    assert set(lifecycle[default & ~active]) <= {"past_due"} and (days[default & ~active] < 0).all()


def test_generated_scheduled_cancellations_are_flagged(saas_scored):
    features, truth = saas_scored
    health = health_scores(features)
    active = np.asarray(truth.column("lifecycle").to_pylist()) == "active"
    scheduled = _flags(truth, "cancel_scheduled")
    factors = health.column("health_factors").to_pylist()
    first = np.array([bool(row) and row[0].startswith("cancellation scheduled for") for row in factors])
    assert scheduled.sum() >= 5
    assert first[scheduled].all() and not first[active & ~scheduled].any()
    bands = np.asarray(health.column("health_band").to_pylist())
    assert (bands[scheduled] != "healthy").all()
    score = health.column("health_score").to_numpy()
    assert score[scheduled].max() < score[active & ~scheduled].mean() - 40


def test_generated_shop_lapsed_repeat_buyers(generated):
    con = ibis_connection(generated["history"])
    try:
        features = customer_features(con, OBSERVATION_END, source="shop")
    finally:
        con.disconnect()
    health = health_scores(features)
    truth = {r["customer_id"]: r for r in pq.read_table(generated["shop"] / "ground_truth.parquet").to_pylist()}
    feats = features.to_pylist()
    lapse_dead, lapse_alive = [], []
    for f, h in zip(feats, health.to_pylist()):
        t = truth[f["customer_id"]]
        if t["persona"] != "repeat_buyer" or f["purchases"] < 3:
            continue
        lapse = [x for x in h["health_factors"] if x.startswith("no purchase for")]
        (lapse_dead if t["churned"] else lapse_alive).append(bool(lapse))
        if lapse:  # the text is the customer's own numbers
            days = math.floor(f["days_since_last_purchase"])
            usual = math.floor(f["median_days_between_purchases"] + 0.5)
            assert lapse[0] == f"no purchase for {days} days (usually every {usual})"
    assert len(lapse_dead) > 30 and len(lapse_alive) > 30
    assert np.mean(lapse_dead) >= 0.6
    assert np.mean(lapse_dead) > np.mean(lapse_alive) + 0.3


# ------------------------------------------------------------------------- the same on PostgreSQL

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
HISTORY_TABLES = ("customers", "subscriptions", "subscription_changes", "invoices", "payment_attempts", "orders",
                  "product_events", "tickets", "survey_responses")


def test_postgres_gives_identical_features(generated):
    """The generated history copied into PostgreSQL (``WINBACK_TEST_DATABASE_URL``, as in
    test_backends.py) gives the same features, value for value."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(os.environ.get("WINBACK_TEST_DATABASE_URL", "").strip() or DEFAULT_PG_URL)
    params = {k: v for k, v in {"host": url.host, "port": url.port or 5432, "user": url.username,
                                "password": url.password, "dbname": url.database}.items() if v is not None}
    schema = f"wb_health_{uuid.uuid4().hex[:10]}"
    src = duckdb.connect(str(generated["history"]), read_only=True)
    admin = psycopg.connect(**params, autocommit=True)
    try:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        admin.execute(f'SET search_path TO "{schema}"')
        for name in HISTORY_TABLES:
            admin.execute(create_table_sql(TABLES_BY_NAME[name]))
            columns = [c.name for c in TABLES_BY_NAME[name].columns] + ["source", "_row_hash"]
            quoted = ", ".join(f'"{c}"' for c in columns)
            with admin.cursor().copy(f'COPY "{name}" ({quoted}) FROM STDIN') as copy:
                for row in src.execute(f'SELECT {quoted} FROM "{name}"').fetchall():
                    copy.write_row(row)
        admin.execute("ANALYZE")
        pg = ibis.postgres.connect(host=params.get("host"), port=params.get("port"), user=params.get("user"),
                                   password=params.get("password"), database=params.get("dbname"), schema=schema)
        duck = ibis_connection(generated["history"])
        try:
            expected = customer_features(duck, OBSERVATION_END)
            got = customer_features(pg, OBSERVATION_END)
        finally:
            pg.disconnect()
            duck.disconnect()
        assert expected.num_rows > 3000
        assert got.schema.equals(expected.schema)
        for column in expected.column_names:
            assert got.column(column).equals(expected.column(column)), column
    finally:
        src.close()
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


def test_empty_history(history):
    features = customer_features(history(), AS_OF)
    assert features.num_rows == 0 and features.column_names == ["source", "customer_id", *FEATURE_COLUMNS]
    assert health_scores(features).num_rows == 0
