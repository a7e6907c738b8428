"""Experiment winners: judged from the data, written as decisions, given to new enrollments only."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import delete, insert, select

from tests.tracking.conftest import T0, add_campaign, add_customers, add_enrollments, add_event, sent_message
from winback.models.campaigns import Campaign, Enrollment
from winback.models.scores import AnalysisRun, CustomerScore
from winback.models.tracking import ExperimentDecision
from winback.tracking.rollout import evaluate_experiments

D = dt.timedelta(days=1)


def _experiment(engine, conversions: dict[str, int], n: int = 12) -> int:
    with engine.begin() as conn:
        camp = add_campaign(conn, "winback_price", experiments={"offer_test": ["a", "b"]})
        for v in ("a", "b"):
            emails = [f"{v}{i}@example.com" for i in range(n)]
            ids = add_customers(conn, emails)
            enrs = add_enrollments(conn, camp, ids, variants={"offer_test": v})
            for i, (cid, enr, email) in enumerate(zip(ids, enrs, emails)):
                sent_message(conn, f"{v}:{i}", cid, email, camp, enr, variant=f"offer_test={v}")
                if i < conversions[v]:
                    add_event(conn, cid, "returned", T0 + 2 * D, f"ret-{v}-{i}", mrr_minor=1000, currency="USD")
    return camp


def test_winner_needs_enough_sends_and_apply(workspace, engine):
    camp = _experiment(engine, {"a": 1, "b": 11})
    workspace.tracking.rollout_min_per_variant = 20
    (e,) = evaluate_experiments(workspace, engine=engine, apply=True)
    assert e["winner"] is None and e["decided"] is False and "not enough sends" in e["reason"]
    workspace.tracking.rollout_min_per_variant = 10
    (e,) = evaluate_experiments(workspace, engine=engine)  # auto_rollout is off by default
    assert e["winner"] == "b" and e["metric"] == "conversions" and e["prob_best"]["b"] > 0.99
    assert e["decided"] is False and "auto_rollout is off" in e["reason"]
    (e,) = evaluate_experiments(workspace, engine=engine, apply=True)
    assert e["decided"] is True and e["rolled_out"] == "b"
    with engine.connect() as conn:
        d = conn.execute(select(ExperimentDecision.__table__)).one()
    assert (d.campaign_id, d.experiment, d.winner, d.decided_by) == (camp, "offer_test", "b", "auto")
    assert json.loads(d.stats)["metric"] == "conversions"
    (e,) = evaluate_experiments(workspace, engine=engine, apply=True)
    assert e["decided"] is False and e["reason"] == "already rolled out: b"


def test_clicks_decide_while_nobody_converted(workspace, engine):
    _experiment(engine, {"a": 0, "b": 0})
    workspace.tracking.rollout_min_per_variant = 10
    (e,) = evaluate_experiments(workspace, engine=engine)
    assert e["metric"] == "clicks" and e["winner"] is None and "no variant is best" in e["reason"]


def _lost_customers(engine, n: int) -> None:
    """``n`` churned customers with scores, as `winback analyze` leaves them (no history needed)."""
    now = dt.datetime(2026, 1, 15, tzinfo=dt.timezone.utc)
    with engine.begin() as conn:
        ids = add_customers(conn, [f"lost{i}@example.com" for i in range(n)])
        run = conn.execute(insert(AnalysisRun.__table__).returning(AnalysisRun.__table__.c.id),
                           {"started_at": now, "observation_end": now, "customers_scored": n}).scalar_one()
        conn.execute(insert(CustomerScore.__table__), [{
            "customer_id": cid, "analysis_id": run, "status": "churned", "churned_at": now - 20 * D,
            "churn_reason": "other", "tenure_days": 400, "mrr_minor": 5000, "currency": "USD", "value_tier": "mid",
            "p_return": 0.2, "value_after_return_minor": 100_000, "suggested_channel": "email"} for cid in ids])


def test_new_enrollments_get_the_winner_existing_keep_theirs(workspace, engine):
    from winback.campaigns.planner import plan

    key, experiment = "winback_general", "subject_reminder"  # the shipped playbook: variants a, b, c
    _lost_customers(engine, 90)
    plan(workspace, campaigns=[key], schedule=False, engine=engine)
    enr, camps = Enrollment.__table__, Campaign.__table__
    with engine.begin() as conn:
        camp = conn.execute(select(camps.c.id).where(camps.c.key == key)).scalar_one()
        before = {r.customer_id: json.loads(r.variants)[experiment] for r in
                  conn.execute(select(enr.c.customer_id, enr.c.variants).where(enr.c.campaign_id == camp))}
        assert len(set(before.values())) == 3 and len(before) == 90
        # half of them were not enrolled yet (as if they churned later); then the winner is rolled out
        later = sorted(before)[::2]
        conn.execute(delete(enr).where(enr.c.campaign_id == camp, enr.c.customer_id.in_(later)))
        conn.execute(insert(ExperimentDecision.__table__).values(
            campaign_id=camp, experiment=experiment, winner="c", stats="{}", decided_by="auto", decided_at=T0))
    plan(workspace, campaigns=[key], schedule=False, engine=engine)
    with engine.connect() as conn:
        after = {r.customer_id: json.loads(r.variants)[experiment] for r in
                 conn.execute(select(enr.c.customer_id, enr.c.variants).where(enr.c.campaign_id == camp))}
    assert set(after) == set(before)
    assert {after[c] for c in later} == {"c"}  # holdout customers too: their assignment is recorded alike
    kept = set(before) - set(later)
    assert all(after[c] == before[c] for c in kept) and {before[c] for c in kept} == {"a", "b", "c"}


def test_plan_rolls_winners_out_first_with_auto_rollout(workspace, engine, monkeypatch):
    from typer.testing import CliRunner

    from winback.cli.app import app as cli

    _experiment(engine, {"a": 1, "b": 11})
    monkeypatch.setenv("WINBACK_TRACKING__ROLLOUT_MIN_PER_VARIANT", "10")
    monkeypatch.setenv("WINBACK_TRACKING__AUTO_ROLLOUT", "true")
    result = CliRunner().invoke(cli, ["plan", "-w", str(workspace.workspace), "--json", "--explain", "1"])
    with engine.connect() as conn:
        decisions = [(r.experiment, r.winner, r.decided_by) for r in conn.execute(select(ExperimentDecision))]
    assert decisions == [("offer_test", "b", "auto")]
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rolled_out"] == [{"campaign": "winback_price", "experiment": "offer_test",
                                                        "winner": "b"}]
