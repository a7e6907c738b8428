"""Feedback themes: the lexicon on hand-written text in six language variants, on the generator's
text pool (via a generated, ingested history with ground truth), the ranking formula, discovery of
unknown themes, competitor names, feature themes and hostile input."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from winback.history.store import ibis_connection
from winback.insights.features import FeatureCatalog, detect_language
from winback.insights.themes import (
    QUOTE_CHARS, analyse_feedback, discover_clusters, feedback_from_history, find_themes, load_lexicon,
    theme_assignments,
)

UTC = dt.timezone.utc
AS_OF = dt.datetime(2025, 12, 31, tzinfo=UTC)  # the generator's default observation end
LANGS = ("en", "ja", "ko", "uk", "zh-Hans", "zh-Hant")


# ---------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def saas_history(generated_saas):
    """3,000 generated SaaS customers ingested into a workspace (source ``saas``), with truth."""
    table = pq.read_table(generated_saas["folder"] / "ground_truth.parquet")
    return {"history": generated_saas["history"], "truth": {r["customer_id"]: r for r in table.to_pylist()}}


@pytest.fixture(scope="session")
def generated_analysis(saas_history):
    con = ibis_connection(saas_history["history"])
    try:
        catalog = FeatureCatalog.from_history(con, AS_OF)
        feedback = feedback_from_history(con, AS_OF)
    finally:
        con.disconnect()
    started = time.perf_counter()
    analysis = analyse_feedback(feedback, features=catalog)
    return {"feedback": feedback, "analysis": analysis, "seconds": time.perf_counter() - started,
            "truth": saas_history["truth"]}


# ---------------------------------------------------------------------------------- hand-written text

# Written for these tests (not taken from the generator's pool); the lexicon was checked against
# them, so every one must land on its theme.
HAND = [
    ("en", "They bumped the price again in January, so we cancelled.", "price_increase"),
    ("en", "Sorry, our budget got slashed and we had to cut costs everywhere.", "budget_cuts"),
    ("en", "Way too expensive for a two-person agency.", "too_expensive"),
    ("ja", "4月からの値上げで予算オーバーになりました。", "price_increase"),
    ("ja", "うちの使い方だと月額が高すぎます。", "too_expensive"),
    ("ko", "요금이 너무 비싸서 유지하기 어렵습니다.", "too_expensive"),
    ("ko", "다음 달부터 가격 인상이라고 해서 해지합니다.", "price_increase"),
    ("uk", "Ціни зросли вдвічі, ми не можемо собі цього дозволити.", "price_increase"),
    ("uk", "Для фрилансера це надто дорого.", "too_expensive"),
    ("zh-Hans", "公司今年削减预算，只能先停用。", "budget_cuts"),
    ("zh-Hans", "年费太贵了，小团队负担不起。", "too_expensive"),
    ("zh-Hant", "突然漲價，我們只好先停掉。", "price_increase"),
    ("zh-Hant", "希望有便宜一點的方案，只要基本功能就夠了。", "cheaper_plan_wanted"),
    ("en", "The UI is confusing and my staff never learned it.", "too_complex"),
    ("en", "The app is really slow and crashes every few days.", "slow_or_buggy"),
    ("ja", "画面が複雑で、新人がなかなか覚えられません。", "too_complex"),
    ("ja", "最近ずっと動作が重くて仕事になりません。", "slow_or_buggy"),
    ("ko", "메뉴가 너무 복잡해서 원하는 기능을 찾기 힘들어요.", "too_complex"),
    ("uk", "Програма постійно зависає і працює повільно.", "slow_or_buggy"),
    ("zh-Hans", "界面太复杂了，新同事根本不会用。", "too_complex"),
    ("zh-Hant", "系統常常當機，資料也會不見。", "slow_or_buggy"),
    ("en", "I emailed support three times and nobody answered.", "slow_support_response"),
    ("en", "There is no phone support at all, which we need.", "no_live_support"),
    ("ja", "問い合わせへの返信が遅すぎます。", "slow_support_response"),
    ("ko", "문의했는데 일주일째 답변이 없어요.", "slow_support_response"),
    ("uk", "Наша проблема так і не вирішена вже місяць.", "unresolved_issue"),
    ("zh-Hans", "问题提了一个月还没解决。", "unresolved_issue"),
    ("zh-Hant", "客服回覆太慢，等了一個禮拜。", "slow_support_response"),
    ("en", "We decided to switch to Notable because the whole org uses it.", "switched_competitor"),
    ("ja", "他社のツールに乗り換えることにしました。", "switched_competitor"),
    ("ko", "경쟁사 제품으로 갈아탔습니다.", "switched_competitor"),
    ("uk", "Ми перейшли на інший сервіс, там дешевше.", "switched_competitor"),
    ("zh-Hans", "我们改用另一家的产品了。", "switched_competitor"),
    ("zh-Hant", "我們已經改用其他廠商的工具。", "switched_competitor"),
    ("en", "Our startup is shutting down next month.", "company_closed"),
    ("en", "We only need it during the summer season.", "seasonal_pause"),
    ("ja", "会社が倒産しました。", "company_closed"),
    ("ko", "회사가 폐업하게 되었습니다.", "company_closed"),
    ("uk", "Ми більше не користуємося цим інструментом.", "stopped_using"),
    ("zh-Hans", "我们决定自己开发一套系统。", "moved_in_house"),
    ("zh-Hant", "公司結束營業了，謝謝你們。", "company_closed"),
    ("en", "No SAML single sign-on, our IT team vetoed it.", "feature_sso"),
    ("ja", "シングルサインオンがないと社内の規定で使えません。", "feature_sso"),
    ("ko", "다크 모드가 없어서 눈이 아파요.", "feature_dark_mode"),
    ("uk", "Без інтеграції зі Slack нам незручно.", "feature_slack_integration"),
    ("zh-Hans", "没有单点登录，安全部门不批准。", "feature_sso"),
    ("zh-Hant", "沒有手機App，出門在外很不方便。", "mobile_access"),
]

# Written after the lexicon was frozen and never tuned against: measures how it generalises.
# Measured: 22 of 32 get the right reason and the other 10 get no theme at all (left to
# discovery or to a reason classifier) - none gets a wrong one.
HELD_OUT = [
    ("en", "The renewal quote came back 40% higher than last year.", "price"),
    ("en", "Management froze all new software purchases.", "price"),
    ("en", "Honestly not worth what you charge.", "price"),
    ("en", "Couldn't get my head around the workflow builder, too fiddly.", "usability"),
    ("en", "Pages take ages to load and exports time out.", "usability"),
    ("en", "Waited a week for a reply from your help desk.", "support"),
    ("en", "We moved over to Plexo, it was cheaper.", "competitor"),
    ("en", "We closed the shop for good.", "other"),
    ("en", "Without a proper API we couldn't connect our warehouse system.", "missing_feature"),
    ("ja", "料金が上がったので見直すことになりました。", "price"),
    ("ja", "操作が難しくて現場が使ってくれませんでした。", "usability"),
    ("ja", "サポートに連絡しても返事がありませんでした。", "support"),
    ("ja", "別のサービスに移行しました。", "competitor"),
    ("ja", "プロジェクトが終わったので解約します。", "other"),
    ("ko", "비용 대비 얻는 게 별로 없어요.", "price"),
    ("ko", "앱이 자꾸 멈춰서 일을 할 수가 없어요.", "usability"),
    ("ko", "고객센터에 연락해도 해결이 안 됩니다.", "support"),
    ("ko", "다른 서비스로 바꿨어요.", "competitor"),
    ("ko", "당분간 쓸 일이 없어서 해지해요.", "other"),
    ("uk", "Після останнього подорожчання ми пішли.", "price"),
    ("uk", "Інтерфейс дуже складний для нашої команди.", "usability"),
    ("uk", "Техпідтримка не відповідала тиждень.", "support"),
    ("uk", "Обрали конкурента з кращою ціною.", "competitor"),
    ("uk", "Наш бізнес закривається.", "other"),
    ("zh-Hans", "价格太高，性价比不行。", "price"),
    ("zh-Hans", "系统经常卡顿，导出还会报错。", "usability"),
    ("zh-Hans", "客服一直不回复消息。", "support"),
    ("zh-Hans", "已经换到别的平台了。", "competitor"),
    ("zh-Hant", "操作太複雜，同事都不想用。", "usability"),
    ("zh-Hant", "我們轉用別家的服務了。", "competitor"),
    ("zh-Hant", "公司合併後不再需要這個工具。", "other"),
    ("zh-Hant", "今年預算縮減，只能取消訂閱。", "price"),
]


def test_lexicon_is_well_formed():
    specs = load_lexicon()
    ids = [s.id for s in specs]
    assert len(ids) == len(set(ids))
    for spec in specs:
        assert set(spec.cues) == set(LANGS), f"{spec.id} lacks cues for {set(LANGS) - set(spec.cues)}"
        assert all(spec.cues[lang] for lang in LANGS), spec.id
    reasons = {s.reason for s in specs}
    assert {"price", "missing_feature", "usability", "support", "competitor", "other"} <= reasons


@pytest.mark.parametrize("language,text,expected", HAND, ids=[f"{lang}-{i}" for i, (lang, _, _) in enumerate(HAND)])
def test_hand_written_texts_get_their_theme(language, text, expected):
    table = theme_assignments([text])
    assert table.column("primary")[0].as_py() == expected
    assert detect_language(text) == language


def test_held_out_texts_are_themed_correctly_or_not_at_all():
    table = theme_assignments([t for _, t, _ in HELD_OUT])
    got = table.column("reason").to_pylist()
    themed = [(g, e) for g, (_, _, e) in zip(got, HELD_OUT) if g is not None]
    correct = sum(g == e for g, e in themed)
    assert correct == len(themed)  # nothing put under a wrong reason
    assert correct / len(HELD_OUT) >= 0.65  # measured 22/32


def test_primary_and_secondary_theme():
    table = theme_assignments(["Way too expensive, and the interface is confusing and hard to use.",
                               "Customer service was slow and unhelpful when we needed it."])
    first, second = table.to_pylist()
    assert {first["primary"], first["secondary"]} == {"too_expensive", "too_complex"}
    # three pieces of support evidence outweigh one missing-feature phrase ("we needed")
    assert second["reason"] == "support"


def test_precomputed_reasons_break_ties():
    text = "The price went up and it is confusing."  # one price cue, one usability cue
    plain = theme_assignments([text]).to_pylist()[0]
    assert {plain["primary"], plain["secondary"]} == {"price_increase", "too_complex"}
    assert theme_assignments([text], reasons=["usability"]).to_pylist()[0]["primary"] == "too_complex"
    assert theme_assignments([text], reasons=["price"]).to_pylist()[0]["primary"] == "price_increase"
    with pytest.raises(ValueError, match="reasons"):
        theme_assignments([text, text], reasons=["price"])


def test_feature_themes_in_every_language_carry_the_release():
    texts = ["We can't roll it out without SSO.", "シングルサインオンに対応してほしいです。", "싱글 사인온 지원이 필요합니다.",
             "Нам потрібен єдиний вхід для всіх співробітників.", "请尽快支持单点登录。", "希望能支援單一登入。"]
    releases = pa.table({"release_id": ["r1"], "released_at": [dt.datetime(2025, 9, 30, tzinfo=UTC)],
                         "title": ["Single sign-on (SAML)"], "feature": ["saml_sso"]})
    catalog = FeatureCatalog.from_keys([], releases, as_of=AS_OF)
    feedback = pa.table({"source": ["s"] * 6, "customer_id": [f"c{i}" for i in range(6)], "text": texts})
    themes = {t.id: t for t in find_themes(feedback, features=catalog)}
    theme = themes["feature_saml_sso"]
    assert theme.customers == 6 and theme.reason == "missing_feature" and theme.feature == "saml_sso"
    assert set(theme.languages) == set(LANGS)
    assert theme.release["release_id"] == "r1" and theme.release["shipped"] is True
    assert len(theme.quotes) == 3 and len({q["language"] for q in theme.quotes}) == 3


def test_named_competitors_become_themes_at_min_size():
    texts = ["We switched to Acmeo last week.", "Acmeo offered us a better deal.", "Acmeoに乗り換えました。",
             "我们换成了Acmeo。", "Went with Brixly instead."]
    feedback = pa.table({"source": ["s"] * 5, "customer_id": ["a", "b", "c", "d", "e"], "text": texts})
    themes = {t.id: t for t in find_themes(feedback, min_size=3)}
    assert themes["competitor_acmeo"].competitor == "Acmeo"
    assert themes["competitor_acmeo"].customers == 4
    assert themes["competitor_acmeo"].label == "Switched to Acmeo"
    assert "competitor_brixly" not in themes  # one customer: stays in the generic theme
    assert themes["switched_competitor"].members == [("s", "e")]
    table = theme_assignments(feedback, min_size=3)
    assert table.column("competitor").to_pylist() == ["Acmeo", "Acmeo", "Acmeo", "Acmeo", "Brixly"]
    higher = {t.id for t in find_themes(feedback, min_size=5)}
    assert "competitor_acmeo" not in higher and "switched_competitor" in higher


# ---------------------------------------------------------------------------------- ranking

def _ranking_feedback():
    rows = []
    for i in range(4):  # price increase: 4 churned customers, 1,000 lost each
        rows.append(("a%d" % i, "The price increase was too much.", 1000))
    for i in range(2):  # too complex: 2 churned customers, 5,000 lost each
        rows.append(("b%d" % i, "Far too complicated for us.", 5000))
    for i in range(6):  # slow support: 6 active customers
        rows.append(("c%d" % i, "Support never replied, no response for days.", 0))
    rows.append(("a0", "Also: a price increase every year!", 1000))  # a second mention, same customer
    return pa.table({"source": ["s"] * len(rows), "customer_id": [r[0] for r in rows],
                     "text": [r[1] for r in rows], "lost_mrr_minor": [r[2] for r in rows],
                     "currency": ["USD"] * len(rows)})


def test_ranking_follows_the_documented_formula():
    themes = find_themes(_ranking_feedback())
    by_id = {t.id: t for t in themes}
    price, complex_, support = by_id["price_increase"], by_id["too_complex"], by_id["slow_support_response"]
    # 12 customers with feedback; 14,000 lost in all
    assert price.customers == 4 and price.mentions == 5 and price.lost_mrr_minor == 4000
    assert price.customer_share == pytest.approx(4 / 12)
    assert price.lost_mrr_share == pytest.approx(4000 / 14000)
    assert price.score == pytest.approx(4 / 12 * 4000 / 14000)
    assert complex_.score == pytest.approx(2 / 12 * 10000 / 14000)
    assert support.score == 0 and support.customers == 6
    assert [t.id for t in themes] == ["too_complex", "price_increase", "slow_support_response"]
    assert [t.score for t in themes] == sorted((t.score for t in themes), reverse=True)
    assert price.currency == "USD" and price.lost_mrr_by_currency == {"USD": 4000}


def test_ranking_never_adds_currencies():
    feedback = pa.table({
        "source": ["s"] * 4, "customer_id": ["u1", "u2", "j1", "j2"],
        "text": ["Too expensive.", "Far too complicated.", "Too expensive.", "Far too complicated."],
        "lost_mrr_minor": [100, 300, 90000, 10000], "currency": ["USD", "USD", "JPY", "JPY"],
    })
    by_id = {t.id: t for t in find_themes(feedback)}
    price = by_id["too_expensive"]
    # half the lost customers pay in each currency: share = 0.5 x 100/400 + 0.5 x 90000/100000
    assert price.lost_mrr_share == pytest.approx(0.5 * 0.25 + 0.5 * 0.9)
    assert price.lost_mrr_by_currency == {"JPY": 90000, "USD": 100}
    assert price.currency == "JPY" and price.lost_mrr_minor == 90000  # the currency with most lost MRR


# ---------------------------------------------------------------------------------- discovery

DATA_RESIDENCY = [
    "Our legal team requires EU data residency for GDPR",
    "GDPR: we must keep data residency in the EU",
    "EU data residency is required by GDPR for us",
    "Data residency in the EU (GDPR) is mandatory",
    "We require GDPR compliant EU data residency",
]
PDF_INVOICES = [
    "Invoices should be sent as PDF attachments",
    "Please attach invoices as PDF files",
    "We want PDF invoices attached to the email",
    "Invoices as PDF attachment, please",
]
DOMESTIC_SERVERS = [
    "データは国内サーバーに保存してほしい",
    "データを国内のサーバーに保存したい",
    "国内のサーバーにデータを保存できますか",
    "国内サーバーへのデータ保存を希望します",
]
NOISE = ["The weather in Lisbon was lovely", "Quarterly offsite planning notes", "Bananas are yellow",
         "xkcd 927 explains standards", "Ping me on Tuesday"]


def test_discovery_groups_clearly_similar_unknown_texts():
    texts = DATA_RESIDENCY + PDF_INVOICES + DOMESTIC_SERVERS + NOISE
    feedback = pa.table({"source": ["s"] * len(texts), "customer_id": [f"c{i}" for i in range(len(texts))],
                         "text": texts})
    analysis = analyse_feedback(feedback, min_size=3)
    primary = analysis.assignments.column("primary").to_pylist()
    groups = [DATA_RESIDENCY, PDF_INVOICES, DOMESTIC_SERVERS]
    ids = []
    start = 0
    for group in groups:
        got = set(primary[start:start + len(group)])
        assert len(got) == 1 and None not in got, (group, got)
        ids.append(got.pop())
        start += len(group)
    assert len(set(ids)) == 3
    assert not set(primary[start:]) & set(ids)  # no noise in them
    themes = {t.id: t for t in analysis.themes}
    for theme_id, group in zip(ids, groups):
        theme = themes[theme_id]
        assert theme.discovered and theme.reason == "unknown"
        assert theme.customers == len(group)
        assert theme.quotes[0]["text"] in group and theme.label.startswith("Discovered: ")
        assert theme.top_terms
    assert any("gdpr" in term or "residency" in term for term in themes[ids[0]].top_terms)
    assert any("pdf" in term or "invoice" in term for term in themes[ids[1]].top_terms)


def test_discovery_takes_its_reason_from_precomputed_reasons():
    feedback = pa.table({"source": ["s"] * 4, "customer_id": ["a", "b", "c", "d"], "text": PDF_INVOICES})
    themes = find_themes(feedback, reasons=["missing_feature", "missing_feature", "missing_feature", "other"])
    assert len(themes) == 1 and themes[0].discovered and themes[0].reason == "missing_feature"


def test_discovery_is_deterministic_and_respects_min_size():
    texts = [t.casefold() for t in DATA_RESIDENCY + PDF_INVOICES + NOISE]
    first = discover_clusters(texts, min_size=3)
    assert [c.members for c in first] == [c.members for c in discover_clusters(texts, min_size=3)]
    assert len(first) == 2
    assert discover_clusters(texts, min_size=6) == []
    # one text said by enough customers is a theme by itself
    repeated = discover_clusters(["can't log in"], [5], min_size=3)
    assert len(repeated) == 1 and repeated[0].members == [0]


# ---------------------------------------------------------------------------------- hostile input

def test_hostile_text_does_not_break_anything():
    long_text = "Way too expensive. " * 6000  # ~114k characters
    texts = [None, "", "   ", "😀😀🔥🙏", "\x00\x01\x02 \u202e\u200b", "<b>Too expensive</b><script>alert(1)</script>",
             "<<<>>>&&&;;", long_text, "\uffff\ufffe", 12345, "Price\x00increase\x07!",
             "𝐓𝐨𝐨 𝐞𝐱𝐩𝐞𝐧𝐬𝐢𝐯𝐞", "<img src=x onerror=alert(1)> the app keeps crashing"]
    feedback = pa.table({"source": ["s"] * len(texts), "customer_id": [None, "a", "b", "c", "d", "e", "f", "g", "h",
                                                                       "i", "j", "k", "l"],
                         "text": pa.array([None if t is None else str(t) for t in texts], pa.string()),
                         "lost_mrr_minor": pa.array([None, 0, -5, None, 10, 20, 0, 30, 0, 0, 0, 0, 0], pa.int64())})
    started = time.perf_counter()
    analysis = analyse_feedback(feedback)
    assert time.perf_counter() - started < 10
    rows = analysis.assignments.to_pylist()
    assert len(rows) == len(texts)
    assert [r["primary"] for r in rows[:5]] == [None] * 5  # nothing usable in them
    assert rows[5]["primary"] == "too_expensive"
    assert rows[7]["primary"] == "too_expensive"
    assert rows[11]["primary"] == "too_expensive"  # NFKC folds mathematical bold letters
    assert rows[12]["primary"] == "slow_or_buggy"
    for theme in analysis.themes:
        assert theme.lost_mrr_minor >= 0
        for quote in theme.quotes:
            assert len(quote["text"]) <= QUOTE_CHARS
            assert "<script" not in quote["text"] and "\x00" not in quote["text"]
    assert find_themes([]) == []
    lone = theme_assignments(["\ud800 too expensive", "ok\udfff"])  # lone surrogates from a bad decoder
    assert lone.column("primary").to_pylist() == ["too_expensive", None]
    assert theme_assignments([]).num_rows == 0
    with pytest.raises(ValueError, match="text"):
        find_themes(pa.table({"comment": ["x"]}))


# ---------------------------------------------------------------------------------- generated data

def test_generated_comments_agree_with_ground_truth(generated_analysis):
    """Exit and cancellation comments: the theme's reason against the reason the generator wrote
    the comment for (``comment_reason``; customers who came back are left out, their comment may
    belong to the earlier churn)."""
    truth = generated_analysis["truth"]
    feedback = generated_analysis["feedback"]
    origins = feedback.column("origin").to_pylist()
    rows = generated_analysis["analysis"].assignments.to_pylist()
    agree = total = unthemed = 0
    for row in rows:
        if origins[row["row"]] not in ("exit_comment", "cancel_comment"):
            continue
        expected = truth[row["customer_id"]]
        if expected["reactivated"] or not expected["comment_reason"]:
            continue
        if row["reason"] in (None, "unknown"):
            unthemed += 1
            continue
        total += 1
        agree += row["reason"] == expected["comment_reason"]
    assert total > 300
    assert agree / total >= 0.95  # measured 1.0 on this seed
    assert unthemed / (total + unthemed) <= 0.05  # measured 0


def test_generated_themes_cover_six_languages_with_quotes(generated_analysis):
    themes = generated_analysis["analysis"].themes
    lexicon = [t for t in themes if not t.discovered]
    for lang in LANGS:
        quoted = [t.id for t in lexicon if any(q["language"] == lang for q in t.quotes)]
        assert len(quoted) >= 5, (lang, quoted)
    for theme in themes:
        assert 1 <= len(theme.quotes) <= 3
        langs = [q["language"] for q in theme.quotes]
        if not theme.discovered and len(theme.languages) >= 3:
            assert len(set(langs)) == 3  # as diverse as the theme allows
        assert all(m[0] == "saas" for m in theme.members)
        assert len(theme.members) == theme.customers
    assert [t.score for t in themes] == sorted((t.score for t in themes), reverse=True)
    ids = {t.id for t in themes}
    assert {"price_increase", "budget_cuts", "too_complex", "unresolved_issue", "stopped_using"} <= ids
    assert {"competitor_tallyo", "competitor_brightdesk", "competitor_orbitly", "competitor_zentrax"} <= ids
    assert generated_analysis["seconds"] < 30


def test_generated_integration_x_theme_links_to_its_release(generated_analysis):
    themes = {t.id: t for t in generated_analysis["analysis"].themes}
    theme = themes["feature_integration_x"]
    assert theme.reason == "missing_feature" and theme.feature == "integration_x"
    assert theme.release["release_id"] == "rel_009" and theme.release["shipped"] is True
    assert theme.release["released_at"].startswith("2025-07-15")
    assert set(theme.languages) == set(LANGS)
    truth = generated_analysis["truth"]
    requesters = {cid for cid, r in truth.items() if r["requested_feature"] == "integration_x"}
    members = {cid for _, cid in theme.members}
    # comments and ticket subjects naming Integration X: mostly the customers who asked for it
    assert len(members & requesters) / len(members) >= 0.5
    assert themes["mobile_access"].release["shipped"] is False  # planned for 2026-03-02


def test_generated_feedback_table_shape(generated_analysis):
    feedback = generated_analysis["feedback"]
    assert feedback.schema.names == ["source", "customer_id", "text", "language", "lost_mrr_minor", "currency",
                                     "at", "origin"]
    origins = Counter(feedback.column("origin").to_pylist())
    assert origins["exit_comment"] > 0 and origins["cancel_comment"] > 0 and origins["ticket"] > 0
    truth = generated_analysis["truth"]
    for row in feedback.to_pylist()[:500]:
        expected = truth[row["customer_id"]]
        if row["lost_mrr_minor"] > 0:
            assert expected["churned"]
