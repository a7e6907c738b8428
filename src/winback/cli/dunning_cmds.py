"""``winback dunning ...``: failed payments - retries, reminders, recovery.

One function per command, registered on :data:`dunning_app` (``winback dunning``) in
:mod:`winback.cli.app`. Every command takes ``--workspace`` and ``--json`` and goes through
:func:`~winback.cli.common.handle_errors`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from winback.cli.common import JsonOpt, WorkspaceOpt, emit_json, handle_errors, out
from winback.config import load_settings
from winback.kit.errors import WinbackError

dunning_app = typer.Typer(help="Failed payments: retries, reminders, recovery.", no_args_is_help=True)

SinceOpt = Annotated[Optional[str], typer.Option("--since", help="Only invoices that first failed at or after this "
                                                                 "date (ISO 8601, UTC).")]
UntilOpt = Annotated[Optional[str], typer.Option("--until", help="... and before this date (exclusive).")]


def _instant(text: str | None, option: str) -> dt.datetime | None:
    from winback.kit.clock import parse_instant

    if text is None or not text.strip():
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise WinbackError(f"{option}: not a date: {text!r} (expected e.g. 2025-12-01)") from None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _ci(entry: dict) -> str:
    if entry.get("ci_low") is None:
        return "-"
    return f"{entry['ci_low'] * 100:.1f}-{entry['ci_high'] * 100:.1f}%"


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} d"


# ------------------------------------------------------------------------------------ report

@dunning_app.command("report")
@handle_errors
def report_cmd(
    workspace: WorkspaceOpt = Path("."),
    since: SinceOpt = None,
    until: UntilOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """What dunning recovered: failed invoices, recovery by how and by decline category, time to recovery."""
    from winback.dunning.report import dunning_report

    start, end = _instant(since, "--since"), _instant(until, "--until")
    if start and end and start >= end:
        raise WinbackError("--since must be before --until")
    r = dunning_report(load_settings(workspace), since=start, until=end)
    if json_output:
        emit_json({"ok": True, **r})
        return
    render_report(r)


def render_report(r: dict) -> None:
    """The report as Rich tables (the default output of ``winback dunning report``)."""
    from winback.dunning.report import money_text

    w = r["window"]
    span = f"{(w['since'] or 'the start')[:10]} to {(w['until'] or 'now')[:10]}"
    if not r["failed"]["invoices"]:
        out.print(f"[bold]dunning[/] - no failed payments recorded ({span})")
        return
    rate = r["recovery_rate"]
    summary = Table("", "invoices", "amount", "MRR", title=f"failed payments ({span})")
    summary.add_row("failed", f"{r['failed']['invoices']:,}", money_text(r["failed"]["amount"]),
                    money_text(r["failed"]["mrr"]))
    summary.add_row("open (at risk)", f"{r['open']['invoices']:,}", money_text(r["open"]["amount_at_risk"]),
                    money_text(r["open"]["mrr_at_risk"]))
    summary.add_row("recovered", f"{r['recovered']['invoices']:,}", money_text(r["recovered"]["amount"]),
                    money_text(r["recovered"]["mrr"]))
    lost = r["lost"]
    summary.add_row(f"lost ({lost['by_reason'].get('canceled', 0):,} canceled, "
                    f"{lost['by_reason'].get('paused', 0):,} paused)", f"{lost['invoices']:,}",
                    money_text(lost["amount"]), money_text(lost["mrr"]))
    summary.add_row("closed at the provider", f"{r['closed']['invoices']:,}", money_text(r["closed"]["amount"]), "")
    out.print(summary)
    out.print(f"recovery rate {_pct(rate['rate'])} (95% CI {_ci(rate)}); of resolved invoices "
              f"{_pct(rate['rate_of_resolved'])}")

    how = Table("recovered by", "invoices", "share", "amount", "MRR")
    for name, e in r["recovered"]["by"].items():
        how.add_row(name.replace("_", " "), f"{e['invoices']:,}", _pct(e["share"]), money_text(e["amount"]),
                    money_text(e["mrr"]))
    out.print(how)

    for title, first, rows in (
            ("recovery by decline category", "category", [(k, e) for k, e in r["by_category"].items()]),
            ("recovery by first decline code (top codes)", "code",
             [(f"{e['code']} ({e['category']})", e) for e in r["by_decline_code"]])):
        table = Table(title=title)
        table.add_column(first, no_wrap=True)
        for col in ("failed", "recovered", "open", "lost", "closed", "rate"):
            table.add_column(col, justify="right")
        table.add_column("95% CI", no_wrap=True)
        for name, e in rows:
            table.add_row(name, f"{e['failed']:,}", f"{e['recovered']:,}", f"{e['open']:,}", f"{e['lost']:,}",
                          f"{e['closed']:,}", _pct(e["rate"]), _ci(e))
        out.print(table)

    t = r["time_to_recovery"]
    hist = ", ".join(f"{h['bucket']} {h['invoices']:,}" for h in t["histogram"])
    out.print(f"time to recovery: median {_days(t['median_days'])}, p75 {_days(t['p75_days'])}, "
              f"p90 {_days(t['p90_days'])} ({hist})")
    a = r["attempts"]
    out.print(f"charges {a['charges']:,} ({a['retries']:,} retries), success {_pct(a['rate'])}; at most "
              f"{a['max_per_card_30d']:,} on one card in 30 days (cap {a['cap_per_card_30d']})")
    n = r["notices"]
    upd = n["cards_updated_after_reminder"]
    out.print(f"notices: {n['failed_payment_sent']:,} failed-payment e-mails, {n['expiry_reminders_sent']:,} expiry "
              f"reminders for {n['cards_reminded']:,} cards, {upd['total']:,} cards updated within 30 days "
              f"({upd['customer']:,} by the customer, {upd['card_updater']:,} by the card updater); "
              f"{n['card_updater_updates']:,} card-updater updates")


@dunning_app.command("run")
@handle_errors
def run_cmd(workspace: WorkspaceOpt = Path("."),
            until_idle: Annotated[bool, typer.Option("--until-idle", help="One round, then exit (cron, tests).")] = False,
            poll: Annotated[float, typer.Option("--poll", min=0.5, help="Seconds between rounds.")] = 5.0,
            json_output: JsonOpt = False) -> None:
    """The dunning worker: apply stored billing webhooks, charge due retries, queue customer notices.

    Runs until SIGTERM/SIGINT (several may run at once); `winback worker` delivers the notices."""
    import signal
    import threading

    from winback.dunning.service import run

    settings = load_settings(workspace)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        totals = run(settings, until_idle=until_idle, poll_seconds=poll, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if json_output:
        emit_json({"ok": True, **totals})
        return
    out.print(" ".join(f"{k}={v}" for k, v in totals.items()), highlight=False)


@dunning_app.command("sandbox-import")
@handle_errors
def sandbox_import_cmd(workspace: WorkspaceOpt = Path("."),
                       seed: Annotated[int, typer.Option(help="Seed of the simulated issuers.")] = 7,
                       json_output: JsonOpt = False) -> None:
    """Copy active subscriptions and their cards from the history into the sandbox gateway (SIMULATED
    billing: try dunning offline on your own data)."""
    from winback.dunning.sandbox_billing import import_from_history
    from winback.kit.db import make_engine

    settings = load_settings(workspace)
    if settings.dunning.gateway != "sandbox":
        raise WinbackError("sandbox-import needs [dunning] gateway = \"sandbox\"")
    engine = make_engine(settings.resolved_state_url)
    try:
        summary = import_from_history(settings, engine, now=settings.clock().now(), seed=seed).as_dict()
    finally:
        engine.dispose()
    if json_output:
        emit_json({"ok": True, **summary})
        return
    out.print(f"imported {summary['imported_subscriptions']:,} subscriptions and {summary['imported_cards']:,} cards "
              "into the sandbox", highlight=False)


@dunning_app.command("status")
@handle_errors
def status_cmd(workspace: WorkspaceOpt = Path("."), json_output: JsonOpt = False) -> None:
    """Webhooks waiting or failed, cases by status, the next charge due."""
    from winback.dunning.service import status

    s = status(load_settings(workspace))
    if json_output:
        emit_json({"ok": True, **s})
        return
    out.print(f"gateway {s['gateway']}; webhooks: " + (", ".join(f"{k} {v:,}" for k, v in sorted(s["webhooks"].items()))
                                                      or "none"), highlight=False)
    out.print("cases: " + (", ".join(f"{k} {v:,}" for k, v in sorted(s["cases"].items())) or "none")
              + f"; waiting for a new card {s['waiting_for_new_card']:,}; next step at {s['next_step_at'] or '-'}",
              highlight=False)
    for f in s["failed_webhooks"]:
        out.print(f"  failed {f['provider']} {f['event_id']} ({f['type']}): {f['error']}", highlight=False, markup=False)
