"""Write validated batches: history upserts (DuckDB) and the state store's customer records.

Idempotent by ``(source, key)`` and a content hash: a row whose content is unchanged is not
rewritten, so importing the same file twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import duckdb
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from winback.ingest.validate import clean_name, q
from winback.models.customer import Customer
from winback.models.history import CUSTOMERS, Table


@dataclass
class TableCounts:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict:
        return {"rows": self.rows, "inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged}


def upsert_history(con: duckdb.DuckDBPyConnection, spec: Table, import_id: int, ingested_at: dt.datetime
                   ) -> TableCounts:
    """Insert new rows and replace changed ones; must run inside the caller's transaction."""
    clean = clean_name(spec.name)
    cols = ", ".join(q(c) for c in spec.column_names)
    rows = con.execute(f"SELECT count(*) FROM {clean}").fetchone()[0]
    params = [import_id, ingested_at.replace(tzinfo=None)]
    source = con.execute(f"SELECT any_value(source) FROM {clean}").fetchone()[0]
    has_rows = con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {q(spec.name)} WHERE source = ? LIMIT 1)",
                           [source]).fetchone()[0]
    if not has_rows:  # first load from this source: nothing to compare with
        con.execute(f"INSERT INTO {q(spec.name)} ({cols}, source, _row_hash, _import_id, _ingested_at) "
                    f"SELECT {cols}, source, _row_hash, ?, ? FROM {clean}", params)
        return TableCounts(rows=rows, inserted=rows)
    key_join = " AND ".join([f"t.{q(k)} = s.{q(k)}" for k in spec.key] + ["t.source = s.source"])
    delta = f"_delta_{spec.name}"
    s_cols = ", ".join(f"s.{q(c)}" for c in spec.column_names)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {delta} AS
        SELECT {s_cols}, s.source, s._row_hash, t._row_hash AS _old_hash
        FROM {clean} s LEFT JOIN {q(spec.name)} t ON {key_join}
        WHERE t._row_hash IS DISTINCT FROM s._row_hash""")
    changed, updated = con.execute(f"SELECT count(*), count(_old_hash) FROM {delta}").fetchone()
    if updated:
        key_match = " AND ".join([f"{q(spec.name)}.{q(k)} = d.{q(k)}" for k in spec.key]
                                 + [f"{q(spec.name)}.source = d.source"])
        con.execute(f"DELETE FROM {q(spec.name)} USING {delta} d WHERE d._old_hash IS NOT NULL AND {key_match}")
    if changed:
        con.execute(f"INSERT INTO {q(spec.name)} ({cols}, source, _row_hash, _import_id, _ingested_at) "
                    f"SELECT {cols}, source, _row_hash, ?, ? FROM {delta}", params)
    con.execute(f"DROP TABLE {delta}")
    return TableCounts(rows=rows, inserted=changed - updated, updated=updated, unchanged=rows - changed)


STATE_FIELDS = [c.name for c in CUSTOMERS.columns if c.name != "customer_id"]


def upsert_state_customers(session: Session, con: duckdb.DuckDBPyConnection, source: str, now: dt.datetime,
                           batch_size: int = 5000, progress=None) -> TableCounts:
    """Bring the state store's customer records in line with the clean customers batch."""
    clean = clean_name("customers")
    existing = dict(session.execute(
        select(Customer.external_id, Customer.row_hash).where(Customer.source == source)).all())
    rows = con.execute(f"SELECT count(*) FROM {clean}").fetchone()[0]
    cols = ", ".join(q(c) for c in ["customer_id", *STATE_FIELDS, "_row_hash"])
    cursor = con.execute(f"SELECT {cols} FROM {clean} ORDER BY _row")
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    counts = TableCounts(rows=rows)
    naive_now = now
    while True:
        chunk = cursor.fetchmany(batch_size)
        if not chunk:
            break
        payload = []
        for rec in chunk:
            external_id, *values, row_hash = rec
            old = existing.get(external_id)
            if old == row_hash:
                counts.unchanged += 1
                continue
            if old is None:
                counts.inserted += 1
            else:
                counts.updated += 1
            item = dict(zip(STATE_FIELDS, values))
            for key in ("created_at", "opted_out_at"):
                if item[key] is not None:
                    item[key] = item[key].replace(tzinfo=dt.timezone.utc)
            if item["attributes"] is not None:
                item["attributes"] = json.dumps(json.loads(item["attributes"]), ensure_ascii=False, sort_keys=True)
            item.update(source=source, external_id=external_id, row_hash=row_hash,
                        first_seen_at=naive_now, updated_at=naive_now)
            payload.append(item)
        if payload:
            stmt = insert_fn(Customer.__table__)
            update_cols = {name: stmt.excluded[name] for name in [*STATE_FIELDS, "row_hash", "updated_at"]}
            stmt = stmt.on_conflict_do_update(index_elements=["source", "external_id"], set_=update_cols)
            session.connection().execute(stmt, payload)
        if progress:
            progress(len(chunk))
    return counts
