"""The command line: --json everywhere, one-line reasons and non-zero exits on failure."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from tests.helpers import write
from winback.cli.app import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_init_status_ingest_json(tmp_path):
    ws = tmp_path / "ws"
    result = run("init", str(ws), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["workspace"] == str(ws.resolve())
    write(tmp_path / "customers.csv", "customer_id,email,created_at\nc1,a@example.com,2024-01-01\n")
    result = run("ingest", str(tmp_path / "customers.csv"), "-w", str(ws), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is True and payload["tables"]["customers"]["inserted"] == 1
    result = run("status", "--workspace", str(ws), "--json")
    counts = json.loads(result.stdout)
    assert counts["state_store"]["tables"]["customers"] == 1
    assert counts["history_store"]["tables"]["customers"] == 1
    assert counts["history_store"]["tables"]["orders"] == 0
    assert counts["state_store"]["revision"] == "0007"


def test_rejected_import_json_lists_every_error(tmp_path):
    ws = tmp_path / "ws"
    run("init", str(ws))
    write(tmp_path / "customers.csv", "customer_id,email,created_at\nc1,nope,2024-01-01\nc2,b@example.com,yesterday\n")
    result = run("ingest", str(tmp_path / "customers.csv"), "-w", str(ws), "--json")
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and payload["error_count"] == 2
    assert [(e["row"], e["column"], e["value"]) for e in payload["errors"]] == [
        (2, "email", "nope"), (3, "created_at", "yesterday")]


def test_failure_is_one_line_and_non_zero(tmp_path):
    result = run("status", "-w", str(tmp_path / "missing"))
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no workspace")
    result = run("status", "-w", str(tmp_path / "missing"), "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["ok"] is False


def test_console_script_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "winback", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("winback ")
