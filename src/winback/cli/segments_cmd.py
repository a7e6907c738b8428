"""``winback segments``: list, show, preview, refresh and add segments."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.table import Table

from winback.cli.common import (JsonOpt, WorkspaceOpt, emit_json, err, handle_errors, issue_errors, out,
                                progress_bar)
from winback.config import load_settings
from winback.kit.clock import parse_instant
from winback.kit.errors import WinbackError

segments_app = typer.Typer(help="Declarative customer segments, compiled to SQL and materialised.",
                           no_args_is_help=True)

AsOfOpt = Annotated[Optional[str], typer.Option(
    "--as-of", help="Evaluate at this instant (ISO 8601; default: now, or the workspace's pinned clock).")]


def _as_of(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise WinbackError(f"--as-of {text!r}: expected a date like 2025-12-31 or an ISO 8601 date-time") from None


def _specerror_type() -> type:
    from winback.segments.spec import SpecError

    return SpecError


_spec_errors = issue_errors(_specerror_type)


def _when(value) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else str(value)


@segments_app.command("list")
@handle_errors
def list_cmd(workspace: WorkspaceOpt = Path("."), json_output: JsonOpt = False) -> None:
    """Every segment: name, title, origin, version, members, last refresh and error."""
    from winback.segments.service import list_segments

    rows = list_segments(load_settings(workspace))
    if json_output:
        emit_json({"ok": True, "segments": [r.model_dump(mode="json") for r in rows]})
        return
    grid = Table(title="Segments", title_justify="left")
    grid.add_column("name", no_wrap=True)
    grid.add_column("title", overflow="fold", ratio=2)
    grid.add_column("origin")
    grid.add_column("version", justify="right")
    grid.add_column("members", justify="right", no_wrap=True)
    grid.add_column("refreshed")
    grid.add_column("error", overflow="fold", ratio=1)
    for r in rows:
        grid.add_row(r.name, r.title, r.origin, "-" if r.version is None else str(r.version),
                     "-" if r.member_count is None else f"{r.member_count:,}", _when(r.refreshed_at),
                     r.refresh_error or "")
    out.print(grid)


@segments_app.command("show")
@handle_errors
@_spec_errors
def show_cmd(
    name: Annotated[str, typer.Argument(help="Segment name.")],
    as_of: AsOfOpt = None,
    workspace: WorkspaceOpt = Path("."),
    json_output: JsonOpt = False,
) -> None:
    """A segment's spec, compiled SQL with its parameters, current count and stored state."""
    import yaml

    from winback.segments.compiler import render_with_params
    from winback.segments.service import show

    info = show(load_settings(workspace), name, _as_of(as_of))
    if json_output:
        emit_json({"ok": True, **info})
        return
    out.print(f"[bold]{info['name']}[/] ({info['origin']}): {info['title']}", highlight=False)
    if info["description"]:
        out.print(info["description"], markup=False, highlight=False)
    if info["path"]:
        out.print(f"file: {info['path']}", markup=False, highlight=False)
    match = {"match": (info["spec"] or {}).get("match")}
    out.print(yaml.safe_dump(match, sort_keys=False, allow_unicode=True).rstrip(), markup=False, highlight=False)
    out.print(render_with_params(info["sql"], info["params"]), markup=False, highlight=False)
    count = info.get("count")
    out.print(f"matches now: {'-' if count is None else f'{count:,}'}"
              + (f" ({info['count_error']})" if info.get("count_error") else ""), highlight=False)
    state = info.get("state")
    if state:
        stale = " (spec changed since; refresh to apply)" if state["stale"] else ""
        out.print(f"stored: version {state['version']}, {state['member_count']:,} members, refreshed "
                  f"{_when(state['refreshed_at'])}{stale}", highlight=False)
        if state["refresh_error"]:
            out.print(f"last error: {state['refresh_error']}", markup=False, highlight=False)
    else:
        out.print("stored: never refreshed")


@segments_app.command("preview")
@handle_errors
@_spec_errors
def preview_cmd(
    name_or_file: Annotated[str, typer.Argument(help="A segment name, or a spec file (.yaml, .yml, .json).")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="Sample rows to show.")] = 10,
    as_of: AsOfOpt = None,
    workspace: WorkspaceOpt = Path("."),
    json_output: JsonOpt = False,
) -> None:
    """Count and sample the customers a segment selects, and show its SQL. Writes nothing."""
    from winback.segments.compiler import render_with_params
    from winback.segments.service import preview

    result = preview(load_settings(workspace), name_or_file, limit=limit, as_of=_as_of(as_of))
    if json_output:
        emit_json({"ok": True, **result.model_dump(mode="json")})
        return
    out.print(f"[bold]{result.name}[/]: {result.count:,} customers as of {_when(result.as_of)}", highlight=False)
    if result.sample:
        grid = Table(title=f"first {len(result.sample)} (most lost value first)", title_justify="left")
        columns = [c for c in result.sample[0] if any(row.get(c) is not None for row in result.sample)]
        for col in columns:
            grid.add_column(col, overflow="fold")
        for row in result.sample:
            grid.add_row(*("" if row.get(c) is None else _when(row[c]) if isinstance(row[c], dt.datetime)
                           else str(row[c]) for c in columns))
        out.print(grid)
    out.print(render_with_params(result.sql, result.params), markup=False, highlight=False)


@segments_app.command("refresh")
@handle_errors
def refresh_cmd(
    names: Annotated[Optional[List[str]], typer.Argument(help="Segments to refresh (default: all).")] = None,
    as_of: AsOfOpt = None,
    workspace: WorkspaceOpt = Path("."),
    json_output: JsonOpt = False,
) -> None:
    """Re-evaluate segments and store who entered and who left (one transaction per segment)."""
    from winback.segments.service import refresh

    settings = load_settings(workspace)
    with progress_bar(not json_output and err.is_terminal) as bar:
        task = bar.add_task("refreshing segments", total=None)

        def note(name: str, done: int, total: int) -> None:
            bar.update(task, total=total, completed=done, description=f"refreshing {name}" if name else "done")

        outcomes = refresh(settings, names or None, _as_of(as_of), progress=note)
    failed = [o for o in outcomes if not o.ok]
    if json_output:
        emit_json({"ok": not failed, "segments": [o.model_dump(mode="json") for o in outcomes],
                   "seconds": round(sum(o.seconds for o in outcomes), 3)})
    else:
        grid = Table(title="Segments refreshed", title_justify="left")
        for col in ("name", "version", "members", "entered", "exited", "seconds", "error"):
            grid.add_column(col, justify="left" if col in ("name", "error") else "right",
                            no_wrap=col != "error", overflow="fold")
        for o in outcomes:
            grid.add_row(o.name, "-" if o.version is None else str(o.version),
                         "-" if o.member_count is None else f"{o.member_count:,}",
                         f"{o.entered:,}", f"{o.exited:,}", f"{o.seconds:.2f}", o.error or "")
        out.print(grid)
        unmatched = sum(o.unmatched for o in outcomes)
        if unmatched:
            out.print(f"note: {unmatched:,} selected profile rows have no customer in the state store "
                      f"(run `winback ingest` / `winback analyze` again)", highlight=False)
    if failed:
        if not json_output:
            err.print(f"error: {len(failed)} of {len(outcomes)} segments failed; first: {failed[0].name}: "
                      f"{failed[0].error}", markup=False, highlight=False)
        raise typer.Exit(1)


@segments_app.command("add")
@handle_errors
@_spec_errors
def add_cmd(
    file: Annotated[Path, typer.Argument(help="A segment spec file (.yaml, .yml or .json).")],
    workspace: WorkspaceOpt = Path("."),
    json_output: JsonOpt = False,
) -> None:
    """Validate a segment spec and save it into the workspace's segments/ folder."""
    from winback.segments.service import save

    result = save(load_settings(workspace), file)
    if json_output:
        emit_json({"ok": True, **result})
        return
    verb = "updated" if result["replaced"] else "added"
    extra = " (overrides the built-in of that name)" if result["overrides_builtin"] else ""
    out.print(f"segment [bold]{result['name']}[/] {verb}: {result['path']}{extra}", highlight=False)
    out.print("run `winback segments refresh` to materialise its members")
