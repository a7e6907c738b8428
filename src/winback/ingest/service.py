"""Ingest orchestration: discover files, read, validate everything, then write both stores at once.

All-or-nothing: every file of an import is validated before anything is written; then the
state store's customers and every history table are written inside one transaction per
store, committed together (state first, then history; if the history commit failed after
the state commit, re-running the import completes it, because loading is idempotent).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from winback.config import Settings
from winback.history.store import open_history
from winback.ingest.loader import TableCounts, upsert_history, upsert_state_customers
from winback.ingest.sources.base import RawTable
from winback.ingest.sources.tabular import file_format, read_file, table_name_from_path
from winback.ingest.validate import TableCheck, check_table, reference_errors
from winback.kit.db import make_engine, session_scope
from winback.kit.errors import RowError, ValidationFailed, WinbackError
from winback.models.history import TABLES, TABLES_BY_NAME
from winback.models.imports import ImportRun

Progress = Callable[[str, int, int], None]  # (stage description, done, total)


@dataclass
class IngestOptions:
    table: str | None = None
    format: str = "auto"  # auto | stripe
    source: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)  # canonical column -> column in the file
    allow_extra_columns: bool = False
    encoding: str = "utf-8"


@dataclass
class IngestResult:
    import_id: int
    path: str
    source: str
    format: str
    files: list[dict]
    tables: dict[str, TableCounts]
    skipped: list[str]
    seconds: float
    state_customers: TableCounts = field(default_factory=TableCounts)

    @property
    def rows_read(self) -> int:
        return sum(c.rows for c in self.tables.values())

    def as_dict(self) -> dict:
        return {
            "import_id": self.import_id, "path": self.path, "source": self.source, "format": self.format,
            "files": self.files, "skipped": self.skipped, "seconds": round(self.seconds, 3),
            "rows_read": self.rows_read,
            "inserted": sum(c.inserted for c in self.tables.values()),
            "updated": sum(c.updated for c in self.tables.values()),
            "unchanged": sum(c.unchanged for c in self.tables.values()),
            "tables": {name: c.as_dict() for name, c in self.tables.items()},
            "state_customers": self.state_customers.as_dict(),
        }


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """``["email=E-mail Address", ...]`` -> ``{"email": "E-mail Address"}``."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        canonical, sep, column = pair.partition("=")
        if not sep or not canonical.strip() or not column.strip():
            raise WinbackError(f"--map {pair!r}: expected CANONICAL=COLUMN, e.g. email=E-mail Address")
        mapping[canonical.strip()] = column.strip()
    return mapping


def discover(path: Path, options: IngestOptions) -> tuple[list[tuple[Path, str]], list[str]]:
    """The (file, table) pairs to read, and the files skipped."""
    if not path.exists():
        raise WinbackError(f"{path}: no such file or directory")
    if options.format == "stripe":
        return _discover_stripe(path)
    if path.is_file():
        table = options.table or table_name_from_path(path)
        if table not in TABLES_BY_NAME:
            raise WinbackError(f"{path}: cannot tell which table this file is for; pass --table "
                               f"(one of {', '.join(TABLES_BY_NAME)})")
        return [(path, table)], []
    if options.table:
        raise WinbackError("--table applies to a single file, not to a directory")
    found: dict[str, Path] = {}
    skipped: list[str] = []
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        table = table_name_from_path(file)
        if file_format(file) is None or table not in TABLES_BY_NAME:
            skipped.append(file.name)
            continue
        if table in found:
            raise WinbackError(f"{path}: both {found[table].name} and {file.name} hold table {table}; keep one")
        found[table] = file
    if not found:
        raise WinbackError(f"{path}: no table files found (expected names like customers.csv, orders.parquet)")
    return [(found[t.name], t.name) for t in TABLES if t.name in found], skipped


def _discover_stripe(path: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    from winback.ingest.sources import stripe_export

    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    pairs, skipped = [], []
    for file in files:
        header = _csv_header(file) if file_format(file) == "csv" else None
        kind = stripe_export.detect_kind(file.name, header or []) if header is not None else None
        if kind is None:
            if path.is_file():
                raise WinbackError(f"{file}: not a recognised Stripe export (customers, subscriptions, invoices "
                                   f"or payments CSV)")
            skipped.append(file.name)
        else:
            pairs.append((file, kind))
    if not pairs:
        raise WinbackError(f"{path}: no Stripe export files found")
    return pairs, skipped


def _csv_header(path: Path) -> list[str] | None:
    import csv
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return next(csv.reader(fh), None)
    except (UnicodeDecodeError, csv.Error):
        return None


def read_all(pairs: list[tuple[Path, str]], options: IngestOptions
             ) -> tuple[dict[str, RawTable], list[RowError], set[str], int]:
    """Read every file (collecting every reading problem) into canonical raw tables.

    Also returns the tables whose conversion already reported errors (they are not validated
    again, so one bad cell is reported once) and the count of problems found but not listed."""
    tables: dict[str, RawTable] = {}
    errors: list[RowError] = []
    converted_with_errors: set[str] = set()
    unlisted = 0
    for file, name in pairs:
        try:
            raw = read_file(file, "customers" if options.format == "stripe" else name, encoding=options.encoding)
        except ValidationFailed as exc:
            errors.extend(exc.errors)
            unlisted += exc.total - len(exc.errors)
            continue
        if options.format == "stripe":
            from winback.ingest.sources import stripe_export

            converted, conv_errors = stripe_export.convert(name, raw)
            errors.extend(conv_errors)
            outputs = converted
            if conv_errors:
                converted_with_errors.update(out.table for out in converted)
        else:
            outputs = [_apply_mapping(raw, options.mapping)]
        for out in outputs:
            if out.table in tables:
                errors.append(RowError(out.file, None, None, None,
                                       f"table {out.table} also comes from {tables[out.table].file}; keep one"))
                continue
            tables[out.table] = out
    return tables, errors, converted_with_errors, unlisted


def _apply_mapping(raw: RawTable, mapping: dict[str, str]) -> RawTable:
    if not mapping:
        return raw
    spec = TABLES_BY_NAME[raw.table]
    renames = {column: canonical for canonical, column in mapping.items()
               if column in raw.data.column_names and spec.has(canonical)}
    if not renames:
        return raw
    names = [renames.get(n, n) for n in raw.data.column_names]
    return RawTable(raw.table, raw.file, raw.data.rename_columns(names))


def _memory_limit_mb(share: float = 0.4) -> int:
    try:
        import os

        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 4096
    return max(512, int(total * share / 2**20))


def ingest(settings: Settings, path: Path | str, options: IngestOptions | None = None,
           progress: Progress | None = None) -> IngestResult:
    options = options or IngestOptions()
    if options.format not in ("auto", "stripe"):
        raise WinbackError(f"unknown --format {options.format!r}: expected stripe (or leave it out)")
    started = time.perf_counter()
    path = Path(path)
    source = options.source or ("stripe" if options.format == "stripe" else "default")
    clock = settings.clock()
    now = clock.now()
    note = progress or (lambda *_: None)

    pairs, skipped = discover(path, options)
    if options.mapping and options.table:
        spec = TABLES_BY_NAME[options.table]
        bad = [c for c in options.mapping if not spec.has(c)]
        if bad:
            raise WinbackError(f"--map: {', '.join(bad)} is not a column of {spec.name}")
    note("reading", 0, len(pairs))
    # Stripe exports are converted together (plans come from subscriptions); plain files are read one
    # at a time, just before their table is validated, and dropped right after: only the typed, clean
    # batch stays (in DuckDB, which spills to disk), so memory stays bounded on big imports.
    if options.format == "stripe":
        preloaded, errors, already_reported, unlisted = read_all(pairs, options)
        files = {name: raw.file for name, raw in preloaded.items()}
    else:
        preloaded, errors, already_reported, unlisted = {}, [], set(), 0
        files = {table: str(file) for file, table in pairs}

    ing = settings.ingest
    tolerance = dt.timedelta(minutes=ing.future_tolerance_minutes)
    rows_read: dict[str, int] = {}
    with open_history(settings.history_path) as con:
        con.execute("SET TimeZone='UTC'")
        con.execute("SET preserve_insertion_order = false")  # lets DuckDB insert in parallel
        # batches wait in DuckDB temp tables, which spill to disk past this limit; the rest of the
        # memory is left for the Arrow copy of the file being read
        con.execute(f"SET temp_directory = '{settings.history_path.parent / '.duckdb_tmp'}'")
        con.execute(f"SET memory_limit = '{_memory_limit_mb()}MB'")
        history_tables = {t.name for t in TABLES}
        checks: dict[str, TableCheck] = {}
        ordered = [t for t in TABLES if t.name in files]
        for n, spec in enumerate(ordered):
            note(f"validating {spec.name}", n, len(ordered))
            if spec.name in already_reported:
                continue
            if spec.name in preloaded:
                raw = preloaded.pop(spec.name)
            else:
                try:
                    raw = _apply_mapping(read_file(Path(files[spec.name]), spec.name, encoding=options.encoding),
                                         options.mapping)
                except ValidationFailed as exc:
                    errors.extend(exc.errors)
                    unlisted += exc.total - len(exc.errors)
                    already_reported.add(spec.name)
                    continue
            rows_read[spec.name] = raw.num_rows
            checks[spec.name] = check_table(con, raw, source, now, reject_formulas=ing.reject_formulas,
                                            allow_extra=options.allow_extra_columns, max_errors=ing.max_errors,
                                            future_tolerance=tolerance)
            del raw
            errors.extend(checks[spec.name].errors)
        total_errors = len(errors) + unlisted + sum(c.error_total - len(c.errors) for c in checks.values())
        clean = {name for name, c in checks.items() if c.ok and name not in already_reported}
        for spec in ordered:
            if spec.name not in clean:
                continue
            refs = [c.references[0] for c in spec.columns if c.references]
            if any(r in files and r not in clean for r in refs):
                continue  # the referenced batch has its own errors; do not pile up follow-on errors
            ref_errors, ref_total = reference_errors(con, spec, files[spec.name], source, clean,
                                                     history_tables, ing.max_errors)
            errors.extend(ref_errors)
            total_errors += ref_total
        if errors or total_errors:
            errors.sort(key=lambda e: (e.file, e.row or 0))
            raise ValidationFailed(errors[: ing.max_errors], total=max(total_errors, len(errors)))

        counts: dict[str, TableCounts] = {}
        state_counts = TableCounts()
        engine = make_engine(settings.resolved_state_url)
        try:
            with session_scope(engine) as session:
                run = ImportRun(started_at=now, path=str(path.resolve()), source=source, format=options.format,
                                status="succeeded", files=len(pairs))
                session.add(run)
                session.flush()
                con.execute("BEGIN TRANSACTION")
                try:
                    for n, spec in enumerate(ordered):
                        note(f"loading {spec.name}", n, len(ordered))
                        counts[spec.name] = upsert_history(con, spec, run.id, now)
                    if "customers" in files:
                        note("loading customer records", len(ordered), len(ordered))
                        state_counts = upsert_state_customers(session, con, source, now)
                    run.finished_at = clock.now()
                    run.rows_read = sum(c.rows for c in counts.values())
                    run.rows_inserted = sum(c.inserted for c in counts.values())
                    run.rows_updated = sum(c.updated for c in counts.values())
                    run.rows_unchanged = sum(c.unchanged for c in counts.values())
                    run.detail = json.dumps({k: v.as_dict() for k, v in counts.items()})
                    session.flush()
                    import_id = run.id
                    session.commit()
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
        finally:
            engine.dispose()
    note("done", len(ordered), len(ordered))
    listed = [{"file": files[t.name], "table": t.name, "rows": rows_read.get(t.name, 0)} for t in ordered]
    return IngestResult(import_id, str(path), source, options.format, listed, counts, skipped,
                        time.perf_counter() - started, state_counts)
