"""``winback analyze``, ``winback metrics`` and ``winback clv fit``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from winback.cli.common import JsonOpt, WorkspaceOpt, emit_json, err, handle_errors, out, progress_bar
from winback.config import load_settings
from winback.kit.clock import parse_instant
from winback.kit.errors import WinbackError

clv_app = typer.Typer(help="Customer lifetime value models.", no_args_is_help=True)


def _instant(text: str | None, option: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise WinbackError(f"{option} {text!r}: expected a date like 2025-12-31") from None


@handle_errors
def analyze_cmd(
    observation_end: Annotated[Optional[str], typer.Option(help="Analyse the history up to this date "
                                                                "(default: now, or the workspace's pinned clock).")] = None,
    report: Annotated[bool, typer.Option(help="Write the HTML report to reports/.")] = True,
    workspace: WorkspaceOpt = Path("."),
    json_output: JsonOpt = False,
) -> None:
    """Compute retention, churn reasons, survival, cohorts, RFM and CLV; store per-customer scores."""
    from winback.reports.analysis_report import run_analysis

    settings = load_settings(workspace)
    with progress_bar(not json_output and err.is_terminal) as bar:
        task = bar.add_task("analysing", total=None)
        outcome, path = run_analysis(settings, _instant(observation_end, "--observation-end"), write_report=report,
                                     note=lambda msg: bar.update(task, description=msg))
    if json_output:
        emit_json({"ok": True, **outcome.summary, "seconds": {k: round(v, 3) for k, v in outcome.seconds.items()
                                                              if k != "started"}})
        return
    print_analysis(outcome.summary)
    print_insights(outcome.summary)
    if path:
        out.print(f"report: {path}")


def print_analysis(summary: dict) -> None:
    from winback.kit.money import Money

    currency = summary.get("currency", "USD")
    out.print(f"[bold]Analysis[/] of the history up to {summary['observation_end'][:10]}: "
              f"{summary['customers_scored']:,} customers scored "
              f"({', '.join(f'{k} {v:,}' for k, v in summary['customers_by_status'].items())})")
    if summary.get("retention"):
        grid = Table(title="Retention", title_justify="left")
        for col in ("period", "start", "end", "new", "lost", "churn rate", "CRR", "involuntary share", "NRR"):
            grid.add_column(col, justify="left" if col == "period" else "right")
        for label, r in summary["retention"].items():
            nrr = (r.get("mrr") or {}).get(currency, {}).get("nrr")
            grid.add_row(label, f"{r['start_customers']:,}", f"{r['end_customers']:,}", f"{r['new_customers']:,}",
                         f"{r['lost_customers']:,}", _pct(r.get("churn_rate")), _pct(r.get("crr")),
                         _pct(r.get("involuntary_share")), _pct(nrr))
        out.print(grid)
    if summary.get("pareto"):
        p = summary["pareto"]
        out.print(f"Lost value: {Money(p['total_lost_value_minor'], currency).format()} across "
                  f"{p['churned_customers_with_value']:,} lost customers; the top 20% hold "
                  f"{p['top_share_of_lost_value']:.0%}")
    if summary.get("rfm_segments"):
        top = list(summary["rfm_segments"].items())[:6]
        out.print("RFM segments: " + ", ".join(f"{k} {v:,}" for k, v in top))


def print_insights(summary: dict, at_risk: list[dict] | None = None, priorities: list[dict] | None = None) -> None:
    """Reasons, health, themes, segments and (when given) the at-risk and priority lists."""
    from winback.kit.money import Money

    ins = summary.get("insights")
    if not ins:
        return
    currency = summary.get("currency", "USD")
    reasons = ins.get("reasons", {})
    total = sum(reasons.values()) or 1
    out.print("Churn reasons (every lost customer): " + ", ".join(
        f"{k} {v:,} ({v / total:.0%})" for k, v in reasons.items()))
    if ins.get("health_bands"):
        out.print("Health of active customers: " + ", ".join(f"{k} {v:,}" for k, v in ins["health_bands"].items()))
    model = ins.get("churn_risk_model") or {}
    if model.get("auc") is not None:
        out.print(f"Churn-risk model (90 days, time split): AUC {model['auc']:.3f}, ECE {model['ece']:.3f}; "
                  f"the simple health score: AUC {model['baseline_auc']:.3f}")
    elif model.get("error"):
        out.print(f"Churn-risk model: not trained ({model['error']})")
    if ins.get("personas"):
        out.print("Personas: " + ", ".join(f"{k} {v:,}" for k, v in ins["personas"].items()))
    if at_risk:
        grid = Table(title="Active customers at risk (top 5)", title_justify="left")
        for col in ("customer", "health", "churn risk", "why"):
            grid.add_column(col, justify="right" if col in ("health", "churn risk") else "left")
        for r in at_risk:
            grid.add_row(f"{r['name'] or ''} ({r['customer_id']})", f"{r['health_score']:.0f}",
                         "-" if r["churn_risk"] is None else f"{r['churn_risk']:.0%}",
                         "; ".join(r["health_factors"] or []))
        out.print(grid)
    if ins.get("top_themes"):
        grid = Table(title="Top feedback themes (frequency x lost MRR)", title_justify="left")
        for col in ("theme", "reason", "customers", "lost MRR"):
            grid.add_column(col, justify="right" if col in ("customers", "lost MRR") else "left")
        for t in ins["top_themes"]:
            grid.add_row(t["label"], t["reason"] or "-", f"{t['customers']:,}",
                         Money(int(t["lost_mrr_minor"] or 0), currency).format())
        out.print(grid)
    pr = ins.get("priorities") or {}
    if pr.get("ranked"):
        out.print(f"Win-back priorities: {pr['ranked']:,} lost customers ranked; expected recoverable value "
                  f"{Money(int(pr['expected_recoverable_minor']), currency).format()}; "
                  f"{pr['phone_interviews']:,} very-high-value accounts for phone interviews")
    if priorities:
        grid = Table(title="Priority list (top 10)", title_justify="left")
        for col in ("#", "customer", "reason", "P(return)", "recoverable", "channel", "segments"):
            grid.add_column(col, justify="right" if col in ("#", "P(return)", "recoverable") else "left",
                            no_wrap=col in ("customer", "reason", "channel"))
        for r in priorities:
            grid.add_row(str(r["priority_rank"]), r["customer_id"], r["reason"] or "-",
                         f"{(r['p_return'] or 0):.1%}",
                         Money(int(r["recoverable_value_minor"] or 0), r["currency"] or currency).format(),
                         r["suggested_channel"] or "-", ", ".join(r["segments"][:2]))
        out.print(grid)
    if summary.get("segments"):
        out.print("Segments: " + ", ".join(f"{s['name']} {s['members']:,}" if s["ok"] else f"{s['name']} (error)"
                                            for s in summary["segments"]))


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1f}%"


@handle_errors
def metrics_cmd(
    period: Annotated[str, typer.Option(help="2024 (year), 2024-Q4 (quarter) or 2024-05 (month).")],
    by: Annotated[Optional[str], typer.Option(help="Break down by plan or cohort.")] = None,
    workspace: WorkspaceOpt = Path("."),
    json_output: JsonOpt = False,
) -> None:
    """Retention metrics for one period: customers at start/end, new, lost, churn rate, CRR, MRR churn, NRR."""
    from winback.analytics.metrics import retention
    from winback.analytics.periods import parse_period
    from winback.history.store import ibis_connection

    if by not in (None, "plan", "cohort"):
        raise WinbackError(f"--by {by!r}: expected plan or cohort")
    try:
        p = parse_period(period)
    except ValueError as exc:
        raise WinbackError(str(exc)) from None
    settings = load_settings(workspace)
    con = ibis_connection(settings.history_path, read_only=True)
    try:
        rows = retention(con, p, by=by)
    finally:
        con.disconnect()
    if json_output:
        emit_json(rows[0] if by is None else {"ok": True, "period": p.label, "by": by, "groups": rows})
        return
    grid = Table(title=f"Retention {p.label}", title_justify="left")
    cols = ["group", "start", "end", "new", "lost", "churn rate", "CRR", "involuntary share"]
    for col in cols:
        grid.add_column(col, justify="left" if col == "group" else "right")
    for r in rows:
        grid.add_row(str(r.get("group", "all")), f"{r['start_customers']:,}", f"{r['end_customers']:,}",
                     f"{r['new_customers']:,}", f"{r['lost_customers']:,}", _pct(r.get("churn_rate")),
                     _pct(r.get("crr")), _pct(r.get("involuntary_share")))
    out.print(grid)


@clv_app.command("fit")
@handle_errors
def clv_fit_cmd(
    file: Annotated[Path, typer.Argument(help="Transaction log (customer_id, date, amount) or summary table "
                                              "(frequency, recency, T, monetary_value); sbg: period, active.")],
    model: Annotated[str, typer.Option(help="bgnbd, pnbd, gamma-gamma or sbg.")] = "bgnbd",
    observation_end: Annotated[Optional[str], typer.Option(help="End of observation for a transaction log.")] = None,
    time_unit: Annotated[str, typer.Option(help="day or week (transaction logs).")] = "day",
    json_output: JsonOpt = False,
) -> None:
    """Fit a CLV model and print its parameters, standard errors and log-likelihood."""
    from winback.analytics.service import fit_clv_file

    result = fit_clv_file(file, model, _instant(observation_end, "--observation-end"), time_unit)
    if json_output:
        emit_json({"ok": True, **result})
        return
    grid = Table(title=f"{model} on {result['customers']:,} customers ({result['input']})", title_justify="left")
    grid.add_column("parameter")
    grid.add_column("estimate", justify="right")
    grid.add_column("std. error", justify="right")
    for name, value in result["params"].items():
        grid.add_row(name, f"{value:.6g}", f"{result['standard_errors'].get(name, float('nan')):.3g}")
    out.print(grid)
    out.print(f"log-likelihood {result['log_likelihood']:.4f}")
