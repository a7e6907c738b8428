"""Topics of commercial messages (the preference centre's switches)."""

from __future__ import annotations

from pathlib import Path

import winback.playbooks as playbooks
from winback.campaigns.topics import DEFAULT_TOPICS, TOPIC_KEYS, TOPICS, topic_of
from winback.playbooks.spec import LOCALES, load_playbook_text


def test_every_default_campaign_has_a_known_topic_or_is_a_service_message():
    text = (Path(playbooks.__file__).parent / "builtin" / "default.yaml").read_text(encoding="utf-8")
    spec = load_playbook_text(text, "default")
    for key, campaign in spec.campaigns.items():
        assert key in DEFAULT_TOPICS, key
        category = spec.sequences[campaign.sequence].category
        topic = topic_of(key, campaign.sequence, campaign.topic, category)
        assert topic in TOPIC_KEYS or (topic is None and (category == "transactional" or key in ("winback_involuntary", "involuntary_lapsed")))
    assert topic_of("exit_survey") == "surveys" and topic_of("feature_shipped") == "product_updates"
    assert topic_of("at_risk_check_in") == "tips" and topic_of("winback_price") == "offers"


def test_declared_topic_wins_and_unknown_campaigns_count_as_offers():
    assert topic_of("my_campaign", "my_sequence", "tips") == "tips"
    assert topic_of("my_campaign", "check_in") == "tips"  # by sequence
    assert topic_of("my_campaign", "custom", "no_such_topic") == "offers"
    assert topic_of("winback_price", category="transactional") is None


def test_topics_are_described_in_every_locale():
    for topic, texts in TOPICS.items():
        assert set(texts) == set(LOCALES), topic
        assert all(title and description for title, description in texts.values())
