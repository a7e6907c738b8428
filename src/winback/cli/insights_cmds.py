"""``winback priorities``, ``winback at-risk`` and ``winback themes``: the stored insights of the last analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from winback.cli.common import JsonOpt, WorkspaceOpt, emit_json, handle_errors, out
from winback.config import load_settings
from winback.kit.errors import WinbackError


def _money(minor, currency) -> str:
    from winback.kit.money import Money

    return "-" if minor is None else Money(int(minor), currency or "USD").format()


def _limit(value: int) -> int:
    if value < 1 or value > 1_000_000:
        raise WinbackError(f"--limit {value}: expected a number from 1 to 1,000,000")
    return value


@handle_errors
def priorities_cmd(
    limit: Annotated[int, typer.Option(help="How many customers to list.")] = 20,
    phone: Annotated[bool, typer.Option("--phone", help="Only the phone-interview list (very high value).")] = False,
    workspace: WorkspaceOpt = Path("."),
    json_output: JsonOpt = False,
) -> None:
    """Lost customers ranked by expected recoverable value = P(return) x value after return."""
    from winback.segments.priorities import priority_list

    settings = load_settings(workspace)
    rows = priority_list(settings, _limit(limit), phone_only=phone)
    if json_output:
        emit_json({"ok": True, "customers": rows})
        return
    grid = Table(title="Phone interviews (very high value)" if phone else "Win-back priorities",
                 title_justify="left")
    for col in ("#", "customer", "reason", "P(return)", "value after return", "recoverable", "channel", "segments"):
        grid.add_column(col, justify="right" if col in ("#", "P(return)", "value after return", "recoverable")
                        else "left")
    for r in rows:
        reason = r["reason"] or "-"
        if r.get("reason_confidence") is not None and r["reason"] not in ("unknown", None):
            reason += f" ({r['reason_confidence']:.0%})"
        grid.add_row(str(r["priority_rank"]), f"{r['name'] or r['customer_id']} ({r['customer_id']})", reason,
                     "-" if r["p_return"] is None else f"{r['p_return']:.1%}",
                     _money(r["value_after_return_minor"], r["currency"]),
                     _money(r["recoverable_value_minor"], r["currency"]), r["suggested_channel"] or "-",
                     ", ".join(r.get("segments", [])[:3]))
    out.print(grid)


@handle_errors
def at_risk_cmd(
    limit: Annotated[int, typer.Option(help="How many customers to list.")] = 20,
    band: Annotated[str, typer.Option(help="Health band: at_risk or watch.")] = "at_risk",
    workspace: WorkspaceOpt = Path("."),
    json_output: JsonOpt = False,
) -> None:
    """Active customers slipping away: health score, churn risk and the factors behind them."""
    from winback.insights.repository import at_risk

    if band not in ("at_risk", "watch", "healthy"):
        raise WinbackError(f"--band {band!r}: expected at_risk, watch or healthy")
    settings = load_settings(workspace)
    rows = at_risk(settings, _limit(limit), band)
    if json_output:
        emit_json({"ok": True, "band": band, "customers": rows})
        return
    grid = Table(title=f"Active customers: {band.replace('_', ' ')}", title_justify="left")
    for col in ("customer", "health", "churn risk", "MRR", "why"):
        grid.add_column(col, justify="right" if col in ("health", "churn risk", "MRR") else "left")
    for r in rows:
        grid.add_row(f"{r['name'] or r['customer_id']} ({r['customer_id']})",
                     "-" if r["health_score"] is None else f"{r['health_score']:.0f}",
                     "-" if r["churn_risk"] is None else f"{r['churn_risk']:.0%}",
                     _money(r["mrr_minor"], r["currency"]), "; ".join(r["health_factors"] or []))
    out.print(grid)


@handle_errors
def themes_cmd(
    limit: Annotated[int, typer.Option(help="How many themes to list.")] = 10,
    workspace: WorkspaceOpt = Path("."),
    json_output: JsonOpt = False,
) -> None:
    """Recurring feedback themes (all languages), ranked by frequency x lost MRR, with quotes."""
    from winback.insights.repository import latest_run

    settings = load_settings(workspace)
    run = latest_run(settings)
    themes = run["insights"].get("themes", {}).get("themes", [])[: _limit(limit)]
    requests = run["insights"].get("feature_requests", {}).get("features", [])
    if json_output:
        emit_json({"ok": True, "analysis_id": run["analysis_id"], "themes": themes, "feature_requests": requests})
        return
    currency = run["summary"].get("currency", "USD")
    grid = Table(title="Feedback themes", title_justify="left")
    for col in ("theme", "reason", "customers", "lost MRR", "languages", "quote"):
        grid.add_column(col, justify="right" if col in ("customers", "lost MRR") else "left")
    for t in themes:
        quote = t["quotes"][0]["text"] if t.get("quotes") else ""
        grid.add_row(t["label"], t["reason"] or "-", f"{t['customers']:,}", _money(t["lost_mrr_minor"], currency),
                     ", ".join(sorted(t.get("languages", {}))), quote[:70])
    out.print(grid)
    if requests:
        grid = Table(title="Requested features and releases", title_justify="left")
        for col in ("feature", "requesters", "churned", "lost MRR", "release"):
            grid.add_column(col, justify="right" if col in ("requesters", "churned", "lost MRR") else "left")
        for r in requests:
            grid.add_row(r["feature"], f"{r['requesters']:,}", f"{r['churned_requesters']:,}",
                         _money(r.get("lost_mrr_minor"), currency),
                         (f"shipped {str(r['released_at'])[:10]}" if r.get("shipped") else
                          f"planned {str(r['released_at'])[:10]}" if r.get("released_at") else "not planned"))
        out.print(grid)
