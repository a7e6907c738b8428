"""``winback playbook``: show, validate, export, versions, explain (through the real app)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.helpers import write
from winback.cli.app import app
from winback.playbooks.spec import REASONS, builtin_playbook_path

runner = CliRunner()
DEFAULT_TEXT = builtin_playbook_path().read_text(encoding="utf-8")


def run(*args: str):
    return runner.invoke(app, ["playbook", *args], catch_exceptions=False, env={"COLUMNS": "250"})


def test_validate_broken_file_exits_2_with_line_and_path(tmp_path):
    broken = DEFAULT_TEXT.replace("    percent: 50\n", "    percent: fifty\n").replace(
        "campaign: winback_support", "campaign: winback_suport")
    path = write(tmp_path / "pb.yaml", broken)
    result = run("validate", str(path))
    assert result.exit_code == 2
    line = next(i for i, l in enumerate(broken.splitlines(), 1) if "percent: fifty" in l)
    assert f"line {line}, offers.percent_50_3m.percent" in result.stderr
    assert "strategies.support.campaign: unknown campaign 'winback_suport' (did you mean 'winback_support'?)" \
        in result.stderr
    result = run("validate", str(path), "--json")
    payload = json.loads(result.stdout)
    assert result.exit_code == 2 and payload["ok"] is False and payload["error_count"] == 2
    assert {e["path"] for e in payload["errors"]} == {"offers.percent_50_3m.percent", "strategies.support.campaign"}
    assert all(e["line"] and e["file"] == str(path) for e in payload["errors"])
    good = write(tmp_path / "good.yaml", DEFAULT_TEXT)
    result = run("validate", str(good))
    assert result.exit_code == 0 and "valid playbook 'default'" in result.stdout
    assert run("validate", str(tmp_path / "missing.yaml")).exit_code == 2


def test_show_export_versions(sqlite_workspace):
    ws = str(sqlite_workspace.workspace)
    result = run("show", "-w", ws, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [s["reason"] for s in payload["strategies"]] == list(REASONS)
    assert {s["reason"]: s["campaign"] for s in payload["strategies"]}["involuntary"] == "winback_involuntary"
    assert payload["version"] == 1 and payload["origin"] == "builtin"
    assert {o["key"]: o["terms"] for o in payload["offers"]}["percent_50_3m"]["percent"] == 50
    result = run("show", "-w", ws)
    assert result.exit_code == 0 and "Strategies" in result.stdout and "winback_price" in result.stdout
    assert "$100,000.00" in result.stdout  # the price campaign's budget

    exported = run("export", "-w", ws)
    assert exported.exit_code == 0 and exported.stdout == DEFAULT_TEXT
    write(sqlite_workspace.workspace / "playbooks" / "default.yaml",
          exported.stdout.replace("title: Default win-back playbook", "title: Edited"))
    result = run("versions", "-w", ws, "--json")
    rows = json.loads(result.stdout)["versions"]
    assert [(r["version"], r["active"], r["origin"]) for r in rows] == [(1, False, "builtin"), (2, True, "workspace")]
    assert "Edited" in run("export", "-w", ws).stdout
    assert "Default win-back playbook" in run("export", "-w", ws, "--version", "1").stdout

    write(sqlite_workspace.workspace / "playbooks" / "default.yaml", "name: default\ntitle: [\n")
    result = run("show", "-w", ws)
    assert result.exit_code == 2 and "not valid YAML" in result.stderr and "line" in result.stderr


def test_explain_unknown_customer(sqlite_workspace):
    result = run("explain", "nobody", "-w", str(sqlite_workspace.workspace))
    assert result.exit_code == 1 and "no customer with external id 'nobody'" in result.stderr
