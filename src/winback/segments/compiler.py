"""Compile a segment spec into SQL over the history store (pure: no I/O).

``compile_segment(spec, as_of, resolver)`` turns the condition tree into one SQLAlchemy Core
``SELECT source, customer_id, customer_ref FROM customer_profile AS p WHERE ...``. Event
conditions become ``(p.source, p.customer_id) IN (SELECT source, customer_id FROM <facts> WHERE
... GROUP BY ... HAVING ...)`` semi-joins, which DuckDB runs as hash joins over the columnar facts.

Every value that comes from a spec (and every instant derived from ``as_of``) is a bound
parameter; the SQL text only ever holds identifiers from the profile and history schemas, so a
spec cannot inject SQL. The statement is rendered with SQLAlchemy's PostgreSQL dialect and the
``numeric_dollar`` parameter style (``$1, $2 ...``), which DuckDB executes as
``con.execute(sql, params)``; the same statement runs on PostgreSQL when the history lives there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from sqlalchemy import (
    ARRAY, BigInteger, Boolean, Column, DateTime, Float, MetaData, String, Table, and_, case, exists,
    func, literal, literal_column, not_, or_, select, true, tuple_,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from winback.insights.profile import PROFILE_SCHEMA, PROFILE_TABLE
from winback.kit.errors import WinbackError
from winback.models.history import TABLES_BY_NAME
from winback.segments.spec import (
    AllOf, AnyOf, AttributeCondition, EventCondition, EventMatch, FieldCondition, Node, NotOf, RestartedCondition,
    SegmentRef, SegmentSpec, StoppedCondition, Where, canonical_json,
)

# --------------------------------------------------------------------------------- event types


@dataclass(frozen=True)
class EventSource:
    """Where the events of one type live: history table, time column, filterable columns."""

    table: str
    time_column: str
    columns: tuple[str, ...]
    count_column: str | None = None  # rolled-up counts (product_events.count); otherwise one row = one event
    by_event_type: bool = False  # the table holds many types, told apart by event_type


#: event type -> where its facts are. Any other type is a product event (``product_events.event_type``).
EVENT_SOURCES: dict[str, EventSource] = {
    "order": EventSource("orders", "ordered_at",
                         ("status", "channel", "coupon_code", "currency", "total_amount", "discount_amount")),
    "checkout": EventSource("checkouts", "started_at",
                            ("status", "decline_code", "email", "plan_id", "currency", "amount", "items_count")),
    "ticket": EventSource("tickets", "opened_at", ("status", "priority", "topic", "csat")),
    "survey_response": EventSource("survey_responses", "responded_at",
                                   ("survey", "question_id", "choice", "score", "language")),
    "payment": EventSource("payment_attempts", "attempted_at",
                           ("status", "decline_code", "card_brand", "currency", "amount")),
    "invoice": EventSource("invoices", "created_at", ("status", "billing_reason", "currency", "amount_due")),
    "subscription_started": EventSource("subscriptions", "started_at",
                                        ("plan_id", "status", "currency", "mrr", "cancel_reason_code")),
    "subscription_canceled": EventSource("subscriptions", "canceled_at",
                                         ("plan_id", "status", "currency", "mrr", "cancel_reason_code")),
}
PRODUCT_EVENTS = EventSource("product_events", "occurred_at", ("feature", "session_id"), count_column="count",
                             by_event_type=True)


def event_source(event_type: str) -> EventSource:
    return EVENT_SOURCES.get(event_type, PRODUCT_EVENTS)


# --------------------------------------------------------------------------------- tables

_metadata = MetaData()


def _sa_type_for_arrow(arrow_type):
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return Boolean()
    if pa.types.is_integer(arrow_type):
        return BigInteger()
    if pa.types.is_floating(arrow_type):
        return Float()
    if pa.types.is_timestamp(arrow_type):
        return DateTime()
    if pa.types.is_list(arrow_type):
        return ARRAY(String())
    return String()


_KIND_TYPES = {"integer": BigInteger, "money": BigInteger, "timestamp": DateTime, "boolean": Boolean}

PROFILE = Table(PROFILE_TABLE, _metadata, *[Column(f.name, _sa_type_for_arrow(f.type)) for f in PROFILE_SCHEMA])


def _history_table(name: str) -> Table:
    if name in _metadata.tables:
        return _metadata.tables[name]
    spec = TABLES_BY_NAME[name]
    cols = [Column(c.name, _KIND_TYPES.get(c.kind, String)()) for c in spec.columns]
    return Table(name, _metadata, *cols, Column("source", String()))


for _source in {*EVENT_SOURCES.values(), PRODUCT_EVENTS}:
    _history_table(_source.table)


class _TryCastDouble(FunctionElement):
    """``TRY_CAST(x AS DOUBLE)``: a number from JSON text, null when it is not one."""

    type = Float()
    name = "try_cast_double"
    inherit_cache = True


@compiles(_TryCastDouble)
def _render_try_cast(element, compiler, **kw):
    (arg,) = list(element.clauses)
    return f"TRY_CAST({compiler.process(arg, **kw)} AS DOUBLE)"


# --------------------------------------------------------------------------------- errors


class CompileError(WinbackError):
    """A spec that is valid on its own but cannot be compiled (unknown or cyclic segment reference)."""


Resolver = Callable[[str], "SegmentSpec | None"] | Mapping[str, SegmentSpec] | None


def _resolve(resolver: Resolver, name: str) -> SegmentSpec | None:
    if resolver is None:
        return None
    if isinstance(resolver, Mapping):
        return resolver.get(name)
    return resolver(name)


def expand(spec: SegmentSpec, resolver: Resolver = None) -> Node:
    """The spec's condition tree with every ``{segment: NAME}`` replaced by that segment's tree.

    Raises :class:`CompileError` for an unknown segment or a reference cycle (``a -> b -> a``).
    """
    return _expand(spec.match, resolver, (spec.name,))


def _expand(node: Node, resolver: Resolver, stack: tuple[str, ...]) -> Node:
    if isinstance(node, SegmentRef):
        if node.segment in stack:
            cycle = " -> ".join(stack[stack.index(node.segment):] + (node.segment,))
            raise CompileError(f"segment {stack[0]!r}: segment references form a cycle ({cycle})")
        target = _resolve(resolver, node.segment)
        if target is None:
            raise CompileError(f"segment {stack[-1]!r} refers to unknown segment {node.segment!r}")
        return _expand(target.match, resolver, stack + (node.segment,))
    if isinstance(node, AllOf):
        return AllOf(all=[_expand(n, resolver, stack) for n in node.all])
    if isinstance(node, AnyOf):
        return AnyOf(any=[_expand(n, resolver, stack) for n in node.any])
    if isinstance(node, NotOf):
        return NotOf(**{"not": _expand(node.not_, resolver, stack)})
    if isinstance(node, FieldCondition) and node.among is not None:
        return node.model_copy(update={"among": _expand(node.among, resolver, stack)})
    return node


def spec_hash(tree: Node) -> str:
    """A digest of an expanded condition tree: equal trees select the same customers."""
    return hashlib.sha256(canonical_json(tree.data()).encode()).hexdigest()


# --------------------------------------------------------------------------------- compiling

#: the dialect the statements are rendered with ($1, $2 ... parameters; DuckDB and PostgreSQL accept it)
DIALECT = postgresql.dialect(paramstyle="numeric_dollar")
MEMBER_COLUMNS = ("source", "customer_id", "customer_ref")


@dataclass
class CompiledSegment:
    """One segment compiled for one evaluation instant."""

    name: str
    as_of: dt.datetime  # naive UTC
    statement: Any  # sqlalchemy Select of (source, customer_id, customer_ref)
    sql: str
    params: list
    spec_hash: str
    condition: Any = field(repr=False)  # the WHERE clause over :data:`profile`
    profile: Any = field(repr=False)  # the aliased customer_profile the condition refers to

    def display(self) -> str:
        """The SQL followed by its parameters, one per line (``-- $1 = 'churned'``)."""
        return render_with_params(self.sql, self.params)

    def count_query(self) -> tuple[str, list]:
        return to_sql(select(func.count()).select_from(self.profile).where(self.condition))

    def refs_query(self) -> tuple[str, list]:
        """Members as ``(customer_ref, source, customer_id)`` with the two keys only where the ref is
        missing: what a refresh needs, without shipping a million key strings."""
        p = self.profile
        missing = p.c.customer_ref.is_(None)
        return to_sql(select(p.c.customer_ref, case((missing, p.c.source)).label("source"),
                             case((missing, p.c.customer_id)).label("customer_id")).where(self.condition))

    def sample_query(self, limit: int, columns: Sequence[str] = ()) -> tuple[str, list]:
        """The first ``limit`` members (most lost value first), with extra profile ``columns``."""
        cols = [self.profile.c[c] for c in dict.fromkeys((*MEMBER_COLUMNS, *columns))]
        stmt = (select(*cols).where(self.condition)
                .order_by(self.profile.c.lost_value_minor.desc().nulls_last(), self.profile.c.source,
                          self.profile.c.customer_id)
                .limit(literal(int(limit), BigInteger())))
        return to_sql(stmt)


def to_sql(statement) -> tuple[str, list]:
    """Render a statement for DuckDB: SQL text with ``$n`` placeholders and the positional values."""
    compiled = statement.compile(dialect=DIALECT, compile_kwargs={"render_postcompile": True})
    values = compiled.construct_params()
    return str(compiled), [values[name] for name in compiled.positiontup]


def render_with_params(sql: str, params: Sequence[Any]) -> str:
    lines = [sql.rstrip()]
    if params:
        lines.append("-- parameters:")
        lines += [f"--   ${i} = {_shown(value)}" for i, value in enumerate(params, 1)]
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    return repr(value)


def compile_segment(spec: SegmentSpec, as_of: dt.datetime, resolver: Resolver = None) -> CompiledSegment:
    """Compile ``spec`` (with referenced segments inlined from ``resolver``) for the instant ``as_of``."""
    tree = expand(spec, resolver)
    ctx = _Context(as_of=_naive_utc(as_of))
    profile = PROFILE.alias("p")
    condition = ctx.node(tree, profile)
    statement = select(*(profile.c[c] for c in MEMBER_COLUMNS)).where(condition)
    sql, params = to_sql(statement)
    return CompiledSegment(name=spec.name, as_of=ctx.as_of, statement=statement, sql=sql, params=params,
                           spec_hash=spec_hash(tree), condition=condition, profile=profile)


_ONE = literal_column("1", BigInteger())  # constants of the SQL itself, not user values
_ZERO = literal_column("0", BigInteger())


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value
    return dt.datetime.combine(value, dt.time())


def _ts(value: dt.datetime) -> ColumnElement:
    return literal(value, DateTime())


def _is_date(value: Any) -> bool:
    return type(value) is dt.date


def _start(value: Any) -> dt.datetime:
    return dt.datetime.combine(value, dt.time()) if _is_date(value) else value


def _after(value: Any) -> dt.datetime:
    """The first instant after ``value``'s day, for a bare date used as an inclusive upper bound."""
    return dt.datetime.combine(value, dt.time()) + dt.timedelta(days=1)


def _compare(col, op: str, value: Any, kind: str) -> ColumnElement:
    """``col <op> value`` for the operators shared by profile fields and event columns."""
    if op == "is_null":
        return col.is_(None)
    if op == "not_null":
        return col.is_not(None)
    if kind == "timestamp":
        return _compare_time(col, op, value)
    if op == "eq":
        return col == value
    if op == "ne":
        return col.is_distinct_from(value)
    if op == "lt":
        return col < value
    if op == "lte":
        return col <= value
    if op == "gt":
        return col > value
    if op == "gte":
        return col >= value
    if op == "in":
        return col.in_(list(value))
    if op == "not_in":
        return or_(col.is_(None), col.not_in(list(value)))
    if op == "between":
        return and_(col >= value[0], col <= value[1])
    raise ValueError(f"operator {op!r} on {kind}")  # pragma: no cover - the spec checked it


def _compare_time(col, op: str, value: Any) -> ColumnElement:
    if op == "lt":
        return col < _ts(_start(value))
    if op == "gte":
        return col >= _ts(_start(value))
    if op == "lte":
        return col < _ts(_after(value)) if _is_date(value) else col <= _ts(value)
    if op == "gt":
        return col >= _ts(_after(value)) if _is_date(value) else col > _ts(value)
    if op == "between":
        low, high = value
        upper = col < _ts(_after(high)) if _is_date(high) else col <= _ts(high)
        return and_(col >= _ts(_start(low)), upper)
    raise ValueError(f"operator {op!r} on a timestamp")  # pragma: no cover


@dataclass
class _Context:
    as_of: dt.datetime
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def alias(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def days_before(self, days: int) -> dt.datetime:
        return self.as_of - dt.timedelta(days=days)

    # ------------------------------------------------------------------------- the tree
    def node(self, node: Node, p) -> ColumnElement:
        if isinstance(node, AllOf):
            return and_(*(self.node(n, p) for n in node.all)).self_group()
        if isinstance(node, AnyOf):
            return or_(*(self.node(n, p) for n in node.any)).self_group()
        if isinstance(node, NotOf):
            # two-valued: customers for whom the inner condition is false *or unknown*
            return self.node(node.not_, p).self_group().is_not(true())
        if isinstance(node, FieldCondition):
            return self.field(node, p)
        if isinstance(node, AttributeCondition):
            return self.attribute(node, p)
        if isinstance(node, EventCondition):
            return self.event(node, p)
        if isinstance(node, StoppedCondition):
            return self.stopped(node, p)
        if isinstance(node, RestartedCondition):
            return self.restarted(node, p)
        if isinstance(node, SegmentRef):  # pragma: no cover - expand() removed them
            raise CompileError(f"unexpanded segment reference {node.segment!r}")
        raise TypeError(f"unknown node {type(node).__name__}")  # pragma: no cover

    # ------------------------------------------------------------------------- profile fields
    def field(self, cond: FieldCondition, p) -> ColumnElement:
        col = p.c[cond.field]
        kind = cond.kind
        op, value = cond.op, cond.value
        if op == "top_percent":
            return self.top_percent(cond, p)
        if op == "within_days":
            return and_(col > _ts(self.days_before(value)), col <= _ts(self.as_of))
        if op == "older_than_days":
            return col <= _ts(self.days_before(value))
        if kind == "list":
            if op == "contains":
                return func.list_contains(col, literal(value, String()))
            if op == "contains_any":
                return or_(*(func.list_contains(col, literal(v, String())) for v in value)).self_group()
            if op == "contains_all":
                return and_(*(func.list_contains(col, literal(v, String())) for v in value)).self_group()
        return _compare(col, op, value, kind)

    def top_percent(self, cond: FieldCondition, p) -> ColumnElement:
        q = PROFILE.alias(self.alias("p"))
        value = q.c[cond.field]
        population = [value.is_not(None)]
        if cond.among is not None:
            population.append(self.node(cond.among, q))
        ranked = select(
            q.c.source, q.c.customer_id,
            func.row_number().over(order_by=(value.desc(), q.c.source, q.c.customer_id)).label("position"),
            func.count().over().label("population"),
        ).where(*population).subquery(self.alias("ranked"))
        percent = literal(cond.value, BigInteger() if isinstance(cond.value, int) else Float())
        # keep ceil(P% x population): position - 1 < population x P / 100, in exact arithmetic
        top = select(ranked.c.source, ranked.c.customer_id).where(
            (ranked.c.position - _ONE) * literal_column("100") < ranked.c.population * percent)
        return tuple_(p.c.source, p.c.customer_id).in_(top)

    # ------------------------------------------------------------------------- attributes
    def attribute(self, cond: AttributeCondition, p) -> ColumnElement:
        path = "$" + "".join(f'."{key}"' for key in cond.attribute.split("."))
        text = func.json_extract_string(p.c.attributes, literal(path, String()))
        op, value = cond.op, cond.value
        if op in ("is_null", "not_null"):
            return _compare(text, op, None, "string")
        sample = value[0] if isinstance(value, list) else value
        if isinstance(sample, bool):
            as_text = (lambda v: "true" if v else "false")
            mapped = [as_text(v) for v in value] if isinstance(value, list) else as_text(value)
            return _compare(func.lower(text), op, mapped, "string")
        if isinstance(sample, (int, float)):
            number = _TryCastDouble(text)
            mapped = [float(v) for v in value] if isinstance(value, list) else float(value)
            if op in ("in", "not_in"):
                vals = [literal(v, Float()) for v in mapped]
                inside = number.in_(vals)
                return inside if op == "in" else or_(number.is_(None), not_(inside))
            if op == "between":
                return and_(number >= literal(mapped[0], Float()), number <= literal(mapped[1], Float()))
            return _compare(number, op, literal(mapped, Float()), "float")
        return _compare(text, op, value, "string")

    # ------------------------------------------------------------------------- events
    def _events(self, event_type: str, where: list[Where]):
        """(aliased table, time column, base filters, measure) for events of one type up to as_of."""
        source = event_source(event_type)
        t = _history_table(source.table).alias(self.alias("e"))
        time = t.c[source.time_column]
        filters = [t.c.customer_id.is_not(None), time <= _ts(self.as_of)]
        if source.by_event_type:
            filters.append(t.c.event_type == literal(event_type, String()))
        for w in where:
            filters.append(_compare(t.c[w.column], w.op, w.value, w.kind))
        if source.count_column:
            measure = func.sum(func.coalesce(t.c[source.count_column], _ONE))
        else:
            measure = func.count()
        return t, time, filters, measure

    def event(self, cond: EventCondition, p) -> ColumnElement:
        t, time, filters, measure = self._events(cond.type, cond.where)
        if cond.within_days is not None:
            filters.append(time > _ts(self.days_before(cond.within_days)))
        elif cond.between is not None:
            filters.append(_compare_time(time, "between", cond.between))
        key = tuple_(p.c.source, p.c.customer_id)
        if cond.not_followed_by is not None:
            return key.in_(self._not_followed_by(t, time, filters, cond.not_followed_by))
        checks = dict(cond.count or {"gte": 1})
        matches_zero = all(_holds(op, 0, n) for op, n in checks.items())
        if not matches_zero and checks == {"gte": 1}:
            return key.in_(select(t.c.source, t.c.customer_id).where(*filters))
        having = and_(*(_count_check(measure, op, n) for op, n in checks.items()))
        grouped = select(t.c.source, t.c.customer_id).where(*filters).group_by(t.c.source, t.c.customer_id)
        if not matches_zero:
            return key.in_(grouped.having(having))
        # a count that admits zero: everyone except the customers whose (non-zero) count fails it
        return key.not_in(grouped.having(not_(having)))

    def _not_followed_by(self, t, time, filters, follow: EventMatch):
        latest = (select(t.c.source, t.c.customer_id, func.max(time).label("last_at"))
                  .where(*filters).group_by(t.c.source, t.c.customer_id).subquery(self.alias("latest")))
        f, f_time, f_filters, _ = self._events(follow.type, follow.where)
        later = select(_ONE).where(
            f.c.source == latest.c.source, f.c.customer_id == latest.c.customer_id, f_time > latest.c.last_at,
            *f_filters)
        return select(latest.c.source, latest.c.customer_id).where(~exists(later))

    def stopped(self, cond: StoppedCondition, p) -> ColumnElement:
        t, time, filters, measure = self._events(cond.event, cond.where)
        quiet_from = self.days_before(cond.inactive_days)
        filters.append(time > _ts(self.days_before(cond.inactive_days + cond.active_days)))
        grouped = (select(t.c.source, t.c.customer_id).where(*filters).group_by(t.c.source, t.c.customer_id)
                   .having(and_(func.max(time) <= _ts(quiet_from),
                                measure >= literal(cond.min_count, BigInteger()))))
        return tuple_(p.c.source, p.c.customer_id).in_(grouped)

    def restarted(self, cond: RestartedCondition, p) -> ColumnElement:
        t, time, filters, _ = self._events(cond.event, cond.where)
        recent_from = self.days_before(cond.within_days)
        gap_from = recent_from - dt.timedelta(days=cond.gap_days)
        in_gap = case((and_(time > _ts(gap_from), time <= _ts(recent_from)), _ONE), else_=_ZERO)
        # only customers active in the recent window can qualify: group just their history
        r, r_time, r_filters, _ = self._events(cond.event, cond.where)
        recent = select(r.c.source, r.c.customer_id).where(*r_filters, r_time > _ts(recent_from))
        filters.append(tuple_(t.c.source, t.c.customer_id).in_(recent))
        grouped = (select(t.c.source, t.c.customer_id).where(*filters).group_by(t.c.source, t.c.customer_id)
                   .having(and_(func.max(time) > _ts(recent_from), func.min(time) <= _ts(gap_from),
                                func.sum(in_gap) == _ZERO)))
        return tuple_(p.c.source, p.c.customer_id).in_(grouped)


def _holds(op: str, count: int, n: int) -> bool:
    return {"eq": count == n, "ne": count != n, "lt": count < n, "lte": count <= n, "gt": count > n,
            "gte": count >= n}[op]


def _count_check(measure, op: str, n: int) -> ColumnElement:
    value = literal(n, BigInteger())
    return {"eq": measure == value, "ne": measure != value, "lt": measure < value, "lte": measure <= value,
            "gt": measure > value, "gte": measure >= value}[op]


__all__ = ["EVENT_SOURCES", "PRODUCT_EVENTS", "CompileError", "CompiledSegment", "EventSource", "compile_segment",
           "event_source", "expand", "render_with_params", "spec_hash", "to_sql"]
