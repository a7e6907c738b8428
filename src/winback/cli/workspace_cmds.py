"""``winback init`` and ``winback status``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from winback.cli.common import JsonOpt, WorkspaceOpt, emit_json, handle_errors, out
from winback.config import load_settings
from winback.workspace import init_workspace, status


@handle_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")] = Path("."),
    state_url: Annotated[Optional[str], typer.Option(
        help="State store URL, e.g. postgresql+psycopg://user@host/db (default: a SQLite file).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a workspace: winback.toml, the state and history stores, and its folders."""
    settings = init_workspace(directory, state_url=state_url)
    payload = {"ok": True, "workspace": str(settings.workspace), "state_url": settings.resolved_state_url,
               "history_url": settings.resolved_history_url}
    if json_output:
        emit_json(payload)
    else:
        out.print(f"Workspace ready at [bold]{settings.workspace}[/]")
        out.print(f"  state store   {settings.resolved_state_url}")
        out.print(f"  history store {settings.resolved_history_url}")


@handle_errors
def status_cmd(workspace: WorkspaceOpt = Path("."), json_output: JsonOpt = False) -> None:
    """Row counts of every table in the state and history stores."""
    report = status(load_settings(workspace))
    if json_output:
        emit_json({"ok": True, **report})
        return
    out.print(f"Workspace {report['workspace']}")
    for store in ("state_store", "history_store"):
        table = Table(title=f"{store.replace('_', ' ')}: {report[store]['url']}", title_justify="left")
        table.add_column("table")
        table.add_column("rows", justify="right")
        for name, count in report[store]["tables"].items():
            table.add_row(name, f"{count:,}")
        out.print(table)
