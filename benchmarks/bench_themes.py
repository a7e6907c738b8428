"""Benchmark feedback themes (winback.insights.themes) on 200,000 feedback texts.

    python benchmarks/bench_themes.py [--texts 200000] [--customers 120000] [--seed 1]

Data, in six language variants (en, ja, ko, uk, zh-Hans, zh-Hant):
  * 60% exit-survey / cancellation comments drawn from the generator's text pool
    (winback.synth.texts), half of them with a second sentence, half with a greeting or an
    account number around them - so most texts are distinct, as in real feedback;
  * 25% ticket subjects from the generator's pool, half with a ticket number;
  * 15% texts about topics the lexicon does not know (data residency, invoice formats, SCIM,
    audit exports, time zones ...) with varying wording and slot values, for discovery.
40% of the customers are churned with a lost MRR between 10 and 500 (USD); the rest are active.

Prints the wall and CPU seconds for find_themes (lexicon matching, competitor names, discovery,
quotes and ranking in one call; the first call also pays for importing scikit-learn), the number of distinct texts, the number of themes by kind and the top
10 themes with their sizes. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter

import numpy as np
import pyarrow as pa

from winback.insights.features import FeatureCatalog
from winback.insights.themes import find_themes
from winback.synth.texts import (
    FEATURES, LANGUAGES, SAAS_COMPETITORS, SAAS_REASON_TEXTS, TICKET_SUBJECTS, TextPool,
)

GREETINGS = {
    "en": ["Hi team, ", "Hello. ", "FYI: ", ""], "ja": ["お世話になっております。", "こんにちは。", ""],
    "ko": ["안녕하세요. ", "수고 많으십니다. ", ""], "uk": ["Добрий день. ", "Вітаю! ", ""],
    "zh-Hans": ["你好，", "您好！", ""], "zh-Hant": ["你好，", "您好！", ""],
}
SIGN_OFF = {
    "en": " (account {n})", "ja": "（アカウント番号 {n}）", "ko": " (계정 번호 {n})", "uk": " (акаунт {n})",
    "zh-Hans": "（账号 {n}）", "zh-Hant": "（帳號 {n}）",
}
TICKET_NO = " #{n}"
# topics the lexicon has no theme for; {x} is filled from SLOTS
UNKNOWN = {
    "en": ["We need data residency in {x} for compliance", "Can you store our data in {x}?",
           "Invoices must be issued as {y} files", "Please support {y} invoices for our accounting",
           "Do you offer SCIM provisioning for {z}?", "User provisioning via SCIM with {z} is required",
           "Timestamps show the wrong time zone for {x}", "Dates are displayed in the wrong format in {x}"],
    "ja": ["{x}のデータセンターにデータを保存できますか", "データを{x}に保存する必要があります",
           "請求書を{y}形式で発行してください", "{y}形式の請求書に対応してほしい",
           "{z}とのSCIM連携でユーザーを自動作成したい", "タイムゾーンが{x}の時間になっていません"],
    "ko": ["데이터를 {x}에 저장할 수 있나요", "{x} 리전에 데이터를 보관해야 합니다",
           "청구서를 {y} 형식으로 받고 싶어요", "{z} SCIM 프로비저닝을 지원하나요", "시간대가 {x} 기준으로 안 나와요"],
    "uk": ["Чи можна зберігати дані в {x}?", "Нам потрібне зберігання даних у {x}",
           "Рахунки потрібні у форматі {y}", "Чи підтримуєте SCIM з {z}?", "Неправильний часовий пояс для {x}"],
    "zh-Hans": ["数据能否存放在{x}的机房", "我们要求数据存储在{x}", "发票需要{y}格式", "是否支持与{z}的SCIM同步",
                "时区显示不是{x}时间"],
    "zh-Hant": ["資料能否存放在{x}的機房", "我們要求資料儲存在{x}", "發票需要{y}格式", "是否支援與{z}的SCIM同步",
                "時區顯示不是{x}時間"],
}
SLOTS = {"x": ["Frankfurt", "Tokyo", "Seoul", "Kyiv", "Singapore", "Sydney", "Toronto", "Sao Paulo"],
         "y": ["PDF", "XML", "UBL", "ZUGFeRD", "CSV"], "z": ["Okta", "Azure AD", "OneLogin", "JumpCloud"]}


def make_feedback(n: int, customers: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    reasons = TextPool(SAAS_REASON_TEXTS, SAAS_COMPETITORS)
    tickets = TextPool(TICKET_SUBJECTS)
    kind = rng.choice(3, n, p=[0.60, 0.25, 0.15])
    lang = rng.integers(0, len(LANGUAGES), n)
    feature = rng.integers(1, len(FEATURES), n)
    first = reasons.draw(rng, rng.integers(0, len(reasons.groups), n), lang, feature).to_pylist()
    second = reasons.draw(rng, rng.integers(0, len(reasons.groups), n), lang, feature).to_pylist()
    subject = tickets.draw(rng, rng.integers(0, len(tickets.groups), n), lang, feature).to_pylist()
    texts, origins = [], []
    for i in range(n):
        language = LANGUAGES[lang[i]]
        number = int(rng.integers(10_000, 99_999_999))
        if kind[i] == 0:
            text = first[i]
            if rng.random() < 0.5:
                text += ("" if language.startswith(("ja", "zh")) else " ") + second[i]
            if rng.random() < 0.5:
                text = rng.choice(GREETINGS[language]) + text + SIGN_OFF[language].format(n=number)
            texts.append(text)
            origins.append("exit_comment" if rng.random() < 0.6 else "cancel_comment")
        elif kind[i] == 1:
            texts.append(subject[i] + (TICKET_NO.format(n=number) if rng.random() < 0.5 else ""))
            origins.append("ticket")
        else:
            template = str(rng.choice(UNKNOWN[language]))
            text = template.format(**{k: str(rng.choice(v)) for k, v in SLOTS.items()})
            if rng.random() < 0.3:
                text = rng.choice(GREETINGS[language]) + text
            texts.append(text)
            origins.append("survey_other")
    customer = rng.integers(0, customers, n)
    churned = rng.random(customers) < 0.4
    lost = np.where(churned, rng.integers(1_000, 50_000, customers), 0)
    return pa.table({
        "source": pa.array(["bench"] * n),
        "customer_id": pa.array([f"c{c:07d}" for c in customer]),
        "text": pa.array(texts, pa.string()),
        "language": pa.array([LANGUAGES[x] for x in lang]),
        "lost_mrr_minor": pa.array(lost[customer], pa.int64()),
        "currency": pa.array(["USD"] * n),
        "origin": pa.array(origins),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=120_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")

    t0 = time.perf_counter()
    feedback = make_feedback(args.texts, args.customers, args.seed)
    distinct = len(set(feedback.column("text").to_pylist()))
    print(f"data: {feedback.num_rows:,} texts ({distinct:,} distinct), built in {time.perf_counter() - t0:.1f} s")
    catalog = FeatureCatalog.from_keys([f for f in FEATURES if f])

    t0, c0 = time.perf_counter(), time.process_time()
    themes = find_themes(feedback, features=catalog)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    kinds = Counter("discovered" if t.discovered else "competitor" if t.competitor else
                    "feature" if t.id.startswith("feature_") else "lexicon" for t in themes)
    print(f"find_themes: {seconds:.1f} s wall, {cpu:.1f} s CPU ({feedback.num_rows / seconds:,.0f} texts/s wall)")
    print(f"themes: {len(themes)} ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
    print()
    print(f"{'#':>2}  {'theme':<34} {'reason':<15} {'customers':>9} {'mentions':>8} {'lost MRR':>12} "
          f"{'score':>8}  langs  quote")
    for rank, theme in enumerate(themes[:10], 1):
        quote = theme.quotes[0]["text"] if theme.quotes else ""
        print(f"{rank:>2}  {theme.id[:34]:<34} {theme.reason:<15} {theme.customers:>9,} {theme.mentions:>8,} "
              f"{theme.lost_mrr_minor / 100:>12,.2f} {theme.score:>8.5f}  {len(theme.languages):>5}  {quote[:50]}")
    discovered = [t for t in themes if t.discovered]
    if discovered:
        print()
        print("largest discovered themes:")
        for theme in sorted(discovered, key=lambda t: -t.mentions)[:5]:
            print(f"    {theme.mentions:>7,} texts  {theme.top_terms}  {theme.label[:70]}")


if __name__ == "__main__":
    main()
