"""CSV, JSONL and Parquet readers: every cell becomes text (or null) with its row number.

Readers never guess types: the validator decides what a cell means, so a bad cell is
reported with its file, row, column and value instead of failing the whole read.
"""

from __future__ import annotations

import codecs
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from winback.ingest.sources.base import ROW, RawTable
from winback.kit.errors import RowError, ValidationFailed

CSV_BLOCK_SIZE = 16 << 20  # one CSV record may be at most this large
MAX_JSON_LINE = 16 << 20
FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def file_format(path: Path) -> str | None:
    """``csv``/``jsonl``/``parquet`` from the name (``orders.csv.gz`` is csv), else None."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst"):
        suffixes = suffixes[:-1]
    return FORMATS.get(suffixes[-1]) if suffixes else None


def table_name_from_path(path: Path) -> str:
    """``orders.csv.gz`` -> ``orders``."""
    name = path.name.lower()
    for suffix in (".gz", ".bz2", ".zst"):
        name = name.removesuffix(suffix)
    return name.rsplit(".", 1)[0]


def read_file(path: Path, table: str, encoding: str = "utf-8") -> RawTable:
    fmt = file_format(path)
    if fmt is None:
        raise ValidationFailed([RowError(str(path), None, None, None,
                                         "unknown file type: expected .csv, .tsv, .jsonl, .ndjson or .parquet")])
    if not path.is_file():
        raise ValidationFailed([RowError(str(path), None, None, None, "file not found")])
    if path.stat().st_size == 0:
        raise ValidationFailed([RowError(str(path), None, None, None, "file is empty")])
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValidationFailed([RowError(str(path), None, None, None, f"unknown encoding {encoding!r} "
                                         f"(e.g. utf-8, cp1252, shift_jis)")]) from None
    if fmt == "csv":
        return read_csv(path, table, encoding=encoding, delimiter="\t" if ".tsv" in path.suffixes else ",")
    if fmt == "jsonl":
        return read_jsonl(path, table, encoding=encoding)
    return read_parquet(path, table)


# --- CSV ------------------------------------------------------------------------------------

def _fail(path: Path, reason: str, row: int | None = None, column: str | None = None,
          value: str | None = None) -> ValidationFailed:
    return ValidationFailed([RowError(str(path), row, column, value, reason)])


def _header(path: Path, encoding: str, delimiter: str) -> list[str]:
    import csv

    opener = _open_text(path, encoding)
    with opener as fh:
        try:
            first = next(csv.reader(fh, delimiter=delimiter), None)
        except UnicodeDecodeError as exc:
            row = _first_undecodable_row(path, encoding)
            if row is not None and row > 1:  # the decoder reads ahead of the header line
                raise _fail(path, f"not valid {encoding} text at this row; re-save the file as UTF-8 or pass "
                                  f"--encoding (e.g. cp1252, shift_jis)", row=row) from exc
            raise _fail(path, f"header is not valid {encoding} text ({exc.reason}); pass --encoding", row=1) from exc
        except csv.Error as exc:
            raise _fail(path, f"cannot read the header: {exc}", row=1) from exc
    if not first or all(not c.strip() for c in first):
        raise _fail(path, "no header row: the first line must name the columns", row=1)
    return first


def _open_text(path: Path, encoding: str):
    raw = _open_binary(path)
    return io.TextIOWrapper(raw, encoding="utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding,
                            errors="strict", newline="")


def _open_binary(path: Path):
    name = path.name.lower()
    if name.endswith(".gz"):
        import gzip
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        import bz2
        return bz2.open(path, "rb")
    return open(path, "rb")


def check_header(path: Path, names: list[str]) -> list[str]:
    errors: list[RowError] = []
    clean = [n.strip().lstrip("\ufeff") for n in names]
    seen: dict[str, int] = {}
    for i, n in enumerate(clean, start=1):
        if not n:
            errors.append(RowError(str(path), 1, None, None, f"column {i} has no name in the header"))
        elif n in seen:
            errors.append(RowError(str(path), 1, n, n, f"column name appears twice (columns {seen[n]} and {i})"))
        elif n == ROW:
            errors.append(RowError(str(path), 1, n, n, f"column name {ROW} is reserved; rename or remove column {i}"))
        else:
            seen[n] = i
    if errors:
        raise ValidationFailed(errors)
    return clean


def read_csv(path: Path, table: str, encoding: str = "utf-8", delimiter: str = ",") -> RawTable:
    names = check_header(path, _header(path, encoding, delimiter))
    bad_rows: list[RowError] = []

    def on_invalid(row) -> str:
        number = row.number + 0 if row.number is not None else None
        bad_rows.append(RowError(str(path), number, None, _clip(row.text),
                                 f"expected {row.expected_columns} cells, found {row.actual_columns}"))
        return "skip"

    read_opts = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=CSV_BLOCK_SIZE,
                                  encoding="utf8" if encoding.lower() in ("utf-8", "utf8") else encoding)
    parse_opts = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid)
    convert_opts = pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, null_values=[""],
                                        strings_can_be_null=True, quoted_strings_can_be_null=True)
    try:
        data = pacsv.read_csv(path, read_options=read_opts, parse_options=parse_opts, convert_options=convert_opts)
    except pa.ArrowInvalid as exc:
        message = " ".join(str(exc).split())
        if "UTF8" in message or "utf8" in message.lower() or "decode" in message.lower():
            row = _first_undecodable_row(path, encoding)
            raise _fail(path, f"not valid {encoding} text at this row; re-save the file as UTF-8 or pass "
                              f"--encoding (e.g. cp1252, shift_jis)", row=row) from exc
        if "skip initial" in message:  # a header line and nothing else, not even a newline
            raise _fail(path, "no data rows: the file has a header but nothing under it") from exc
        if "straddling" in message or "block" in message:
            raise _fail(path, f"a record is larger than {CSV_BLOCK_SIZE >> 20} MB (unclosed quote?)") from exc
        raise _fail(path, f"cannot parse CSV: {message}") from exc
    except (UnicodeDecodeError, LookupError) as exc:
        raise _fail(path, f"cannot decode the file as {encoding}: {exc}") from exc
    if bad_rows:
        if any(e.row is None for e in bad_rows):
            bad_rows = _number_bad_rows(path, bad_rows, encoding, delimiter)
        raise ValidationFailed(bad_rows)
    if data.num_rows == 0:
        raise _fail(path, "no data rows: the file has a header but nothing under it")
    numbers = None if _one_line_per_record(path, data.num_rows) else \
        _record_numbers(path, encoding, delimiter, data.num_rows)
    rows = pa.array(numbers) if numbers else pa.array(np.arange(2, data.num_rows + 2, dtype=np.int64))
    return RawTable(table, str(path), data.append_column(ROW, rows))


def _clip(text: str | None, limit: int = 80) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_undecodable_row(path: Path, encoding: str) -> int | None:
    decoder = codecs.getincrementaldecoder("utf-8" if encoding.lower() in ("utf-8", "utf8") else encoding)("strict")
    with _open_binary(path) as fh:
        for number, line in enumerate(fh, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError:
                return number
    return None


def _number_bad_rows(path: Path, bad_rows: list[RowError], encoding: str = "utf-8",
                     delimiter: str = ",") -> list[RowError]:
    """Parallel parsing does not know row numbers: find them with a serial pass."""
    import csv

    expected = None
    found: list[RowError] = []
    try:
        with _open_text(path, encoding) as fh:
            for number, cells in enumerate(csv.reader(fh, delimiter=delimiter), start=1):
                if expected is None:
                    expected = len(cells)
                    continue
                if cells and len(cells) != expected:
                    found.append(RowError(str(path), number, None, _clip(delimiter.join(cells)),
                                          f"expected {expected} cells, found {len(cells)}"))
    except (csv.Error, UnicodeDecodeError):  # e.g. an unclosed quote swallowing the rest of the file
        return bad_rows
    return found or bad_rows


def _one_line_per_record(path: Path, records: int) -> bool:
    """True when the file has exactly one line per record after the header (no blank lines, no
    line breaks inside quoted cells), so record i is row i + 2. Counting newlines is fast."""
    newlines, last = 0, b""
    with _open_binary(path) as fh:
        while chunk := fh.read(16 << 20):
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
    lines = newlines + (0 if last == b"\n" else 1)
    return lines == records + 1


def _record_numbers(path: Path, encoding: str, delimiter: str, expected: int) -> list[int] | None:
    """Row numbers (header = 1) of the non-blank records, or None when they cannot be matched up."""
    import csv

    numbers: list[int] = []
    try:
        with _open_text(path, encoding) as fh:
            for number, cells in enumerate(csv.reader(fh, delimiter=delimiter), start=1):
                if number > 1 and cells:
                    numbers.append(number)
    except (csv.Error, UnicodeDecodeError):
        return None
    return numbers if len(numbers) == expected else None


# --- JSON Lines -------------------------------------------------------------------------------

def read_jsonl(path: Path, table: str, encoding: str = "utf-8", json_columns: frozenset[str] = frozenset()) -> RawTable:
    from winback.models.history import TABLES_BY_NAME

    spec = TABLES_BY_NAME.get(table)
    if spec is not None:
        json_columns = frozenset(c.name for c in spec.columns if c.kind == "json")
    try:
        import orjson
        loads = orjson.loads
    except ImportError:  # pragma: no cover
        loads = json.loads

    columns: dict[str, list] = {}
    row_numbers: list[int] = []
    errors = _Collected(cap=1000)
    count = 0
    enc = "utf-8" if encoding.lower() in ("utf-8", "utf8") else encoding
    with _open_binary(path) as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            if len(line) > MAX_JSON_LINE:
                errors.append(RowError(str(path), number, None, None, f"line longer than {MAX_JSON_LINE >> 20} MB"))
                continue
            try:
                text = line.decode(enc)
                if number == 1:
                    text = text.lstrip("\ufeff")
                obj = loads(text)
            except UnicodeDecodeError:
                errors.append(RowError(str(path), number, None, None, f"not valid {encoding} text"))
                continue
            except ValueError as exc:
                errors.append(RowError(str(path), number, None, _clip(line.decode(enc, "replace").strip()),
                                       f"not valid JSON ({str(exc).splitlines()[0]})"))
                continue
            if not isinstance(obj, dict):
                errors.append(RowError(str(path), number, None, _clip(line.decode(enc, "replace").strip()),
                                       "each line must be a JSON object"))
                continue
            for key, value in obj.items():
                if not isinstance(key, str) or not key.strip():
                    errors.append(RowError(str(path), number, None, None, "empty field name"))
                    continue
                if isinstance(value, (dict, list)) and key not in json_columns:
                    errors.append(RowError(str(path), number, key, _clip(json.dumps(value, ensure_ascii=False)),
                                           "nested object or list where a single value belongs"))
                    continue
                col = columns.get(key)
                if col is None:
                    col = columns[key] = [None] * count
                col.append(_cell(value))
            count += 1
            row_numbers.append(number)
            for col in columns.values():
                if len(col) < count:
                    col.append(None)
    if errors.total:
        raise ValidationFailed(list(errors), total=errors.total)
    if count == 0:
        raise _fail(path, "no records: the file holds no JSON objects")
    arrays = {name: pa.array(values, type=pa.string()) for name, values in columns.items()}
    arrays[ROW] = pa.array(row_numbers, type=pa.int64())
    return RawTable(table, str(path), pa.table(arrays))


class _Collected(list):
    """Keeps the first ``cap`` errors and counts them all."""

    def __init__(self, cap: int):
        super().__init__()
        self.cap = cap
        self.total = 0

    def append(self, error: RowError) -> None:
        self.total += 1
        if len(self) < self.cap:
            super().append(error)


def _cell(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


# --- Parquet ----------------------------------------------------------------------------------

def read_parquet(path: Path, table: str) -> RawTable:
    try:
        data = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _fail(path, f"not a readable Parquet file: {' '.join(str(exc).split())}") from exc
    names = check_header(path, data.column_names)
    if data.num_rows == 0:
        raise _fail(path, "no data rows")
    columns = {}
    for name, column in zip(names, data.columns):
        columns[name] = _to_text(path, name, column)
    columns[ROW] = pa.array(np.arange(1, data.num_rows + 1, dtype=np.int64))
    return RawTable(table, str(path), pa.table(columns))


def _to_text(path: Path, name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    t = column.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return column.cast(pa.string())
    if pa.types.is_dictionary(t):
        return _to_text(path, name, column.cast(t.value_type))
    if pa.types.is_timestamp(t):
        if t.tz is None:
            column = pc.assume_timezone(column, "UTC")
        else:
            column = column.cast(pa.timestamp(t.unit, tz="UTC"))
        return pc.strftime(column, format="%Y-%m-%dT%H:%M:%S", locale="C").cast(pa.string())
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_date(t) \
            or pa.types.is_decimal(t):
        return column.cast(pa.string())
    if pa.types.is_struct(t) or pa.types.is_list(t) or pa.types.is_map(t):
        values = [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in column.to_pylist()]
        return pa.chunked_array([pa.array(values, type=pa.string())])
    raise _fail(path, f"column type {t} is not supported", column=name)
