"""The send gate's locks: what makes "check, then hand off" atomic against unsubscribes and caps.

Two kinds of keys, always taken in ascending order (customers, then addresses) so that workers
never deadlock each other:

* **customer** keys, *exclusive*: a worker holds them from the frequency-cap check until the
  outcome of its hand-off is committed, so two workers never both count "one slot left" for the
  same customer.
* **address** keys (the normalised address), *shared* by workers, *exclusive* for
  :func:`winback.delivery.suppression.unsubscribe`. A worker takes them *before* reading the
  suppression list and the customer's opt-out, and releases them only after the SMTP server has
  answered the DATA command (and the outcome is committed). An unsubscribe takes the exclusive
  lock *before* writing and releases it only *after* its commit.

PostgreSQL: transaction-scoped advisory locks (``pg_advisory_xact_lock`` /
``pg_advisory_xact_lock_shared``) on two namespaces; they are released by the commit of the
transaction that took them. SQLite: open-file-description byte-range locks (``F_OFD_SETLKW``) on
a lock file next to the database (``<db>-delivery.lock``): byte ``customer_id`` for customers,
byte ``2**40 + hash(address)`` for addresses; closing the descriptor releases them. OFD locks
belong to the open file, not to the process, so they exclude threads of one process too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import struct
from typing import Iterable, Iterator

from sqlalchemy import Connection, Engine, text

NS_CUSTOMER = 0x57420001  # advisory-lock namespaces (PostgreSQL two-key form)
NS_ADDRESS = 0x57420002
_ADDRESS_BASE = 1 << 40


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= (1 << 31) else value


def address_key(address: str) -> int:
    """A stable 32-bit key for a normalised address (collisions only serialise, never break)."""
    return _int32(int.from_bytes(hashlib.sha256(b"winback-suppress\x00" + address.encode()).digest()[:4], "big"))


def lock_file_path(engine: Engine) -> str | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return os.path.abspath(database) + "-delivery.lock"


# --- SQLite: OFD byte-range locks ---------------------------------------------------------------

_OFD_SETLKW = getattr(fcntl, "F_OFD_SETLKW", None)


def _flock_struct(kind: int, start: int) -> bytes:
    # struct flock {short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid;}
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, start, 1, 0)


def _lock_byte(fd: int, kind: int, start: int) -> None:
    if _OFD_SETLKW is not None:
        fcntl.fcntl(fd, _OFD_SETLKW, _flock_struct(kind, start))
    else:  # pragma: no cover - non-Linux: POSIX record locks (per process, not per thread)
        fcntl.lockf(fd, fcntl.LOCK_EX if kind == fcntl.F_WRLCK else fcntl.LOCK_SH, 1, start, os.SEEK_SET)


@contextlib.contextmanager
def _file_locks(path: str, exclusive: Iterable[int], shared: Iterable[int]) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        wanted = [(k, fcntl.F_WRLCK) for k in set(exclusive)] + [(k, fcntl.F_RDLCK) for k in set(shared)]
        for start, kind in sorted(wanted):
            _lock_byte(fd, kind, start)
        yield
    finally:
        os.close(fd)  # releases every OFD lock taken through this descriptor


def _address_offset(address: str) -> int:
    return _ADDRESS_BASE + (address_key(address) & 0xFFFFFFFF)


# --- the two sides -------------------------------------------------------------------------------

@contextlib.contextmanager
def worker_gate(engine: Engine, pg_conn: Connection | None, customer_ids: Iterable[int],
                addresses: Iterable[str]) -> Iterator[None]:
    """Hold exclusive customer locks and shared address locks for a batch.

    PostgreSQL: the locks are taken inside ``pg_conn``'s transaction and released by its commit
    or rollback (the caller's ``with`` block). SQLite: they are held until this block exits.
    """
    customers = sorted({int(c) for c in customer_ids if c is not None})
    addrs = sorted({a for a in addresses if a})
    if engine.dialect.name == "postgresql":
        assert pg_conn is not None
        if customers:
            pg_conn.execute(text(
                "SELECT pg_advisory_xact_lock(:ns, k) FROM "
                "(SELECT k FROM unnest(CAST(:keys AS integer[])) AS u(k) ORDER BY k) s"),
                {"ns": NS_CUSTOMER, "keys": sorted({_int32(c) for c in customers})}).fetchall()
        if addrs:
            pg_conn.execute(text(
                "SELECT pg_advisory_xact_lock_shared(:ns, k) FROM "
                "(SELECT k FROM unnest(CAST(:keys AS integer[])) AS u(k) ORDER BY k) s"),
                {"ns": NS_ADDRESS, "keys": sorted({address_key(a) for a in addrs})}).fetchall()
        yield
        return
    path = lock_file_path(engine)
    if path is None:
        yield
        return
    with _file_locks(path, customers, [_address_offset(a) for a in addrs]):
        yield


@contextlib.contextmanager
def unsubscribe_lock(engine: Engine, conn: Connection, addresses: Iterable[str]) -> Iterator[None]:
    """Exclusive locks on addresses, held until the caller's ``with`` block (which commits) ends.

    PostgreSQL: taken inside ``conn``'s transaction (released by its commit)."""
    addrs = sorted({a for a in addresses if a})
    if engine.dialect.name == "postgresql":
        for key in sorted({address_key(a) for a in addrs}):
            conn.execute(text("SELECT pg_advisory_xact_lock(:ns, :k)"), {"ns": NS_ADDRESS, "k": key})
        yield
        return
    path = lock_file_path(engine)
    if path is None:
        yield
        return
    with _file_locks(path, [_address_offset(a) for a in addrs], []):
        yield
