"""``winback demo``: the whole system end to end on a generated SaaS company."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from winback.cli.common import JsonOpt, emit_json, err, handle_errors, out, progress_bar
from winback.kit.errors import WinbackError

DEMO_MARKER = ".winback-demo"
SEND_DAYS = 21  # the demo sends three weeks of campaigns on a virtual clock (the four-email sequence spans 19)


@handle_errors
def demo_cmd(
    directory: Annotated[Path, typer.Option("--dir", help="Demo workspace folder (recreated).")] = Path("winback-demo"),
    customers: Annotated[int, typer.Option(help="SaaS customers to generate.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    json_output: JsonOpt = False,
) -> None:
    """Generate a SaaS company, ingest it into a fresh workspace and run every pipeline stage."""
    from winback.campaigns.planner import plan
    from winback.campaigns.service import sending_report
    from winback.delivery.service import run_simulated
    from winback.reports.analysis_report import run_analysis
    from winback.history.store import ibis_connection
    from winback.history.summary import overview
    from winback.ingest.service import ingest
    from winback.synth import generate
    from winback.workspace import init_workspace, status

    started = time.perf_counter()
    root = directory.expanduser().resolve()
    _reset(root)
    observation_end = dt.date(2025, 12, 31)
    steps: dict[str, float] = {}
    with progress_bar(not json_output and err.is_terminal) as bar:
        task = bar.add_task("workspace", total=7)
        t = time.perf_counter()
        settings = init_workspace(root, name="winback-demo", now=f"{observation_end.isoformat()}T23:59:59Z")
        (root / DEMO_MARKER).write_text("created by `winback demo`; the demo recreates this folder\n")
        steps["init"] = time.perf_counter() - t
        bar.update(task, advance=1, description="generating data")
        t = time.perf_counter()
        data_dir = root / "data"
        gen = generate("saas", customers, seed, data_dir, fmt="parquet", observation_end=observation_end,
                       progress=lambda msg: bar.update(task, description=msg))
        steps["generate"] = time.perf_counter() - t
        bar.update(task, advance=1, description="ingesting")
        t = time.perf_counter()
        result = ingest(settings, data_dir)
        steps["ingest"] = time.perf_counter() - t
        bar.update(task, advance=1, description="summarising")
        t = time.perf_counter()
        con = ibis_connection(settings.history_path)
        try:
            history = overview(con)
        finally:
            con.disconnect()
        steps["summary"] = time.perf_counter() - t
        bar.update(task, advance=1, description="analysing")
        t = time.perf_counter()
        analysis, report = run_analysis(settings, note=lambda msg: bar.update(task, description=msg))
        steps["analyze"] = time.perf_counter() - t
        bar.update(task, advance=1, description="planning campaigns")
        t = time.perf_counter()
        planned = plan(settings, explain=5, schedule=False)
        steps["plan"] = time.perf_counter() - t
        bar.update(task, advance=1, description=f"sending {SEND_DAYS} days of campaigns to the maildir")
        t = time.perf_counter()
        start = settings.clock().now()
        sending = run_simulated(settings, start=start, days=SEND_DAYS)
        steps["send"] = time.perf_counter() - t
        report_sent = sending_report(settings)
        counts = status(settings)
        bar.update(task, advance=1)
    from winback.insights.repository import at_risk
    from winback.segments.priorities import priority_list

    priorities = priority_list(settings, 10)
    risky = at_risk(settings, 5)
    payload = {
        "ok": True,
        "workspace": str(root),
        "customers": customers,
        "seed": seed,
        "observation_end": observation_end.isoformat(),
        "generated": gen.summary(),
        "ingest": result.as_dict(),
        "history": history,
        "analysis": analysis.summary,
        "report": str(report),
        "at_risk": risky,
        "priorities": priorities,
        "plan": planned.as_dict(),
        "sending": {"simulated_days": SEND_DAYS, "worker": sending.as_dict(), **report_sent},
        "stores": {"state": counts["state_store"]["tables"], "history": counts["history_store"]["tables"]},
        "seconds": {k: round(v, 2) for k, v in steps.items()} | {"total": round(time.perf_counter() - started, 2)},
    }
    if json_output:
        emit_json(payload)
        return
    _print_summary(payload)


def _reset(root: Path) -> None:
    if root.exists():
        if not (root / DEMO_MARKER).exists():
            if any(root.iterdir()):
                raise WinbackError(f"{root} exists and is not a winback demo folder; pass --dir to choose another")
        else:
            shutil.rmtree(root)


def _money(minor_by_currency: dict) -> str:
    from winback.kit.money import Money

    return ", ".join(Money(int(v), c).format() for c, v in minor_by_currency.items()) or "0"


def _print_summary(p: dict) -> None:
    h = p["history"]
    out.print(f"[bold]winback demo[/] - workspace {p['workspace']} (simulated SaaS company, seed {p['seed']})")
    out.print(f"  ingested {p['ingest']['rows_read']:,} rows from {len(p['ingest']['files'])} files "
              f"in {p['seconds']['ingest']:.1f}s")
    out.print(f"  customers {h['customers']:,}; subscriptions {sum(h['subscriptions_by_status'].values()):,} "
              f"({', '.join(f'{k} {v:,}' for k, v in sorted(h['subscriptions_by_status'].items()))})")
    out.print(f"  active MRR {_money(h['active_mrr_minor'])}; lost MRR {_money(h['lost_mrr_minor'])}")
    share = h["involuntary_share_of_churn"]
    out.print(f"  churned subscriptions {h['churned_subscriptions']:,}; involuntary (payment failed) "
              f"{share:.0%} of churn" if share is not None else "  no churn")
    top = ", ".join(f"{k} {v:,}" for k, v in list(h["stated_cancel_reasons"].items())[:6])
    out.print(f"  stated cancel reasons: {top}")
    out.print(f"  failed payment attempts {h['failed_payment_attempts']:,}")
    from winback.cli.analytics_cmds import print_analysis, print_insights

    print_analysis(p["analysis"])
    print_insights(p["analysis"], p["at_risk"], p["priorities"])
    print_sending(p["plan"], p["sending"])
    out.print(f"  report (opens offline): {p['report']}")
    out.print(f"  done in {p['seconds']['total']:.1f}s; inspect with `winback status -w {p['workspace']}`")


def print_sending(planned: dict, sending: dict) -> None:
    from rich.table import Table

    out.print(f"[bold]Campaigns[/] - playbook {planned['playbook']} v{planned['playbook_version']}: "
              f"{sum(planned['enrolled'].values()):,} customers enrolled, {sum(planned['held_out'].values()):,} "
              f"held out as control groups; then {sending['simulated_days']} simulated days of sending")
    if planned["excluded"]:
        out.print("  not enrolled: " + "; ".join(f"{k} {v:,}" for k, v in planned["excluded"].items()))
    table = Table("campaign", "enrolled", "holdout", "main offer", "emails", box=None, padding=(0, 1))
    for key, c in sorted(sending["campaigns"].items()):
        sent = c["messages"].get("email:sent", 0)
        offers = sorted(c["offers"].items(), key=lambda kv: -kv[1])
        main = f"{offers[0][0]} ({offers[0][1] / max(c['treatment'], 1):.0%})" if offers else "-"
        table.add_row(key, f"{c['treatment']:,}", f"{c['holdout']:,}", main, f"{sent:,}")
    out.print(table)
    w = sending["worker"]
    out.print(f"  worker: {w['sent']:,} sent, {w['deferred']:,} deferred (quiet hours, caps), "
              f"{w['suppressed']:,} suppressed, {w['canceled']:,} canceled (customer came back or unsubscribed)")
    langs = ", ".join(f"{k} {v:,}" for k, v in sorted(sending["sent_by_language"].items(), key=lambda kv: -kv[1]))
    out.print(f"  emails by language: {langs}; coupons {sending['coupons'] or 'none'}")
    out.print("  what went to whom and why:")
    for e in sending["examples"][:4]:
        out.print(f"   - {e['to']} ({e['locale']}) {e['campaign']} step {e['step']}: {e['subject']!r}",
                  markup=False, highlight=False)
        if e["why"]:
            out.print(f"       {e['why'][-1]}", markup=False, highlight=False)
    out.print(f"  messages: {sending['maildir']} (maildir: one file per email)")
