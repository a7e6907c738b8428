"""``winback results``, ``attribute``, ``experiments`` and ``bounces import`` through the real app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from tests.tracking.test_bounces import outbox  # noqa: F401  (fixture)
from tests.tracking.test_results import dataset  # noqa: F401  (fixture)
from winback.cli.app import app

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures"


def run(settings, *args: str):
    return runner.invoke(app, [*args, "-w", str(settings.workspace)], catch_exceptions=False,
                         env={"COLUMNS": "220"})


def test_results_and_attribute(workspace, dataset):  # noqa: F811
    again = run(workspace, "attribute", "--json")
    assert again.exit_code == 0, again.stdout
    assert json.loads(again.stdout)["conversions"] == 0  # the fixture attributed everything already
    r = run(workspace, "results", "--json")
    assert r.exit_code == 0, r.stdout
    payload = json.loads(r.stdout)
    assert payload["ok"] and {c["key"] for c in payload["campaigns"]} == {"winback_price", "winback_feature"}
    assert payload["total"]["funnel"]["sent"] == 14
    table = run(workspace, "results")
    assert table.exit_code == 0 and "winback_price" in table.stdout and "subject_reminder" in table.stdout
    assert "ROI" in table.stdout and "total" in table.stdout
    one = json.loads(run(workspace, "results", "--campaign", "winback_feature", "--json").stdout)
    assert [c["key"] for c in one["campaigns"]] == ["winback_feature"]
    exps = run(workspace, "experiments", "--json")
    assert exps.exit_code == 0 and json.loads(exps.stdout)["experiments"][0]["decided"] is False
    plain = run(workspace, "attribute")
    assert plain.exit_code == 0 and "0 new conversions" in plain.stdout


def test_bounces_import(workspace, outbox, tmp_path):  # noqa: F811
    folder = tmp_path / "mail"
    folder.mkdir()
    for f in FIXTURES.glob("*.eml"):
        shutil.copy(f, folder / f.name)
    r = run(workspace, "bounces", "import", str(folder), "--json")
    assert r.exit_code == 0, r.stdout
    payload = json.loads(r.stdout)
    assert payload["hard_bounces"] == 2 and payload["complaints"] == 2 and len(payload["skipped"]) == 3
    text = run(workspace, "bounces", "import", str(folder))
    assert text.exit_code == 0 and "skipped garbage.eml" in text.stdout
    sg = run(workspace, "bounces", "import", str(FIXTURES / "sendgrid_events.json"), "--provider", "sendgrid",
             "--json")
    assert sg.exit_code == 0 and json.loads(sg.stdout)["duplicates"] == 3  # the mail reports came first


def test_errors_are_one_line(workspace, tmp_path):
    r = run(workspace, "results", "--campaign", "nope")
    assert r.exit_code == 1 and "unknown campaign 'nope'" in r.stderr
    r = run(workspace, "bounces", "import", str(tmp_path / "missing"))
    assert r.exit_code == 1 and "no such file or folder" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    r = run(workspace, "bounces", "import", str(bad), "--provider", "ses", "--json")
    assert r.exit_code == 1 and "cannot read" in json.loads(r.stdout)["error"]
    r = run(workspace, "bounces", "import", str(FIXTURES / "sendgrid_events.json"), "--provider", "sparkpost")
    assert r.exit_code == 1 and "unknown provider 'sparkpost'" in r.stderr
