"""Segment specs: a declarative, typed AND/OR/NOT tree over the customer profile and the facts.

A spec is YAML or JSON::

    name: high_value_churned_after_price_increase      # slug: a-z, 0-9, _ and -
    title: High-value customers who churned after the Q4 2024 price increase
    description: optional free text
    match:                                              # one node (a list means all of them)
      all:
        - status: churned                               # shorthand: field equals / is one of
        - {field: churned_at, op: between, value: [2024-10-01, 2025-03-31]}
        - value_tier: [high, top]

Nodes (the grammar, each one a mapping):

``all: [node, ...]`` / ``any: [node, ...]`` / ``not: node``
    groups. ``not`` is two-valued: it matches every customer the inner node does not match,
    including those for whom the inner node is unknown (a null field).
``{field: F, op: OP, value: V}``
    a customer-profile column (:data:`winback.insights.profile.PROFILE_SCHEMA`). Operators by
    column type: text ``eq ne in not_in is_null not_null``; whole and decimal numbers
    ``eq ne lt lte gt gte in not_in between is_null not_null top_percent``; timestamps
    ``lt lte gt gte between within_days older_than_days is_null not_null``; booleans
    ``eq ne is_null not_null``; lists ``contains contains_any contains_all is_null not_null``.
    ``ne`` and ``not_in`` also match customers whose field is null. A date without a time as the
    upper end of ``between``/``lte`` (or as ``gt``) means the whole day. ``within_days: N`` = in
    the N days up to the evaluation instant (``as_of``); ``older_than_days: N`` = before them.
``{field: F, op: top_percent, value: P, among: node}``
    the top P% of customers by F (descending), ranked among the customers for whom F is not null
    and that match ``among`` (all of them when ``among`` is absent). The cut keeps exactly
    ``ceil(P% x population)`` customers; ties are broken by (source, customer_id), so the result
    is deterministic. ``among`` does not see the rest of the enclosing group on purpose: "the top
    20% of churned customers by lost value" should not change because another condition is added.
``{F: V}``
    shorthand for ``{field: F, op: eq, value: V}``, or ``op: in`` when V is a list; values of the
    enumerated columns (status, reason, persona, value_tier, health_band, ...) are checked.
``{attribute: KEY, op: OP, value: V}``
    a key of the profile's ``attributes`` JSON (``a.b`` for nested keys). Ops ``eq ne in not_in
    lt lte gt gte between is_null not_null``; numbers compare numerically, text as text.
``{event: {type: T, where: {...}, within_days: N | between: [A, B], count: {gte: 3},
  not_followed_by: {type: T2, where: {...}}}}``
    the customer has events of type T (see :data:`winback.segments.compiler.EVENT_SOURCES`: any
    product event type, or order, checkout, ticket, survey_response, payment, invoice,
    subscription_started, subscription_canceled), filtered by ``where`` (column: value | [values]
    | null | {op: value}), inside the window (default: ever), counted with ``count`` (default: at
    least one; a count that admits zero also matches customers without any such event). With
    ``not_followed_by``: the customer's latest matching event (in the window) has no event of
    the second kind after it. Only events up to ``as_of`` are seen.
``{stopped: {event: T, where: {...}, active_days: A, inactive_days: I, min_count: 1}}``
    did T at least ``min_count`` times in the A days before the last I days, and not in the last I.
``{restarted: {event: T, where: {...}, gap_days: G, within_days: W}}``
    did T in the last W days, not in the G days before that, and at least once before the gap.
``{segment: NAME}``
    membership of another segment (its condition is inlined; cycles are an error).

Values are checked and converted to the column's type when the spec is loaded; every problem is
reported with its place in the spec (``match.all[2].value``) and nothing is accepted until all
of them are fixed.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Union

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from winback.insights.profile import PROFILE_SCHEMA
from winback.kit.errors import WinbackError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ATTRIBUTE_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}(\.[A-Za-z_][A-Za-z0-9_-]{0,63}){0,7}$")
EVENT_TYPE_PATTERN = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")
SPEC_SUFFIXES = (".yaml", ".yml", ".json")

# --------------------------------------------------------------------------------- field types


def _kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return "list"
    return "string"


#: profile column -> string | integer | float | boolean | timestamp | list
FIELD_KINDS: dict[str, str] = {f.name: _kind(f.type) for f in PROFILE_SCHEMA}

#: the allowed values of the profile's enumerated columns (each is named in the column's description)
ENUM_VALUES: dict[str, tuple[str, ...]] = {
    "status": ("active", "churned", "lost", "trial_only", "prospect"),
    "reason": ("price", "missing_feature", "usability", "support", "competitor", "other", "involuntary", "unknown"),
    "persona": ("bouncer", "passive_browser", "cart_abandoner", "one_time_low_aov", "one_time_high_aov",
                "repeat_buyer"),
    "value_tier": ("low", "mid", "high", "top"),
    "health_band": ("healthy", "watch", "at_risk"),
    "suggested_channel": ("email", "phone", "retargeting", "none"),
    "marketing_basis": ("consent", "soft_opt_in", "none"),
}

COMPARE = ("eq", "ne", "lt", "lte", "gt", "gte")
FIELD_OPS: dict[str, tuple[str, ...]] = {
    "string": ("eq", "ne", "in", "not_in", "is_null", "not_null"),
    "integer": COMPARE + ("in", "not_in", "between", "is_null", "not_null", "top_percent"),
    "float": COMPARE + ("between", "is_null", "not_null", "top_percent"),
    "timestamp": ("lt", "lte", "gt", "gte", "between", "within_days", "older_than_days", "is_null", "not_null"),
    "boolean": ("eq", "ne", "is_null", "not_null"),
    "list": ("contains", "contains_any", "contains_all", "is_null", "not_null"),
}
ATTRIBUTE_OPS = COMPARE + ("in", "not_in", "between", "is_null", "not_null")
WHERE_OPS: dict[str, tuple[str, ...]] = {
    "string": ("eq", "ne", "in", "not_in", "is_null", "not_null"),
    "integer": COMPARE + ("in", "not_in", "between", "is_null", "not_null"),
    "float": COMPARE + ("between", "is_null", "not_null"),
    "timestamp": ("lt", "lte", "gt", "gte", "between", "is_null", "not_null"),
    "boolean": ("eq", "ne", "is_null", "not_null"),
}
COUNT_OPS = COMPARE
LIST_OPS = ("in", "not_in", "contains_any", "contains_all")
NO_VALUE_OPS = ("is_null", "not_null")
ALL_OPS = tuple(dict.fromkeys(op for ops in FIELD_OPS.values() for op in ops))

GROUP_KEYS = ("all", "any", "not")
NODE_KEYS = GROUP_KEYS + ("field", "attribute", "event", "stopped", "restarted", "segment")
SPEC_KEYS = ("name", "title", "description", "match")


# --------------------------------------------------------------------------------- errors


class SpecIssue(NamedTuple):
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class SpecError(WinbackError):
    """An invalid segment spec: ``issues`` lists every problem with its place in the spec."""

    exit_code = 2

    def __init__(self, issues: list[SpecIssue], file: str | None = None):
        self.issues = list(issues)
        self.file = file
        first = str(self.issues[0]) if self.issues else "invalid segment spec"
        more = len(self.issues) - 1
        where = f"segment spec {file}" if file else "segment spec"
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
        super().__init__(f"{where}: {first}{tail}")

    def as_dicts(self) -> list[dict]:
        return [{"file": self.file, "path": i.path, "reason": i.reason} for i in self.issues]


# --------------------------------------------------------------------------------- nodes


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    def data(self) -> Any:  # pragma: no cover - every node overrides it
        raise NotImplementedError

    def children(self) -> Iterable["Node"]:
        return ()


class AllOf(_Node):
    all: list["Node"]

    def data(self) -> Any:
        return {"all": [n.data() for n in self.all]}

    def children(self):
        return self.all


class AnyOf(_Node):
    any: list["Node"]

    def data(self) -> Any:
        return {"any": [n.data() for n in self.any]}

    def children(self):
        return self.any


class NotOf(_Node):
    not_: "Node" = Field(alias="not")

    def data(self) -> Any:
        return {"not": self.not_.data()}

    def children(self):
        return (self.not_,)


class FieldCondition(_Node):
    field: str
    op: str
    value: Any = None
    among: "Node | None" = None

    @property
    def kind(self) -> str:
        return FIELD_KINDS[self.field]

    def data(self) -> Any:
        out: dict[str, Any] = {"field": self.field, "op": self.op}
        if self.op not in NO_VALUE_OPS:
            out["value"] = plain_value(self.value)
        if self.among is not None:
            out["among"] = self.among.data()
        return out

    def children(self):
        return (self.among,) if self.among is not None else ()


class AttributeCondition(_Node):
    attribute: str
    op: str
    value: Any = None

    def data(self) -> Any:
        out: dict[str, Any] = {"attribute": self.attribute, "op": self.op}
        if self.op not in NO_VALUE_OPS:
            out["value"] = plain_value(self.value)
        return out


class Where(_Node):
    """One filter on an event table column."""

    column: str
    op: str
    value: Any = None
    kind: str = "string"

    def data(self) -> Any:
        return {self.op: True if self.op in NO_VALUE_OPS else plain_value(self.value)}


class EventMatch(_Node):
    """Which events: a type and column filters (the follow-up of ``not_followed_by``)."""

    type: str
    where: list[Where] = []

    def data(self) -> Any:
        out: dict[str, Any] = {"type": self.type}
        if self.where:
            out["where"] = _where_data(self.where)
        return out


class EventCondition(_Node):
    type: str
    where: list[Where] = []
    within_days: int | None = None
    between: tuple[Any, Any] | None = None
    count: dict[str, int] | None = None
    not_followed_by: EventMatch | None = None

    def data(self) -> Any:
        out: dict[str, Any] = {"type": self.type}
        if self.where:
            out["where"] = _where_data(self.where)
        if self.within_days is not None:
            out["within_days"] = self.within_days
        if self.between is not None:
            out["between"] = [plain_value(v) for v in self.between]
        if self.count is not None:
            out["count"] = dict(self.count)
        if self.not_followed_by is not None:
            out["not_followed_by"] = self.not_followed_by.data()
        return {"event": out}


class StoppedCondition(_Node):
    event: str
    where: list[Where] = []
    active_days: int
    inactive_days: int
    min_count: int = 1

    def data(self) -> Any:
        out: dict[str, Any] = {"event": self.event}
        if self.where:
            out["where"] = _where_data(self.where)
        out.update(active_days=self.active_days, inactive_days=self.inactive_days, min_count=self.min_count)
        return {"stopped": out}


class RestartedCondition(_Node):
    event: str
    where: list[Where] = []
    gap_days: int
    within_days: int

    def data(self) -> Any:
        out: dict[str, Any] = {"event": self.event}
        if self.where:
            out["where"] = _where_data(self.where)
        out.update(gap_days=self.gap_days, within_days=self.within_days)
        return {"restarted": out}


class SegmentRef(_Node):
    segment: str

    def data(self) -> Any:
        return {"segment": self.segment}


Node = Union[AllOf, AnyOf, NotOf, FieldCondition, AttributeCondition, EventCondition, StoppedCondition,
             RestartedCondition, SegmentRef]
for _model in (AllOf, AnyOf, NotOf, FieldCondition):
    _model.model_rebuild()


class SegmentSpec(BaseModel):
    """A validated segment definition. ``SegmentSpec.model_validate(raw)`` and :func:`parse_spec`
    accept the YAML/JSON grammar and raise :class:`SpecError` (with every problem) when it is wrong."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    title: str
    description: str = ""
    match: Node

    @model_validator(mode="before")
    @classmethod
    def _parse_raw(cls, data: Any) -> Any:
        if isinstance(data, dict) and not isinstance(data.get("match"), _Node):
            return _parse_document(data, None).__dict__
        return data

    def data(self) -> dict:
        """The spec in its canonical long form (re-parses to an equal spec)."""
        out: dict[str, Any] = {"name": self.name, "title": self.title}
        if self.description:
            out["description"] = self.description
        out["match"] = self.match.data()
        return out

    def references(self) -> set[str]:
        """Names of the segments this spec refers to directly."""
        return {n.segment for n in walk(self.match) if isinstance(n, SegmentRef)}


def walk(node: Node) -> Iterable[Node]:
    yield node
    for child in node.children():
        yield from walk(child)


def plain_value(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    return value


def _where_data(where: list[Where]) -> dict:
    out: dict[str, dict] = {}
    for w in where:
        out.setdefault(w.column, {}).update(w.data())
    return out


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=plain_value)


# --------------------------------------------------------------------------------- loading


def load_spec_file(path: Path | str) -> SegmentSpec:
    """Read and validate a ``.yaml``/``.yml``/``.json`` spec file; :class:`SpecError` names file and place."""
    path = Path(path)
    return parse_spec(read_spec_document(path), file=str(path))


def read_spec_document(path: Path) -> Any:
    if path.suffix.lower() not in SPEC_SUFFIXES:
        raise SpecError([SpecIssue("", f"expected a .yaml, .yml or .json file, got {path.name!r}")], str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecIssue("", "file not found")], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue("", f"cannot read the file: {exc}")], str(path)) from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise SpecError([SpecIssue("", f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")],
                        str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise SpecError([SpecIssue("", f"not valid YAML: {problem}{where}")], str(path)) from None


def parse_spec(data: Any, file: str | None = None) -> SegmentSpec:
    """Validate a spec document (the parsed YAML/JSON) into a :class:`SegmentSpec`."""
    parsed = _parse_document(data, file)
    return SegmentSpec.model_validate(parsed.__dict__)


class _Parsed:
    def __init__(self, name: str, title: str, description: str, match: Node):
        self.name, self.title, self.description, self.match = name, title, description, match


def _parse_document(data: Any, file: str | None) -> _Parsed:
    p = _Parser()
    if not isinstance(data, dict):
        raise SpecError([SpecIssue("", f"a segment spec must be a mapping with {', '.join(SPEC_KEYS)}; "
                                        f"got {_type_name(data)}")], file)
    for key in data:
        if key not in SPEC_KEYS:
            p.issue(str(key), f"unknown key{_did_you_mean(str(key), SPEC_KEYS)}; expected {', '.join(SPEC_KEYS)}")
    name = data.get("name")
    if name is None:
        p.issue("name", "required (a slug such as churned_high_value)")
    elif not isinstance(name, str) or not NAME_PATTERN.match(name):
        p.issue("name", f"{name!r} is not a valid name: use 1-64 lower-case letters, digits, _ or -, "
                        f"starting with a letter or digit")
    title = data.get("title")
    if title is not None and not isinstance(title, str):
        p.issue("title", f"expected text, got {_type_name(title)}")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        p.issue("description", f"expected text, got {_type_name(description)}")
    match = None
    if "match" not in data or data["match"] is None:
        p.issue("match", "required: the condition tree (all/any/not, field, event ... conditions)")
    else:
        match = p.node(data["match"], "match")
    if p.issues:
        raise SpecError(p.issues, file)
    return _Parsed(name, (title or name).strip(), (description or "").strip(), match)


class _Parser:
    def __init__(self):
        self.issues: list[SpecIssue] = []

    def issue(self, path: str, reason: str) -> None:
        self.issues.append(SpecIssue(path, reason))

    # ------------------------------------------------------------------------- nodes
    def node(self, raw: Any, path: str) -> Node | None:
        if isinstance(raw, list):  # a bare list means "all of these"
            return self._group("all", raw, path)
        if not isinstance(raw, dict) or not raw:
            self.issue(path, f"expected a condition (a mapping such as {{status: churned}}), got {_type_name(raw)}")
            return None
        keys = [str(k) for k in raw]
        for group in GROUP_KEYS:
            if group in raw:
                if len(raw) > 1:
                    others = ", ".join(k for k in keys if k != group)
                    self.issue(path, f"'{group}' must stand alone in its mapping; move {others} into a "
                                     f"condition of its own")
                    return None
                if group == "not":
                    inner = self.node(raw["not"], f"{path}.not")
                    return NotOf(**{"not": inner}) if inner is not None else None
                return self._group(group, raw[group], f"{path}.{group}")
        if "field" in raw:
            return self._field(raw, path)
        if "attribute" in raw:
            return self._attribute(raw, path)
        if "event" in raw:
            return self._event(raw, path)
        if "stopped" in raw:
            return self._stopped(raw, path)
        if "restarted" in raw:
            return self._restarted(raw, path)
        if "segment" in raw:
            return self._segment(raw, path)
        if len(raw) == 1:
            key = keys[0]
            if key in FIELD_KINDS:
                return self._shorthand(key, raw[key], f"{path}.{key}")
            self.issue(f"{path}.{key}", f"unknown condition{_did_you_mean(key, NODE_KEYS + tuple(FIELD_KINDS))}; "
                                        f"expected one of {', '.join(NODE_KEYS)} or a profile field")
            return None
        self.issue(path, f"cannot tell which condition this is (keys {', '.join(keys)}); expected one of "
                         f"{', '.join(NODE_KEYS)}, or a single profile field such as {{status: churned}}")
        return None

    def _group(self, key: str, raw: Any, path: str) -> Node | None:
        if not isinstance(raw, list) or not raw:
            self.issue(path, f"'{key}' needs a non-empty list of conditions, got {_type_name(raw)}")
            return None
        children = [self.node(item, f"{path}[{i}]") for i, item in enumerate(raw)]
        if any(c is None for c in children):
            return None
        return AllOf(all=children) if key == "all" else AnyOf(any=children)

    def _keys(self, raw: dict, allowed: tuple[str, ...], path: str) -> bool:
        ok = True
        for key in raw:
            if key not in allowed:
                self.issue(f"{path}.{key}", f"unknown key{_did_you_mean(str(key), allowed)}; "
                                            f"expected {', '.join(allowed)}")
                ok = False
        return ok

    # ------------------------------------------------------------------------- profile fields
    def _field(self, raw: dict, path: str) -> Node | None:
        before = len(self.issues)
        self._keys(raw, ("field", "op", "value", "among"), path)
        field = raw.get("field")
        if not isinstance(field, str) or field not in FIELD_KINDS:
            self.issue(f"{path}.field", f"unknown profile field {field!r}"
                                        f"{_did_you_mean(str(field), FIELD_KINDS)}")
            return None
        kind = FIELD_KINDS[field]
        op = raw.get("op")
        if op is None:
            self.issue(f"{path}.op", f"required; for a {kind} field use one of {', '.join(FIELD_OPS[kind])}")
            return None
        if op not in FIELD_OPS[kind]:
            hint = _did_you_mean(str(op), FIELD_OPS[kind]) if op not in ALL_OPS else ""
            self.issue(f"{path}.op", f"{op!r} is not an operator for {field} ({kind}){hint}; "
                                     f"use one of {', '.join(FIELD_OPS[kind])}")
            return None
        value = self._op_value(op, raw, f"{path}.value", kind, enum=ENUM_VALUES.get(field), what=field)
        among = None
        if "among" in raw:
            if op != "top_percent":
                self.issue(f"{path}.among", "'among' only goes with op: top_percent")
            else:
                among = self.node(raw["among"], f"{path}.among")
        if len(self.issues) > before:
            return None
        return FieldCondition(field=field, op=op, value=value, among=among)

    def _shorthand(self, field: str, raw: Any, path: str) -> Node | None:
        kind = FIELD_KINDS[field]
        if kind not in ("string", "integer", "float", "boolean"):
            example = "between" if kind == "timestamp" else "contains"
            self.issue(path, f"{field} is a {kind} field: write {{field: {field}, op: {example}, value: ...}}")
            return None
        if isinstance(raw, list):
            if kind in ("float", "boolean"):
                self.issue(path, f"{field} is a {kind} field: a list of values is not allowed")
                return None
            op = "in"
        else:
            op = "eq"
        before = len(self.issues)
        value = self._value_for_op(op, raw, path, kind, enum=ENUM_VALUES.get(field), what=field)
        if len(self.issues) > before:
            return None
        return FieldCondition(field=field, op=op, value=value)

    # ------------------------------------------------------------------------- values
    def _op_value(self, op: str, raw: dict, path: str, kind: str, enum=None, what: str = "") -> Any:
        if op in NO_VALUE_OPS:
            if raw.get("value") not in (None, True):
                self.issue(path, f"{op} takes no value")
            return None
        if "value" not in raw:
            self.issue(path, f"required for op {op}")
            return None
        return self._value_for_op(op, raw["value"], path, kind, enum, what)

    def _value_for_op(self, op: str, raw: Any, path: str, kind: str, enum=None, what: str = "") -> Any:
        if op in ("top_percent",):
            number = self._coerce("float", raw, path)
            if number is not _BAD and not (0 < number <= 100):
                self.issue(path, f"top_percent must be more than 0 and at most 100, got {raw!r}")
            return None if number is _BAD else (int(number) if float(number).is_integer() else number)
        if op in ("within_days", "older_than_days"):
            return self._days(raw, path)
        if op in LIST_OPS:
            if not isinstance(raw, list) or not raw:
                self.issue(path, f"{op} needs a non-empty list of values, got {_type_name(raw)}")
                return None
            item_kind = "string" if kind == "list" else kind
            values = [self._coerce(item_kind, v, f"{path}[{i}]", enum, what) for i, v in enumerate(raw)]
            return None if _BAD in values else list(dict.fromkeys(values))
        if op == "between":
            if not isinstance(raw, list) or len(raw) != 2:
                self.issue(path, f"between needs [low, high], got {_type_name(raw)}")
                return None
            low = self._coerce(kind, raw[0], f"{path}[0]", enum, what)
            high = self._coerce(kind, raw[1], f"{path}[1]", enum, what)
            if _BAD in (low, high):
                return None
            if _order_key(low, end=False) > _order_key(high, end=True):
                self.issue(path, f"between needs low <= high, got {plain_value(low)!r} > {plain_value(high)!r}")
                return None
            return [low, high]
        if isinstance(raw, list):
            self.issue(path, f"{op} needs a single value, got a list (use in / not_in for several)")
            return None
        item_kind = "string" if kind == "list" else kind
        value = self._coerce(item_kind, raw, path, enum, what)
        return None if value is _BAD else value

    def _days(self, raw: Any, path: str) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0 or raw > 36500:
            self.issue(path, f"expected a whole number of days from 1 to 36500, got {raw!r}")
            return None
        return raw

    def _coerce(self, kind: str, raw: Any, path: str, enum=None, what: str = "") -> Any:
        value = _coerce(kind, raw)
        if value is _BAD:
            self.issue(path, _expected(kind, raw))
            return _BAD
        if enum is not None and value not in enum:
            self.issue(path, f"{raw!r} is not a valid {what}{_did_you_mean(str(raw), enum)}; "
                             f"expected one of {', '.join(enum)}")
            return _BAD
        return value

    # ------------------------------------------------------------------------- attributes
    def _attribute(self, raw: dict, path: str) -> Node | None:
        before = len(self.issues)
        self._keys(raw, ("attribute", "op", "value"), path)
        key = raw.get("attribute")
        if not isinstance(key, str) or not ATTRIBUTE_PATTERN.match(key):
            self.issue(f"{path}.attribute", f"{key!r} is not an attribute key: letters, digits, _ and -, "
                                            f"with . between the keys of nested objects")
            return None
        op = raw.get("op", "eq")
        if op not in ATTRIBUTE_OPS:
            self.issue(f"{path}.op", f"{op!r} is not an attribute operator{_did_you_mean(str(op), ATTRIBUTE_OPS)}; "
                                     f"use one of {', '.join(ATTRIBUTE_OPS)}")
            return None
        value = None
        if op in NO_VALUE_OPS:
            if raw.get("value") not in (None, True):
                self.issue(f"{path}.value", f"{op} takes no value")
        elif "value" not in raw:
            self.issue(f"{path}.value", f"required for op {op}")
        else:
            value = self._attribute_value(op, raw["value"], f"{path}.value")
        if len(self.issues) > before:
            return None
        return AttributeCondition(attribute=key, op=op, value=value)

    def _attribute_value(self, op: str, raw: Any, path: str) -> Any:
        def scalar(v: Any, p: str, numeric: bool = False) -> Any:
            if isinstance(v, bool) and not numeric:
                return v
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                return v
            if isinstance(v, str) and not numeric:
                return v
            self.issue(p, f"expected {'a number' if numeric else 'text, a number or true/false'}, "
                          f"got {_type_name(v)}")
            return _BAD

        if op in ("in", "not_in"):
            if not isinstance(raw, list) or not raw:
                self.issue(path, f"{op} needs a non-empty list of values, got {_type_name(raw)}")
                return None
            values = [scalar(v, f"{path}[{i}]") for i, v in enumerate(raw)]
            if _BAD in values:
                return None
            kinds = {_attribute_kind(v) for v in values}
            if len(kinds) > 1:
                self.issue(path, "mix of text, numbers and true/false in one list; use one kind")
                return None
            return values
        if op == "between":
            if not isinstance(raw, list) or len(raw) != 2:
                self.issue(path, f"between needs [low, high], got {_type_name(raw)}")
                return None
            low, high = scalar(raw[0], f"{path}[0]", True), scalar(raw[1], f"{path}[1]", True)
            if _BAD in (low, high):
                return None
            if low > high:
                self.issue(path, f"between needs low <= high, got {low!r} > {high!r}")
                return None
            return [low, high]
        if op in ("lt", "lte", "gt", "gte"):
            value = scalar(raw, path, numeric=True)
            return None if value is _BAD else value
        value = scalar(raw, path)
        return None if value is _BAD else value

    # ------------------------------------------------------------------------- events
    def _event_type(self, raw: Any, path: str) -> str | None:
        if not isinstance(raw, str) or not EVENT_TYPE_PATTERN.match(raw):
            self.issue(path, f"expected an event type (a product event such as login, or one of "
                             f"{', '.join(_event_sources())}), got {raw!r}")
            return None
        return raw

    def _where(self, event_type: str, raw: Any, path: str) -> list[Where] | None:
        if raw is None:
            return []
        if not isinstance(raw, dict):
            self.issue(path, f"expected a mapping of column: value, got {_type_name(raw)}")
            return None
        source = _event_source(event_type)
        history = _history_table(source.table)
        out: list[Where] = []
        ok = True
        for column, spec in raw.items():
            cpath = f"{path}.{column}"
            if column not in source.columns:
                self.issue(cpath, f"cannot filter {event_type} events by {column!r}"
                                  f"{_did_you_mean(str(column), source.columns)}; "
                                  f"use {', '.join(source.columns)}")
                ok = False
                continue
            hcol = history.column(column)
            kind = _history_kind(hcol.kind)
            enum = hcol.choices or None
            if isinstance(spec, dict):
                if not spec:
                    self.issue(cpath, "empty mapping; write {op: value}, e.g. {not_null: true}")
                    ok = False
                for op, value in spec.items():
                    opath = f"{cpath}.{op}"
                    if op not in WHERE_OPS[kind]:
                        self.issue(opath, f"{op!r} is not an operator for {column} ({kind})"
                                          f"{_did_you_mean(str(op), WHERE_OPS[kind])}; "
                                          f"use one of {', '.join(WHERE_OPS[kind])}")
                        ok = False
                        continue
                    before = len(self.issues)
                    if op in NO_VALUE_OPS:
                        if value is not True:
                            self.issue(opath, f"write {op}: true")
                        v = None
                    else:
                        v = self._value_for_op(op, value, opath, kind, enum, column)
                    if len(self.issues) > before:
                        ok = False
                        continue
                    out.append(Where(column=column, op=op, value=_lower_email(hcol.kind, v), kind=kind))
            else:
                if spec is None:
                    out.append(Where(column=column, op="is_null", kind=kind))
                    continue
                op = "in" if isinstance(spec, list) else "eq"
                if op not in WHERE_OPS[kind]:
                    self.issue(cpath, f"{column} is a {kind} column: a list of values is not allowed")
                    ok = False
                    continue
                before = len(self.issues)
                v = self._value_for_op(op, spec, cpath, kind, enum, column)
                if len(self.issues) > before:
                    ok = False
                    continue
                out.append(Where(column=column, op=op, value=_lower_email(hcol.kind, v), kind=kind))
        return out if ok else None

    def _event(self, raw: dict, path: str) -> Node | None:
        if len(raw) > 1:
            self.issue(path, "'event' must stand alone; put type, where, within_days, between and count inside it")
            return None
        body = raw["event"]
        path = f"{path}.event"
        if isinstance(body, str):
            body = {"type": body}
        if not isinstance(body, dict):
            self.issue(path, f"expected a mapping with type, where, within_days/between, count; "
                             f"got {_type_name(body)}")
            return None
        before = len(self.issues)
        self._keys(body, ("type", "where", "within_days", "between", "count", "not_followed_by"), path)
        if "type" not in body:
            self.issue(f"{path}.type", "required (e.g. login, feature_requested, order, checkout)")
            return None
        event_type = self._event_type(body["type"], f"{path}.type")
        if event_type is None:
            return None
        where = self._where(event_type, body.get("where"), f"{path}.where")
        within = self._days(body["within_days"], f"{path}.within_days") if "within_days" in body else None
        between = None
        if "between" in body:
            if "within_days" in body:
                self.issue(f"{path}.between", "use either within_days or between, not both")
            else:
                between = self._value_for_op("between", body["between"], f"{path}.between", "timestamp")
        count = self._count(body["count"], f"{path}.count") if "count" in body else None
        follow = None
        if "not_followed_by" in body:
            if count is not None:
                self.issue(f"{path}.not_followed_by", "cannot be combined with count")
            follow = self._event_match(body["not_followed_by"], f"{path}.not_followed_by")
        if len(self.issues) > before:
            return None
        return EventCondition(type=event_type, where=where or [], within_days=within,
                              between=tuple(between) if between else None, count=count, not_followed_by=follow)

    def _event_match(self, raw: Any, path: str) -> EventMatch | None:
        if isinstance(raw, str):
            raw = {"type": raw}
        if not isinstance(raw, dict):
            self.issue(path, f"expected a mapping with type and where, got {_type_name(raw)}")
            return None
        self._keys(raw, ("type", "where"), path)
        if "type" not in raw:
            self.issue(f"{path}.type", "required")
            return None
        event_type = self._event_type(raw["type"], f"{path}.type")
        if event_type is None:
            return None
        where = self._where(event_type, raw.get("where"), f"{path}.where")
        return None if where is None else EventMatch(type=event_type, where=where)

    def _count(self, raw: Any, path: str) -> dict[str, int] | None:
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = {"gte": raw}
        if not isinstance(raw, dict) or not raw:
            self.issue(path, f"expected a mapping such as {{gte: 3}}, got {_type_name(raw)}")
            return None
        out: dict[str, int] = {}
        for op, value in raw.items():
            if op not in COUNT_OPS:
                self.issue(f"{path}.{op}", f"{op!r} is not a count operator{_did_you_mean(str(op), COUNT_OPS)}; "
                                           f"use one of {', '.join(COUNT_OPS)}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                self.issue(f"{path}.{op}", f"expected a whole number >= 0, got {value!r}")
            else:
                out[op] = value
        return out

    def _window_body(self, key: str, raw: dict, path: str, allowed: tuple[str, ...]) -> dict | None:
        if len(raw) > 1:
            self.issue(path, f"'{key}' must stand alone; put its settings inside it")
            return None
        body = raw[key]
        path = f"{path}.{key}"
        if not isinstance(body, dict):
            self.issue(path, f"expected a mapping with {', '.join(allowed)}, got {_type_name(body)}")
            return None
        self._keys(body, allowed, path)
        for required in allowed:
            if required in ("where", "min_count"):
                continue
            if required not in body:
                self.issue(f"{path}.{required}", "required")
        return body

    def _stopped(self, raw: dict, path: str) -> Node | None:
        before = len(self.issues)
        body = self._window_body("stopped", raw, path, ("event", "where", "active_days", "inactive_days",
                                                        "min_count"))
        if body is None or len(self.issues) > before:
            return None
        path = f"{path}.stopped"
        event_type = self._event_type(body["event"], f"{path}.event")
        where = self._where(event_type, body.get("where"), f"{path}.where") if event_type else None
        active = self._days(body["active_days"], f"{path}.active_days")
        inactive = self._days(body["inactive_days"], f"{path}.inactive_days")
        min_count = body.get("min_count", 1)
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            self.issue(f"{path}.min_count", f"expected a whole number >= 1, got {min_count!r}")
        if len(self.issues) > before:
            return None
        return StoppedCondition(event=event_type, where=where, active_days=active, inactive_days=inactive,
                                min_count=min_count)

    def _restarted(self, raw: dict, path: str) -> Node | None:
        before = len(self.issues)
        body = self._window_body("restarted", raw, path, ("event", "where", "gap_days", "within_days"))
        if body is None or len(self.issues) > before:
            return None
        path = f"{path}.restarted"
        event_type = self._event_type(body["event"], f"{path}.event")
        where = self._where(event_type, body.get("where"), f"{path}.where") if event_type else None
        gap = self._days(body["gap_days"], f"{path}.gap_days")
        within = self._days(body["within_days"], f"{path}.within_days")
        if len(self.issues) > before:
            return None
        return RestartedCondition(event=event_type, where=where, gap_days=gap, within_days=within)

    def _segment(self, raw: dict, path: str) -> Node | None:
        if len(raw) > 1:
            self.issue(path, "'segment' must stand alone in its mapping")
            return None
        name = raw["segment"]
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            self.issue(f"{path}.segment", f"{name!r} is not a segment name")
            return None
        return SegmentRef(segment=name)


# --------------------------------------------------------------------------------- helpers


class _Bad:
    def __repr__(self) -> str:  # pragma: no cover
        return "<bad value>"


_BAD: Any = _Bad()


def _coerce(kind: str, raw: Any) -> Any:
    """Convert a YAML/JSON scalar to ``kind``; :data:`_BAD` when it cannot be."""
    if raw is None:
        return _BAD
    if kind == "string":
        if isinstance(raw, str):
            return raw
        if isinstance(raw, int) and not isinstance(raw, bool):
            return str(raw)
        return _BAD
    if kind == "integer":
        if isinstance(raw, bool):
            return _BAD
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
            return int(raw)
        return _BAD
    if kind == "float":
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            return _BAD
        return float(raw) if math.isfinite(raw) else _BAD
    if kind == "boolean":
        return raw if isinstance(raw, bool) else _BAD
    if kind == "timestamp":
        return _timestamp(raw)
    return _BAD


def _timestamp(raw: Any) -> Any:
    if isinstance(raw, dt.datetime):
        return _naive_utc(raw)
    if isinstance(raw, dt.date):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        try:
            if len(text) == 10:
                return dt.date.fromisoformat(text)
            return _naive_utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            return _BAD
    return _BAD


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def _order_key(value: Any, end: bool) -> Any:
    """Compare dates and date-times: a bare date as an upper bound means the end of that day."""
    if type(value) is dt.date:
        start = dt.datetime.combine(value, dt.time())
        return start + dt.timedelta(days=1) - dt.timedelta(microseconds=1) if end else start
    return value


def _expected(kind: str, raw: Any) -> str:
    shown = f"{_type_name(raw)} {raw!r}" if raw is not None else "nothing (null)"
    if kind == "timestamp":
        return f"{raw!r} is not a date: expected YYYY-MM-DD or an ISO 8601 date-time"
    if kind == "integer":
        extra = " (write it without quotes)" if isinstance(raw, str) and _looks_numeric(raw) else ""
        return f"expected a whole number, got {shown}{extra}"
    if kind == "float":
        extra = " (write it without quotes)" if isinstance(raw, str) and _looks_numeric(raw) else ""
        return f"expected a number, got {shown}{extra}"
    if kind == "boolean":
        return f"expected true or false, got {shown}"
    extra = " (quote it: YAML reads yes/no/on/off as true/false)" if isinstance(raw, bool) else ""
    return f"expected text, got {shown}{extra}"


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (dt.date, dt.datetime)):
        return "a date"
    return type(value).__name__


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _attribute_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "text"


def _history_kind(kind: str) -> str:
    if kind in ("integer", "money"):
        return "integer"
    if kind == "timestamp":
        return "timestamp"
    if kind == "boolean":
        return "boolean"
    return "string"


def _lower_email(kind: str, value: Any) -> Any:
    """Ingest lower-cases e-mail addresses; do the same to the values compared with them."""
    if kind != "email":
        return value
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, list):
        return [v.lower() if isinstance(v, str) else v for v in value]
    return value


def _event_sources():
    from winback.segments.compiler import EVENT_SOURCES

    return EVENT_SOURCES


def _event_source(event_type: str):
    from winback.segments.compiler import event_source

    return event_source(event_type)


def _history_table(name: str):
    from winback.models.history import TABLES_BY_NAME

    return TABLES_BY_NAME[name]
