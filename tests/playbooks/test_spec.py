"""The shipped playbook loads; hostile playbooks are rejected with every problem, its path and its line."""

from __future__ import annotations

import pytest
import yaml

from winback.playbooks.spec import REASONS, PlaybookError, builtin_playbook_path, load_playbook_text

DEFAULT_TEXT = builtin_playbook_path().read_text(encoding="utf-8")


def test_default_playbook_covers_every_reason_and_references(default_playbook):
    assert set(default_playbook.strategies) == set(REASONS)
    for strategy in default_playbook.strategies.values():
        assert strategy.campaign in default_playbook.campaigns
    assert default_playbook.campaigns["winback_price"].budget.amount_minor == 10_000_000
    assert default_playbook.offers["percent_50_3m"].min_p_return == 0.08


def _edit(path: list, value=None, delete: bool = False) -> str:
    data = yaml.safe_load(DEFAULT_TEXT)
    node = data
    for p in path[:-1]:
        node = node[p]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _issues(text: str) -> list:
    with pytest.raises(PlaybookError) as info:
        load_playbook_text(text, "pb.yaml")
    assert info.value.exit_code == 2
    return info.value.issues


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_unknown_key_has_did_you_mean_and_line():
    text = DEFAULT_TEXT.replace("    expires_days: 21\n", "    expires_dayz: 21\n")
    issues = _issues(text)
    [issue] = issues
    assert issue.path == "offers.annual_incentive.expires_dayz"
    assert "did you mean 'expires_days'" in issue.reason
    assert issue.line == _line_of(text, "expires_dayz")


def test_unknown_references_are_all_listed_with_lines():
    text = (DEFAULT_TEXT.replace("campaign: winback_price\n", "campaign: winback_prise\n")
            .replace("sequence: we_miss_you\n", "sequence: we_mis_you\n")
            .replace("default: [payment_update]", "default: [payment_updat]"))
    issues = {i.path: i for i in _issues(text)}
    assert "did you mean 'winback_price'" in issues["strategies.price.campaign"].reason
    assert issues["strategies.price.campaign"].line == _line_of(text, "winback_prise")
    assert "unknown sequence 'we_mis_you'" in issues["campaigns.inactive_regulars.sequence"].reason
    assert "unknown offer 'payment_updat'" in issues["strategies.involuntary.offers.default[0]"].reason
    assert issues["strategies.involuntary.offers.default[0]"].line == _line_of(text, "payment_updat]")


def test_bad_duration_percent_and_missing_english():
    text = (DEFAULT_TEXT.replace("{key: ask, after: 1d,", "{key: ask, after: soon,")
            .replace("    percent: 25\n", "    percent: 250\n")
            .replace('title: {en: "$20 account credit", ', "title: {"))
    issues = {i.path: i for i in _issues(text)}
    assert "duration" in issues["sequences.exit_survey.steps[0].after"].reason
    assert issues["sequences.exit_survey.steps[0].after"].line == _line_of(text, "after: soon")
    assert "100" in issues["offers.percent_25_3m.percent"].reason
    assert "English" in issues["offers.account_credit_20.title"].reason


def test_unknown_reason_tier_and_missing_section():
    issues = {i.path: i.reason for i in _issues(_edit(["strategies", "pricee"], {
        "title": "x", "message": "m", "campaign": "winback_price"}))}
    assert "did you mean 'price'" in issues["strategies.pricee"]
    issues = {i.path: i.reason for i in _issues(_edit(["sequences"], delete=True))}
    assert issues["sequences"] == "required"


def test_not_yaml_and_not_a_mapping():
    [issue] = _issues("name: x\n  bad: [\n")
    assert issue.line is not None and "not valid YAML" in issue.reason
    [issue] = _issues("- a\n- b\n")
    assert "mapping" in issue.reason


def test_condition_accepts_can_email(default_playbook):
    text = DEFAULT_TEXT.replace("when: {channel: none}", "when: {channel: none, can_email: false}")
    spec = load_playbook_text(text)
    assert spec.rules[-1].when.can_email is False
