"""The HTML report's "Dunning: failed payments and recovery" section: present with the figures when
failed payments are recorded, "no failed payments recorded" otherwise."""

from __future__ import annotations

import re

from tests.dunning.report_fixtures import SINCE, UNTIL, insert_report_data
from winback.dunning.report import dunning_report
from winback.kit.db import make_engine
from winback.reports.analysis_report import build_report, dunning_data, dunning_section

BASE = {"title": "t", "observation_end": "2025-12-31", "summary": {"customers": "3"}}


def _section(page: str) -> str:
    found = re.search(r'<section id="dunning">(.*?)</section>', page, re.S)
    assert found, "no dunning section"
    return found.group(1)


def test_section_with_failed_payments(sqlite_workspace, tmp_path):
    engine = make_engine(sqlite_workspace.resolved_state_url)
    try:
        insert_report_data(engine)
        report = dunning_report(sqlite_workspace, engine=engine, since=SINCE, until=UNTIL)
    finally:
        engine.dispose()
    page = build_report({**BASE, "dunning": report}, tmp_path / "r.html").read_text(encoding="utf-8")
    section = _section(page)
    assert "Dunning: failed payments and recovery" in section
    assert "No failed payments recorded" not in section
    assert "recovered MRR" in section and "$235.00 + €44.00" in section  # the recovered cases' MRR
    assert "50.0% (95% CI 25.4% to 74.6%)" in section  # 6 of 12, Wilson
    for table in ("Recovery by decline category", "Recovered by how", "Time to recovery",
                  "Recovery by first decline code (top codes)"):
        assert f"<h3>{table}</h3>" in section
    assert "<td>card updater</td>" in section and "<td>customer update</td>" in section
    assert "<td>same day</td>" in section and "<td>15+ days</td>" in section
    assert 'id="dunning-weekly"' in section and "Failed payments and recoveries per week" in section
    assert "median 4.2 days" in section  # of 0.25, 1.08, 3.5, 5, 8 and 20 days: (3.5 + 5) / 2 = 4.25
    assert not re.search(r"<script[^>]+src=", page)


def test_section_without_failed_payments(sqlite_workspace, tmp_path):
    assert dunning_section(None) == {"empty": True}
    empty = dunning_data(sqlite_workspace)  # what `winback analyze` puts in the report
    assert empty["failed"]["invoices"] == 0 and dunning_section(empty) == {"empty": True}
    for data in ({**BASE, "dunning": empty}, BASE):
        section = _section(build_report(data, tmp_path / "r.html").read_text(encoding="utf-8"))
        assert "Dunning: failed payments and recovery" in section and "No failed payments recorded" in section
        assert "<table>" not in section and "dunning-weekly" not in section
