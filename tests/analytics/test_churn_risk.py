"""The churn-risk model: time-based split on generated SaaS data, report of model and health-score
baseline, calibration metrics, determinism, the orders population, and too little history."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from winback.analytics.churn_risk import (
    ENGAGEMENT_FEATURES, MODEL_FEATURES, InsufficientHistory, churn_labels, expected_calibration_error,
    reliability_table, train_and_evaluate,
)
from winback.analytics.features import customer_features
from winback.config import HealthSettings
from winback.history.store import ibis_connection
from winback.kit.errors import WinbackError

from .conftest import OBSERVATION_END, utc


@pytest.fixture(scope="module")
def history_con(generated):
    con = ibis_connection(generated["history"])
    yield con
    con.disconnect()


@pytest.fixture(scope="module")
def saas_result(history_con):
    return train_and_evaluate(history_con, OBSERVATION_END, source="saas")


def test_expected_calibration_error_by_hand():
    y = [0, 1, 1, 0]
    p = [0.05, 0.95, 0.55, 0.45]
    # bins 0, 9, 5, 4: |0 - .05| + |1 - .95| + |1 - .55| + |0 - .45| over 4 customers
    assert expected_calibration_error(y, p) == pytest.approx(0.25)
    table = reliability_table(y, p)
    assert len(table) == 10 and [r["customers"] for r in table] == [1, 0, 0, 0, 1, 1, 0, 0, 0, 1]
    assert table[9] == {"lower": 0.9, "upper": 1.0, "customers": 1, "mean_predicted": 0.95, "observed_rate": 1.0}
    assert expected_calibration_error([1, 1], [1.0, 1.0]) == 0.0  # p = 1 falls in the last bin


def test_report_on_generated_saas(saas_result, history_con):
    report = saas_result.report
    assert report["population"] == "subscriptions" and report["horizon_days"] == 90
    assert report["t_train"] == "2025-07-04T00:00:00" and report["t_test"] == "2025-10-02T00:00:00"
    assert report["positives"]["train"] >= 50 and report["positives"]["test"] >= 50
    assert report["n_test"] == sum(r["customers"] for r in report["reliability"])
    assert report["n_test"] == sum(r["customers"] for r in report["baseline_reliability"])
    # both are better than chance; the model beats the hand-weighted score on the same customers
    assert report["auc"] >= 0.75 and report["baseline_auc"] > 0.55
    assert report["auc"] > report["baseline_auc"]
    assert 0 <= report["ece"] <= 0.1 and 0 <= report["baseline_ece"] <= 1
    assert report["brier"] < report["base_rate_test"] * (1 - report["base_rate_test"])  # beats the base rate
    assert report["calibration"] in ("none", "sigmoid", "isotonic")
    assert set(report["calibration_cv_brier"]) == {"none", "sigmoid", "isotonic"}
    importance = report["feature_importance"]
    assert len(importance) == 10 and {r["feature"] for r in importance} <= set(MODEL_FEATURES)
    assert importance[0]["auc_drop"] >= importance[-1]["auc_drop"]


def test_predictions_for_active_customers(saas_result, history_con):
    predictions = saas_result.predictions
    active = churn_labels(history_con, OBSERVATION_END, 90, source="saas", labelled=False)
    assert predictions.column("customer_id").to_pylist() == active.column("customer_id").to_pylist()
    assert saas_result.report["n_predicted"] == predictions.num_rows > 1000
    risk = predictions.column("churn_risk").to_numpy()
    assert ((risk >= 0) & (risk <= 1)).all() and risk.std() > 0
    features = customer_features(history_con, OBSERVATION_END, source="saas")
    again = saas_result.predict(features)
    assert again.shape == (features.num_rows,) and ((again >= 0) & (again <= 1)).all()


def test_labels_follow_the_paying_spells(history_con):
    t = utc("2025-10-02")
    labels = churn_labels(history_con, t, 90, source="saas")
    later = churn_labels(history_con, t + dt.timedelta(days=90), 90, source="saas", labelled=False)
    stayed = set(later.column("customer_id").to_pylist())
    for row in labels.to_pylist():
        assert row["churned"] == (row["customer_id"] not in stayed)


def test_deterministic_and_without_engagement(history_con, saas_result):
    without = [c for c in MODEL_FEATURES if c not in ENGAGEMENT_FEATURES]
    first = train_and_evaluate(history_con, OBSERVATION_END, source="saas", feature_columns=without)
    second = train_and_evaluate(history_con, OBSERVATION_END, source="saas", feature_columns=without)
    assert first.report == second.report
    assert first.predictions.equals(second.predictions)
    # billing, support and tenure alone still rank churners above chance
    assert first.report["auc"] > 0.6
    assert first.report["baseline_auc"] == saas_result.report["baseline_auc"]  # the score is the same
    with pytest.raises(ValueError, match="unknown feature"):
        train_and_evaluate(history_con, OBSERVATION_END, source="saas", feature_columns=["shoe_size"])


def test_orders_population_on_the_shop(history_con):
    settings = HealthSettings(churn_min_events=20)
    result = train_and_evaluate(history_con, OBSERVATION_END, settings=settings, source="shop")
    report = result.report
    assert report["population"] == "orders"
    assert report["positives"]["test"] >= 20 and 0 <= report["auc"] <= 1
    assert result.predictions.num_rows > 0


def _subscription(i: int, started: str, ended: str | None = None) -> dict:
    row = dict(subscription_id=f"sub{i}", customer_id=f"c{i}", started_at=started, mrr=1000)
    if ended:
        row.update(status="canceled", canceled_at=ended, ended_at=ended)
    return row


def test_too_little_history(history):
    subs = [_subscription(i, "2024-01-01", "2025-11-15" if i < 5 else None) for i in range(40)]
    con = history(subscriptions=subs)
    with pytest.raises(InsufficientHistory, match=r"too little history .* train window .* 0 churn event"):
        train_and_evaluate(con, utc("2025-12-31"))
    result = train_and_evaluate(con, utc("2025-12-31"), raise_on_insufficient=False)
    assert result.model is None and result.predictions is None
    assert "at least 50" in result.reason and result.report["positives"] == {"train": 0, "test": 5}
    with pytest.raises(WinbackError, match="no churn-risk model"):
        result.predict(customer_features(con, utc("2025-12-31")))
    assert issubclass(InsufficientHistory, WinbackError)


def test_sample_rows_is_seeded_bounded_and_keeps_class_shares():
    from winback.analytics.churn_risk import sample_rows

    y = np.r_[np.zeros(9000, dtype=int), np.ones(1000, dtype=int)]
    idx = sample_rows(y, 2000)
    assert abs(idx.size - 2000) <= 1 and np.unique(idx).size == idx.size
    assert y[idx].mean() == pytest.approx(0.1, abs=0.002)
    assert np.array_equal(idx, sample_rows(y, 2000))  # deterministic
    assert np.array_equal(sample_rows(y, 50_000), np.arange(y.size))  # small windows: every row
