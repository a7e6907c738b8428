"""`winback generate` and `winback demo` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from winback.cli.app import app

runner = CliRunner()


def test_generate_then_ingest_both_kinds(tmp_path):
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
    for kind in ("saas", "ecommerce"):
        out = tmp_path / kind
        result = runner.invoke(app, ["generate", "--kind", kind, "--customers", "400", "--seed", "3",
                                     "--out", str(out), "--json"])
        assert result.exit_code == 0, result.output
        generated = json.loads(result.stdout)
        assert (out / "ground_truth.parquet").exists()
        result = runner.invoke(app, ["ingest", str(out), "-w", str(ws), "--source", kind, "--json"])
        assert result.exit_code == 0, result.output
        loaded = json.loads(result.stdout)
        assert "ground_truth.parquet" in loaded["skipped"]
        for table, rows in generated["rows"].items():
            assert loaded["tables"][table]["rows"] == rows, table
    status = json.loads(runner.invoke(app, ["status", "-w", str(ws), "--json"]).stdout)
    assert status["history_store"]["tables"]["orders"] > 0 and status["history_store"]["tables"]["invoices"] > 0
    assert status["state_store"]["tables"]["customers"] == 800


def test_generate_rejects_bad_arguments(tmp_path):
    result = runner.invoke(app, ["generate", "--kind", "bakery", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "error:" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(app, ["generate", "--customers", "0", "--out", str(tmp_path / "x"), "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["ok"] is False


def test_demo_runs_end_to_end_and_refreshes(tmp_path):
    target = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--dir", str(target), "--customers", "1500", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["history"]["customers"] == 1500
    assert payload["stores"]["state"]["customers"] == 1500
    assert 0.2 <= payload["history"]["involuntary_share_of_churn"] <= 0.4
    assert payload["ingest"]["rows_read"] == sum(payload["generated"]["rows"].values())
    # the loop closes: SIMULATED recipients, attribution, lift against the holdout and the truth
    results = payload["results"]
    assert results["simulated"] is True and "SIMULATED" in results["label"]
    assert results["simulation"]["written"]["returned"] > 0 and results["attribution"]["attributed"] > 0
    lift = results["total"]["holdout"]["lift"]
    assert lift["rate_ci"][0] <= results["true_lift"] <= lift["rate_ci"][1]
    assert results["lift_ci_contains_truth"] is True and results["revenue_ci_contains_truth"] is True
    assert results["recovered_revenue_minor"] > 0 and results["total"]["funnel"]["opens_machine"] > 0
    assert payload["seconds"]["simulate"] + payload["seconds"]["measure"] < 15
    # dunning on the SIMULATED billing system: failures are retried, reminded, recovered and reported
    billing, dunning = payload["dunning"]["simulated_billing"], payload["dunning"]["report"]
    assert billing["imported_subscriptions"] > 0 and billing["renewals_failed"] > 0
    assert dunning["failed"]["invoices"] == billing["renewals_failed"]
    assert dunning["recovered"]["invoices"] > 0
    assert next(iter(dunning["recovered"]["mrr"].values()))["amount_minor"] > 0
    assert dunning["by_category"]["soft"]["failed"] > 0 and dunning["attempts"]["retries"] > 0
    assert dunning["attempts"]["max_per_card_30d"] <= 10
    assert dunning["notices"]["failed_payment_sent"] > 0 and dunning["notices"]["expiry_reminders_sent"] > 0
    by = dunning["recovered"]["by"]
    assert by["retry"]["invoices"] > 0 and by["customer_update"]["invoices"] > 0
    html = Path(payload["report"]).read_text(encoding="utf-8")
    assert "Dunning: failed payments and recovery" in html and "No failed payments recorded" not in html
    # the workspace clock moved past the holdout window, so the dashboard sees the simulated events
    assert f'now = "{results["measured_at"][:19]}Z"' in (target / "winback.toml").read_text()
    # a second run recreates the folder instead of piling up data; the text shows the simulated results
    again = runner.invoke(app, ["demo", "--dir", str(target), "--customers", "1500"])
    assert again.exit_code == 0, again.output
    assert "SIMULATED recipients" in again.stdout and "inside the interval: yes" in again.stdout
    assert "SIMULATED billing" in again.stdout and "recovered MRR" in again.stdout
    status = json.loads(runner.invoke(app, ["status", "-w", str(target), "--json"]).stdout)
    assert status["state_store"]["tables"] == payload["stores"]["state"]
    # it never deletes a folder it did not create
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.txt").write_text("do not delete")
    result = runner.invoke(app, ["demo", "--dir", str(other)])
    assert result.exit_code == 1 and (other / "thesis.txt").exists()
