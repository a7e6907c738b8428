"""``winback segments``: list, show, preview, refresh, add (through a small wrapper app)."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from tests.helpers import write
from tests.segments.conftest import write_store
from tests.segments.test_service import CHURNED_YAML, add_customers, profile
from winback.cli.segments_cmd import segments_app

app = typer.Typer()
app.add_typer(segments_app, name="segments")


@app.callback()
def _root() -> None:
    """Wrapper so ``segments`` is a sub-command, as in the real app."""


runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["segments", *args], catch_exceptions=False)


def test_segments_commands(sqlite_workspace, tmp_path):
    settings = sqlite_workspace
    ws = str(settings.workspace)
    refs = add_customers(settings, ["a", "b", "c"])
    write_store(settings.history_path, profile(refs, churned=["a", "b"]))

    spec = write(tmp_path / "churned.yaml", CHURNED_YAML)
    result = run("add", str(spec), "-w", ws, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "churned_all"
    result = run("add", str(spec), "-w", ws)
    assert result.exit_code == 0 and "updated" in result.stdout

    result = run("preview", "churned_all", "--limit", "1", "-w", ws, "--json")
    payload = json.loads(result.stdout)
    assert payload["ok"] and payload["count"] == 2 and len(payload["sample"]) == 1 and payload["params"] == ["churned"]
    result = run("preview", str(spec), "-w", ws)
    assert result.exit_code == 0 and "2 customers" in result.stdout and "$1 = 'churned'" in result.stdout

    result = run("refresh", "-w", ws, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is True
    churned = next(s for s in payload["segments"] if s["name"] == "churned_all")
    assert churned["member_count"] == 2 and churned["entered"] == 2 and churned["version"] == 1
    result = run("refresh", "churned_all", "-w", ws)
    assert result.exit_code == 0 and "churned_all" in result.stdout

    result = run("list", "-w", ws, "--json")
    listed = {s["name"]: s for s in json.loads(result.stdout)["segments"]}
    assert listed["churned_all"]["member_count"] == 2 and listed["churned_all"]["origin"] == "workspace"
    assert listed["abandoned_orders"]["origin"] == "builtin"
    result = run("list", "-w", ws)
    assert result.exit_code == 0 and "churned_all" in result.stdout

    result = run("show", "churned_all", "-w", ws, "--json")
    shown = json.loads(result.stdout)
    assert shown["count"] == 2 and shown["params"] == ["churned"] and "$1" in shown["sql"]
    assert shown["state"]["version"] == 1
    result = run("show", "top_lost_value", "-w", ws)
    assert result.exit_code == 0 and "top_percent" in result.stdout and "never refreshed" not in result.stdout


def test_segments_errors_are_one_line_and_non_zero(sqlite_workspace, tmp_path):
    ws = str(sqlite_workspace.workspace)
    bad = write(tmp_path / "bad.yaml", "name: bad\nmatch: {all: [{status: gone}, {field: lost, op: eq, value: 1}]}\n")
    result = run("add", str(bad), "-w", ws, "--json")
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and payload["error_count"] == 2
    assert [e["path"] for e in payload["errors"]] == ["match.all[0].status", "match.all[1].field"]
    result = run("add", str(bad), "-w", ws)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: segment spec") and "match.all[0].status" in lines[-1]
    assert "match.all[1].field" in lines[0]

    result = run("show", "nope", "-w", ws)
    assert result.exit_code == 1 and result.stderr.strip().startswith("error: unknown segment 'nope'")
    result = run("refresh", "-w", ws, "--json")  # no analyze yet: no profile
    assert result.exit_code == 1 and "winback analyze" in json.loads(result.stdout)["error"]
    result = run("preview", "abandoned_orders", "--as-of", "yesterday", "-w", ws)
    assert result.exit_code == 1 and "--as-of" in result.stderr

    # a failing segment makes refresh exit non-zero, after refreshing the others
    write_store(sqlite_workspace.history_path, [{"customer_id": "a", "status": "churned"}])
    write(sqlite_workspace.workspace / "segments" / "dangling.yaml", "name: dangling\nmatch: {segment: gone}\n")
    result = run("refresh", "-w", ws, "--json")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    states = {s["name"]: s["ok"] for s in payload["segments"]}
    assert states["dangling"] is False and states["top_lost_value"] is True
