"""All SQL of the segments stage on the state store (SQLAlchemy Core; SQLite and PostgreSQL).

A refresh reads the segment's current members, computes joiners and leavers in Python, and
writes only those, in bulk: on PostgreSQL the ids are COPied into a temporary table and joined;
on SQLite they travel as one JSON array parameter (``json_each``; ``executemany`` when SQLite
lacks JSON1). Stayers are not touched, so they keep ``entered_at`` and ``version``. Joiners are
inserted through a join with ``customers``, so ids the state store does not know are skipped.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import Connection, delete, insert, select, text, update

from winback.models.customer import Customer
from winback.models.segments import Segment, SegmentMembership, SegmentRefresh

SEGMENTS = Segment.__table__
MEMBERSHIPS = SegmentMembership.__table__
REFRESHES = SegmentRefresh.__table__
CUSTOMERS = Customer.__table__

IDS_TEMP = "_segment_ids"
CHUNK = 50_000


@dataclass(frozen=True)
class SegmentRow:
    id: int
    name: str
    version: int
    spec_hash: str
    member_count: int


@dataclass(frozen=True)
class MembershipDiff:
    entered: int
    exited: int
    member_count: int
    unmatched: int  # selected customers that are not in the state store


def all_segments(conn: Connection) -> list[dict]:
    rows = conn.execute(select(SEGMENTS).order_by(SEGMENTS.c.name)).mappings().all()
    return [dict(r) for r in rows]


def segment_by_name(conn: Connection, name: str) -> dict | None:
    row = conn.execute(select(SEGMENTS).where(SEGMENTS.c.name == name)).mappings().first()
    return dict(row) if row else None


def upsert_definition(conn: Connection, *, name: str, title: str, description: str | None, origin: str,
                      spec_text: str, spec_hash: str, compiled_sql: str | None, now: dt.datetime) -> SegmentRow:
    """Create the segment row, or update it (``version`` + 1 when ``spec_hash`` changed); locks the row."""
    row = conn.execute(select(SEGMENTS.c.id, SEGMENTS.c.version, SEGMENTS.c.spec_hash, SEGMENTS.c.member_count)
                       .where(SEGMENTS.c.name == name).with_for_update()).first()
    values = dict(title=title, description=description or None, origin=origin, spec=spec_text,
                  spec_hash=spec_hash, updated_at=now)
    if compiled_sql is not None:
        values["compiled_sql"] = compiled_sql
    if row is None:
        new_id = conn.execute(insert(SEGMENTS).values(name=name, version=1, member_count=0, created_at=now,
                                                      **values).returning(SEGMENTS.c.id)).scalar_one()
        return SegmentRow(new_id, name, 1, spec_hash, 0)
    version = row.version + 1 if row.spec_hash != spec_hash else row.version
    conn.execute(update(SEGMENTS).where(SEGMENTS.c.id == row.id).values(version=version, **values))
    return SegmentRow(row.id, name, version, spec_hash, row.member_count)


def record_refresh(conn: Connection, segment: SegmentRow, *, as_of: dt.datetime, now: dt.datetime,
                   seconds: float, diff: MembershipDiff | None = None, error: str | None = None) -> None:
    """Log one refresh; on success also update the segment's count, instant and time, and clear its error."""
    values: dict = dict(refresh_error=error, refresh_seconds=seconds, updated_at=now)
    if diff is not None:
        values.update(member_count=diff.member_count, refreshed_at=now, as_of=as_of)
    conn.execute(update(SEGMENTS).where(SEGMENTS.c.id == segment.id).values(**values))
    conn.execute(insert(REFRESHES).values(
        segment_id=segment.id, version=segment.version, as_of=as_of, refreshed_at=now,
        member_count=diff.member_count if diff else segment.member_count,
        entered=diff.entered if diff else None, exited=diff.exited if diff else None, error=error,
        seconds=seconds))


def refreshes(conn: Connection, segment_id: int, limit: int = 20) -> list[dict]:
    rows = conn.execute(select(REFRESHES).where(REFRESHES.c.segment_id == segment_id)
                        .order_by(REFRESHES.c.id.desc()).limit(limit)).mappings().all()
    return [dict(r) for r in rows]


def member_ids(conn: Connection, segment_id: int) -> list[int]:
    return list(conn.execute(select(MEMBERSHIPS.c.customer_id).where(MEMBERSHIPS.c.segment_id == segment_id)
                             .order_by(MEMBERSHIPS.c.customer_id)).scalars())


def memberships(conn: Connection, segment_id: int) -> list[dict]:
    rows = conn.execute(select(MEMBERSHIPS).where(MEMBERSHIPS.c.segment_id == segment_id)
                        .order_by(MEMBERSHIPS.c.customer_id)).mappings().all()
    return [dict(r) for r in rows]


# --------------------------------------------------------------------------------- membership diff


def current_members(conn: Connection, segment_id: int) -> set[int]:
    """The segment's member ids, read through the driver (a million rows in a fraction of a second)."""
    if conn.dialect.name == "sqlite" and _sqlite_json(conn):
        packed = conn.exec_driver_sql("SELECT json_group_array(customer_id) FROM segment_memberships "
                                      "WHERE segment_id = ?", (segment_id,)).scalar()
        return set(json.loads(packed)) if packed else set()
    marker = "%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?"
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(f"SELECT customer_id FROM segment_memberships WHERE segment_id = {marker}", (segment_id,))
        return {row[0] for row in cursor.fetchall()}
    finally:
        cursor.close()


def resolve_keys(conn: Connection, keys: Sequence[tuple[str, str]]) -> set[int]:
    """customers.id of the ``(source, external_id)`` pairs that are in the state store."""
    by_source: dict[str, list[str]] = {}
    for source, external_id in keys:
        by_source.setdefault(str(source), []).append(str(external_id))
    found: set[int] = set()
    for source, ids in by_source.items():
        for start in range(0, len(ids), 500):
            found.update(conn.execute(select(CUSTOMERS.c.id).where(
                CUSTOMERS.c.source == source, CUSTOMERS.c.external_id.in_(ids[start:start + 500]))).scalars())
    return found


def apply_members(conn: Connection, segment: SegmentRow, refs: Sequence[int],
                  keys: Sequence[tuple[str, str]], entered_at: dt.datetime) -> MembershipDiff:
    """Make ``segment``'s members exactly the customers ``refs`` (customers.id) plus those whose
    ``(source, external_id)`` is in ``keys``; ids the state store does not know are skipped.

    The current members are read (the caller holds the segment row, so nobody else changes them),
    the difference is computed here, and only joiners and leavers are written, sorted by id.
    """
    resolved = resolve_keys(conn, keys) if keys else set()
    wanted = set(refs) | resolved
    old = current_members(conn, segment.id)
    joiners = sorted(wanted - old)
    leavers = sorted(old - wanted)
    postgres = conn.dialect.name == "postgresql"
    exited = _delete_members(conn, postgres, segment.id, leavers) if leavers else 0
    entered = _insert_members(conn, postgres, segment, joiners, entered_at) if joiners else 0
    unmatched = (len(keys) - len(resolved)) + (len(joiners) - entered)
    return MembershipDiff(entered=entered, exited=exited, member_count=len(old) - exited + entered,
                          unmatched=unmatched)


def _bind_time(conn: Connection, value: dt.datetime):
    """Raw-SQL binds bypass the ORM type: store what :class:`UTCDateTime` would store."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    value = value.astimezone(dt.timezone.utc)
    return value.replace(tzinfo=None) if conn.dialect.name == "sqlite" else value


def _insert_members(conn: Connection, postgres: bool, segment: SegmentRow, ids: list[int],
                    entered_at: dt.datetime) -> int:
    params = {"sid": segment.id, "at": _bind_time(conn, entered_at), "version": segment.version}
    columns = "INSERT INTO segment_memberships (segment_id, customer_id, entered_at, version) "
    if postgres:
        _copy_ids(conn, ids)
        count = conn.execute(text(columns + f"SELECT :sid, c.id, :at, :version FROM {IDS_TEMP} n "
                                            f"JOIN customers c ON c.id = n.customer_id"), params).rowcount
        conn.execute(text(f"DROP TABLE {IDS_TEMP}"))
        return count
    if _sqlite_json(conn):
        return conn.execute(text(columns + "SELECT :sid, c.id, :at, :version FROM json_each(:ids) j "
                                           "JOIN customers c ON c.id = j.value"),
                            {**params, "ids": json.dumps(ids)}).rowcount
    rows = [(segment.id, params["at"], segment.version, i) for i in ids]  # SQLite without JSON1
    return conn.exec_driver_sql(columns + "SELECT ?, id, ?, ? FROM customers WHERE id = ?", rows).rowcount


def _delete_members(conn: Connection, postgres: bool, segment_id: int, ids: list[int]) -> int:
    if postgres:
        _copy_ids(conn, ids)
        count = conn.execute(text(f"DELETE FROM segment_memberships m USING {IDS_TEMP} n "
                                  f"WHERE m.segment_id = :sid AND m.customer_id = n.customer_id"),
                             {"sid": segment_id}).rowcount
        conn.execute(text(f"DROP TABLE {IDS_TEMP}"))
        return count
    if _sqlite_json(conn):
        return conn.execute(text("DELETE FROM segment_memberships WHERE segment_id = :sid AND customer_id IN "
                                 "(SELECT value FROM json_each(:ids))"),
                            {"sid": segment_id, "ids": json.dumps(ids)}).rowcount
    return conn.exec_driver_sql("DELETE FROM segment_memberships WHERE segment_id = ? AND customer_id = ?",
                                [(segment_id, i) for i in ids]).rowcount


def _copy_ids(conn: Connection, ids: list[int]) -> None:
    """PostgreSQL: COPY the ids into a temporary table (dropped at the end of the transaction)."""
    conn.execute(text(f"CREATE TEMP TABLE {IDS_TEMP} (customer_id BIGINT PRIMARY KEY) ON COMMIT DROP"))
    dbapi = conn.connection.driver_connection
    with dbapi.cursor() as cur, cur.copy(f"COPY {IDS_TEMP} (customer_id) FROM STDIN") as copy:
        for start in range(0, len(ids), CHUNK):
            copy.write("".join(f"{i}\n" for i in ids[start:start + CHUNK]))
    conn.execute(text(f"ANALYZE {IDS_TEMP}"))


_JSON_SUPPORT: dict[str, bool] = {}


def _sqlite_json(conn: Connection) -> bool:
    """Whether this SQLite has the JSON1 functions (built in since 3.38): one statement per diff."""
    key = str(conn.engine.url)
    if key not in _JSON_SUPPORT:
        try:
            conn.exec_driver_sql("SELECT count(*) FROM json_each('[1]')").scalar()
            _JSON_SUPPORT[key] = True
        except Exception:  # noqa: BLE001 - compiled without JSON1
            _JSON_SUPPORT[key] = False
    return _JSON_SUPPORT[key]


def delete_segment(conn: Connection, segment_id: int) -> None:
    conn.execute(delete(SEGMENTS).where(SEGMENTS.c.id == segment_id))
