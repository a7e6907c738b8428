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
