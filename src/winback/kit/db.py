"""SQLAlchemy engines for the state store: SQLite (WAL) by default, PostgreSQL in production."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for the state store.

    On SQLite, pysqlite's own transaction handling is switched off and SQLAlchemy's ``begin``
    emits the ``BEGIN`` (the documented SQLAlchemy recipe), so a writer can start with
    ``BEGIN IMMEDIATE`` (:func:`write_transaction`) and take the write lock up front instead of
    failing with SQLITE_BUSY when it upgrades a read snapshot another process made stale."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # pragma: no cover - trivial
            mode = conn.get_execution_options().get("winback_begin", "")
            conn.exec_driver_sql(f"BEGIN {mode}".strip())

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


@contextmanager
def write_transaction(engine: Engine) -> Iterator:
    """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(winback_begin="IMMEDIATE")
        with conn.begin():
            yield conn


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


def dialect_insert(conn, table):
    """The dialect's INSERT (it has ``on_conflict_do_nothing``) for SQLite or PostgreSQL."""
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported state stores
        raise NotImplementedError(f"INSERT ... ON CONFLICT on {name}")
    return insert(table)


def insert_ignore(conn, table, rows: list[dict], conflict: list[str]) -> int:
    """Insert rows, skipping any that collide on the unique ``conflict`` columns; returns rows inserted.

    ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` as one cached statement executed for all rows
    (SQLAlchemy batches it: "insertmanyvalues"), on SQLite and PostgreSQL."""
    if not rows:
        return 0
    key = list(table.primary_key.columns)[0]
    stmt = dialect_insert(conn, table).on_conflict_do_nothing(index_elements=conflict).returning(key)
    columns = set(rows[0])
    if any(set(r) != columns for r in rows):
        raise ValueError("insert_ignore: every row must have the same columns")
    return len(conn.execute(stmt, rows).all())


def checked_engine(url: str, table: str, what: str) -> Engine:
    """An engine on the state store, checked to hold ``table`` (else: run `winback init` to upgrade)."""
    from sqlalchemy import inspect

    from winback.kit.errors import ConfigError

    engine = make_engine(url)
    try:
        ready = inspect(engine).has_table(table)
    except Exception:
        engine.dispose()
        raise
    if not ready:
        engine.dispose()
        raise ConfigError(f"the state store has no {what} tables; run `winback init` to upgrade it")
    return engine
