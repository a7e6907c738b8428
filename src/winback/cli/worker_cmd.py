"""``winback worker`` (deliver the outbox) and ``winback suppressions`` (the suppression list)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from winback.cli.common import JsonOpt, WorkspaceOpt, emit_json, handle_errors, out
from winback.config import load_settings
from winback.kit.errors import WinbackError

suppressions_app = typer.Typer(help="Addresses that must not receive messages (unsubscribes, bounces, blocks).",
                               no_args_is_help=True)


@handle_errors
def worker_cmd(
    workspace: WorkspaceOpt = Path("."),
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Exit when no message is due.")] = False,
    worker_id: Annotated[Optional[str], typer.Option("--id", help="Worker name (default: host:pid:random).")] = None,
    max_messages: Annotated[Optional[int], typer.Option("--max-messages", min=1,
                                                        help="Stop after claiming this many messages.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Deliver due messages from the outbox (several workers may run at once)."""
    from winback.delivery.service import run

    settings = load_settings(workspace)
    summary = run(settings, worker_id=worker_id, until_idle=until_idle, max_messages=max_messages,
                  handle_signals=True).as_dict()
    if json_output:
        emit_json({"ok": True, **summary})
        return
    out.print(" ".join(f"{k}={summary[k]}" for k in ("sent", "deferred", "retried", "bounced", "failed",
                                                       "suppressed", "canceled", "seconds")), highlight=False)


@suppressions_app.command("list")
@handle_errors
def list_cmd(workspace: WorkspaceOpt = Path("."),
             address: Annotated[Optional[str], typer.Option("--address", help="Only this address.")] = None,
             limit: Annotated[Optional[int], typer.Option("--limit", min=1)] = None,
             json_output: JsonOpt = False) -> None:
    """List suppressed addresses, newest first."""
    from winback.delivery.service import list_suppressions

    rows = list_suppressions(load_settings(workspace), address, limit)
    if json_output:
        emit_json({"ok": True, "suppressions": rows})
        return
    grid = Table(title=f"Suppressions ({len(rows)})", title_justify="left")
    for column in ("address", "scope", "reason", "source", "created_at"):
        grid.add_column(column, overflow="fold")
    for r in rows:
        grid.add_row(r["address"], r["scope"], r["reason"], r["source"], r["created_at"].strftime("%Y-%m-%d %H:%M"))
    out.print(grid)


@suppressions_app.command("add")
@handle_errors
def add_cmd(address: Annotated[str, typer.Argument(help="E-mail address to suppress.")],
            reason: Annotated[str, typer.Argument(help="unsubscribed, hard_bounce, complaint, objected, "
                                                       "no_lawful_basis or manual.")] = "manual",
            scope: Annotated[str, typer.Option("--scope", help="all (every message) or commercial.")] = "all",
            detail: Annotated[Optional[str], typer.Option("--detail", help="A note kept with the entry.")] = None,
            workspace: WorkspaceOpt = Path("."), json_output: JsonOpt = False) -> None:
    """Suppress an address."""
    from winback.delivery.service import add_suppression

    added = add_suppression(load_settings(workspace), address, reason, scope=scope, detail=detail)
    if json_output:
        emit_json({"ok": True, "address": address.strip().lower(), "added": added})
        return
    out.print(f"{address.strip().lower()}: {'suppressed' if added else 'already suppressed'} ({scope}, {reason})",
              highlight=False)


@suppressions_app.command("remove")
@handle_errors
def remove_cmd(address: Annotated[str, typer.Argument(help="E-mail address.")],
               scope: Annotated[Optional[str], typer.Option("--scope", help="Only this scope.")] = None,
               workspace: WorkspaceOpt = Path("."), json_output: JsonOpt = False) -> None:
    """Lift the suppression of an address."""
    from winback.delivery.service import remove_suppression

    removed = remove_suppression(load_settings(workspace), address, scope)
    if removed == 0 and not json_output:
        raise WinbackError(f"{address.strip().lower()} is not suppressed")
    if json_output:
        emit_json({"ok": True, "address": address.strip().lower(), "removed": removed})
        return
    out.print(f"{address.strip().lower()}: {removed} suppression(s) removed", highlight=False)
