"""``winback results``, ``winback attribute``, ``winback experiments`` and ``winback bounces import``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from winback.cli.common import JsonOpt, WorkspaceOpt, emit_json, handle_errors, out
from winback.config import load_settings
from winback.kit.errors import WinbackError

bounces_app = typer.Typer(help="Bounces and complaints: import DSN/ARF mail or provider webhook exports.",
                          no_args_is_help=True)


def _money(minor: int | float | None, currency: str) -> str:
    from winback.kit.money import Money

    return "-" if minor is None else Money(int(round(minor)), currency).format()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


@handle_errors
def results_cmd(
    workspace: WorkspaceOpt = Path("."),
    campaign: Annotated[Optional[str], typer.Option("--campaign", "-c", help="Only this campaign.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """What each campaign sent, what people did, and what it recovered against the holdout."""
    from winback.tracking.results import campaign_results

    r = campaign_results(load_settings(workspace), campaign=campaign)
    if json_output:
        emit_json({"ok": True, **r})
        return
    cur = r["currency"]
    table = Table("campaign", "sent", "human opens", "clicks", "conversions", "revenue", "lift (rate, CI)",
                  "incremental revenue (CI)", "ROI", title=f"results (holdout window {r['window_days']} days)")
    rows = [(c["key"], c["funnel"], c["holdout"]) for c in r["campaigns"]] + [("total", r["total"]["funnel"],
                                                                                r["total"]["holdout"])]
    for key, f, h in rows:
        lift = h["lift"]
        ci = lift["rate_ci"]
        rate = "-" if lift["rate"] is None else \
            f"{lift['rate'] * 100:+.1f} pp" + (f" [{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]" if ci else "")
        rci = lift["incremental_revenue_ci_minor"]
        inc = _money(lift["incremental_revenue_minor"], cur) + (
            f" [{_money(rci[0], cur)}, {_money(rci[1], cur)}]" if rci else "")
        table.add_row(key, f"{f['sent']:,}", f"{f['opens_human']:,} (+{f['opens_machine']:,} machine)",
                      f"{f['clicks_human']:,}", f"{f['conversions']:,}", _money(f["revenue_minor"], cur), rate, inc,
                      "-" if h["roi"] is None else f"{h['roi']:.2f}x")
    out.print(table)
    exps = [(c["key"], e) for c in r["campaigns"] for e in c["experiments"]]
    if exps:
        et = Table("campaign", "experiment", "metric", "P(best)", "p-value", "SRM", "winner", "rolled out",
                   title="experiments")
        for key, e in exps:
            pb = ", ".join(f"{k} {v:.2f}" for k, v in e["prob_best"].items()) or "-"
            et.add_row(key, e["experiment"], e.get("metric", "-"), pb,
                       "-" if e["p_value"] is None else f"{e['p_value']:.3g}",
                       "mismatch" if e["srm"]["mismatch"] else "ok", e["winner"] or "-", e["rolled_out"] or "-")
        out.print(et)


@handle_errors
def attribute_cmd(workspace: WorkspaceOpt = Path("."), json_output: JsonOpt = False) -> None:
    """Attribute new conversions (returns, purchases, recovered payments) to the last message."""
    from winback.tracking.conversions import attribute

    r = attribute(load_settings(workspace))
    if json_output:
        emit_json({"ok": True, **r})
        return
    revenue = ", ".join(_money(v, k) for k, v in r["revenue_minor_by_currency"].items()) or "no revenue"
    out.print(f"[bold]attribute[/] - {r['conversions']:,} new conversions: {r['attributed']:,} attributed, "
              f"{r['unattributed']:,} without a message in the window; {revenue}")
    for item in r["ignored_revenue"][:10]:
        out.print(f"  revenue ignored for {item['event_id']}: {item['reason']}", highlight=False, markup=False)


@handle_errors
def experiments_cmd(
    workspace: WorkspaceOpt = Path("."),
    apply: Annotated[bool, typer.Option("--apply", help="Roll out winners now (default: [tracking] auto_rollout).")]
    = False,
    json_output: JsonOpt = False,
) -> None:
    """Judge A/B/n experiments and roll out winners to new enrollments."""
    from winback.tracking.rollout import evaluate_experiments

    rows = evaluate_experiments(load_settings(workspace), apply=True if apply else None)
    if json_output:
        emit_json({"ok": True, "experiments": rows})
        return
    table = Table("campaign", "experiment", "metric", "winner", "rolled out", "why")
    for e in rows:
        table.add_row(e["campaign"], e["experiment"], e["metric"], e["winner"] or "-", e["rolled_out"] or "-",
                      e["reason"] or "")
    out.print(table)


@bounces_app.command("import")
@handle_errors
def bounces_import_cmd(
    path: Annotated[Path, typer.Argument(help="A maildir, a folder of .eml files, one .eml file, or (with "
                                              "--provider) a JSON file of webhook bodies.")],
    workspace: WorkspaceOpt = Path("."),
    provider: Annotated[Optional[str], typer.Option(help="ses | sendgrid | postmark | mailgun: PATH holds that "
                                                         "provider's webhook bodies (one, or a JSON list).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Import bounces and complaints: suppress addresses, mark messages bounced, opt complainers out."""
    from winback.tracking.bounces import ingest_mailbox, ingest_reports, parse_provider

    settings = load_settings(workspace)
    if provider:
        try:
            bodies = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WinbackError(f"cannot read {path}: {exc}") from None
        if provider != "sendgrid" and isinstance(bodies, list):
            records = [r for body in bodies for r in parse_provider(provider, body)]
        else:
            records = parse_provider(provider, bodies)
        r = ingest_reports(settings, records, source=f"provider:{provider}")
    else:
        r = ingest_mailbox(settings, path)
    if json_output:
        emit_json({"ok": True, **r})
        return
    out.print(f"[bold]bounces[/] - {r['records']:,} records: {r['hard_bounces']:,} hard bounces, "
              f"{r['soft_bounces']:,} soft (ignored), {r['complaints']:,} complaints, {r['suppressed']:,} newly "
              f"suppressed, {r['duplicates']:,} already seen, {r['unmatched']:,} without a known message")
    for s in r.get("skipped", [])[:20]:
        out.print(f"  skipped {s['file']}: {s['reason']}", highlight=False, markup=False)
    for e in r["errors"][:20]:
        out.print(f"  error {e.get('file') or e.get('event_id')}: {e['error']}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add the tracking commands to the root app (one line in :mod:`winback.cli.app`)."""
    app.command("results")(results_cmd)
    app.command("attribute")(attribute_cmd)
    app.command("experiments")(experiments_cmd)
    app.add_typer(bounces_app, name="bounces")
