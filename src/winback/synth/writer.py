"""Write generated tables as CSV, Parquet or JSONL, one ``<table>.<ext>`` file per table.

Tables arrive typed (``timestamp[us, UTC]``, int64, bool, string). Parquet keeps the types;
CSV and JSONL get timestamps as ``2024-05-01T10:00:00Z`` strings, booleans as ``true``/``false``
and nulls as empty cells (CSV) or ``null`` (JSONL). Each file is written to a temporary name
and renamed, so a crash never leaves a half-written table behind.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from winback.synth.arrays import iso_utc

EXTENSIONS = {"csv": "csv", "parquet": "parquet", "jsonl": "jsonl"}


def textual(table: pa.Table) -> pa.Table:
    """Timestamps as ISO 8601 UTC strings; everything else unchanged."""
    columns = []
    done: dict[tuple, pa.ChunkedArray] = {}  # columns sharing one buffer are formatted once
    for field, column in zip(table.schema, table.columns):
        if pa.types.is_timestamp(field.type):
            key = tuple((c.buffers()[1].address, c.offset, len(c), c.null_count) for c in column.chunks)
            if key not in done:
                done[key] = pa.chunked_array([iso_utc(chunk) for chunk in column.chunks], type=pa.string())
            column = done[key]
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def write_table(table: pa.Table, path: Path, fmt: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "parquet":
        pq.write_table(table, tmp, compression="zstd", row_group_size=1 << 20)
    elif fmt == "csv":
        pcsv.write_csv(textual(table), tmp, write_options=pcsv.WriteOptions(batch_size=1 << 16))
    elif fmt == "jsonl":
        _write_jsonl(textual(table), tmp)
    else:  # pragma: no cover - validated by the caller
        raise ValueError(f"unknown format {fmt!r}")
    os.replace(tmp, path)


def _write_jsonl(table: pa.Table, path: Path) -> None:
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = true")
        con.register("rows_to_write", table)
        target = str(path).replace("'", "''")
        con.execute(f"COPY rows_to_write TO '{target}' (FORMAT json)")
    finally:
        con.close()
    if table.num_rows == 0:  # DuckDB may skip creating an empty file
        Path(path).touch()


class TableWriter:
    """Writes tables in background threads as they are handed over; ``finish`` waits for all.

    Arrow's CSV and Parquet writers release the GIL, so writing overlaps with the simulation
    still running on the main thread.
    """

    def __init__(self, out_dir: Path, fmt: str, progress=None, workers: int = 2):
        self.out_dir = Path(out_dir)
        self.fmt = fmt
        self.ext = EXTENSIONS[fmt]
        self.progress = progress
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="winback-write")
        self.futures: dict[str, object] = {}
        self.paths: dict[str, Path] = {}

    def submit(self, name: str, table: pa.Table) -> None:
        path = self.out_dir / f"{name}.{self.ext}"
        if self.progress:
            self.progress(f"writing {path.name} ({table.num_rows:,} rows)")
        self.paths[name] = path
        self.futures[name] = self.pool.submit(write_table, table, path, self.fmt)

    def finish(self) -> dict[str, Path]:
        try:
            for future in self.futures.values():
                future.result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        return dict(self.paths)

    def abort(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def write_all(tables: dict[str, pa.Table], out_dir: Path, fmt: str, progress=None,
              workers: int = 2) -> dict[str, Path]:
    """Write every table (largest first, ``workers`` at a time); returns {table: path}."""
    writer = TableWriter(out_dir, fmt, progress, workers)
    for name in sorted(tables, key=lambda name: -tables[name].num_rows):
        writer.submit(name, tables[name])
    paths = writer.finish()
    return {name: paths[name] for name in tables}
