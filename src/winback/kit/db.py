"""SQLAlchemy engines for the state store: SQLite (WAL) by default, PostgreSQL in production."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def insert_ignore(conn, table, rows: list[dict], conflict: list[str]) -> int:
    """Insert rows, skipping any that collide on the unique ``conflict`` columns; returns rows inserted.

    One statement per chunk on SQLite and PostgreSQL (``INSERT ... ON CONFLICT DO NOTHING``)."""
    if not rows:
        return 0
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - only the two supported state stores
        raise NotImplementedError(f"insert_ignore on {name}")
    inserted = 0
    columns = list(rows[0])
    chunk = max(1, 30_000 // max(len(columns), 1))
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        stmt = dialect_insert(table).values(part).on_conflict_do_nothing(index_elements=conflict)
        inserted += conn.execute(stmt).rowcount or 0
    return inserted
