"""Playbook versions, campaign rows, customer facts and budget state in the state store (both backends)."""

from __future__ import annotations

import json

import pytest
import yaml
from sqlalchemy import insert

from tests.helpers import write
from tests.playbooks.conftest import NOW, add_customer
from winback.kit.db import make_engine
from winback.models.campaigns import Enrollment
from winback.models.scores import AnalysisRun, CustomerScore
from winback.models.segments import Segment, SegmentMembership
from winback.playbooks import repository as repo
from winback.playbooks import service
from winback.playbooks.spec import PlaybookError, builtin_playbook_path, load_playbook_text, parse_playbook

DEFAULT_TEXT = builtin_playbook_path().read_text(encoding="utf-8")
LATER = NOW.replace(hour=13)


@pytest.fixture
def engine(workspace):
    engine = make_engine(workspace.resolved_state_url)
    yield engine
    engine.dispose()


def test_versions_only_on_change_and_newest_active(engine):
    with engine.begin() as conn:
        assert repo.save_playbook_version(conn, DEFAULT_TEXT, "builtin", NOW) == ("default", 1, True)
        assert repo.save_playbook_version(conn, DEFAULT_TEXT, "builtin", LATER) == ("default", 1, False)
        assert repo.save_playbook_version(conn, DEFAULT_TEXT.replace("\n", "\r\n"), "builtin", LATER)[2] is False
        edited = DEFAULT_TEXT.replace("title: Default win-back playbook", "title: Our playbook")
        assert repo.save_playbook_version(conn, edited, "workspace", LATER) == ("default", 2, True)
        spec, version = repo.active_playbook(conn, "default")
        assert (spec.title, version) == ("Our playbook", 2)
        rows = repo.list_versions(conn, "default")
        assert [(r["version"], r["active"], r["origin"]) for r in rows] == [(1, False, "builtin"),
                                                                           (2, True, "workspace")]
        # going back to the first text is a new version 3, not a silent switch
        assert repo.save_playbook_version(conn, DEFAULT_TEXT, "builtin", LATER) == ("default", 3, True)
        with pytest.raises(PlaybookError, match="line"):
            repo.save_playbook_version(conn, DEFAULT_TEXT.replace("priority: 60", "priority: high", 1), "x", LATER)
        assert len(repo.list_versions(conn)) == 3


def _campaigns(conn) -> dict[str, dict]:
    return {r["key"]: r for r in repo.campaign_rows(conn)}


def test_sync_campaigns_creates_updates_and_archives(engine):
    spec = load_playbook_text(DEFAULT_TEXT)
    with engine.begin() as conn:
        first = repo.sync_campaigns(conn, spec, 1, NOW)
        assert sorted(first["created"]) == sorted(spec.campaigns) and not first["archived"]
        rows = _campaigns(conn)
        price = rows["winback_price"]
        assert (price["budget_minor"], price["currency"], price["priority"], price["sequence"], price["status"]) == \
            (10_000_000, "USD", 60, "winback_four_step", "active")
        assert rows["incomplete_checkout"]["category"] == "transactional"
        assert rows["exit_survey"]["holdout_share"] == 0.0
        assert json.loads(price["spec"])["audience"]["winback"] is True
        repo.add_committed_cost(conn, "winback_price", 12_345, NOW)
        again = repo.sync_campaigns(conn, spec, 1, LATER)
        assert again["created"] == again["updated"] == again["archived"] == []

        data = yaml.safe_load(DEFAULT_TEXT)
        del data["campaigns"]["loyalty_referral"]
        data["campaigns"]["winback_price"]["title"] = "Price win-back"
        data["campaigns"]["inactive_regulars"]["enabled"] = False
        edited = parse_playbook(data)
        out = repo.sync_campaigns(conn, edited, 2, LATER)
        assert out["archived"] == ["loyalty_referral"]
        assert sorted(out["updated"]) == sorted(spec.campaigns.keys() - {"loyalty_referral"})  # version moved
        rows = _campaigns(conn)
        assert rows["loyalty_referral"]["status"] == "archived"
        assert rows["inactive_regulars"]["status"] == "paused"
        assert rows["winback_price"]["title"] == "Price win-back" and rows["winback_price"]["playbook_version"] == 2
        assert rows["winback_price"]["committed_cost_minor"] == 12_345  # kept
        back = repo.sync_campaigns(conn, spec, 3, LATER)
        assert "loyalty_referral" in back["updated"] and _campaigns(conn)["loyalty_referral"]["status"] == "active"


def test_load_playbook_workspace_file_and_errors(workspace, engine):
    spec, version = service.load_playbook(workspace)
    assert (spec.name, version) == ("default", 1)
    assert service.load_playbook(workspace)[1] == 1  # unchanged: no new version
    path = write(workspace.workspace / "playbooks" / "default.yaml",
                 DEFAULT_TEXT.replace("priority: 90", "priority: 99"))
    loaded = service.load_active(workspace)
    assert (loaded.version, loaded.created, loaded.origin) == (2, True, "workspace")
    assert loaded.spec.campaigns["abandoned_checkout"].priority == 99
    with engine.connect() as conn:
        assert _campaigns(conn)["abandoned_checkout"]["priority"] == 99

    broken = DEFAULT_TEXT.replace("    sequence: exit_survey\n", "    sequense: exit_survey\n")
    write(path, broken)
    with pytest.raises(PlaybookError) as info:
        service.load_playbook(workspace)
    line = next(i for i, l in enumerate(broken.splitlines(), 1) if "sequense" in l)
    assert str(path) in str(info.value) and "campaigns.exit_survey.sequence: required" in str(info.value)
    issues = {i.path: i for i in info.value.issues}
    assert issues["campaigns.exit_survey.sequense"].line == line
    assert "did you mean 'sequence'" in issues["campaigns.exit_survey.sequense"].reason
    write(path, DEFAULT_TEXT.replace("name: default", "name: other"))
    with pytest.raises(PlaybookError, match="must be named 'default'"):
        service.load_playbook(workspace)
    assert len(service.versions(workspace)) == 2  # nothing saved from the broken files


def _score(conn, customer_id, run_id, **values):
    conn.execute(insert(CustomerScore.__table__).values(customer_id=customer_id, analysis_id=run_id, **values))


def test_facts_budget_state_and_decisions(workspace, engine):
    service.load_playbook(workspace)
    with engine.begin() as conn:
        run_id = conn.execute(insert(AnalysisRun.__table__).values(started_at=NOW, observation_end=NOW)
                              .returning(AnalysisRun.__table__.c.id)).scalar_one()
        a = add_customer(conn, "a", phone="+100", locale="zh-Hant", country="TW", plan_id="pro")
        b = add_customer(conn, "b", marketing_opt_out=True)
        c = add_customer(conn, "c", email=None)
        _score(conn, a, run_id, status="churned", churn_reason="price", value_tier="top", p_return=0.12,
               value_after_return_minor=124_000, mrr_minor=5_000, currency="USD", suggested_channel="email",
               requested_features=json.dumps(["sso"]), reason_confidence=0.9, tenure_days=400)
        _score(conn, b, run_id, status="active", expected_clv_12m_minor=60_000, currency="USD")
        seg = conn.execute(insert(Segment.__table__).values(name="vip", title="VIP", origin="workspace", spec="{}",
                                                            spec_hash="h", version=1, member_count=1,
                                                            created_at=NOW, updated_at=NOW)
                           .returning(Segment.__table__.c.id)).scalar_one()
        conn.execute(insert(SegmentMembership.__table__).values(segment_id=seg, customer_id=a, entered_at=NOW,
                                                                version=1))
        facts = {f.external_id: f for f in repo.load_facts(conn)}
        assert [f.customer_id for f in repo.load_facts(conn, [c, a])] == [a, c]
    fa, fb, fc = facts["a"], facts["b"], facts["c"]
    assert (fa.reason, fa.value_tier, fa.p_return, fa.has_phone, fa.can_email, fa.language) == \
        ("price", "top", 0.12, True, True, "zh")
    assert fa.segments == frozenset({"vip"}) and fa.requested_features == ("sso",) and fa.reason_confidence == 0.9
    assert (fb.can_email, fb.status, fb.value_after_return_minor) == (False, "active", 60_000)
    assert (fc.can_email, fc.status, fc.reason) == (False, None, None)

    decisions = service.decide_for(workspace, [a], commit_budget=True)
    assert decisions[0].offer_key == "percent_50_3m" and decisions[0].offer_cost_minor == 2_850
    with engine.begin() as conn:
        campaign_id = repo.campaign_ids(conn)["winback_price"]
        for i, (arm, offer) in enumerate([("treatment", "percent_50_3m"), ("treatment", "percent_50_3m"),
                                          ("holdout", "percent_50_3m"), ("treatment", None)]):
            conn.execute(insert(Enrollment.__table__).values(
                campaign_id=campaign_id, customer_id=a, dedupe_key=f"k{i}", trigger="winback", arm=arm,
                status="active", offer_key=offer, playbook_version=1, enrolled_at=NOW))
        state = repo.load_budget_state(conn, repo.active_playbook(conn)[0])
    assert state.get("winback_price").committed_minor == 2_850
    assert state.remaining("winback_price") == 10_000_000 - 2_850
    assert dict(state.get("winback_price").offer_counts) == {"percent_50_3m": 2}
    explained = service.explain_customer(workspace, "a")
    assert explained.offer_key == "percent_50_3m" and "Reason: price (confidence 0.90" in explained.explanation_text


def test_load_playbook_without_recording(workspace, engine):
    spec, version = service.load_playbook(workspace, record=False)
    assert spec.name == "default" and version == 0
    with engine.connect() as conn:
        assert repo.list_versions(conn) == [] and repo.campaign_rows(conn) == []
    service.load_playbook(workspace, engine=engine)
    assert service.load_playbook(workspace, engine=engine, record=False)[1] == 1
