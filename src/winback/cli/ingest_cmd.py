"""``winback ingest``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from winback.cli.common import JsonOpt, WorkspaceOpt, emit_json, err, handle_errors, out, progress_bar
from winback.config import load_settings
from winback.ingest.service import IngestOptions, ingest, parse_mapping


@handle_errors
def ingest_cmd(
    path: Annotated[Path, typer.Argument(help="A CSV/Parquet/JSONL file, or a folder of them (customers.csv ...).")],
    table: Annotated[Optional[str], typer.Option(help="Table the file holds (default: from its name).")] = None,
    format: Annotated[str, typer.Option("--format", help="'stripe' for Stripe dashboard exports.")] = "auto",
    source: Annotated[Optional[str], typer.Option(help="Name of the source system (part of every key).")] = None,
    map_: Annotated[Optional[list[str]], typer.Option(
        "--map", help="Column mapping CANONICAL=COLUMN, repeatable (e.g. --map email='E-mail').")] = None,
    allow_extra_columns: Annotated[bool, typer.Option(help="Ignore columns the table does not know.")] = False,
    encoding: Annotated[str, typer.Option(help="Text encoding of CSV/JSONL files (e.g. cp1252, shift_jis).")] = "utf-8",
    workspace: WorkspaceOpt = Path("."),
    json_output: JsonOpt = False,
) -> None:
    """Validate and load data files into the workspace (all-or-nothing, idempotent)."""
    settings = load_settings(workspace)
    options = IngestOptions(table=table, format=format, source=source, mapping=parse_mapping(map_ or []),
                            allow_extra_columns=allow_extra_columns, encoding=encoding)
    with progress_bar(not json_output and err.is_terminal) as bar:
        task = bar.add_task("ingest", total=1)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=max(total, 1))

        result = ingest(settings, path, options, progress=progress)
    if json_output:
        emit_json({"ok": True, **result.as_dict()})
        return
    summary = result.as_dict()
    grid = Table(title=f"Imported {path} (source {result.source}) in {result.seconds:.1f}s", title_justify="left")
    for col in ("table", "rows", "inserted", "updated", "unchanged"):
        grid.add_column(col, justify="left" if col == "table" else "right")
    for name, counts in result.tables.items():
        grid.add_row(name, *(f"{v:,}" for v in counts.as_dict().values()))
    out.print(grid)
    if result.skipped:
        out.print(f"skipped (not a table file): {', '.join(result.skipped)}")
    out.print(f"{summary['inserted']:,} inserted, {summary['updated']:,} updated, {summary['unchanged']:,} unchanged")
