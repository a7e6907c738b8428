"""Validate a :class:`RawTable` against its canonical spec inside DuckDB, vectorised.

Every bad cell is found in one pass (file, row, column, value, reason); nothing is written
to any persistent table. A clean batch ends up in a temporary table ``_clean_<table>`` with
typed, normalised columns, ``source``, ``_row`` and a content hash ``_row_hash``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from winback.ingest import rules
from winback.ingest.sources.base import ROW, RawTable
from winback.kit.errors import RowError
from winback.models.history import Table, get_table


@dataclass
class TableCheck:
    table: str
    file: str
    rows: int
    errors: list[RowError]
    error_total: int

    @property
    def ok(self) -> bool:
        return self.error_total == 0


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def clean_name(table: str) -> str:
    return f"_clean_{table}"


def header_errors(raw: RawTable, spec: Table, allow_extra: bool) -> tuple[list[RowError], list[str]]:
    """Problems with the set of columns, and the extra columns to ignore."""
    errors: list[RowError] = []
    present = set(raw.columns)
    extra = [c for c in raw.columns if not spec.has(c)]
    if extra and not allow_extra:
        hint = _closest_hint(extra, spec)
        errors.append(RowError(raw.file, 1, extra[0], None,
                               f"unknown column{'s' if len(extra) > 1 else ''} for table {spec.name}: "
                               f"{', '.join(extra)}{hint}; rename with --map CANONICAL=COLUMN or pass "
                               f"--allow-extra-columns to ignore"))
    for name in spec.required_names:
        if name not in present:
            errors.append(RowError(raw.file, 1, name, None, f"required column {name!r} is missing"))
    return errors, extra


def _closest_hint(extra: list[str], spec: Table) -> str:
    import difflib

    hints = []
    for name in extra:
        match = difflib.get_close_matches(name.lower(), spec.column_names, n=1, cutoff=0.6)
        if match:
            hints.append(f"{name!r} -> {match[0]!r}?")
    return f" (did you mean {', '.join(hints)})" if hints else ""


def check_table(con: duckdb.DuckDBPyConnection, raw: RawTable, source: str, now: dt.datetime,
                *, reject_formulas: bool = True, allow_extra: bool = False, max_errors: int = 200,
                future_tolerance: dt.timedelta = dt.timedelta(minutes=10)) -> TableCheck:
    spec = get_table(raw.table)
    head, _extra = header_errors(raw, spec, allow_extra)
    if head:
        return TableCheck(spec.name, raw.file, raw.num_rows, head, len(head))

    view = f"_raw_{spec.name}"
    for statement in rules.lookup_sql():
        con.execute(statement)
    con.register(view, _trimmed(raw.data, [c for c in raw.columns if spec.has(c)]))
    present = set(raw.columns)
    now_sql = f"TIMESTAMP '{(now.replace(tzinfo=None) + future_tolerance).isoformat(sep=' ')}'"

    cells, parsed, errs = [], [], []
    for i, col in enumerate(spec.columns):
        if col.name in present:
            cell = q(col.name)  # already trimmed, empty cells already null (see _trimmed)
            if col.default is not None:
                cell = f"coalesce({cell}, {rules.lit(col.default)})"
        else:
            cell = rules.lit(col.default) if col.default is not None else "CAST(NULL AS VARCHAR)"
        cells.append(f"{cell} AS c{i}")
        p = rules.parse_sql(col, f"c{i}")
        if col.kind == "locale":
            p = _locale_case(con, view, col.name, f"c{i}") if col.name in present else "CAST(NULL AS VARCHAR)"
        parsed.append(f"{p} AS p{i}")
        check = rules.error_sql(col, f"c{i}", f"p{i}", now_sql, reject_formulas)
        missing = "'required value is missing'" if col.required else "NULL"
        errs.append(f"CASE WHEN c{i} IS NULL THEN {missing} ELSE {check} END AS e{i}")

    # One materialisation: typed values under their canonical names, one reason column per cell
    # (NULL when fine), the content hash. Raw text is re-read from the file only for bad rows.
    stage = clean_name(spec.name)
    typed = ", ".join(f"p{i} AS {q(c.name)}" for i, c in enumerate(spec.columns))
    hashed = ", ".join(f"p{i}" for i in range(len(spec.columns)))
    reasons = [e.rsplit(" AS ", 1)[0] + f" AS _e{i}" for i, e in enumerate(errs)]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {stage} AS
        WITH cells AS (SELECT {q(ROW)} AS _row, {', '.join(cells)} FROM {view}),
             parsed AS MATERIALIZED (SELECT *, {', '.join(parsed)} FROM cells)
        SELECT {typed}, {rules.lit(source)} AS source, (hash({hashed}) >> 1)::BIGINT AS _row_hash, _row,
               {', '.join(reasons)}
        FROM parsed""")
    n = len(spec.columns)
    total = con.execute(f"SELECT {' + '.join(f'count(_e{i})' for i in range(n))} FROM {stage}").fetchone()[0]
    errors: list[RowError] = []
    if total:
        bad = f"SELECT * FROM {stage} WHERE {' OR '.join(f'_e{i} IS NOT NULL' for i in range(n))} " \
              f"ORDER BY _row LIMIT {max_errors}"
        unions = " UNION ALL ".join(
            f"SELECT b._row, {i} AS col, c.c{i} AS value, b._e{i} AS reason FROM bad b JOIN cells c USING (_row) "
            f"WHERE b._e{i} IS NOT NULL" for i in range(n))
        rows = con.execute(f"""
            WITH bad AS ({bad}),
                 cells AS (SELECT {q(ROW)} AS _row, {', '.join(cells)} FROM {view}
                           WHERE {q(ROW)} IN (SELECT _row FROM bad))
            SELECT * FROM ({unions}) ORDER BY _row, col LIMIT {max_errors}""").fetchall()
        errors = [RowError(raw.file, r, spec.columns[c].name, v, reason) for r, c, v, reason in rows]
    con.unregister(view)

    dup_errors, dup_total = _duplicate_keys(con, stage, spec, raw.file, max_errors)
    errors += dup_errors
    total += dup_total
    if total:
        con.execute(f"DROP TABLE IF EXISTS {stage}")
    errors.sort(key=lambda e: (e.row or 0))
    return TableCheck(spec.name, raw.file, raw.num_rows, errors[:max_errors], total)


def _trimmed(data: pa.Table, columns: list[str]) -> pa.Table:
    """Cells without surrounding blanks (space, tab, CR, LF); empty cells become null.

    Done in Arrow: about 30x faster than DuckDB's trim with a character set."""
    out = {}
    for name in columns:
        trimmed = pc.utf8_trim(data.column(name), " \t\r\n")
        out[name] = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
    out[ROW] = data.column(ROW)
    return pa.table(out)


def _locale_case(con, view: str, column: str, cell: str) -> str:
    values = [r[0] for r in con.execute(
        f"SELECT DISTINCT trim({q(column)}, ' \t\r\n') FROM {view} WHERE {q(column)} IS NOT NULL LIMIT 100000"
    ).fetchall()]
    mapping = {v: rules.normalise_locale(v) for v in values if v}
    known = [(raw, norm) for raw, norm in mapping.items() if norm]
    if not known:
        return "CAST(NULL AS VARCHAR)"
    whens = " ".join(f"WHEN {rules.lit(raw)} THEN {rules.lit(norm)}" for raw, norm in known)
    return f"CASE {cell} {whens} END"


def _duplicate_keys(con, stage: str, spec: Table, file: str, max_errors: int) -> tuple[list[RowError], int]:
    keys = ", ".join(q(k) for k in spec.key)
    not_null = " AND ".join(f"{q(k)} IS NOT NULL" for k in spec.key)
    # cheap test first (no lists); the detailed query runs only when there are duplicates
    extra = con.execute(f"SELECT count(*) - count(DISTINCT ({keys})) FROM {stage} WHERE {not_null}").fetchone()[0]
    if not extra:
        return [], 0
    dup = f"""SELECT {keys}, list(_row ORDER BY _row) AS rows_ FROM {stage}
              WHERE {not_null} GROUP BY ALL HAVING count(*) > 1"""
    total = extra
    errors = []
    for rec in con.execute(f"SELECT * FROM ({dup}) ORDER BY rows_[1] LIMIT {max_errors}").fetchall():
        key_values, rows_ = rec[:-1], rec[-1]
        value = "/".join(str(v) for v in key_values)
        for r in rows_[1:]:
            errors.append(RowError(file, r, "/".join(spec.key), value,
                                   f"duplicate {'/'.join(spec.key)}: row {rows_[0]} has the same key"))
    return errors, int(total)


def reference_errors(con, spec: Table, file: str, source: str, batch_tables: set[str],
                     history_tables: set[str], max_errors: int) -> tuple[list[RowError], int]:
    """Rows whose references point nowhere: not in this import and not in the history for this source."""
    errors: list[RowError] = []
    total = 0
    clean = clean_name(spec.name)
    for col in spec.columns:
        if not col.references:
            continue
        ref_table, ref_col = col.references
        conds = []
        if ref_table in batch_tables:
            conds.append(f"NOT EXISTS (SELECT 1 FROM {clean_name(ref_table)} b WHERE b.{q(ref_col)} = s.{q(col.name)})")
        if ref_table in history_tables:
            conds.append(f"NOT EXISTS (SELECT 1 FROM {q(ref_table)} h WHERE h.source = {rules.lit(source)} "
                         f"AND h.{q(ref_col)} = s.{q(col.name)})")
        if not conds:
            conds = ["TRUE"]
        query = f"SELECT s._row, s.{q(col.name)} FROM {clean} s WHERE s.{q(col.name)} IS NOT NULL AND {' AND '.join(conds)}"
        n = con.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]
        if n:
            total += n
            for row, value in con.execute(f"{query} ORDER BY s._row LIMIT {max_errors}").fetchall():
                errors.append(RowError(file, row, col.name, value,
                                       f"unknown {ref_col}: no such row in {ref_table} (source {source!r})"))
    return errors, total
