"""Cohort matrix and tenure on a small hand-built history; Kaplan-Meier against lifelines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from winback.analytics.cohorts import cohort_matrix
from winback.analytics.survival import kaplan_meier, km_by, tenure

from .conftest import utc

# Observation end 2024-04-15: the last complete month is March 2024.
#  X1 2024-01-10 -> open                          cohort Jan: Jan Feb Mar
#  X2 2024-01-20 -> exactly 2024-02-01            cohort Jan: Jan
#  X3 2024-01-05 -> 2024-02-10, back 2024-03-15   cohort Jan: Jan Feb Mar
#  X4 trial 02-03..02-17 -> 2024-03-01            cohort Feb (paid from 02-17): Feb
#  X5 2024-02-01 -> 2024-03-20 and 2024-02-15 -> open (overlapping)   cohort Feb: Feb Mar (once each)
#  X6 2024-03-31 -> open                          cohort Mar: Mar
#  X7 2024-04-02 -> open                          cohort Apr: incomplete, not shown
#  X8 trial only                                  never paying
SUBS = [
    dict(subscription_id="x1", customer_id="X1", started_at="2024-01-10", plan_id="plan_a"),
    dict(subscription_id="x2", customer_id="X2", started_at="2024-01-20", status="canceled",
         canceled_at="2024-01-25", ended_at="2024-02-01", plan_id="plan_b"),
    dict(subscription_id="x3", customer_id="X3", started_at="2024-01-05", status="canceled",
         canceled_at="2024-02-10", ended_at="2024-02-10", plan_id="plan_a"),
    dict(subscription_id="x3b", customer_id="X3", started_at="2024-03-15", plan_id="plan_b"),
    dict(subscription_id="x4", customer_id="X4", started_at="2024-02-03", trial_start="2024-02-03",
         trial_end="2024-02-17", status="canceled", canceled_at="2024-02-20", ended_at="2024-03-01",
         plan_id="plan_a"),
    dict(subscription_id="x5", customer_id="X5", started_at="2024-02-01", status="canceled",
         canceled_at="2024-03-20", ended_at="2024-03-20", plan_id="plan_b"),
    dict(subscription_id="x5b", customer_id="X5", started_at="2024-02-15", plan_id="plan_a"),
    dict(subscription_id="x6", customer_id="X6", started_at="2024-03-31", plan_id="plan_a"),
    dict(subscription_id="x7", customer_id="X7", started_at="2024-04-02", plan_id="plan_a"),
    dict(subscription_id="x8", customer_id="X8", started_at="2024-01-02", trial_start="2024-01-02",
         trial_end="2024-01-16", status="canceled", canceled_at="2024-01-10", ended_at="2024-01-10"),
]
# X2's subscription was plan_c when it started (changed to plan_b later)
CHANGES = [dict(change_id="c1", subscription_id="x2", customer_id="X2", changed_at="2024-01-24",
                from_plan_id="plan_c", to_plan_id="plan_b", old_mrr=10, new_mrr=20)]
END = utc("2024-04-15")


@pytest.fixture
def con(history):
    return history(subscriptions=SUBS, subscription_changes=CHANGES)


def test_cohort_matrix_by_hand(con):
    rows = cohort_matrix(con, END).to_pylist()
    got = [(r["cohort"], r["age"], r["customers"], r["active"]) for r in rows]
    assert got == [
        ("2024-01", 0, 3, 3), ("2024-01", 1, 3, 2), ("2024-01", 2, 3, 2),
        ("2024-02", 0, 2, 2), ("2024-02", 1, 2, 1),
        ("2024-03", 0, 1, 1),
    ]
    assert rows[1]["retention"] == pytest.approx(2 / 3)
    assert rows[0]["cohort_start"].isoformat() == "2024-01-01T00:00:00+00:00"


def test_cohort_matrix_quarter_and_cut_off(con):
    rows = cohort_matrix(con, END, grain="quarter").to_pylist()
    assert [(r["cohort"], r["age"], r["customers"], r["active"]) for r in rows] == [("2024-Q1", 0, 6, 6)]
    # observed only up to 2024-03-01: February is the last complete month; X5's March does not count
    rows = cohort_matrix(con, utc("2024-03-01")).to_pylist()
    assert [(r["cohort"], r["age"], r["customers"], r["active"]) for r in rows] == [
        ("2024-01", 0, 3, 3), ("2024-01", 1, 3, 2), ("2024-02", 0, 2, 2)]
    assert cohort_matrix(con, utc("2024-01-20")).num_rows == 0
    with pytest.raises(ValueError, match="grain"):
        cohort_matrix(con, END, grain="week")


def test_tenure_by_hand(con):
    rows = {r["customer_id"]: r for r in tenure(con, END).to_pylist()}
    assert set(rows) == {"X1", "X2", "X3", "X4", "X5", "X6", "X7"}
    expect = {  # first spell only: days, observed, plan at its start
        "X1": (96, False, "plan_a"), "X2": (12, True, "plan_c"), "X3": (36, True, "plan_a"),
        "X4": (13, True, "plan_a"), "X5": (48, True, "plan_b"), "X6": (15, False, "plan_a"),
        "X7": (13, False, "plan_a"),
    }
    for cid, (days, observed, plan) in expect.items():
        assert rows[cid]["duration_days"] == pytest.approx(days), cid
        assert rows[cid]["observed"] is observed, cid
        assert rows[cid]["plan_id"] == plan, cid


def test_km_by_plan(con):
    fits = km_by(con, END, by="plan")
    assert set(fits) == {"plan_a", "plan_b", "plan_c"}
    a = fits["plan_a"]  # X1 96+, X3 36, X4 13, X6 15+, X7 13+
    assert a.n == 5
    assert a.survival_at(13) == pytest.approx(4 / 5)
    assert a.survival_at(36) == pytest.approx(4 / 5 * (1 - 1 / 2))
    assert a.median == 36
    whole = km_by(con, END, by=None)[None]
    assert whole.n == 7
    cohorts = km_by(con, END, by="cohort")
    assert set(cohorts) == {"2024-01", "2024-02", "2024-03", "2024-04"}


# ------------------------------------------------------------------------- Kaplan-Meier

def test_kaplan_meier_by_hand():
    # durations 1, 2+, 3, 3, 4+ : S(1) = 4/5, S(3) = 4/5 * (1 - 2/3) = 4/15
    km = kaplan_meier([1, 2, 3, 3, 4], [1, 0, 1, 1, 0])
    assert list(km.timeline) == [0, 1, 2, 3, 4]
    assert list(km.at_risk) == [5, 5, 4, 3, 1]
    assert list(km.events) == [0, 1, 0, 2, 0]
    assert km.survival == pytest.approx([1, 0.8, 0.8, 4 / 15, 4 / 15])
    assert km.median == 3
    assert km.survival_at(-1) == 1.0 and km.survival_at(2.5) == pytest.approx(0.8)
    # Greenwood at t=1: 1 / (5 * 4) = 0.05; log(-log) interval with z = 1.959964
    v, z = math.log(0.8), 1.959963984540054
    lower = math.exp(-math.exp(math.log(-v) - z * math.sqrt(0.05) / v))
    assert km.ci_lower[1] == pytest.approx(lower, abs=1e-12)
    assert km.ci_lower[0] == 1.0 and km.ci_upper[0] == 1.0


def test_kaplan_meier_edges():
    km = kaplan_meier([5, 5], [1, 1])
    assert km.survival[-1] == 0 and km.ci_lower[-1] == 0 and km.ci_upper[-1] == 0 and km.median == 5
    censored = kaplan_meier([1, 2, 3], [0, 0, 0])
    assert (censored.survival == 1).all() and censored.median == math.inf
    assert kaplan_meier([2.0, 1.0]).median == 1.0
    with pytest.raises(ValueError):
        kaplan_meier([-1, 2])
    with pytest.raises(ValueError):
        kaplan_meier([1, 2], [1])
    with pytest.raises(ValueError):
        kaplan_meier([1, float("nan")])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kaplan_meier_matches_lifelines(seed):
    lifelines = pytest.importorskip("lifelines")
    rng = np.random.default_rng(seed)
    n = 400
    durations = np.round(rng.exponential(200, n), 0 if seed == 0 else 2)  # seed 0: many ties
    observed = rng.random(n) < 0.7
    ours = kaplan_meier(durations, observed)
    kmf = lifelines.KaplanMeierFitter().fit(durations, observed)
    sf = kmf.survival_function_.iloc[:, 0]
    ci = kmf.confidence_interval_survival_function_
    np.testing.assert_allclose(ours.timeline, sf.index.to_numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(ours.survival, sf.to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.ci_lower, ci.iloc[:, 0].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.ci_upper, ci.iloc[:, 1].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours.at_risk, kmf.event_table["at_risk"].to_numpy())
    np.testing.assert_array_equal(ours.events, kmf.event_table["observed"].to_numpy())
    assert ours.median == kmf.median_survival_time_


def test_kaplan_meier_matches_lifelines_on_generated_tenure(generated_con):
    lifelines = pytest.importorskip("lifelines")
    from .conftest import OBSERVATION_END

    table = tenure(generated_con, OBSERVATION_END)
    saas = table.filter(table.column("source").to_numpy(zero_copy_only=False) == "saas")
    d = saas.column("duration_days").to_numpy()
    e = saas.column("observed").to_numpy(zero_copy_only=False)
    ours = kaplan_meier(d, e)
    kmf = lifelines.KaplanMeierFitter().fit(d, e)
    np.testing.assert_allclose(ours.survival, kmf.survival_function_.iloc[:, 0].to_numpy(), atol=1e-9, rtol=0)
    ci = kmf.confidence_interval_survival_function_
    np.testing.assert_allclose(ours.ci_lower, ci.iloc[:, 0].to_numpy(), atol=1e-9, rtol=0)
    np.testing.assert_allclose(ours.ci_upper, ci.iloc[:, 1].to_numpy(), atol=1e-9, rtol=0)
    # sanity: monthly churn of a few percent means most first spells outlive a month
    assert 0.8 < ours.survival_at(31) < 1.0
