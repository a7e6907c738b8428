"""Materialised memberships: refresh diffs, entered_at kept, versions, errors isolated (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import insert

from tests.helpers import state_rows, write
from tests.segments.conftest import write_store
from winback.kit.db import make_engine
from winback.kit.errors import WinbackError
from winback.models.customer import Customer
from winback.segments import service
from winback.segments.spec import SpecError

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # the workspace's pinned clock


def add_customers(settings, ids: list[str], source: str = "s") -> dict[str, int]:
    engine = make_engine(settings.resolved_state_url)
    try:
        with engine.begin() as conn:
            for cid in ids:
                conn.execute(insert(Customer.__table__).values(
                    source=source, external_id=cid, email=f"{cid}@example.com", marketing_basis="consent",
                    marketing_opt_out=False, row_hash=0, first_seen_at=NOW, updated_at=NOW))
        rows = state_rows(settings, "SELECT external_id, id FROM customers")
        return dict(rows)
    finally:
        engine.dispose()


def profile(refs: dict[str, int], churned: list[str], extra: list[dict] = ()) -> list[dict]:
    rows = [{"customer_id": cid, "customer_ref": ref, "status": "churned" if cid in churned else "active",
             "lost_value_minor": 1000 * (i + 1), "attributes": "{}"} for i, (cid, ref) in enumerate(refs.items())]
    return rows + list(extra)


def members(settings, name: str) -> dict[int, tuple]:
    rows = state_rows(settings, "SELECT m.customer_id, m.entered_at, m.version FROM segment_memberships m "
                                f"JOIN segments s ON s.id = m.segment_id WHERE s.name = '{name}'")
    return {r[0]: (str(r[1])[:19], r[2]) for r in rows}


def segment_row(settings, name: str) -> dict:
    rows = state_rows(settings, "SELECT version, member_count, refresh_error, spec_hash, compiled_sql, origin, "
                                f"refreshed_at, as_of FROM segments WHERE name = '{name}'")
    keys = ("version", "member_count", "refresh_error", "spec_hash", "compiled_sql", "origin", "refreshed_at",
            "as_of")
    return dict(zip(keys, rows[0])) if rows else {}


def outcome(outcomes, name):
    return next(o for o in outcomes if o.name == name)


CHURNED_YAML = "name: churned_all\ntitle: Every churned customer\nmatch: {status: churned}\n"


def test_refresh_diff_entered_at_and_versions(workspace):
    settings = workspace
    refs = add_customers(settings, ["a", "b", "c", "d"])
    write_store(settings.history_path, profile(refs, churned=["a", "b"]))
    write(settings.workspace / "segments" / "churned_all.yaml", CHURNED_YAML)

    first = service.refresh(settings, ["churned_all"])
    o = outcome(first, "churned_all")
    assert (o.ok, o.version, o.member_count, o.entered, o.exited, o.unmatched) == (True, 1, 2, 2, 0, 0)
    assert set(members(settings, "churned_all")) == {refs["a"], refs["b"]}
    row = segment_row(settings, "churned_all")
    assert row["version"] == 1 and row["member_count"] == 2 and row["origin"] == "workspace"
    assert "$1" in row["compiled_sql"] and "churned" not in row["compiled_sql"]
    entered_a = members(settings, "churned_all")[refs["a"]]

    # nothing changed: nothing enters or leaves, the version stays
    again = outcome(service.refresh(settings, ["churned_all"], as_of=NOW + dt.timedelta(days=1)), "churned_all")
    assert (again.version, again.member_count, again.entered, again.exited) == (1, 2, 0, 0)

    # b comes back, c churns: one joins, one leaves, a keeps its entered_at
    write_store(settings.history_path, profile(refs, churned=["a", "c"]))
    later = NOW + dt.timedelta(days=2)
    diff = outcome(service.refresh(settings, ["churned_all"], as_of=later), "churned_all")
    assert (diff.version, diff.member_count, diff.entered, diff.exited) == (1, 2, 1, 1)
    now_members = members(settings, "churned_all")
    assert set(now_members) == {refs["a"], refs["c"]}
    assert now_members[refs["a"]] == entered_a
    assert now_members[refs["c"]] == (later.strftime("%Y-%m-%d %H:%M:%S"), 1)

    # the spec changes: version 2; stayers keep their version, joiners get the new one
    write(settings.workspace / "segments" / "churned_all.yaml",
          "name: churned_all\nmatch: {any: [{status: churned}, {field: lost_value_minor, op: gte, value: 4000}]}\n")
    bumped = outcome(service.refresh(settings, ["churned_all"], as_of=later), "churned_all")
    assert (bumped.version, bumped.member_count, bumped.entered, bumped.exited) == (2, 3, 1, 0)
    versions = {k: v[1] for k, v in members(settings, "churned_all").items()}
    assert versions == {refs["a"]: 1, refs["c"]: 1, refs["d"]: 2}
    assert segment_row(settings, "churned_all")["version"] == 2

    log = state_rows(settings, "SELECT r.version, r.member_count, r.entered, r.exited, r.error FROM segment_refreshes r "
                               "JOIN segments s ON s.id = r.segment_id WHERE s.name = 'churned_all' ORDER BY r.id")
    assert log == [(1, 2, 2, 0, None), (1, 2, 0, 0, None), (1, 2, 1, 1, None), (2, 3, 1, 0, None)]


def test_a_failing_segment_keeps_its_members_and_the_others_continue(workspace):
    settings = workspace
    refs = add_customers(settings, ["a", "b", "c"])
    write_store(settings.history_path, profile(refs, churned=["a", "b"]))
    seg = settings.workspace / "segments"
    write(seg / "churned_all.yaml", CHURNED_YAML)
    write(seg / "big_accounts.yaml", "name: big_accounts\nmatch: {attribute: seats, op: gte, value: 10}\n")
    write(seg / "dangling.yaml", "name: dangling\nmatch: {all: [{segment: churned_all}, {segment: gone}]}\n")
    write(seg / "broken.yaml", "name: broken\nmatch: {status: nope}\n")

    first = service.refresh(settings)
    assert outcome(first, "big_accounts").ok and outcome(first, "big_accounts").member_count == 0
    assert outcome(first, "churned_all").member_count == 2
    dangling = outcome(first, "dangling")
    assert not dangling.ok and "unknown segment 'gone'" in dangling.error
    assert not outcome(first, "broken").ok and "match.status" in outcome(first, "broken").error
    assert segment_row(settings, "dangling")["refresh_error"].startswith("segment 'dangling' refers to unknown")
    assert segment_row(settings, "broken") == {}  # never valid: nothing to record it on
    builtins = [o for o in first if o.name == "top_lost_value"]
    assert builtins and builtins[0].ok

    # now the history breaks big_accounts (malformed attributes JSON) while churned_all changes
    rows = profile(refs, churned=["a"])
    rows[2]["attributes"] = '{"seats": 12'
    write_store(settings.history_path, rows)
    write(seg / "big_accounts.yaml", "name: big_accounts\nmatch: {any: [{attribute: seats, op: gte, value: 10},"
                                     " {status: churned}]}\n")
    # give big_accounts members first, with a history that parses
    rows_ok = profile(refs, churned=["a"])
    write_store(settings.history_path, rows_ok)
    assert outcome(service.refresh(settings, ["big_accounts"]), "big_accounts").member_count == 1
    write_store(settings.history_path, rows)
    second = service.refresh(settings, ["big_accounts", "churned_all"], as_of=NOW + dt.timedelta(hours=1))
    failed = outcome(second, "big_accounts")
    assert not failed.ok and "json" in failed.error.lower()
    assert failed.member_count == 1
    assert set(members(settings, "big_accounts")) == {refs["a"]}
    assert segment_row(settings, "big_accounts")["refresh_error"] == failed.error
    ok = outcome(second, "churned_all")
    assert ok.ok and (ok.member_count, ok.exited) == (1, 1)
    errors = state_rows(settings, "SELECT s.name, r.error IS NOT NULL FROM segment_refreshes r JOIN segments s "
                                  "ON s.id = r.segment_id WHERE s.name = 'big_accounts' ORDER BY r.id")
    assert errors == [("big_accounts", False), ("big_accounts", False), ("big_accounts", True)]

    # fixed: the error clears
    write_store(settings.history_path, rows_ok)
    assert outcome(service.refresh(settings, ["big_accounts"]), "big_accounts").ok
    assert segment_row(settings, "big_accounts")["refresh_error"] is None


def test_missing_refs_resolve_by_key_and_unknown_customers_are_skipped(workspace):
    settings = workspace
    refs = add_customers(settings, ["a", "b"])
    rows = [
        {"customer_id": "a", "customer_ref": None, "status": "churned"},        # resolved via (source, id)
        {"customer_id": "b", "customer_ref": refs["b"], "status": "churned"},
        {"customer_id": "ghost", "customer_ref": 999_999, "status": "churned"},  # not in the state store
        {"customer_id": "nobody", "customer_ref": None, "status": "churned"},    # no such key either
    ]
    write_store(settings.history_path, rows)
    write(settings.workspace / "segments" / "churned_all.yaml", CHURNED_YAML)
    o = outcome(service.refresh(settings, ["churned_all"]), "churned_all")
    assert (o.ok, o.member_count, o.entered, o.unmatched) == (True, 2, 2, 2)
    assert set(members(settings, "churned_all")) == {refs["a"], refs["b"]}


def test_refresh_many_members(workspace):
    settings = workspace
    ids = [f"c{i:05d}" for i in range(3000)]
    refs = add_customers(settings, ids)
    write_store(settings.history_path, profile(refs, churned=ids[::2]))
    write(settings.workspace / "segments" / "churned_all.yaml", CHURNED_YAML)
    o = outcome(service.refresh(settings, ["churned_all"]), "churned_all")
    assert (o.member_count, o.entered) == (1500, 1500)
    write_store(settings.history_path, profile(refs, churned=ids[::3]))
    o = outcome(service.refresh(settings, ["churned_all"]), "churned_all")
    # multiples of 3: 1000; of 6 stay (500); the other 500 of 3 join; 1000 odd-multiples-of-2 leave
    assert (o.member_count, o.entered, o.exited) == (1000, 500, 1000)


def test_preview_show_list_and_save(workspace, tmp_path):
    settings = workspace
    refs = add_customers(settings, ["a", "b", "c"])
    write_store(settings.history_path, profile(refs, churned=["a", "b"]))
    spec_file = write(tmp_path / "valuable.yaml", "name: valuable_churned\ntitle: Valuable churned\n"
                                                  "match: {all: [{segment: churned_all},"
                                                  " {field: lost_value_minor, op: gte, value: 2000}]}\n")
    # preview of a file that refers to a segment not yet saved: a clear error, nothing written
    with pytest.raises(WinbackError, match="unknown segment 'churned_all'"):
        service.save(settings, spec_file)
    assert not (settings.workspace / "segments" / "valuable_churned.yaml").exists()
    saved = service.save(settings, write(tmp_path / "c.yml", CHURNED_YAML))
    assert saved["path"].endswith("segments/churned_all.yml") and not saved["replaced"]
    saved = service.save(settings, spec_file)
    assert saved["name"] == "valuable_churned" and not saved["overrides_builtin"]

    result = service.preview(settings, "valuable_churned", limit=5)
    assert result.count == 1 and result.sample[0]["customer_id"] == "b"
    assert result.sample[0]["email"] is None and "$1" in result.sql
    from_file = service.preview(settings, spec_file, limit=0)
    assert from_file.count == 1 and from_file.sample == []

    shown = service.show(settings, "valuable_churned")
    assert shown["count"] == 1 and shown["state"] is None and shown["origin"] == "workspace"
    assert shown["spec"]["match"]["all"][0] == {"segment": "churned_all"}
    service.refresh(settings)
    shown = service.show(settings, "valuable_churned")
    assert shown["state"]["member_count"] == 1 and shown["state"]["stale"] is False
    assert shown["refreshes"][0]["entered"] == 1

    listed = {s.name: s for s in service.list_segments(settings)}
    assert listed["valuable_churned"].member_count == 1 and listed["valuable_churned"].version == 1
    assert listed["top_lost_value"].origin == "builtin"
    # a segment whose file is removed stays listed, flagged
    (settings.workspace / "segments" / "valuable_churned.yaml").unlink()
    listed = {s.name: s for s in service.list_segments(settings)}
    assert not listed["valuable_churned"].defined and "no segment file" in listed["valuable_churned"].refresh_error

    # invalid specs: nothing written
    bad = write(tmp_path / "bad.yaml", "name: bad\nmatch: {field: lost_value_minor, op: gte, value: lots}\n")
    with pytest.raises(SpecError, match=r"match.value: expected a whole number"):
        service.save(settings, bad)
    assert not (settings.workspace / "segments" / "bad.yaml").exists()
    # a cycle through the saved segments
    write(settings.workspace / "segments" / "loop_a.yaml", "name: loop_a\nmatch: {segment: churned_all}\n")
    loop = write(tmp_path / "loop.yaml", "name: churned_all\nmatch: {segment: loop_a}\n")
    with pytest.raises(WinbackError, match="cycle"):
        service.save(settings, loop)
    assert "status: churned" in (settings.workspace / "segments" / "churned_all.yml").read_text()
    # a second file may not define an existing workspace segment
    dup = write(tmp_path / "dup.json", json.dumps({"name": "churned_all", "match": {"status": "lost"}}))
    with pytest.raises(WinbackError, match="already defined by"):
        service.save(settings, dup)
    # overriding a built-in is announced
    override = write(tmp_path / "o.yaml", "name: top_lost_value\nmatch: {field: lost_value_minor, op: top_percent,"
                                          " value: 10}\n")
    assert service.save(settings, override)["overrides_builtin"] is True


def test_unknown_names_and_missing_profile(workspace):
    with pytest.raises(WinbackError, match="no customer_profile"):
        service.refresh(workspace)
    with pytest.raises(WinbackError, match=r"unknown segment 'abandoned_order' \(did you mean 'abandoned_orders'"):
        service.refresh(workspace, ["abandoned_order"])
    with pytest.raises(WinbackError, match="unknown segment"):
        service.preview(workspace, "nope")


def test_sqlite_without_json1_falls_back_to_executemany(sqlite_workspace, monkeypatch):
    from winback.segments import repository

    monkeypatch.setattr(repository, "_sqlite_json", lambda conn: False)
    settings = sqlite_workspace
    refs = add_customers(settings, ["a", "b", "c"])
    refs_plus_ghost = dict(refs, ghost=999)
    write_store(settings.history_path, profile(refs_plus_ghost, churned=["a", "b", "ghost"]))
    write(settings.workspace / "segments" / "churned_all.yaml", CHURNED_YAML)
    o = outcome(service.refresh(settings, ["churned_all"]), "churned_all")
    assert (o.member_count, o.entered, o.unmatched) == (2, 2, 1)
    write_store(settings.history_path, profile(refs, churned=["c"]))
    o = outcome(service.refresh(settings, ["churned_all"]), "churned_all")
    assert (o.member_count, o.entered, o.exited) == (1, 1, 2)
    assert set(members(settings, "churned_all")) == {refs["c"]}


def test_state_store_without_segment_tables(workspace):
    from winback.models.migrate import downgrade, upgrade

    engine = make_engine(workspace.resolved_state_url)
    try:
        downgrade(engine, "0002")
        with pytest.raises(WinbackError, match="no segment tables; run `winback init`"):
            service.list_segments(workspace)
        upgrade(engine)
        assert service.list_segments(workspace)
    finally:
        engine.dispose()
