"""Message templates: every shipped template in every locale, strict merge tags, fallbacks, the
sandbox, escaping, workspace overrides and localised money and dates."""

from __future__ import annotations

import copy
import datetime as dt
import re
from pathlib import Path

import pytest
import yaml
from jinja2.exceptions import SecurityError

from winback.campaigns.rendering import (
    SHIPPED_TEMPLATES,
    TemplateError,
    check_templates,
    known_tag_paths,
    render_message,
    resolve_locale,
    sample_context,
)

PLAYBOOK = Path(__file__).parents[2] / "src/winback/playbooks/builtin/default.yaml"
LOCALES = ("en", "ja", "ko", "uk", "zh")


def _playbook() -> dict:
    return yaml.safe_load(PLAYBOOK.read_text(encoding="utf-8"))


def _steps() -> list[tuple[str, str, bool]]:
    """(template key, category, step offers) for every email step of the default playbook."""
    out = {}
    for seq in _playbook()["sequences"].values():
        category = seq.get("category", "commercial")
        for step in seq["steps"]:
            if step.get("template"):
                out[step["template"]] = (category, bool(step.get("offer")))
    return [(key, cat, offer) for key, (cat, offer) in sorted(out.items())]


STEPS = _steps()
# steps whose offer is a coupon (payment updates and declined checkouts never promote)
COUPON_TEMPLATES = {"winback/incentive", "winback/last_chance", "checkout/abandoned_second", "feature/shipped",
                    "inactivity/we_miss_you"}
NO_PROMOTION = {"checkout/declined_first", "checkout/declined_second", "winback/payment_update",
                "winback/payment_update_reminder"}


def test_the_playbook_names_seventeen_templates_and_all_are_shipped():
    keys = {key for key, _, _ in STEPS}
    assert len(keys) == 17
    assert check_templates(keys) == []
    for key in keys:
        data = yaml.safe_load((SHIPPED_TEMPLATES / f"{key}.yaml").read_text(encoding="utf-8"))
        assert set(LOCALES) <= set(data), f"{key} lacks a locale"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("key,category,offers", STEPS)
def test_every_template_renders_in_every_locale(key, category, offers, locale):
    ctx = sample_context(locale)
    msg = render_message(key, locale, ctx, category=category)
    assert msg.locale == locale and msg.template_key == key
    assert msg.subject.strip() and "\n" not in msg.subject
    for part in (msg.subject, msg.preheader, msg.text, msg.html):
        assert "{{" not in part and "{%" not in part and "None" not in part
    assert ctx["sender"]["postal_address"] in msg.text
    assert ctx["sender"]["postal_address"] in msg.html
    if category == "commercial":
        assert ctx["links"]["unsubscribe"] in msg.text
        assert ctx["links"]["unsubscribe"] in msg.html
    else:
        assert ctx["links"]["unsubscribe"] not in msg.text + msg.html
    if key in COUPON_TEMPLATES:
        assert offers
        assert ctx["coupon"]["code"] in msg.text and ctx["coupon"]["code"] in msg.html
    if key in NO_PROMOTION:
        assert ctx["coupon"]["code"] not in msg.text + msg.html
        assert ctx["links"]["card_update"] in msg.text
    assert ctx["customer"]["first_name"] in msg.text
    assert msg.html.lstrip().startswith("<!DOCTYPE html>") and f'lang="{locale}"' in msg.html
    assert "<script" not in msg.html.lower()


def test_the_text_part_is_written_not_stripped_html():
    msg = render_message("winback/reminder", "en", sample_context("en"))
    assert "<" not in msg.text and "&amp;" not in msg.text
    assert "Hi Maya," in msg.text
    assert "Shared dashboards, Scheduled reports, and Slack alerts" in msg.text  # past usage
    assert "<li>Shared dashboards</li>" in msg.html
    assert 'role="presentation"' in msg.html and "https://app.example.com/l/t0k3n/cta" in msg.html


def test_win_back_emails_tie_to_reason_strategy_and_offer():
    ctx = sample_context("en")
    msg = render_message("winback/reminder", "en", ctx)
    assert ctx["strategy"]["message"] in msg.text and msg.preheader == ctx["strategy"]["message"]
    ctx["reason"], ctx["competitor"] = "competitor", "Tableau"
    assert "If you moved to Tableau" in render_message("winback/whats_new", "en", ctx).text
    ctx["reason"] = "usability"
    assert ctx["links"]["tutorials"] in render_message("winback/whats_new", "en", ctx).text
    incentive = render_message("winback/incentive", "en", ctx)
    assert "25% off for 3 months" in incentive.subject and "Jan 29, 2026" in incentive.text


@pytest.mark.parametrize("key", ["winback/reminder", "winback/whats_new", "winback/incentive",
                                 "winback/last_chance", "winback/payment_update"])
def test_win_back_emails_render_without_a_strategy_or_sender_name(key):
    ctx = sample_context("en")
    ctx["strategy"] = {"key": None, "title": None, "message": None}
    ctx["sender"]["name"] = None
    msg = render_message(key, "en", ctx)
    assert "<p><strong></strong></p>" not in msg.html and "<p></p>" not in msg.html
    assert "\n\n\n" not in msg.text and "Acme Analytics" in msg.text.split("-- ")[0]


def test_subject_variants_and_cta_variants():
    ctx = sample_context("en")
    subjects = {v: render_message("winback/reminder", "en", ctx, subject_variant=v) for v in "abc"}
    assert len({m.subject for m in subjects.values()}) == 3
    assert [m.subject_variant for m in subjects.values()] == ["a", "b", "c"]
    # from the context's variant, and an unknown variant falls back to the first (and says so)
    ctx["variant"]["subject"] = "c"
    assert render_message("winback/reminder", "en", ctx).subject == subjects["c"].subject
    assert render_message("winback/reminder", "en", ctx, subject_variant="zz").subject_variant == "a"
    assert render_message("winback/whats_new", "en", ctx).subject_variant is None

    ctx["variant"]["cta"] = "book"
    book = render_message("winback/incentive", "en", ctx)
    ctx["variant"]["cta"] = "return"
    back = render_message("winback/incentive", "en", ctx)
    assert ctx["links"]["booking"] in book.text and "Book a free walkthrough" in book.html
    assert ctx["links"]["booking"] not in back.text and "Claim your offer" in back.html


def test_exit_survey_follows_the_brief():
    ctx = sample_context("en")
    ctx["reason"] = "missing_feature"
    msg = render_message("survey/exit_request", "en", ctx)
    assert msg.subject == "Quick question about your experience with Acme Analytics, Maya?"
    assert "We noticed you stopped using" in msg.text and "We value your feedback" in msg.text
    assert "2 minutes" in msg.text and ctx["links"]["survey"] in msg.text
    assert "would you return if HubSpot integration were available?" in msg.text
    ctx["reason"] = "price"
    assert "would you return if the price fit your budget better?" in render_message(
        "survey/exit_request", "en", ctx).text


def test_feature_shipped_and_checkout_messages():
    ctx = sample_context("en")
    msg = render_message("feature/shipped", "en", ctx)
    assert "You mentioned needing HubSpot integration. It's live!" in msg.text
    assert "if you reactivate this week, you get 25% off for 3 months" in msg.text
    cart = render_message("checkout/abandoned_first", "en", ctx)
    assert "Pro plan - 12 months x 1: $288.00" in cart.text and ctx["links"]["cta"] in cart.text
    declined = render_message("checkout/declined_first", "en", ctx, category="transactional")
    assert "no login needed" in declined.text and "Unsubscribe" not in declined.text
    assert "service message" in declined.text and "receiving this email because" not in declined.text


# ------------------------------------------------------------------------------ strictness


def _write(folder: Path, key: str, data: dict) -> None:
    path = folder / f"{key}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def _simple(text: str, html: str | None = None, subject: str = "Hello") -> dict:
    return {"en": {"subject": subject, "text": text, "html": html if html is not None else f"<p>{text}</p>"}}


def test_unknown_tags_fail_the_check_and_the_render(tmp_path):
    _write(tmp_path, "custom/typo", _simple("Hi {{ customer.frist_name }}", "<p>{{ cupon.code }}</p>"))
    issues = check_templates({"custom/typo", "custom/absent"}, [tmp_path])
    messages = [str(i) for i in issues]
    assert any("customer.frist_name" in m and "text" in m and "line 1" in m for m in messages)
    assert any("'cupon'" in m and "html" in m for m in messages)
    assert any("custom/absent" in m and "no template file" in m for m in messages)
    with pytest.raises(TemplateError, match="frist_name"):
        render_message("custom/typo", "en", sample_context(), search_paths=[tmp_path])


def test_known_tags_in_loops_pass_the_check(tmp_path):
    _write(tmp_path, "custom/loops", _simple(
        "{% for p in past_purchases %}{{ p.name }} {{ p.amount_minor | money(p.currency) }}{% endfor %}"
        "{% for i in checkout.items %}{{ i.name }}{% endfor %}{{ past_purchases[0].date | date }}"))
    assert check_templates({"custom/loops"}, [tmp_path]) == []
    _write(tmp_path, "custom/badloop", _simple("{% for p in past_purchases %}{{ p.price }}{% endfor %}"))
    assert any("past_purchases.price" in str(i) for i in check_templates({"custom/badloop"}, [tmp_path]))
    assert "customer.first_name" in known_tag_paths() and "checkout.items.quantity" in known_tag_paths()


def test_syntax_errors_and_missing_english_are_reported_with_lines(tmp_path):
    _write(tmp_path, "custom/broken", {"ja": {"subject": "x", "text": "a\nb {% if %}", "html": "<p>x</p>"}})
    messages = [str(i) for i in check_templates({"custom/broken"}, [tmp_path])]
    assert any("English" in m for m in messages)
    assert any("syntax error" in m and "line 2" in m for m in messages)


def test_a_missing_value_without_fallback_names_the_tag_part_and_line(tmp_path):
    _write(tmp_path, "custom/company", _simple("Hello\nfrom {{ customer.company }}"))
    ctx = sample_context()
    ctx["customer"]["company"] = None
    with pytest.raises(TemplateError) as err:
        render_message("custom/company", "en", ctx, search_paths=[tmp_path])
    text = str(err.value)
    assert "customer.company" in text and "custom/company" in text and "text" in text and "line 2" in text
    assert err.value.tag == "customer.company" and err.value.line == 2 and err.value.part == "text"
    # missing entirely (not just None), and in a shipped template
    del ctx["customer"]["first_name"]
    with pytest.raises(TemplateError, match="customer.first_name"):
        render_message("winback/reminder", "ja", ctx)


def test_empty_values_count_as_missing_and_tests_on_them_are_false(tmp_path):
    _write(tmp_path, "custom/cond", _simple(
        "{% if customer.company %}at {{ customer.company }}{% else %}solo{% endif %}"
        "{% if variant.cta == 'book' %} book{% endif %}{% if offer %} offer{% endif %}"))
    ctx = sample_context()
    ctx["customer"]["company"] = "   "
    ctx["offer"] = None
    msg = render_message("custom/cond", "en", ctx, search_paths=[tmp_path])
    assert msg.text.startswith("solo\n")
    assert "book" not in msg.text.split("--")[0] and "offer" not in msg.text.split("--")[0]


@pytest.mark.parametrize("locale,expected", [
    ("en", "Hi there,"), ("ja", "お客様"), ("ko", "고객님, 안녕하세요."), ("uk", "Привіт, друже!"), ("zh", "您好！"),
])
def test_playbook_fallbacks_per_locale(locale, expected):
    fallbacks = _playbook()["fallbacks"]
    ctx = sample_context(locale)
    ctx["customer"]["first_name"] = ""
    msg = render_message("winback/reminder", locale, ctx, fallbacks=fallbacks)
    assert msg.text.splitlines()[0] == expected
    assert "様様" not in msg.text and "님님" not in msg.text and "您好，您好" not in msg.text
    with pytest.raises(TemplateError, match="customer.first_name"):
        render_message("winback/reminder", locale, ctx)  # no fallbacks given


def test_template_default_is_used_when_the_playbook_has_none_for_the_locale(tmp_path):
    _write(tmp_path, "custom/greet", {
        "en": {"subject": "Hi", "text": "Hi {{ customer.first_name | fallback('friend') }}", "html": "<p>x</p>"},
        "ja": {"subject": "Hi", "text": "{{ customer.first_name | fallback('皆さま') }}", "html": "<p>x</p>"}})
    ctx = sample_context("ja")
    ctx["customer"]["first_name"] = None
    only_en = {"customer.first_name": {"en": "there"}}
    ja = render_message("custom/greet", "ja", ctx, search_paths=[tmp_path], fallbacks=only_en)
    assert ja.text.startswith("皆さま")
    en = render_message("custom/greet", "en", ctx, search_paths=[tmp_path], fallbacks=only_en)
    assert en.text.startswith("Hi there")  # the playbook's fallback wins over the template default
    en = render_message("custom/greet", "en", ctx, search_paths=[tmp_path])
    assert en.text.startswith("Hi friend")


# ------------------------------------------------------------------------------ sandbox and escaping


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ customer.__class__ }}",
    "{{ customer._private }}",
    "{{ product.name.__class__.__base__.__subclasses__() }}",
])
def test_the_sandbox_refuses_python_internals(tmp_path, source):
    _write(tmp_path, "custom/evil", _simple(source, "<p>ok</p>"))
    with pytest.raises(SecurityError) as err:
        render_message("custom/evil", "en", sample_context(), search_paths=[tmp_path])
    assert isinstance(err.value, TemplateError)
    assert any("private attribute" in str(i) for i in check_templates({"custom/evil"}, [tmp_path]))


def test_the_sandbox_refuses_unsafe_calls_at_run_time(tmp_path):
    # a format string reaching for internals: not visible in the AST, refused by the sandbox
    _write(tmp_path, "custom/fmt", _simple("{{ '{0.__class__}'.format(product.name) }}", "<p>x</p>"))
    with pytest.raises(SecurityError):
        render_message("custom/fmt", "en", sample_context(), search_paths=[tmp_path])


def test_hostile_names_are_escaped_and_subjects_stay_single_line():
    ctx = sample_context("en")
    ctx["customer"]["first_name"] = "<script>alert(1)</script>\r\nBcc: victim@example.com"
    msg = render_message("winback/reminder", "en", ctx, subject_variant="a")
    assert "<script>" not in msg.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in msg.html
    assert "\r" not in msg.subject and "\n" not in msg.subject
    assert msg.subject.startswith("<script>alert(1)</script> Bcc: victim@example.com, your")
    assert "\n" not in msg.preheader


def test_only_web_links_make_buttons(tmp_path):
    ctx = sample_context("en")
    ctx["links"]["cta"] = "javascript:alert(1)"
    with pytest.raises(TemplateError, match="http"):
        render_message("winback/reminder", "en", ctx)


# ------------------------------------------------------------------------------ overrides and footer


def test_workspace_override_wins_but_keeps_the_footer(tmp_path):
    ws = tmp_path / "templates"
    _write(ws, "winback/reminder", _simple("Custom body for {{ customer.first_name }}",
                                           "<p>Custom body</p>", subject="Custom subject"))
    ctx = sample_context("en")
    msg = render_message("winback/reminder", "ja", ctx, search_paths=[ws, SHIPPED_TEMPLATES])
    assert msg.subject == "Custom subject" and msg.locale == "en"  # the override has no ja: English
    assert msg.text.startswith("Custom body for Maya")
    assert ctx["links"]["unsubscribe"] in msg.text and ctx["links"]["unsubscribe"] in msg.html
    assert ctx["sender"]["postal_address"] in msg.text and "Unsubscribe" in msg.html
    # other keys still come from the shipped folder
    assert render_message("winback/whats_new", "en", ctx, search_paths=[ws]).subject.startswith("What's new")
    # a workspace _layout is not used
    (ws / "_layout").mkdir()
    (ws / "_layout" / "footer.yaml").write_text("en: {}\n", encoding="utf-8")
    assert "Unsubscribe" in render_message("winback/reminder", "en", ctx, search_paths=[ws]).text


def test_commercial_messages_need_an_unsubscribe_link_and_postal_address():
    ctx = sample_context("en")
    ctx["links"]["unsubscribe"] = None
    with pytest.raises(TemplateError, match="links.unsubscribe"):
        render_message("winback/reminder", "en", ctx)
    ctx = sample_context("en")
    ctx["sender"]["postal_address"] = ""
    with pytest.raises(TemplateError, match="postal_address"):
        render_message("winback/reminder", "en", ctx)
    ctx = sample_context("en")
    ctx["links"]["unsubscribe"] = None
    ok = render_message("checkout/declined_first", "en", ctx, category="transactional")
    assert ctx["sender"]["postal_address"] in ok.text


def test_footer_is_localised_and_preferences_optional():
    ctx = sample_context("ja")
    msg = render_message("winback/reminder", "ja", ctx)
    assert "配信停止" in msg.text and "メール配信設定" in msg.text
    ctx["links"]["preferences"] = None
    msg = render_message("winback/reminder", "ja", ctx)
    assert "メール配信設定" not in msg.text and "配信停止" in msg.text
    assert msg.preheader and msg.preheader in msg.html


# ------------------------------------------------------------------------------ locales and formats


@pytest.mark.parametrize("given,expected", [
    ("en", "en"), ("en-GB", "en"), ("ja-JP", "ja"), ("ja", "ja"), ("ko-KR", "ko"), ("ko_KR.UTF-8", "ko"),
    ("uk-UA", "uk"), ("UK", "uk"), ("zh-Hant", "zh"), ("zh-Hans", "zh"), ("zh-TW", "zh"),
    ("zh-Hant-HK", "zh"), ("de-DE", "en"), ("ru", "en"), ("", "en"), (None, "en"), ("x", "en"),
])
def test_resolve_locale(given, expected):
    assert resolve_locale(given) == expected


def test_unknown_locale_renders_english():
    msg = render_message("winback/reminder", "pt-BR", sample_context("en"))
    assert msg.locale == "en" and msg.text.startswith("Hi Maya")


def _money_template(tmp_path: Path) -> None:
    _write(tmp_path, "custom/money", {loc: {
        "subject": "x", "text": "{{ checkout.amount_minor | money(checkout.currency) }}|{{ coupon.expires_at | date }}"
                                "|{{ offer.percent | percent }}", "html": "<p>x</p>"} for loc in LOCALES})


@pytest.mark.parametrize("locale,currency,amount,money,date", [
    ("en", "USD", 123456, "$1,234.56", "Jan 29, 2026"),
    ("ja", "JPY", 3000, "￥3,000", "2026/01/29"),
    ("ko", "KRW", 390000, "₩390,000", "2026. 1. 29."),
    ("uk", "UAH", 1190000, "11 900,00 ₴", "29 січ. 2026 р."),
    ("zh", "CNY", 199900, "¥1,999.00", "2026年1月29日"),
])
def test_money_and_dates_are_localised(tmp_path, locale, currency, amount, money, date):
    _money_template(tmp_path)
    ctx = sample_context(locale)
    ctx["checkout"]["currency"], ctx["checkout"]["amount_minor"] = currency, amount
    body = render_message("custom/money", locale, ctx, search_paths=[tmp_path]).text.split("\n")[0]
    got_money, got_date, got_percent = (part.replace("\xa0", " ").replace("\u202f", " ") for part in body.split("|"))
    assert got_money == money
    assert got_date == date and got_percent == "25%"


def test_jpy_in_japanese_has_no_decimals(tmp_path):
    _money_template(tmp_path)
    ctx = sample_context("ja")
    ctx["checkout"]["currency"], ctx["checkout"]["amount_minor"] = "JPY", 1500
    got = render_message("custom/money", "ja", ctx, search_paths=[tmp_path]).text.split("|")[0]
    assert got[0] in "¥￥" and got[1:] == "1,500" and "." not in got


def test_date_follows_the_readers_region_within_the_language(tmp_path):
    _money_template(tmp_path)
    ctx = sample_context("en")
    ctx["customer"]["locale"] = "en-GB"
    assert "|29 Jan 2026|" in render_message("custom/money", "en", ctx, search_paths=[tmp_path]).text


def test_sample_context_is_complete_and_independent():
    paths = set(known_tag_paths())
    ctx = sample_context("ko")
    for name in ("customer", "product", "sender", "strategy", "offer", "coupon", "checkout", "links", "variant", "step"):
        assert set(ctx[name]) <= paths_under(paths, name)
        assert ctx[name] is not sample_context("ko")[name]
    assert ctx["customer"]["locale"].startswith("ko")
    copy.deepcopy(ctx)  # plain data
    assert isinstance(ctx["customer"]["since"], dt.date)


def paths_under(paths: set[str], name: str) -> set[str]:
    return {p.split(".", 2)[1] for p in paths if p.startswith(name + ".") and p.count(".") >= 1}


def test_check_flags_include_and_non_string_parts(tmp_path):
    _write(tmp_path, "custom/inc", _simple("{% include 'x' %}"))
    assert any("include" in str(i) for i in check_templates({"custom/inc"}, [tmp_path]))
    _write(tmp_path, "custom/odd", {"en": {"subject": ["a"], "text": "x", "html": "y"}, "fr": {}})
    messages = [str(i) for i in check_templates({"custom/odd"}, [tmp_path])]
    assert any("'fr'" in m for m in messages) and any("subject" in m for m in messages)
    assert re.search(r"custom/odd\.yaml:\d+", " ".join(messages))
