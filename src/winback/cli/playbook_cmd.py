"""``winback playbook``: show, validate, export and list versions of the win-back playbook."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from winback.cli.common import JsonOpt, WorkspaceOpt, emit_json, handle_errors, issue_errors, out
from winback.config import load_settings

playbook_app = typer.Typer(help="The playbook: churn reason -> strategy -> offer -> campaign.", no_args_is_help=True)

NameOpt = Annotated[str, typer.Option("--name", help="Playbook name (the file playbooks/NAME.yaml).")]


def _playbookerror_type() -> type:
    from winback.playbooks.spec import PlaybookError

    return PlaybookError


_playbook_errors = issue_errors(_playbookerror_type)


def _money(minor: int | None, currency: str) -> str:
    if minor is None:
        return "-"
    from winback.playbooks.economics import format_minor

    return format_minor(minor, currency)


@playbook_app.command("show")
@handle_errors
@_playbook_errors
def show_cmd(workspace: WorkspaceOpt = Path("."), name: NameOpt = "default", json_output: JsonOpt = False) -> None:
    """The active playbook: strategies per churn reason, offers with their terms, campaigns."""
    from winback.playbooks.service import load_active, summary

    loaded = load_active(load_settings(workspace), name)
    data = summary(loaded.spec)
    if json_output:
        emit_json({"ok": True, "version": loaded.version, "origin": loaded.origin, "path": str(loaded.path), **data})
        return
    cur = data["currency"]
    out.print(f"[bold]{data['title']}[/bold]  ({data['name']} version {loaded.version}, {loaded.origin}: "
              f"{loaded.path})", highlight=False)
    grid = Table(title="Strategies", title_justify="left")
    for col in ("reason", "strategy", "offers by value tier", "campaign"):
        grid.add_column(col, overflow="fold")
    for s in data["strategies"]:
        offers = "\n".join(f"{tier}: {', '.join(keys)}" for tier, keys in s["offers"].items()) or "-"
        grid.add_row(s["reason"], s["title"] or "-", offers, s["campaign"] or "-")
    out.print(grid)
    if data["rules"]:
        rules = Table(title="Rules (in order)", title_justify="left")
        for col in ("rule", "when", "then"):
            rules.add_column(col, overflow="fold")
        for r in data["rules"]:
            when = ", ".join(f"{k}={v}" for k, v in r["when"].items())
            then = "exclude" if r["exclude"] else ", ".join(
                f"{k}: {r[k] if k != 'offers' else ', '.join(r[k])}" for k in ("strategy", "campaign", "offers")
                if r[k])
            rules.add_row(r["name"], when, then)
        out.print(rules)
    offers = Table(title=f"Offers (amounts in {cur})", title_justify="left")
    for col in ("offer", "kind", "title", "terms"):
        offers.add_column(col, overflow="fold")
    for o in data["offers"]:
        terms = dict(o["terms"])
        terms.pop("kind", None)
        for k in ("amount_minor", "cost_minor"):
            if terms.get(k):
                terms[k.removesuffix("_minor")] = _money(terms.pop(k), cur)
            else:
                terms.pop(k, None)
        offers.add_row(o["key"], o["kind"], o["title"] or "-", ", ".join(f"{k}={v}" for k, v in terms.items()))
    out.print(offers)
    camps = Table(title="Campaigns", title_justify="left")
    for col in ("campaign", "trigger", "sequence", "priority", "holdout", "budget", "offers", "experiments"):
        camps.add_column(col, overflow="fold")
    for c in data["campaigns"]:
        camps.add_row(c["key"] + ("" if c["enabled"] else " (paused)"), c["trigger"],
                      f"{c['sequence']} ({len(c['steps'])} steps)", str(c["priority"]), f"{c['holdout']:.0%}",
                      _money(c["budget_minor"], cur), ", ".join(c["offers"]) or "-", ", ".join(c["experiments"]) or "-")
    out.print(camps)


@playbook_app.command("validate")
@handle_errors
@_playbook_errors
def validate_cmd(file: Annotated[Path, typer.Argument(help="The playbook YAML file to check.")],
                 json_output: JsonOpt = False) -> None:
    """Check a playbook file; every problem is listed with its line and path (exit 2)."""
    from winback.playbooks.spec import load_playbook_file

    spec = load_playbook_file(file)
    counts = {k: len(getattr(spec, k)) for k in ("offers", "strategies", "rules", "campaigns", "sequences")}
    if json_output:
        emit_json({"ok": True, "file": str(file), "name": spec.name, **counts})
        return
    out.print(f"{file}: valid playbook {spec.name!r} (" + ", ".join(f"{v} {k}" for k, v in counts.items()) + ")",
              markup=False, highlight=False)


@playbook_app.command("export")
@handle_errors
@_playbook_errors
def export_cmd(workspace: WorkspaceOpt = Path("."), name: NameOpt = "default",
               version: Annotated[Optional[int], typer.Option("--version", help="An earlier version.")] = None) -> None:
    """Print the YAML of the active playbook (redirect it to playbooks/default.yaml to edit it)."""
    from winback.playbooks import repository as repo
    from winback.playbooks.service import load_active, state_engine

    settings = load_settings(workspace)
    load_active(settings, name)
    engine = state_engine(settings)
    try:
        with engine.connect() as conn:
            if version is None:
                row = repo.active_version_row(conn, name)
            else:
                row = repo.playbook_version(conn, name, version)[1]
    finally:
        engine.dispose()
    text = row["content"] if row else ""
    typer.echo(text if text.endswith("\n") else text + "\n", nl=False)


@playbook_app.command("versions")
@handle_errors
@_playbook_errors
def versions_cmd(workspace: WorkspaceOpt = Path("."), name: NameOpt = "default", json_output: JsonOpt = False) -> None:
    """Every saved version of the playbook (the active one is marked)."""
    from winback.playbooks.service import load_active, versions

    settings = load_settings(workspace)
    load_active(settings, name)
    rows = versions(settings, name)
    if json_output:
        emit_json({"ok": True, "versions": [{**r, "created_at": r["created_at"].isoformat()} for r in rows]})
        return
    grid = Table(title=f"Playbook {name}: versions", title_justify="left")
    for col in ("version", "origin", "saved", "hash", "active"):
        grid.add_column(col)
    for r in rows:
        grid.add_row(str(r["version"]), r["origin"], r["created_at"].strftime("%Y-%m-%d %H:%M"),
                     r["content_hash"][:12], "yes" if r["active"] else "")
    out.print(grid)


@playbook_app.command("explain")
@handle_errors
@_playbook_errors
def explain_cmd(customer: Annotated[str, typer.Argument(help="The customer's external id.")],
                workspace: WorkspaceOpt = Path("."),
                campaign: Annotated[Optional[str], typer.Option("--campaign", help="Decide for this (non-win-back) "
                                                                "campaign instead.")] = None,
                name: NameOpt = "default", json_output: JsonOpt = False) -> None:
    """Why this customer would get this campaign, strategy and offer (nothing is saved)."""
    from winback.playbooks.service import explain_customer

    decision = explain_customer(load_settings(workspace), customer, campaign_key=campaign, name=name)
    if json_output:
        emit_json({"ok": True, "decision": decision.as_dict()})
        return
    for line in decision.explanation:
        out.print(line, markup=False, highlight=False)
