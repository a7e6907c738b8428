"""Spec validation: every problem is reported with its place in the spec and a reason."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml

from winback.segments.builtin import builtin_definitions
from winback.segments.spec import (
    AllOf, EventCondition, FieldCondition, NotOf, SegmentSpec, SpecError, load_spec_file, parse_spec,
)


def errors_of(doc) -> list[tuple[str, str]]:
    if isinstance(doc, str):
        doc = yaml.safe_load(doc)
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    return [(i.path, i.reason) for i in info.value.issues]


def one_error(doc) -> tuple[str, str]:
    errors = errors_of(doc)
    assert len(errors) == 1, errors
    return errors[0]


def match(tree) -> dict:
    return {"name": "t", "match": tree}


@pytest.mark.parametrize("tree, path, words", [
    # a string for a number field
    ({"all": [{"status": "churned"}, {"reason": "price"}, {"field": "lost_value_minor", "op": "gte", "value": "1000"}]},
     "match.all[2].value", ["whole number", "'1000'", "without quotes"]),
    # an unknown field name, with a suggestion
    ({"field": "lost_valu_minor", "op": "gte", "value": 1}, "match.field", ["unknown profile field", "lost_value_minor"]),
    # an operator that does not fit the field's type
    ({"field": "status", "op": "gt", "value": "churned"}, "match.op", ["not an operator for status", "eq"]),
    ({"field": "requested_features", "op": "eq", "value": "x"}, "match.op", ["contains"]),
    # a bad date
    ({"field": "churned_at", "op": "between", "value": ["2025-01-01", "2025-02-30"]}, "match.value[1]",
     ["not a date", "YYYY-MM-DD"]),
    ({"field": "churned_at", "op": "between", "value": ["2025-06-01", "2025-01-01"]}, "match.value", ["low <= high"]),
    # enumerated values, shorthand and long form
    ({"any": [{"reason": ["price", "usabilty"]}]}, "match.any[0].reason[1]", ["not a valid reason", "usability"]),
    ({"persona": "cart_abandonner"}, "match.persona", ["cart_abandoner"]),
    ({"field": "status", "op": "in", "value": ["churned", "gone"]}, "match.value[1]", ["not a valid status"]),
    # unknown condition keys
    ({"all": [{"statuss": "churned"}]}, "match.all[0].statuss", ["unknown condition", "status"]),
    ({"field": "status", "op": "eq", "value": "active", "valeu": 1}, "match.valeu", ["unknown key", "value"]),
    # missing and misplaced pieces
    ({"field": "status", "op": "eq"}, "match.value", ["required"]),
    ({"field": "status", "op": "is_null", "value": "x"}, "match.value", ["takes no value"]),
    ({"field": "status", "op": "eq", "value": ["a"]}, "match.value", ["single value"]),
    ({"field": "status", "op": "eq", "value": "active", "among": {"status": "active"}}, "match.among",
     ["top_percent"]),
    ({"field": "lost_value_minor", "op": "top_percent", "value": 120}, "match.value", ["at most 100"]),
    ({"all": []}, "match.all", ["non-empty list"]),
    ({"all": [{"status": "active"}], "any": [{"status": "lost"}]}, "match", ["must stand alone"]),
    ({"not": "status"}, "match.not", ["expected a condition"]),
    ({"field": "churned_at", "op": "within_days", "value": -3}, "match.value", ["whole number of days"]),
    ({"churned_at": "2025-01-01"}, "match.churned_at", ["timestamp field", "between"]),
    ({"field": "marketing_opt_out", "op": "eq", "value": "yes"}, "match.value", ["true or false"]),
    # YAML's Norway problem: an unquoted NO is a boolean
    ({"field": "country", "op": "eq", "value": False}, "match.value", ["quote it"]),
    # attributes
    ({"attribute": "company size", "op": "eq", "value": "x"}, "match.attribute", ["not an attribute key"]),
    ({"attribute": "seats", "op": "gte", "value": "ten"}, "match.value", ["a number"]),
    ({"attribute": "seats", "op": "in", "value": [1, "two"]}, "match.value", ["mix"]),
    ({"attribute": "seats", "op": "like", "value": 1}, "match.op", ["not an attribute operator"]),
    # events
    ({"event": {"type": "order", "where": {"statuss": "completed"}}}, "match.event.where.statuss",
     ["cannot filter order events", "status"]),
    ({"event": {"type": "order", "where": {"status": "done"}}}, "match.event.where.status",
     ["not a valid status", "completed"]),
    ({"event": {"type": "checkout", "where": {"email": {"exists": True}}}}, "match.event.where.email.exists",
     ["not an operator"]),
    ({"event": {"type": "login", "within_days": 30, "between": ["2025-01-01", "2025-02-01"]}}, "match.event.between",
     ["either within_days or between"]),
    ({"event": {"type": "login", "count": {"atleast": 3}}}, "match.event.count.atleast", ["not a count operator"]),
    ({"event": {"type": "login", "count": {"gte": -1}}}, "match.event.count.gte", [">= 0"]),
    ({"event": {"where": {"feature": "x"}}}, "match.event.type", ["required"]),
    ({"event": {"type": "log in; drop"}}, "match.event.type", ["event type"]),
    ({"event": {"type": "order", "where": {"total_amount": "lots"}}}, "match.event.where.total_amount",
     ["whole number"]),
    ({"event": {"type": "checkout", "count": {"gte": 1}, "not_followed_by": {"type": "checkout"}}},
     "match.event.not_followed_by", ["cannot be combined with count"]),
    ({"stopped": {"event": "login", "active_days": 90}}, "match.stopped.inactive_days", ["required"]),
    ({"stopped": {"event": "login", "active_days": 90, "inactive_days": 30, "min_count": 0}},
     "match.stopped.min_count", [">= 1"]),
    ({"restarted": {"event": "order", "gap_days": "60", "within_days": 30}}, "match.restarted.gap_days",
     ["whole number of days"]),
    ({"segment": "Not A Name"}, "match.segment", ["not a segment name"]),
])
def test_each_error_names_its_path_and_reason(tree, path, words):
    got_path, reason = one_error(match(tree))
    assert got_path == path, reason
    for word in words:
        assert word in reason, reason


def test_top_level_errors_and_all_problems_reported_together():
    errors = errors_of({"name": "Bad Name", "titel": "x", "match": {"all": [
        {"status": "gone"}, {"field": "nope", "op": "eq", "value": 1}, {"reason": "price"}]}})
    paths = [p for p, _ in errors]
    assert paths == ["titel", "name", "match.all[0].status", "match.all[1].field"]
    assert "did you mean 'title'" in errors[0][1]
    assert one_error({"name": "x"}) == ("match", one_error({"name": "x"})[1])
    assert errors_of([1, 2])[0][0] == ""


def test_error_message_is_one_line_with_file_and_count(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nmatch:\n  all:\n    - status: gone\n    - reason: prise\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"segment spec {path}: match.all[0].status: 'gone' is not a valid status")
    assert message.endswith("(and 1 more problem)")
    assert info.value.as_dicts()[1]["path"] == "match.all[1].reason"


def test_file_level_errors(tmp_path):
    (tmp_path / "broken.yaml").write_text("name: x\nmatch: {all: [\n", encoding="utf-8")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec_file(tmp_path / "broken.yaml")
    (tmp_path / "broken.json").write_text('{"name": "x",}', encoding="utf-8")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec_file(tmp_path / "broken.json")
    with pytest.raises(SpecError, match="file not found"):
        load_spec_file(tmp_path / "missing.yaml")
    (tmp_path / "spec.txt").write_text("x", encoding="utf-8")
    with pytest.raises(SpecError, match=r"\.yaml, \.yml or \.json"):
        load_spec_file(tmp_path / "spec.txt")


def test_values_are_coerced_to_the_field_type():
    spec = parse_spec(yaml.safe_load("""
name: coerced
match:
  all:
    - {field: lost_value_minor, op: gte, value: 100000.0}
    - {field: p_alive, op: lt, value: 1}
    - {field: churned_at, op: between, value: [2024-10-01, "2025-03-31T23:00:00+09:00"]}
    - {field: plan_id, op: eq, value: 42}
    - {reason: [price, usability, price]}
"""))
    values = [n.value for n in spec.match.all]
    assert values[0] == 100000 and isinstance(values[0], int)
    assert values[1] == 1.0 and isinstance(values[1], float)
    assert values[2] == [dt.date(2024, 10, 1), dt.datetime(2025, 3, 31, 14, 0)]  # naive UTC
    assert values[3] == "42"
    assert values[4] == ["price", "usability"]
    assert spec.title == "coerced"


def test_shorthands_and_long_forms_are_the_same_spec():
    short = parse_spec({"name": "a", "match": [{"status": "churned"}, {"reason": ["price", "usability"]},
                                              {"not": {"persona": "cart_abandoner"}}]})
    long = parse_spec({"name": "a", "match": {"all": [
        {"field": "status", "op": "eq", "value": "churned"},
        {"field": "reason", "op": "in", "value": ["price", "usability"]},
        {"not": {"field": "persona", "op": "eq", "value": "cart_abandoner"}}]}})
    assert short == long
    assert isinstance(short.match, AllOf) and isinstance(short.match.all[2], NotOf)
    assert isinstance(short.match.all[0], FieldCondition)


def test_canonical_form_round_trips_through_json():
    for d in builtin_definitions():
        data = d.spec.data()
        again = parse_spec(json.loads(json.dumps(data)))
        assert again == d.spec, d.name
        assert again.data() == data


def test_model_validate_uses_the_same_checks():
    spec = SegmentSpec.model_validate({"name": "x", "match": {"event": {"type": "login", "count": 3}}})
    assert isinstance(spec.match, EventCondition) and spec.match.count == {"gte": 3}
    with pytest.raises(SpecError, match="match.event.type"):
        SegmentSpec.model_validate({"name": "x", "match": {"event": {"type": ""}}})


def test_references_are_listed():
    spec = parse_spec({"name": "x", "match": {"any": [{"segment": "a"}, {"not": {"segment": "b"}},
                                                      {"field": "lost_value_minor", "op": "top_percent",
                                                       "value": 10, "among": {"segment": "c"}}]}})
    assert spec.references() == {"a", "b", "c"}


def test_enumerated_values_match_the_profile_contract():
    from winback.insights.profile import PROFILE_COLUMNS
    from winback.segments.spec import ENUM_VALUES, FIELD_KINDS

    for field, values in ENUM_VALUES.items():
        description = PROFILE_COLUMNS[field][1]
        assert FIELD_KINDS[field] == "string"
        for value in values:
            assert value in description, (field, value)
    assert FIELD_KINDS["requested_features"] == "list" and FIELD_KINDS["churned_at"] == "timestamp"
    assert FIELD_KINDS["lost_value_minor"] == "integer" and FIELD_KINDS["p_alive"] == "float"
