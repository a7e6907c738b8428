"""User values never reach the SQL text: hostile strings are bound parameters and match literally."""

from __future__ import annotations

import json

import pytest

from tests.segments.conftest import AS_OF, select_ids, spec_of
from winback.history.store import open_history
from winback.segments.compiler import compile_segment
from winback.segments.spec import SpecError, parse_spec

HOSTILE = [
    "'; DROP TABLE customer_profile; --",
    "x' OR '1'='1",
    'quote " double',
    "back\\slash \\' and $1 ? :name %s",
    "顧客 – Ü ñ 🙂",
    "multi\nline\r\n\ttab",
    "'); DELETE FROM orders; SELECT ('",
]


@pytest.fixture
def hostile_store(store):
    profile = [{"customer_id": f"h{i}", "customer_ref": i, "plan_id": value, "status": "churned",
                "attributes": json.dumps({"note": value})} for i, value in enumerate(HOSTILE)]
    profile.append({"customer_id": "plain", "customer_ref": 99, "plan_id": "basic", "status": "churned",
                    "attributes": "{}"})
    events = [{"event_id": f"e{i}", "customer_id": f"h{i}", "occurred_at": "2026-01-01", "event_type": "feature_requested",
               "feature": value} for i, value in enumerate(HOSTILE)]
    orders = [{"order_id": "o1", "customer_id": "plain", "ordered_at": "2026-01-01", "status": "completed",
               "total_amount": 1, "coupon_code": HOSTILE[0]}]
    return store(profile, product_events=events, orders=orders)


def _tables(path) -> set[str]:
    with open_history(path, read_only=True) as con:
        return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_hostile_values_are_bound_and_match_literally(hostile_store, index):
    value = HOSTILE[index]
    before = _tables(hostile_store)
    trees = [
        {"field": "plan_id", "op": "eq", "value": value},
        {"field": "plan_id", "op": "in", "value": [value, "nothing"]},
        {"attribute": "note", "op": "eq", "value": value},
        {"event": {"type": "feature_requested", "where": {"feature": value}}},
        {"all": [{"status": "churned"}, {"event": {"type": "feature_requested", "where": {"feature": [value]}}}]},
    ]
    for tree in trees:
        compiled = compile_segment(spec_of(tree), AS_OF)
        assert value not in compiled.sql
        for fragment in ("DROP", "DELETE", "顧客", "'1'='1", "🙂"):
            assert fragment not in compiled.sql
        assert value in compiled.params
        assert select_ids(hostile_store, tree) == [f"h{index}"], tree
    # not equal: everyone else, hostile or not
    assert len(select_ids(hostile_store, {"field": "plan_id", "op": "ne", "value": value})) == len(HOSTILE)
    assert _tables(hostile_store) == before


def test_hostile_event_where_on_orders(hostile_store):
    tree = {"event": {"type": "order", "where": {"coupon_code": HOSTILE[0]}}}
    assert select_ids(hostile_store, tree) == ["plain"]
    with open_history(hostile_store, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM customer_profile").fetchone()[0] == len(HOSTILE) + 1


@pytest.mark.parametrize("doc", [
    {"name": "x'; DROP TABLE segments; --", "match": {"status": "active"}},
    {"name": "ok", "match": {"field": "status; DROP TABLE x", "op": "eq", "value": "a"}},
    {"name": "ok", "match": {"attribute": "a'] OR 1=1 --", "op": "eq", "value": "a"}},
    {"name": "ok", "match": {"event": {"type": "login' OR 1=1 --"}}},
    {"name": "ok", "match": {"event": {"type": "order", "where": {"status) OR (1=1": "completed"}}}},
    {"name": "ok", "match": {"segment": "other'; --"}},
    {"name": "ok", "match": {"field": "lost_value_minor", "op": "gte", "value": "1; DROP TABLE x"}},
])
def test_hostile_identifiers_are_rejected_by_the_spec(doc):
    with pytest.raises(SpecError):
        parse_spec(doc)
