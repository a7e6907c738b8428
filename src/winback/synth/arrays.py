"""Vectorised building blocks for the generator: random streams, time arithmetic, ids and tables.

Times are int64 seconds since the Unix epoch (UTC) throughout; ``NA`` (-1) marks a missing
instant. Nothing here loops over rows in Python: every helper works on whole NumPy arrays.
"""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from winback.models.history import Table

DAY = 86_400
HOUR = 3_600
MINUTE = 60
WEEK = 7 * DAY
NA = -1  # a missing instant

UTC_US = pa.timestamp("us", tz="UTC")


def seconds(value: dt.date | dt.datetime) -> int:
    """Epoch seconds of a date (midnight UTC) or a datetime (naive = UTC)."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp())


START = seconds(dt.date(2023, 1, 1))  # the earliest history instant


def stream(seed: int, name: str) -> np.random.Generator:
    """An independent, reproducible random stream per (seed, purpose)."""
    return np.random.default_rng(np.random.SeedSequence([seed % 2**64, zlib.crc32(name.encode())]))


def choice(rng: np.random.Generator, n: int, weights: Sequence[float]) -> np.ndarray:
    """``n`` draws of an index into ``weights`` (normalised), as int64."""
    w = np.asarray(weights, dtype=np.float64)
    cdf = np.cumsum(w / w.sum())
    cdf[-1] = 1.0
    return np.searchsorted(cdf, rng.random(n), side="right").astype(np.int64)


def choice_rows(rng: np.random.Generator, weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One draw per row, row ``i`` from the weight vector ``weights[rows[i]]`` (a 2-D table)."""
    w = np.asarray(weights, dtype=np.float64)
    cdf = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
    cdf[:, -1] = 1.0
    u = rng.random(len(rows))
    c = cdf[rows]
    return (u[:, None] >= c).sum(axis=1).astype(np.int64)


def pick_by_hazards(rng: np.random.Generator, hazards: np.ndarray) -> np.ndarray:
    """Given per-row weights (rows x k), pick a column proportionally for each row."""
    cdf = np.cumsum(hazards, axis=1)
    total = cdf[:, -1:]
    u = rng.random(len(hazards))[:, None] * total
    return np.minimum((u >= cdf).sum(axis=1), hazards.shape[1] - 1).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# calendar
# ---------------------------------------------------------------------------------------------

_MONTHS = np.arange(0, (2200 - 1970) * 12 + 2, dtype=np.int64)
MONTH_START = _MONTHS.astype("datetime64[M]").astype("datetime64[s]").astype(np.int64)
DAYS_IN_MONTH = np.diff(MONTH_START) // DAY


def month_of(sec: np.ndarray | int) -> np.ndarray:
    """Months since 1970-01 of each instant."""
    return np.asarray(sec, dtype=np.int64).astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)


def month_number(months: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(year, month 1-12) of a months-since-1970 index."""
    months = np.asarray(months, dtype=np.int64)
    return 1970 + months // 12, months % 12 + 1


class Anchor:
    """Monthly billing anchored on an instant: ``at(k)`` is the anchor plus ``k`` calendar months,
    with the day of month clipped to the month's length (31 Jan -> 28/29 Feb -> 31 Mar)."""

    def __init__(self, sec: np.ndarray):
        sec = np.asarray(sec, dtype=np.int64)
        self.month = month_of(sec)
        within = sec - MONTH_START[self.month]
        self.dom = within // DAY
        self.tod = within % DAY

    def at(self, k: np.ndarray | int, rows: np.ndarray | None = None) -> np.ndarray:
        if rows is None:
            m, dom, tod = self.month, self.dom, self.tod
        else:
            m, dom, tod = self.month[rows], self.dom[rows], self.tod[rows]
        target = m + k
        return MONTH_START[target] + np.minimum(dom, DAYS_IN_MONTH[target] - 1) * DAY + tod


def monday_week(sec: np.ndarray) -> np.ndarray:
    """Index of the ISO week (Monday 00:00 UTC) containing each instant; 1970-01-05 was a Monday."""
    return (np.asarray(sec, dtype=np.int64) - 4 * DAY) // WEEK


def week_start(week: np.ndarray) -> np.ndarray:
    return np.asarray(week, dtype=np.int64) * WEEK + 4 * DAY


# ---------------------------------------------------------------------------------------------
# groups
# ---------------------------------------------------------------------------------------------

def expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows for ``counts[i]`` children of each parent: (parent index, position 0..count-1)."""
    counts = np.asarray(counts, dtype=np.int64)
    parent = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    pos = np.arange(len(parent), dtype=np.int64) - starts[parent]
    return parent, pos


def last_row_of(keys: np.ndarray, n: int) -> np.ndarray:
    """For each key 0..n-1, the index of its last row (-1 if none); ``keys`` need not be sorted.

    (Fancy assignment with repeated indices does not promise which write wins, so this takes
    the maximum explicitly.)
    """
    out = np.full(n, -1, dtype=np.int64)
    if len(keys):
        np.maximum.at(out, np.asarray(keys, dtype=np.int64), np.arange(len(keys), dtype=np.int64))
    return out


def first_in_group(keys: np.ndarray) -> np.ndarray:
    """For rows sorted by ``keys``: True where a new key starts."""
    out = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        out[1:] = keys[1:] != keys[:-1]
    return out


# ---------------------------------------------------------------------------------------------
# strings
# ---------------------------------------------------------------------------------------------

_PAIRS = np.array([[48 + i // 10, 48 + i % 10] for i in range(100)], dtype=np.uint8)


def _fixed_width(data: np.ndarray, n: int, width: int, valid: pa.Buffer | None = None,
                 null_count: int = -1) -> pa.Array:
    offsets = np.arange(0, width * (n + 1), width, dtype=np.int64)
    if offsets[-1] < 2**31:
        return pa.Array.from_buffers(pa.string(), n, [valid, pa.py_buffer(offsets.astype(np.int32)),
                                                      pa.py_buffer(data)], null_count)
    return pa.Array.from_buffers(pa.large_string(), n, [valid, pa.py_buffer(offsets), pa.py_buffer(data)],
                                 null_count).cast(pa.string())


def digits_width(maximum: int, minimum: int = 6) -> int:
    return max(minimum, len(str(int(maximum))))


_QUADS = np.frombuffer(b"".join(f"{i:04d}".encode() for i in range(10_000)), dtype=np.uint32)


def id_width(prefix: str, width: int) -> int:
    """``width`` rounded up so that prefix + digits fill whole 4-byte words (fast formatting)."""
    return width + (-(len(prefix.encode()) + width)) % 4


def ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded decimal ``numbers`` (e.g. ``cus_00000042``), as a string array.

    The digit count is ``id_width(prefix, width)``: at least ``width``, rounded up so every id is a
    whole number of 4-byte words, which lets four digits be written at a time.
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    n = len(numbers)
    p = prefix.encode()
    width = id_width(prefix, width)
    if n and (numbers.min() < 0 or numbers.max() >= 10 ** width):
        raise ValueError(f"{prefix!r} ids: numbers do not fit in {width} digits")
    total = len(p) + width
    words = total // 4
    full = len(p) // 4
    buf = np.empty((n, words), dtype=np.uint32)
    if full:
        buf[:, :full] = np.frombuffer(p[: 4 * full], dtype=np.uint32)
    v = numbers.copy()
    for col in range(words - 1, full, -1):
        buf[:, col] = _QUADS[v % 10_000]
        v //= 10_000
    k = 4 - len(p) % 4  # digits sharing the word with the end of the prefix
    tail = p[4 * full:]
    mixed = np.frombuffer(b"".join(tail + f"{i:0{k}d}".encode() for i in range(10 ** k)), dtype=np.uint32)
    buf[:, full] = mixed[v % 10 ** k]
    return _fixed_width(buf.view(np.uint8).reshape(-1), n, total)


def padded(numbers: np.ndarray, width: int) -> pa.Array:
    return ids("", numbers, width)


def take(values: Sequence[str] | pa.Array, codes: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """``values[codes]`` as a string array; rows where ``mask`` is True become null."""
    arr = values if isinstance(values, pa.Array) else pa.array(list(values), type=pa.string())
    idx = pa.array(np.asarray(codes, dtype=np.int64), mask=mask)
    return arr.take(idx)


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays and literals."""
    return pc.binary_join_element_wise(*parts, "")


def with_nulls(arr: pa.Array, mask: np.ndarray | None) -> pa.Array:
    if mask is None or not mask.any():
        return arr
    return pc.if_else(pa.array(mask), pa.scalar(None, type=arr.type), arr)


def iso_utc(chunk: pa.Array) -> pa.Array:
    """A ``timestamp[us, UTC]`` array as ISO 8601 strings ``2024-05-01T10:00:00Z`` (nulls kept)."""
    n = len(chunk)
    if n == 0:
        return pa.array([], type=pa.string())
    micro = pc.fill_null(chunk.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    sec = micro // 1_000_000
    days = sec // DAY
    d0 = int(days.min())
    d1 = int(days.max())
    base = dt.date(1970, 1, 1)
    table = np.frombuffer(b"".join((base + dt.timedelta(days=d)).isoformat().encode()
                                   for d in range(d0, d1 + 1)), dtype=np.uint8).reshape(-1, 10)
    di = days - d0
    rem = (sec - days * DAY).astype(np.int32)
    hh = rem // 3600
    rem -= hh * 3600
    mm = rem // 60
    ss = rem - mm * 60
    out = np.empty((n, 20), dtype=np.uint8)
    out[:, :10] = table[di]
    out[:, 10] = 84  # T
    out[:, 11:13] = _PAIRS[hh]
    out[:, 13] = 58
    out[:, 14:16] = _PAIRS[mm]
    out[:, 16] = 58
    out[:, 17:19] = _PAIRS[ss]
    out[:, 19] = 90  # Z
    valid = None
    if chunk.null_count:
        valid = pc.is_valid(chunk)
        valid = pa.py_buffer(np.packbits(valid.to_numpy(zero_copy_only=False), bitorder="little"))
    return _fixed_width(out.reshape(-1), n, 20, valid, chunk.null_count if valid is not None else 0)


def json_objects(pairs: Sequence[tuple[str, pa.Array | str]]) -> pa.Array:
    """Build ``{"k": "v", ...}`` strings from (key, string array or literal) pairs.

    Values must not need JSON escaping (codes, labels); null values drop the whole row to null.
    """
    parts: list[pa.Array | str] = ["{"]
    for i, (key, value) in enumerate(pairs):
        parts.append(("" if i == 0 else ", ") + f'"{key}": "')
        parts.append(value)
        parts.append('"')
    parts.append("}")
    return join(*parts)


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------

_ARROW_TYPES = {"timestamp": UTC_US, "integer": pa.int64(), "money": pa.int64(), "boolean": pa.bool_()}


def arrow_type(kind: str) -> pa.DataType:
    return _ARROW_TYPES.get(kind, pa.string())


def timestamps(sec: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Epoch seconds (``NA`` = null) as ``timestamp[us, UTC]``."""
    sec = np.asarray(sec, dtype=np.int64)
    if mask is None:
        mask = sec == NA
    else:
        mask = mask | (sec == NA)
    arr = pa.array(sec * 1_000_000, type=pa.int64(), mask=mask if mask.any() else None)
    return arr.view(UTC_US)


def build_table(spec: Table, n: int, columns: Mapping[str, object]) -> pa.Table:
    """A table with exactly ``spec``'s columns in order; absent columns are all-null.

    Values may be Arrow arrays, NumPy arrays (timestamps as epoch seconds with ``NA``), a tuple
    ``(numpy values, null mask)``, or a Python scalar repeated for every row.
    """
    unknown = set(columns) - set(spec.column_names)
    if unknown:
        raise KeyError(f"{spec.name}: not in the spec: {sorted(unknown)}")
    arrays = []
    seen: dict[int, pa.Array] = {}  # one Arrow array per NumPy timestamp array passed several times
    for col in spec.columns:
        typ = arrow_type(col.kind)
        value = columns.get(col.name)
        mask = None
        if isinstance(value, tuple):
            value, mask = value
        if value is None:
            arr = pa.nulls(n, type=typ)
        elif isinstance(value, (pa.Array, pa.ChunkedArray)):
            arr = value if value.type == typ else value.cast(typ)
        elif isinstance(value, np.ndarray):
            if col.kind == "timestamp":
                if mask is None and id(value) in seen:
                    arr = seen[id(value)]
                else:
                    arr = timestamps(value, mask)
                    if mask is None:
                        seen[id(value)] = arr
            else:
                arr = pa.array(value, type=typ, mask=mask if mask is not None and mask.any() else None)
        elif isinstance(value, str):
            arr = pa.array([value], type=typ).take(pa.array(np.zeros(n, dtype=np.int64)))
        else:
            arr = pa.array(np.full(n, value), type=typ)
        if len(arr) != n:
            raise ValueError(f"{spec.name}.{col.name}: {len(arr)} values for {n} rows")
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, names=spec.column_names)
