"""``winback demo``: the whole system end to end on a generated SaaS company."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path
from typing import Annotated, Optional

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
    serve: Annotated[bool, typer.Option("--serve", help="Afterwards create a demo admin user and open the "
                                                        "dashboard on the demo workspace.")] = False,
    port: Annotated[Optional[int], typer.Option(help="Port for --serve (default [web] port).", min=1,
                                                max=65535)] = None,
    json_output: JsonOpt = False,
) -> None:
    """Generate a SaaS company, ingest it into a fresh workspace and run every pipeline stage.

    After three simulated weeks of sending, the recipients are SIMULATED from the generator's
    ground truth (opens, clicks, returns, coupons - all labelled simulated), conversions are
    attributed and each campaign is measured against its holdout; the true simulated lift is
    printed next to the measured one and its confidence interval."""
    from winback.campaigns.planner import plan
    from winback.campaigns.service import sending_report
    from winback.delivery.service import run_simulated
    from winback.reports.analysis_report import build_report, run_analysis
    from winback.history.store import ibis_connection
    from winback.history.summary import overview
    from winback.ingest.service import ingest
    from winback.synth import generate
    from winback.tracking.conversions import attribute
    from winback.tracking.results import campaign_results
    from winback.tracking.simulation import simulate_recipients
    from winback.workspace import init_workspace, status
    from winback.dunning.report import dunning_report
    from winback.dunning.sandbox_billing import SimulatedBilling
    from winback.kit.db import make_engine

    started = time.perf_counter()
    root = directory.expanduser().resolve()
    _reset(root)
    observation_end = dt.date(2025, 12, 31)
    steps: dict[str, float] = {}
    with progress_bar(not json_output and err.is_terminal) as bar:
        task = bar.add_task("workspace", total=9)
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
        billing_engine = make_engine(settings.resolved_state_url)
        billing = SimulatedBilling(settings, billing_engine, start=start, seed=seed)
        sending = run_simulated(settings, start=start, days=SEND_DAYS, on_round=billing)
        billing_engine.dispose()
        steps["send"] = time.perf_counter() - t
        report_sent = sending_report(settings)
        bar.update(task, advance=1, description="SIMULATED recipients: opens, clicks, returns")
        t = time.perf_counter()
        simulation = simulate_recipients(settings, truth_path=gen.ground_truth, seed=seed)
        steps["simulate"] = time.perf_counter() - t
        bar.update(task, advance=1, description="attributing and measuring against the holdout")
        t = time.perf_counter()
        measured_at = _move_clock(settings, simulation.until or start)
        attribution = attribute(settings, now=measured_at)
        results = campaign_results(settings, now=measured_at)
        dunning = dunning_report(settings, now=measured_at)
        if report is not None:  # the HTML report again, with what dunning did in the simulated weeks
            build_report({**analysis.report_data, "dunning": dunning}, report)
        steps["measure"] = time.perf_counter() - t
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
        "results": _results_payload(simulation, attribution, results, measured_at),
        "dunning": {"simulated_billing": billing.summary.as_dict(), "worker": billing.dunning, "report": dunning},
        "stores": {"state": counts["state_store"]["tables"], "history": counts["history_store"]["tables"]},
        "seconds": {k: round(v, 2) for k, v in steps.items()} | {"total": round(time.perf_counter() - started, 2)},
    }
    if json_output:
        emit_json(payload)
    else:
        _print_summary(payload)
    if serve:
        _serve(settings, port)


DEMO_ADMIN = "admin@demo.winback.local"


def _move_clock(settings, until: dt.datetime) -> dt.datetime:
    """Pin the workspace's clock just after the last simulated event, so the results, `winback status`
    and the dashboard see every simulated conversion in the past (the holdout window has closed)."""
    import re

    measured_at = until.replace(microsecond=0) + dt.timedelta(seconds=1)
    stamp = measured_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    toml = settings.workspace / "winback.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(re.sub(r'(?m)^now = "[^"]*"', f'now = "{stamp}"', text, count=1), encoding="utf-8")
    settings.now = stamp
    return measured_at


def _inside(value, interval) -> bool | None:
    if value is None or not interval:
        return None
    return bool(interval[0] <= value <= interval[1])


def _results_payload(simulation, attribution: dict, results: dict, measured_at: dt.datetime) -> dict:
    """The measured results next to the simulation's truth (all of it simulated)."""
    sim = simulation.as_dict()
    lift = results["total"]["holdout"]["lift"]
    campaigns = []
    for c in results["campaigns"]:
        truth = sim["campaigns"].get(c["key"], {})
        h = c["holdout"]
        campaigns.append({
            "key": c["key"], "funnel": c["funnel"], "treatment": h["treatment"], "holdout": h["holdout"],
            "lift": h["lift"], "offer_cost_minor": h["offer_cost_minor"],
            "sending_cost_minor": h["sending_cost_minor"], "roi": h["roi"],
            "true_lift": truth.get("true_lift"),
            "true_incremental_revenue_minor": truth.get("true_incremental_revenue_minor"),
            "lift_ci_contains_truth": _inside(truth.get("true_lift"), h["lift"]["rate_ci"]),
        })
    return {
        "simulated": True,
        "label": "SIMULATED recipients (from the generator's ground truth)",
        "measured_at": measured_at.isoformat(),
        "window_days": results["window_days"],
        "currency": results["currency"],
        "simulation": sim,
        "attribution": {k: v for k, v in attribution.items() if k != "ignored_revenue"},
        "campaigns": campaigns,
        "total": results["total"],
        "recovered_revenue_minor": results["total"]["holdout"]["treatment"]["revenue_minor"],
        "true_lift": sim["true_lift"],
        "true_incremental_revenue_minor": sim["true_incremental_revenue_minor"],
        "lift_ci_contains_truth": _inside(sim["true_lift"], lift["rate_ci"]),
        "revenue_ci_contains_truth": _inside(sim["true_incremental_revenue_minor"],
                                             lift["incremental_revenue_ci_minor"]),
    }


def _serve(settings, port: int | None) -> None:
    """Create the demo's admin user (a fresh password each run) and serve the dashboard."""
    import secrets

    from winback.kit.db import make_engine
    from winback.web.auth import create_user
    from winback.web.server import serve

    password = secrets.token_urlsafe(12)
    engine = make_engine(settings.resolved_state_url)
    try:
        create_user(engine, DEMO_ADMIN, password, "admin", name="Demo admin", now=settings.clock().now())
    finally:
        engine.dispose()
    url = f"http://{settings.web.host}:{port or settings.web.port}"
    err.print(f"[bold]dashboard[/] {url}/  (API {url}/api/docs) - sign in as {DEMO_ADMIN} with password "
              f"[bold]{password}[/] (a local demo user, created for this run); Ctrl+C stops it", highlight=False)
    serve(settings, port=port)


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
    print_results(p["results"])
    print_dunning(p["dunning"])
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


def _pct(x) -> str:
    return "-" if x is None else f"{x * 100:+.1f}"


def _roi(x) -> str:
    return "-" if x is None else (f"{x:.0f}x" if abs(x) >= 10 else f"{x:.1f}x")


def _ci_pp(ci) -> str:
    return "" if not ci else f" [{ci[0] * 100:+.1f},{ci[1] * 100:+.1f}]"


def _short_money(minor, currency: str) -> str:
    """``$1,234`` / ``$12.3k`` / ``$1.23M``: amounts that fit a table column."""
    import re

    from winback.kit.money import Money

    if minor is None:
        return "-"
    money = Money(int(minor), currency)
    text = money.format()
    major = abs(money.major())
    if major >= 1_000_000:
        short = f"{major / 1_000_000:.2f}M"
    elif major >= 100_000:
        short = f"{major / 1_000:.0f}k"
    elif major >= 1_000:
        short = f"{major / 1_000:.1f}k"
    else:
        short = f"{major:,.0f}"
    return re.sub(r"[\d][\d,.\u00a0 ]*", short, text, count=1)


def print_results(r: dict) -> None:
    from rich.table import Table

    from winback.kit.money import Money

    cur = r["currency"]

    def money(v) -> str:
        return "-" if v is None else Money(int(v), cur).format()

    def short(v) -> str:
        return _short_money(v, cur)

    sim = r["simulation"]
    w = sim["written"]
    out.print(f"[bold]Results[/] - [bold yellow]SIMULATED recipients[/] (behaviour drawn from the generator's ground "
              f"truth, seed {sim['seed']}; every event is labelled simulated): {w['opens_human']:,} human opens, "
              f"{w['opens_machine']:,} machine opens (Apple Mail Privacy Protection), {w['clicks']:,} clicks, "
              f"customers returning: {sim['returns']['treatment']:,} treated, {sim['returns']['holdout']:,} in the "
              f"holdouts; {w['coupons_redeemed']:,} coupons redeemed")
    a = r["attribution"]
    out.print(f"  attribution (last touch): {a['attributed']:,} of {a['conversions']:,} conversions credited to a "
              f"message; holdout window {r['window_days']} days after enrollment; measured at {r['measured_at']}")
    rows = [c for c in r["campaigns"] if c["funnel"]["sent"] or c["holdout"]["n"]]
    yes = {True: "yes", False: "NO", None: "n/a"}
    funnel = Table("campaign", "sent", "opens", "machine", "clicks", "converted", "holdout", box=None,
                   padding=(0, 1))
    for c in rows:
        f, t, h = c["funnel"], c["treatment"], c["holdout"]
        funnel.add_row(c["key"], f"{f['sent']:,}", f"{f['opens_human']:,}", f"{f['opens_machine']:,}",
                       f"{f['clicks_human']:,}", f"{t['conversions']:,}/{t['n']:,}",
                       f"{h['conversions']:,}/{h['n']:,}" if h["n"] else "none")
    out.print(funnel)
    measured = Table("campaign", "lift pp [95% CI]", "true", "incr. revenue [CI]", "ROI", box=None,
                     padding=(0, 1))
    for c in rows:
        lift = c["lift"]
        if not c["holdout"]["n"]:
            continue
        ci = lift["incremental_revenue_ci_minor"]
        mark = {True: " ✓", False: " ✗", None: ""}[c["lift_ci_contains_truth"]]
        measured.add_row(c["key"], _pct(lift["rate"]) + _ci_pp(lift["rate_ci"]), _pct(c["true_lift"]) + mark,
                         short(lift["incremental_revenue_minor"]) + (f" [{short(ci[0])},{short(ci[1])}]" if ci else ""),
                         _roi(c["roi"]))
    out.print(measured)
    out.print("  (converted: treatment conversions within the window / enrolled; true: the simulated true lift, "
              "✓ inside the interval)")
    lift = r["total"]["holdout"]["lift"]
    ci = lift["incremental_revenue_ci_minor"]
    out.print(f"  [bold]total[/]: recovered {money(r['recovered_revenue_minor'])} (simulated); incremental vs holdout "
              f"{money(lift['incremental_revenue_minor'])}"
              + (f" [{money(ci[0])}, {money(ci[1])}]" if ci else "")
              + f", win-back rate {_pct(lift['rate'])} pp{_ci_pp(lift['rate_ci'])}; "
              f"true simulated lift {_pct(r['true_lift'])} pp ({money(r['true_incremental_revenue_minor'])}) - "
              f"inside the interval: {yes[r['lift_ci_contains_truth']]} "
              f"(revenue: {yes[r['revenue_ci_contains_truth']]})", highlight=False)


def print_dunning(d: dict) -> None:
    """What dunning did with the SIMULATED billing system's failed renewals."""
    from rich.table import Table

    from winback.dunning.report import money_text

    b, r = d["simulated_billing"], d["report"]
    out.print(f"[bold]Dunning[/] - [bold yellow]SIMULATED billing[/] (sandbox gateway; issuers, card updater and "
              f"customers simulated): {b['imported_subscriptions']:,} active subscriptions, {b['renewals']:,} "
              f"renewals, {b['renewals_failed']:,} declined; the card updater renewed {b['card_updater_renewals']:,} "
              f"expiring cards; {b['customer_card_updates']:,} customers updated their card from an e-mail")
    rec, rate = r["recovered"], r["recovery_rate"]
    low, high = rate.get("ci_low"), rate.get("ci_high")
    out.print(f"  failed invoices {r['failed']['invoices']:,} ({money_text(r['failed']['amount'])}); recovered "
              f"{rec['invoices']:,} ({money_text(rec['amount'])}), [bold]recovered MRR {money_text(rec['mrr'])}[/]; "
              f"still open {r['open']['invoices']:,}; lost {r['lost']['invoices']:,} (subscription canceled, customer "
              f"entered win-back as involuntary)", highlight=False)
    if rate.get("rate") is not None:
        out.print(f"  recovery rate {rate['rate']:.0%} [{low:.0%}, {high:.0%}]; by how: "
                  + ", ".join(f"{k.replace('_', ' ')} {v['invoices']:,}" for k, v in rec["by"].items()),
                  highlight=False)
    table = Table("decline category", "failed", "recovered", "rate", "open", "lost", box=None, padding=(0, 1))
    for cat, c in r["by_category"].items():
        table.add_row(cat, f"{c['failed']:,}", f"{c['recovered']:,}",
                      "-" if c.get("rate") is None else f"{c['rate']:.0%}", f"{c.get('open', 0):,}",
                      f"{c.get('lost', 0):,}")
    out.print(table)
    t, a, n = r["time_to_recovery"], r["attempts"], r["notices"]
    if t.get("median_days") is not None:
        out.print(f"  time to recovery: median {t['median_days']:.1f} days, p75 {t['p75_days']:.1f}, "
                  f"p90 {t['p90_days']:.1f}")
    out.print(f"  retries: {a.get('retries', 0):,}; most charges on one card in any 30 days: "
              f"{a.get('max_per_card_30d', '-')}; failed-payment e-mails {n.get('failed_payment_sent', 0):,}, "
              f"card-expiry reminders {n.get('expiry_reminders_sent', 0):,}", highlight=False)
