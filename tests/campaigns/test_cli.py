"""``winback plan``, ``winback campaigns`` and ``winback worker`` through the real app."""

from __future__ import annotations

import json
import mailbox

from typer.testing import CliRunner

from winback.cli.app import app

runner = CliRunner()


def run(settings, *args: str):
    return runner.invoke(app, [*args, "-w", str(settings.workspace)], catch_exceptions=False,
                         env={"COLUMNS": "200"})


def test_plan_json_explains_then_the_worker_sends_to_the_maildir(fresh):
    dry = run(fresh, "plan", "--json", "--dry-run", "--explain", "0", "-c", "winback_support")
    assert dry.exit_code == 0, dry.stdout
    payload = json.loads(dry.stdout)
    enrolled = payload["enrolled"]["winback_support"] + payload["held_out"]["winback_support"]
    assert payload["dry_run"] and len(payload["decisions"]) == enrolled  # --explain 0: every decision
    d = payload["decisions"][0]
    assert d["campaign"] == "winback_support" and d["arm"] in ("treatment", "holdout")
    assert any("Strategy:" in line for line in d["explanation"])

    real = run(fresh, "plan", "--json", "-c", "winback_support")
    assert real.exit_code == 0
    assert json.loads(real.stdout)["scheduled"]["messages"]["email"] > 0

    worker = run(fresh, "worker", "--until-idle", "--json")
    assert worker.exit_code == 0, worker.stdout
    summary = json.loads(worker.stdout)
    box = mailbox.Maildir(fresh.workspace / fresh.delivery.maildir, create=False)
    assert summary["sent"] == len(box) > 0
    listed = json.loads(run(fresh, "campaigns", "list", "--json").stdout)["campaigns"]
    support = next(c for c in listed if c["key"] == "winback_support")
    assert support["messages"]["sent"] == summary["sent"] and support["enrolled"] > 0

    table = run(fresh, "campaigns", "enrollments", "-c", "winback_support", "--limit", "2")
    assert table.exit_code == 0 and "Strategy:" in table.stdout


def test_cli_errors_are_one_line(fresh):
    result = run(fresh, "campaigns", "preview", "no_such_campaign", "--customer", "x")
    assert result.exit_code == 1 and "unknown campaign 'no_such_campaign'" in result.stderr
    result = run(fresh, "plan", "-c", "nope")
    assert result.exit_code == 1 and "unknown campaign 'nope'" in result.stderr
