"""``matches``: every condition field against customer facts."""

from __future__ import annotations

import pytest

from tests.playbooks.conftest import facts
from winback.playbooks.facts import language_of, matches
from winback.playbooks.spec import Condition


def c(**kw) -> Condition:
    return Condition.model_validate(kw)


@pytest.mark.parametrize("cond, customer, expected", [
    (c(), facts(), True),
    (c(reason="price"), facts(), True),
    (c(reason=["support", "price"]), facts(), True),
    (c(reason="support"), facts(), False),
    (c(reason="unknown"), facts(reason=None), True),
    (c(value_tier=["top", "high"]), facts(value_tier="mid"), False),
    (c(value_tier=["top", "high"]), facts(value_tier=None), False),
    (c(locale="zh"), facts(locale="zh-Hant"), True),
    (c(locale="zh"), facts(locale="zh_TW"), True),
    (c(locale="zh"), facts(locale="en-US"), False),
    (c(locale="zh"), facts(locale=None), False),
    (c(channel="none"), facts(suggested_channel="none"), True),
    (c(channel="none"), facts(suggested_channel="email"), False),
    (c(channel="none"), facts(suggested_channel=None), False),
    (c(segment=["vip", "q4_price"]), facts(segments=frozenset({"q4_price"})), True),
    (c(segment="vip"), facts(segments=frozenset({"q4_price"})), False),
    (c(country="us"), facts(country="US"), True),
    (c(has_phone=True), facts(has_phone=False), False),
    (c(can_email=False), facts(can_email=False), True),
    (c(min_p_return=0.12), facts(p_return=0.12), True),
    (c(min_p_return=0.13), facts(p_return=0.12), False),
    (c(min_p_return=0.01), facts(p_return=None), False),
    (c(max_p_return=0.1), facts(p_return=0.12), False),
    (c(min_value_minor=124_000), facts(value_after_return_minor=124_000), True),
    (c(min_value_minor=124_001), facts(value_after_return_minor=124_000), False),
    (c(status="trial_only", reason="usability"), facts(status="trial_only", reason="usability"), True),
    (c(status="trial_only", reason="usability"), facts(status="churned", reason="usability"), False),
    (c(persona="one_time_high_aov"), facts(persona="one_time_high_aov"), True),
    (c(plan_id="pro"), facts(plan_id="basic"), False),
])
def test_matches(cond, customer, expected):
    assert matches(cond, customer) is expected


def test_language_of():
    assert language_of("zh-Hant-TW") == "zh" and language_of("PT_br") == "pt" and language_of("") is None
