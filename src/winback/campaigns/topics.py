"""Topics of commercial messages: what a customer can turn off in the preference centre.

Each commercial campaign belongs to one topic. A playbook campaign may name it (``topic:``);
otherwise the campaign's key, then its sequence, is looked up in :data:`DEFAULT_TOPICS` (the
default playbook's campaigns), and anything else counts as ``offers`` - the conservative choice:
turning off offers stops every marketing message whose topic is unknown. Transactional messages
(receipts, payment problems, an incomplete checkout) have no topic and cannot be turned off.

The scheduler writes the topic into the outbox row's payload; the delivery engine suppresses a
commercial message whose topic the customer turned off (``customer_preferences.topics_off``).
"""

from __future__ import annotations

#: topic key -> localised (title, description) for the preference centre, in en, ja, ko, uk, zh.
TOPICS: dict[str, dict[str, tuple[str, str]]] = {
    "offers": {
        "en": ("Offers and discounts", "Win-back offers, discounts and reminders about your cart."),
        "ja": ("特典・割引", "再開特典や割引、カートのお知らせ。"),
        "ko": ("혜택 및 할인", "재가입 혜택, 할인, 장바구니 알림."),
        "uk": ("Пропозиції та знижки", "Пропозиції повернутися, знижки та нагадування про кошик."),
        "zh": ("优惠与折扣", "回归优惠、折扣和购物车提醒。"),
    },
    "product_updates": {
        "en": ("Product updates", "New features, including ones you asked for, and welcome-back notes."),
        "ja": ("製品アップデート", "ご要望の機能を含む新機能のお知らせや、おかえりなさいのご案内。"),
        "ko": ("제품 업데이트", "요청하신 기능을 포함한 새 기능 소식과 재방문 환영 안내."),
        "uk": ("Оновлення продукту", "Нові функції, зокрема ті, про які ви просили, і привітання з поверненням."),
        "zh": ("产品动态", "新功能（包括您提过的需求）以及欢迎回来的消息。"),
    },
    "surveys": {
        "en": ("Feedback requests", "Short surveys about your experience."),
        "ja": ("アンケートのお願い", "ご利用体験についての短いアンケート。"),
        "ko": ("의견 요청", "이용 경험에 관한 짧은 설문."),
        "uk": ("Запити на відгук", "Короткі опитування про ваш досвід."),
        "zh": ("意见征询", "关于您使用体验的简短问卷。"),
    },
    "tips": {
        "en": ("Check-ins and tips", "Tips to get more out of the product and the occasional check-in."),
        "ja": ("ご利用のヒント", "製品をもっと活用するためのヒントや、ときどきのご様子伺い。"),
        "ko": ("이용 팁 및 안부", "제품을 더 잘 활용하는 팁과 가끔 드리는 안부 메일."),
        "uk": ("Поради та нагадування", "Поради, як отримати більше від продукту, і час від часу — коротке запитання, як справи."),
        "zh": ("使用技巧与问候", "帮助您更好使用产品的技巧，以及偶尔的问候。"),
    },
}
TOPIC_KEYS: tuple[str, ...] = tuple(TOPICS)
FALLBACK_TOPIC = "offers"

#: Campaign keys and sequence names of the default playbook -> topic (None: a service message - a
#: payment problem - that only a pause or an unsubscribe stops).
DEFAULT_TOPICS: dict[str, str | None] = {
    # campaigns
    "winback_price": "offers", "winback_feature": "offers", "winback_support": "offers",
    "winback_competitor": "offers", "winback_usability": "offers", "winback_general": "offers",
    "winback_involuntary": None, "involuntary_lapsed": None, "abandoned_checkout": "offers", "incomplete_checkout": None,
    "exit_survey": "surveys", "feature_shipped": "product_updates", "welcome_back": "product_updates",
    "loyalty_referral": "offers", "at_risk_check_in": "tips", "inactive_regulars": "offers",
    # sequences
    "winback_four_step": "offers", "payment_update": None, "check_in": "tips", "we_miss_you": "offers",
}


def topic_of(campaign_key: str | None, sequence: str | None = None, declared: str | None = None,
             category: str = "commercial") -> str | None:
    """The topic of a campaign's messages (None for transactional messages)."""
    if category == "transactional":
        return None
    if declared in TOPICS:
        return declared
    for name in (campaign_key, sequence):
        if name in DEFAULT_TOPICS:
            return DEFAULT_TOPICS[name]  # None: a service message no topic switch covers
    return FALLBACK_TOPIC


def topic_text(topic: str, lang: str) -> tuple[str, str]:
    texts = TOPICS.get(topic) or {"en": (topic, "")}
    return texts.get(lang) or texts["en"]
