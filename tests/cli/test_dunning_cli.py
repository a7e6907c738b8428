"""``winback dunning report``: JSON with ``ok`` and the report's keys, a window, the tables, errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.dunning.report_fixtures import insert_report_data
from winback.cli.app import app
from winback.config import load_settings
from winback.kit.db import make_engine

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _workspace(tmp_path, with_data: bool = True):
    ws = tmp_path / "ws"
    assert run("init", str(ws)).exit_code == 0
    if with_data:
        engine = make_engine(load_settings(ws).resolved_state_url)
        try:
            insert_report_data(engine)
        finally:
            engine.dispose()
    return ws


def test_dunning_report_json(tmp_path):
    ws = _workspace(tmp_path)
    result = run("dunning", "report", "-w", str(ws), "--json", "--since", "2025-11-01", "--until", "2026-01-01")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["ok"] is True
    assert {"failed", "open", "recovered", "lost", "closed", "recovery_rate", "by_category", "time_to_recovery",
            "attempts", "notices", "weekly"} <= set(r)
    assert r["window"]["since"].startswith("2025-11-01") and r["window"]["until"].startswith("2026-01-01")
    assert r["failed"]["invoices"] == 12 and r["recovered"]["invoices"] == 6
    assert r["recovered"]["mrr"]["USD"] == {"amount_minor": 23500, "formatted": "$235.00"}
    assert r["by_category"]["hard"]["recovered"] == 2
    everything = json.loads(run("dunning", "report", "-w", str(ws), "--json").stdout)
    assert everything["failed"]["invoices"] == 14 and everything["window"]["since"] is None


def test_dunning_report_tables(tmp_path):
    ws = _workspace(tmp_path)
    result = run("dunning", "report", "-w", str(ws), "--since", "2025-11-01", "--until", "2026-01-01")
    assert result.exit_code == 0, result.output
    text = result.stdout
    for expected in ("failed payments (2025-11-01 to 2026-01-01)", "recovery rate 50.0%", "$235.00 + €44.00",
                     "customer update", "insufficient_funds", "time to recovery: median", "cap 10"):
        assert expected in text, expected


def test_dunning_report_empty_and_bad_dates(tmp_path):
    ws = _workspace(tmp_path, with_data=False)
    result = run("dunning", "report", "-w", str(ws))
    assert result.exit_code == 0 and "no failed payments recorded" in result.stdout
    empty = json.loads(run("dunning", "report", "-w", str(ws), "--json").stdout)
    assert empty["ok"] is True and empty["failed"]["invoices"] == 0
    bad = run("dunning", "report", "-w", str(ws), "--json", "--since", "last tuesday")
    assert bad.exit_code == 1 and json.loads(bad.stdout) == {
        "ok": False, "error": "--since: not a date: 'last tuesday' (expected e.g. 2025-12-01)"}
    backwards = run("dunning", "report", "-w", str(ws), "--since", "2026-01-01", "--until", "2025-01-01")
    assert backwards.exit_code == 1 and "--since must be before --until" in backwards.stderr


def test_dunning_run_applies_stored_webhooks_and_retries(tmp_path):
    """`winback dunning run --until-idle`: a stored sandbox event becomes a case; the pinned clock
    (init pins none: the real clock) makes its first retry due later, so nothing is charged yet."""
    import datetime as dt

    from sqlalchemy import select

    from winback.dunning.service import store_sandbox_event
    from winback.models.dunning import DunningCase

    ws = _workspace(tmp_path, with_data=False)
    engine = make_engine(load_settings(ws).resolved_state_url)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    try:
        store_sandbox_event(engine, {"id": "evt_cli_1", "type": "invoice.payment_failed",
                                     "timestamp": now.isoformat().replace("+00:00", "Z"),
                                     "data": {"invoice_id": "in_cli", "customer_id": "cus_cli", "amount_due": 1500,
                                              "currency": "USD", "decline_code": "insufficient_funds"}}, now=now)
        result = run("dunning", "run", "-w", str(ws), "--until-idle", "--json")
        assert result.exit_code == 0, result.output
        totals = json.loads(result.stdout)
        assert totals["ok"] is True and totals["webhooks.applied"] == 1 and totals["rounds"] == 1
        with engine.connect() as conn:
            case = conn.execute(select(DunningCase.__table__)).mappings().one()
        assert (case["invoice_ref"], case["status"], case["first_category"]) == ("in_cli", "open", "soft")
        assert case["next_attempt_at"] > now + dt.timedelta(hours=23)
    finally:
        engine.dispose()


def test_dunning_status_lists_failed_webhooks_and_cases(tmp_path):
    import datetime as dt

    from winback.dunning.service import store_sandbox_event

    ws = _workspace(tmp_path, with_data=False)
    engine = make_engine(load_settings(ws).resolved_state_url)
    now = dt.datetime.now(dt.timezone.utc)
    try:
        store_sandbox_event(engine, {"id": "evt_ok", "type": "invoice.payment_failed", "timestamp": now.isoformat(),
                                     "data": {"invoice_id": "in_1", "customer_id": "cus_1", "amount_due": 100,
                                              "currency": "USD", "decline_code": "lost_card"}}, now=now)
        store_sandbox_event(engine, {"id": "evt_bad", "type": "invoice.payment_failed", "timestamp": "yesterday",
                                     "data": {}}, now=now)
        assert run("dunning", "run", "-w", str(ws), "--until-idle").exit_code == 0
        result = run("dunning", "status", "-w", str(ws), "--json")
        s = json.loads(result.stdout)
        assert s["webhooks"] == {"sandbox:processed": 1, "sandbox:failed": 1}
        assert s["failed_webhooks"][0]["event_id"] == "evt_bad" and s["failed_webhooks"][0]["error"]
        assert s["cases"] == {"open": 1} and s["waiting_for_new_card"] == 1 and s["next_step_at"]
        text = run("dunning", "status", "-w", str(ws)).stdout
        assert "failed sandbox evt_bad" in text
    finally:
        engine.dispose()
