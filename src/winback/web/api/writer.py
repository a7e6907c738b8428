"""Group commit for live events: many requests, one transaction, every answer after the commit.

A transaction with its fsync per request caps an embedded SQLite store at a few hundred events per
second. Instead each request puts its validated events on a queue (``queue.SimpleQueue``) and waits
on an asyncio future; one long-lived writer thread takes everything that is waiting (up to
``max_batch`` events), writes it in one transaction on a connection it keeps, commits, and only then
resolves the futures - one ``call_soon_threadsafe`` per batch and event loop, not per request. The
answer therefore never runs ahead of the data: an acknowledged event is committed. (The event loop
never hops to a thread per batch or per request; the writer's connection is released after
``IDLE_SECONDS`` without events.)

Durability: on SQLite the writer's connection runs ``PRAGMA synchronous=FULL`` (WAL + FULL syncs the
WAL on every commit: an acknowledged event survives a power loss, not only a process crash; the
rest of the app keeps ``NORMAL``). On PostgreSQL the server's ``synchronous_commit`` (default on)
decides.

Idempotency: ``customer_events.event_id`` is unique; rows go in with ``INSERT ... ON CONFLICT DO
NOTHING RETURNING event_id``. An event id that was not inserted is compared with the stored row
(type, customer, occurred_at, properties): the same -> ``duplicate``; different -> ``conflict``.
Two copies of one id inside a batch are compared with the first. Concurrent writers (another
process) are serialised by the unique index, so exactly one row exists per id.

Customers are resolved inside the same transaction (external id and optional source -> internal
id) through an LRU cache; an unknown customer is ``rejected`` unless the event asks to ``create``
a minimal record (source ``api`` by default, ``row_hash`` 0 so the next import of that customer
overwrites it with the source's data).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import queue
import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import Engine, select

from winback.kit.db import dialect_insert
from winback.models.campaigns import CustomerEvent
from winback.models.customer import Customer

log = logging.getLogger(__name__)
EVENTS = CustomerEvent.__table__
CUSTOMERS = Customer.__table__
DEFAULT_SOURCE = "api"


@dataclass
class PendingEvent:
    event_id: str
    type: str
    occurred_at: dt.datetime
    properties: str  # canonical JSON text
    received_at: dt.datetime
    customer_id: int | None = None  # internal id given by the client
    external_id: str | None = None
    customer_source: str | None = None
    email: str | None = None
    create: bool = False


@dataclass
class Outcome:
    status: str  # stored | duplicate | conflict | rejected
    customer_id: int | None = None
    detail: str | None = None
    field: str | None = None  # the request field a rejection is about


_STOP = object()  # put on the queue by close(): the writer thread ends after what came before it
IDLE_SECONDS = 10.0  # the writer thread gives its connection back after this long without events


def _resolve(done: list, error: BaseException | None) -> None:
    """On the event loop: answer the requests of one committed (or failed) batch."""
    for future, result in done:
        if not future.done():  # the client may have gone away; the events are stored anyway
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)


def canonical_json(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_fresh(self, key):
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class EventWriter:
    """One per app: the queue, the writer thread (and its connection) and the customer-id cache."""

    def __init__(self, engine: Engine, *, max_batch: int = 2000, cache_size: int = 200_000):
        self.engine = engine
        self.max_batch = max_batch
        self.customers = _LRU(cache_size)  # (source or None, external id) -> internal id
        self.known_ids = _LRU(cache_size)  # internal ids seen to exist -> True
        self._queue: queue.SimpleQueue = queue.SimpleQueue()  # (events, future, loop) or _STOP
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._conn = None  # the writer thread's SQLAlchemy connection (only that thread touches it)
        self.batches = 0
        self.written = 0

    # --- the asyncio side -----------------------------------------------------------------------

    async def submit(self, events: list[PendingEvent]) -> list[Outcome]:
        """Outcomes in the order of ``events``, after their transaction committed."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._start()
        self._queue.put((events, future, loop))
        return await future

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="winback-event-writer", daemon=True)
                self._thread.start()

    async def close(self) -> None:
        """Write what is queued, stop the thread and release its connection."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            await asyncio.to_thread(thread.join, 30)

    # --- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        q = self._queue
        try:
            while True:
                try:
                    first = q.get(timeout=IDLE_SECONDS)
                except queue.Empty:
                    self._release()  # idle: give the connection back to the pool
                    first = q.get()
                if first is _STOP:
                    return
                jobs = [first]
                size = len(first[0])
                stop = False
                while size < self.max_batch:
                    try:
                        job = q.get_nowait()
                    except queue.Empty:
                        break
                    if job is _STOP:
                        stop = True
                        break
                    jobs.append(job)
                    size += len(job[0])
                error: BaseException | None = None
                results: list = []
                try:
                    results = self.write([j[0] for j in jobs])
                except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                    log.exception("event batch failed")
                    error = exc
                by_loop: dict = {}
                for k, job in enumerate(jobs):
                    by_loop.setdefault(job[2], []).append((job[1], None if error else results[k]))
                for loop, done in by_loop.items():
                    try:
                        loop.call_soon_threadsafe(_resolve, done, error)
                    except RuntimeError:  # that loop is closed: nobody waits for these answers
                        pass
                if stop:
                    return
        finally:
            self._release()

    def _connection(self):
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            self._release()
            conn = self.engine.connect()
            if self.engine.dialect.name == "sqlite":
                # outside a transaction, on the DBAPI connection (the begin hook is not involved); the
                # connection stays the writer's, so this is set once per connection
                conn.connection.dbapi_connection.execute("PRAGMA synchronous=FULL")
                conn.execution_options(winback_begin="IMMEDIATE")
            self._conn = conn
        return conn

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not conn.closed and not conn.invalidated and self.engine.dialect.name == "sqlite":
                conn.connection.dbapi_connection.execute("PRAGMA synchronous=NORMAL")  # back to the app's
            conn.close()
        except Exception:  # noqa: BLE001 - a broken connection: the pool replaces it
            log.debug("closing the event writer's connection failed", exc_info=True)

    def write(self, jobs: list[list[PendingEvent]]) -> list[list[Outcome]]:
        try:
            return self._write(jobs)
        except Exception:  # noqa: BLE001
            self._release()  # the connection may be broken: the next transaction takes a fresh one
            if len(jobs) == 1:
                raise
            # one bad job (e.g. a customer deleted behind the cache's back) must not fail the others
            log.warning("event batch of %d requests failed; writing them one by one", len(jobs), exc_info=True)
            self.customers.clear()
            self.known_ids.clear()
            out = []
            for job in jobs:
                try:
                    out.append(self._write([job]))
                except Exception as exc:  # noqa: BLE001
                    self._release()
                    log.exception("event request failed")
                    out.append([[Outcome("error", detail=f"could not store the event: {type(exc).__name__}")
                                 for _ in job]])
            return [o[0] for o in out]

    def _write(self, jobs: list[list[PendingEvent]]) -> list[list[Outcome]]:
        flat = jobs[0] if len(jobs) == 1 else [e for job in jobs for e in job]
        conn = self._connection()
        with conn.begin():
            who = self._resolve(conn, flat)
            outcomes: list[Outcome | None] = [None] * len(flat)
            first: dict[str, int] = {}
            rows: list[tuple] = []
            for i, e in enumerate(flat):
                cid = who[i]
                if cid.__class__ is Outcome:
                    outcomes[i] = cid
                    continue
                if e.event_id in first:
                    continue  # compared with the first copy below
                first[e.event_id] = i
                rows.append((e.event_id, cid, e.type, e.occurred_at, e.received_at, e.properties))
            inserted = _insert_events(conn, rows)
            existing_ids = [r[0] for r in rows if r[0] not in inserted]
            stored: dict[str, dict] = {}
            for start in range(0, len(existing_ids), 1000):
                part = existing_ids[start:start + 1000]
                for r in conn.execute(select(EVENTS.c.event_id, EVENTS.c.customer_id, EVENTS.c.type,
                                             EVENTS.c.occurred_at, EVENTS.c.properties)
                                      .where(EVENTS.c.event_id.in_(part))).mappings():
                    stored[r["event_id"]] = dict(r)
            by_id: dict[str, dict] | None = None  # built when a batch holds two copies of an inserted id
            for i, e in enumerate(flat):
                if outcomes[i] is not None:
                    continue
                cid = who[i]
                if e.event_id in inserted:
                    if first[e.event_id] == i:
                        outcomes[i] = Outcome("stored", cid)
                        continue
                    if by_id is None:  # a later copy of an id this batch inserted
                        by_id = {r[0]: {"type": r[2], "customer_id": r[1], "occurred_at": r[3], "properties": r[5]}
                                 for r in rows}
                    reference = by_id.get(e.event_id)
                else:
                    reference = stored.get(e.event_id)
                if reference is None:  # pragma: no cover - not inserted yet not there
                    outcomes[i] = Outcome("error", cid, "the event was neither stored nor found")
                    continue
                diff = _differences(reference, cid, e)
                outcomes[i] = Outcome("conflict", cid, f"event_id {e.event_id!r} was already stored with "
                                                       f"different {', '.join(diff)}") if diff \
                    else Outcome("duplicate", cid)
        self.batches += 1
        self.written += len(inserted)
        if len(jobs) == 1:
            return [outcomes]  # type: ignore[list-item]
        out: list[list[Outcome]] = []
        pos = 0
        for job in jobs:
            out.append(outcomes[pos:pos + len(job)])  # type: ignore[arg-type]
            pos += len(job)
        return out

    def _resolve(self, conn, events: list[PendingEvent]) -> list[int | Outcome]:
        """The internal customer id of every event (or the rejection), creating customers on request."""
        wanted_ext: set[str] = set()
        wanted_ids: set[int] = set()
        for e in events:
            if e.customer_id is not None:
                if self.known_ids.get_fresh(e.customer_id) is None:
                    wanted_ids.add(e.customer_id)
            elif self.customers.get_fresh((e.customer_source, e.external_id)) is None:
                wanted_ext.add(e.external_id)
        if wanted_ids:
            ids = sorted(wanted_ids)
            for start in range(0, len(ids), 1000):
                for (cid,) in conn.execute(select(CUSTOMERS.c.id).where(CUSTOMERS.c.id.in_(ids[start:start + 1000]))):
                    self.known_ids.put(cid, True)
        found: dict[str, list[tuple[str, int]]] = {}
        if wanted_ext:
            ext = sorted(wanted_ext)
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            for start in range(0, len(ext), 1000):
                part = ext[start:start + 1000]
                for source, external_id, cid in _driver_rows(
                        conn, f"SELECT source, external_id, id FROM {CUSTOMERS.name} WHERE external_id IN "
                              f"({', '.join([mark] * len(part))})", tuple(part)):
                    found.setdefault(external_id, []).append((source, cid))
                    self.customers.put((source, external_id), cid)
            for external_id, matches in found.items():
                if len(matches) == 1:
                    self.customers.put((None, external_id), matches[0][1])
        out: list[int | Outcome] = []
        for e in events:
            if e.customer_id is not None:
                out.append(e.customer_id if self.known_ids.get(e.customer_id) else
                           Outcome("rejected", None, f"no customer with id {e.customer_id}", "customer_id"))
                continue
            cid = self.customers.get((e.customer_source, e.external_id))
            if cid is not None:
                out.append(cid)
                continue
            matches = found.get(e.external_id, [])
            if e.customer_source is None and len(matches) > 1:
                sources = ", ".join(sorted(s for s, _ in matches))
                out.append(Outcome("rejected", None, f"external id {e.external_id!r} exists in several sources "
                                                     f"({sources}); give customer.source", "customer.source"))
                continue
            if not e.create:
                where = f" in source {e.customer_source!r}" if e.customer_source else ""
                out.append(Outcome("rejected", None, f"unknown customer {e.external_id!r}{where}; send it with "
                                                     f"\"create\": true, identify it first, or import it",
                                   "customer.id"))
                continue
            out.append(self._create(conn, e))
        return out

    def _create(self, conn, e: PendingEvent) -> int:
        source = e.customer_source or DEFAULT_SOURCE
        cid = create_customer(conn, source, e.external_id, now=e.received_at, email=e.email)
        self.customers.put((source, e.external_id), cid)
        if e.customer_source is None:
            self.customers.put((None, e.external_id), cid)
        return cid


_COLUMNS = ("event_id", "customer_id", "type", "occurred_at", "received_at", "source", "properties")
_CHUNK = 500  # rows per statement: 3,500 parameters (SQLite allows 32,766, PostgreSQL 65,535)
_SQL: dict[tuple[str, int], str] = {}


def _driver_rows(conn, sql: str, params: tuple) -> list[tuple]:
    """Rows of one statement run on the DBAPI cursor of ``conn`` (inside its transaction): SQLAlchemy's
    per-execution work (contexts, result objects) was most of the writer's CPU."""
    cur = conn.connection.dbapi_connection.cursor()
    try:
        cur.execute(sql, params)
        return cur.fetchall()
    finally:
        cur.close()


def _insert_events(conn, rows: list[tuple]) -> set[str]:
    """``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id`` as one multi-row statement
    per chunk, through the driver. ``rows``: (event_id, customer_id, type, occurred_at, received_at,
    properties). Times go through the column's own bind processor, so they are stored exactly as the
    ORM would store them."""
    if not rows:
        return set()
    dialect = conn.dialect
    at = _bind_time(dialect)
    placeholder = "?" if dialect.paramstyle == "qmark" else "%s"
    inserted: set[str] = set()
    for start in range(0, len(rows), _CHUNK):
        part = rows[start:start + _CHUNK]
        key = (dialect.name, len(part))
        sql = _SQL.get(key)
        if sql is None:
            one = "(" + ", ".join([placeholder] * len(_COLUMNS)) + ")"
            sql = _SQL[key] = (f"INSERT INTO {EVENTS.name} ({', '.join(_COLUMNS)}) VALUES "
                               f"{', '.join([one] * len(part))} ON CONFLICT (event_id) DO NOTHING RETURNING event_id")
        params: list = []
        for event_id, cid, type_, occurred_at, received_at, properties in part:
            params += (event_id, cid, type_, at(occurred_at), at(received_at), "api", properties)
        inserted.update(v for (v,) in _driver_rows(conn, sql, tuple(params)))
    return inserted


_BIND_TIME: dict[str, object] = {}


def _bind_time(dialect):
    fn = _BIND_TIME.get(dialect.name)
    if fn is None:
        fn = _BIND_TIME[dialect.name] = EVENTS.c.occurred_at.type.bind_processor(dialect) or (lambda v: v)
    return fn


def create_customer(conn, source: str, external_id: str, *, now: dt.datetime, **fields) -> int:
    """A minimal customer record (``row_hash`` 0: the next import of this customer replaces it)."""
    values = {k: v for k, v in fields.items() if v is not None}
    if values.get("email"):
        values["email"] = values["email"].strip()
    stmt = dialect_insert(conn, CUSTOMERS).on_conflict_do_nothing(
        index_elements=["source", "external_id"]).returning(CUSTOMERS.c.id)
    cid = conn.execute(stmt, {"source": source, "external_id": external_id, "marketing_basis": "none",
                              "marketing_opt_out": False, "row_hash": 0, "first_seen_at": now, "updated_at": now,
                              **values}).scalar()
    if cid is None:  # created meanwhile by someone else
        cid = conn.execute(select(CUSTOMERS.c.id).where(CUSTOMERS.c.source == source,
                                                        CUSTOMERS.c.external_id == external_id)).scalar_one()
    return cid


def _differences(stored: dict, customer_id: int, e: PendingEvent) -> list[str]:
    diff = []
    if stored["type"] != e.type:
        diff.append("type")
    if stored["customer_id"] != customer_id:
        diff.append("customer")
    at = stored["occurred_at"]
    if isinstance(at, dt.datetime):
        at = at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)
    if at != e.occurred_at:
        diff.append("occurred_at")
    try:
        same_props = json.loads(stored["properties"] or "{}") == json.loads(e.properties)
    except ValueError:
        same_props = False
    if not same_props:
        diff.append("properties")
    return diff
