"""``winback generate``: a realistic dataset with ground truth."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from winback.cli.common import JsonOpt, emit_json, err, handle_errors, out, progress_bar
from winback.kit.errors import WinbackError


@handle_errors
def generate_cmd(
    kind: Annotated[str, typer.Option(help="saas or ecommerce.")] = "saas",
    customers: Annotated[int, typer.Option(help="Number of customers.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 42,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the dataset to.")] = Path("data"),
    file_format: Annotated[str, typer.Option("--file-format", help="csv, parquet or jsonl.")] = "csv",
    observation_end: Annotated[str, typer.Option(help="Last day of the simulated history.")] = "2025-12-31",
    json_output: JsonOpt = False,
) -> None:
    """Write a realistic SaaS or e-commerce dataset in the ingest formats, plus its ground truth."""
    from winback.synth import generate

    try:
        end = dt.date.fromisoformat(observation_end)
    except ValueError:
        raise WinbackError(f"--observation-end {observation_end!r}: expected YYYY-MM-DD") from None
    with progress_bar(not json_output and err.is_terminal) as bar:
        task = bar.add_task("generating", total=None)
        try:
            result = generate(kind, customers, seed, out_dir, fmt=file_format, observation_end=end,
                              progress=lambda msg: bar.update(task, description=msg))
        except ValueError as exc:
            raise WinbackError(str(exc)) from None
    summary = result.summary()
    if json_output:
        emit_json({"ok": True, "out": str(out_dir.resolve()), **summary})
        return
    out.print(f"Wrote {kind} dataset for {customers:,} customers to {out_dir} in {result.seconds:.1f}s")
    for table, rows in result.rows.items():
        out.print(f"  {table:<22}{rows:>12,}")
    out.print(f"  ground truth: {result.ground_truth}")
