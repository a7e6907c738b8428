"""``winback plan`` and ``winback campaigns``: enroll, explain, schedule and preview campaigns."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.table import Table

from winback.cli.common import JsonOpt, WorkspaceOpt, emit_json, handle_errors, out
from winback.config import load_settings

campaigns_app = typer.Typer(help="Win-back campaigns: list, enrollments, preview, schedule.", no_args_is_help=True)


def _money(minor: int | None, currency: str = "USD") -> str:
    from winback.kit.money import Money

    return "-" if minor is None else Money(int(minor), currency).format()


@handle_errors
def plan_cmd(
    workspace: WorkspaceOpt = Path("."),
    campaign: Annotated[Optional[List[str]], typer.Option("--campaign", "-c", help="Only these campaigns.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and explain, write nothing.")] = False,
    explain: Annotated[int, typer.Option(help="Explained decisions to include (0: every one).")] = 20,
    json_output: JsonOpt = False,
) -> None:
    """Enroll the customers the playbook selects, explain each decision, schedule due steps."""
    from winback.campaigns.planner import plan

    settings = load_settings(workspace)
    rolled_out = []
    if settings.tracking.auto_rollout and not dry_run:  # judge experiments first: new enrollments get winners
        from winback.tracking.rollout import evaluate_experiments

        rolled_out = [{"campaign": e["campaign"], "experiment": e["experiment"], "winner": e["winner"]}
                      for e in evaluate_experiments(settings) if e["decided"]]
    result = plan(settings, campaigns=campaign or None, dry_run=dry_run, explain=explain)
    payload = {"ok": True, "rolled_out": rolled_out, **result.as_dict()}
    if json_output:
        emit_json(payload)
        return
    for r in rolled_out:
        out.print(f"rolled out {r['campaign']} / {r['experiment']}: {r['winner']} (auto_rollout)", markup=False,
                  highlight=False)
    print_plan(payload)


def print_plan(p: dict, decisions: int = 3) -> None:
    out.print(f"[bold]plan[/] - playbook {p['playbook']} v{p['playbook_version']} as of {p['now'][:16]}"
              f"{' (dry run: nothing written)' if p['dry_run'] else ''}; {p['events_copied']:,} new events")
    table = Table("campaign", "enrolled", "holdout", "offers")
    offers: dict[str, list[str]] = {}
    for o in p["offers"]:
        offers.setdefault(o["campaign"], []).append(f"{o['offer']} {o['count']:,}")
    for key in sorted(set(p["enrolled"]) | set(p["held_out"])):
        table.add_row(key, f"{p['enrolled'].get(key, 0):,}", f"{p['held_out'].get(key, 0):,}",
                      ", ".join(offers.get(key, [])))
    out.print(table)
    if p["excluded"]:
        out.print("  not enrolled: " + "; ".join(f"{k} {v:,}" for k, v in p["excluded"].items()))
    for d in p["decisions"][:decisions]:
        out.print(f"  [bold]{d['customer']}[/] -> {d['campaign']} ({d['arm']}): " + " ".join(d.get("explanation", [])),
                  highlight=False)
    s = p.get("scheduled")
    if s:
        out.print(f"  scheduled now: {', '.join(f'{k} {v:,}' for k, v in s['messages'].items()) or 'nothing due'}"
                  + (f"; skipped {', '.join(f'{k} {v:,}' for k, v in s['skipped'].items())}" if s["skipped"] else "")
                  + (f"; exited {', '.join(f'{k} {v:,}' for k, v in s['exited'].items())}" if s["exited"] else ""))
        for e in s["errors"][:5]:
            out.print(f"  [red]error[/] {e}", highlight=False)


@campaigns_app.command("list")
@handle_errors
def list_cmd(workspace: WorkspaceOpt = Path("."), json_output: JsonOpt = False) -> None:
    """Campaigns of the active playbook with enrollments and messages."""
    from winback.campaigns.service import list_campaigns

    rows = list_campaigns(load_settings(workspace))
    if json_output:
        emit_json({"ok": True, "campaigns": rows})
        return
    table = Table("campaign", "status", "sequence", "prio", "holdout", "enrolled", "held out", "messages", "budget used")
    for r in rows:
        msgs = ", ".join(f"{k} {v:,}" for k, v in sorted(r["messages"].items())) or "-"
        budget = "-" if r["budget_minor"] is None else \
            f"{_money(r['committed_cost_minor'])} of {_money(r['budget_minor'])}"
        table.add_row(r["key"], r["status"], r["sequence"], str(r["priority"]), f"{r['holdout_share']:.0%}",
                      f"{r['enrolled']:,}", f"{r['held_out']:,}", msgs, budget)
    out.print(table)


@campaigns_app.command("enrollments")
@handle_errors
def enrollments_cmd(
    workspace: WorkspaceOpt = Path("."),
    campaign: Annotated[Optional[str], typer.Option("--campaign", "-c")] = None,
    customer: Annotated[Optional[str], typer.Option("--customer", help="External customer id.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 20,
    json_output: JsonOpt = False,
) -> None:
    """Enrollments with the decision that explains each (why this offer for this customer)."""
    from winback.campaigns.service import enrollments

    rows = enrollments(load_settings(workspace), campaign, customer, limit)
    if json_output:
        emit_json({"ok": True, "enrollments": rows})
        return
    for r in rows:
        d = r["decision"] or {}
        out.print(f"[bold]{r['customer']}[/] {r['campaign']} {r['arm']} {r['status']} step {r['next_step']} "
                  f"offer {r['offer_key'] or '-'}", highlight=False)
        for line in d.get("explanation", []):
            out.print(f"    {line}", highlight=False)


@campaigns_app.command("preview")
@handle_errors
def preview_cmd(
    campaign: Annotated[str, typer.Argument(help="Campaign key, e.g. winback_price.")],
    customer: Annotated[str, typer.Option("--customer", help="External customer id.")],
    workspace: WorkspaceOpt = Path("."),
    step: Annotated[Optional[str], typer.Option(help="Step key (default: the first email step).")] = None,
    locale: Annotated[Optional[str], typer.Option(help="Render in this locale instead of the customer's.")] = None,
    variant: Annotated[Optional[str], typer.Option(help="Subject variant key.")] = None,
    html: Annotated[Optional[Path], typer.Option(help="Also write the HTML part to this file.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Render a campaign message for one customer, as it would be sent."""
    from winback.campaigns.service import preview

    p = preview(load_settings(workspace), campaign, customer, step=step, locale=locale, subject_variant=variant)
    if html:
        html.write_text(p["html"], encoding="utf-8")
    if json_output:
        emit_json({"ok": True, **p})
        return
    out.print(f"[dim]{p['source']}; template {p['template']} ({p['locale']}), step {p['step']}[/]", highlight=False)
    out.print(f"To: {p['to']}\nSubject: {p['subject']}\n", markup=False, highlight=False)
    out.print(p["text"], markup=False, highlight=False)


@campaigns_app.command("schedule")
@handle_errors
def schedule_cmd(workspace: WorkspaceOpt = Path("."), json_output: JsonOpt = False) -> None:
    """Put every due sequence step into the outbox (the worker also does this on each round)."""
    from winback.campaigns.scheduler import schedule_due

    result = schedule_due(load_settings(workspace)).as_dict()
    if json_output:
        emit_json({"ok": True, **result})
        return
    out.print(f"messages {result['messages'] or 'none due'}; skipped {result['skipped']}; exited "
              f"{result['exited']}; completed {result['completed']}", highlight=False)


@campaigns_app.command("tasks")
@handle_errors
def tasks_cmd(
    workspace: WorkspaceOpt = Path("."),
    status: Annotated[str, typer.Option(help="open, done, canceled or all.")] = "open",
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 20,
    json_output: JsonOpt = False,
) -> None:
    """Phone-call tasks the campaigns created (key accounts: a learning call, not a sales call)."""
    from winback.campaigns.service import call_tasks

    rows = call_tasks(load_settings(workspace), None if status == "all" else status, limit)
    if json_output:
        emit_json({"ok": True, "tasks": rows})
        return
    for r in rows:
        out.print(f"[bold]{r['customer']}[/] {r['name'] or ''} {r['phone'] or '-'} due {r['due_at']:%Y-%m-%d} "
                  f"({r['campaign']}, {r['status']}): {r['title']}", highlight=False)
        for line in (r["body"] or "").splitlines()[:3]:
            out.print(f"    {line}", markup=False, highlight=False)
