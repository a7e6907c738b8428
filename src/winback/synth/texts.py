"""Hand-written free text for the generator: exit-survey comments, cancellation comments, ticket subjects.

Languages: English, Japanese, Korean, Ukrainian, Chinese (simplified and traditional). Every reason
has several genuinely different sentences per language (a reason classifier is evaluated on them),
written the way customers actually write: short and long, formal and casual.

Placeholders: ``{feature}`` (a feature label in the sentence's language) and ``{competitor}``
(a fictional competitor). :class:`TextPool` expands them ahead of time, so drawing a sentence per
row is a vectorised index into one string array.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa

LANGUAGES: tuple[str, ...] = ("en", "ja", "ko", "uk", "zh-Hans", "zh-Hant")
TEXT_REASONS: tuple[str, ...] = ("price", "missing_feature", "usability", "support", "competitor", "other")

SAAS_COMPETITORS = ("Tallyo", "Brightdesk", "Orbitly", "Zentrax")
SHOP_COMPETITORS = ("ShopMart", "Buyzo", "QuickCart", "Marketly")

# Feature keys (as in product_events.feature / releases.feature) and their labels per language.
# Index 0 is the generic label used when the feature is unknown.
FEATURES: tuple[str, ...] = (
    "", "integration_x", "sso", "mobile_app", "api_webhooks", "custom_reports", "salesforce_sync",
)
FEATURE_LABELS: dict[str, dict[str, str]] = {
    "": {"en": "the integration we needed", "ja": "必要な連携機能", "ko": "필요한 연동",
         "uk": "потрібна інтеграція", "zh-Hans": "我们需要的集成功能", "zh-Hant": "我們需要的整合功能"},
    "integration_x": {lang: "Integration X" for lang in LANGUAGES},
    "sso": {"en": "SSO", "ja": "シングルサインオン（SSO）", "ko": "SSO(싱글 사인온)",
            "uk": "єдиний вхід (SSO)", "zh-Hans": "单点登录（SSO）", "zh-Hant": "單一登入（SSO）"},
    "mobile_app": {"en": "a mobile app", "ja": "モバイルアプリ", "ko": "모바일 앱",
                   "uk": "мобільний застосунок", "zh-Hans": "手机应用", "zh-Hant": "手機 App"},
    "api_webhooks": {"en": "webhooks", "ja": "Webhook", "ko": "웹훅",
                     "uk": "вебхуки", "zh-Hans": "Webhook 接口", "zh-Hant": "Webhook 功能"},
    "custom_reports": {"en": "custom reports", "ja": "カスタムレポート", "ko": "맞춤 보고서",
                       "uk": "власні звіти", "zh-Hans": "自定义报表", "zh-Hant": "自訂報表"},
    "salesforce_sync": {"en": "Salesforce sync", "ja": "Salesforce連携", "ko": "Salesforce 연동",
                        "uk": "синхронізація з Salesforce", "zh-Hans": "Salesforce 同步",
                        "zh-Hant": "Salesforce 同步"},
}

# ---------------------------------------------------------------------------------------------
# SaaS: why I cancelled (exit-survey comment, cancellation comment)
# ---------------------------------------------------------------------------------------------

SAAS_REASON_TEXTS: dict[str, dict[str, list[str]]] = {
    "price": {
        "en": [
            "Honestly it just got too expensive for a team our size.",
            "After the price went up we couldn't justify the cost anymore.",
            "We're a small shop and the monthly bill was eating into our budget.",
            "Great product, but hard to justify the price for what we actually use.",
            "Budget cuts this quarter - the subscription was one of the first things to go.",
            "The new pricing is way more than we planned to spend this year, so we're out.",
            "too pricey. if there was a cheaper plan with just the basics i'd stay",
            "Our finance team asked us to cut software spend and this tool didn't make the cut.",
            "The price increase was the last straw, sorry.",
        ],
        "ja": [
            "正直、うちの規模だと料金が高すぎました。",
            "値上げ後の価格では費用対効果が合わなくなりました。",
            "小さな会社なので、毎月の支払いが負担でした。",
            "良いサービスですが、実際に使う機能に対しては高いと感じます。",
            "今期は予算削減があり、真っ先に解約対象になりました。",
            "もう少し安いプランがあれば続けていたと思います。",
            "経理からソフトウェアの費用を減らすよう言われたため解約します。",
            "今回の値上げが決め手になりました。すみません。",
        ],
        "ko": [
            "솔직히 저희 규모에는 너무 비쌌어요.",
            "가격이 오른 뒤로는 비용 대비 효과가 안 나옵니다.",
            "작은 회사라 매달 나가는 구독료가 부담됐습니다.",
            "서비스는 좋은데 실제로 쓰는 기능에 비해 가격이 높아요.",
            "이번 분기 예산이 삭감돼서 제일 먼저 정리하게 됐습니다.",
            "조금 더 저렴한 요금제가 있었다면 계속 썼을 거예요.",
            "재무팀에서 소프트웨어 비용을 줄이라고 해서 해지합니다.",
            "이번 가격 인상이 결정적이었어요. 죄송합니다.",
        ],
        "uk": [
            "Чесно кажучи, для нашої невеликої команди це занадто дорого.",
            "Після підвищення ціни ми більше не можемо виправдати ці витрати.",
            "Ми маленька компанія, і щомісячний платіж був для нас відчутним.",
            "Продукт хороший, але за ті функції, якими ми користуємося, ціна завелика.",
            "У цьому кварталі скоротили бюджет, і підписку довелося скасувати першою.",
            "Якби був дешевший тариф лише з базовими можливостями, я б залишився.",
            "Фінвідділ попросив зменшити витрати на програми, тож відмовляємося.",
            "Нове підвищення цін стало останньою краплею, вибачте.",
        ],
        "zh-Hans": [
            "说实话，对我们这种规模的团队来说太贵了。",
            "涨价以后，我们觉得性价比不高了。",
            "我们是小公司，每个月的订阅费压力挺大的。",
            "产品不错，但就我们实际用到的功能来说价格偏高。",
            "这个季度预算被砍，订阅是第一个被取消的。",
            "如果有更便宜的基础套餐，我会继续用。",
            "财务要求压缩软件开支，所以只能停掉。",
            "这次涨价是压垮我们的最后一根稻草，抱歉。",
        ],
        "zh-Hant": [
            "老實說，以我們的團隊規模來說太貴了。",
            "漲價之後，我們覺得不划算了。",
            "我們是小公司，每個月的訂閱費負擔不小。",
            "產品很好，但以我們實際用到的功能來看，價格偏高。",
            "這一季預算被砍，訂閱是第一個被刪掉的。",
            "如果有更便宜的基本方案，我會繼續使用。",
            "財務要求我們減少軟體支出，所以只好取消。",
            "這次漲價是最後一根稻草，抱歉。",
        ],
    },
    "missing_feature": {
        "en": [
            "We really needed {feature} and it still isn't there.",
            "Without {feature} we had to keep doing things by hand, so we moved on.",
            "I asked for {feature} months ago. Never happened.",
            "Our whole workflow depends on {feature}. We'll come back once you have it.",
            "The lack of {feature} was a dealbreaker for our team.",
            "Everything else is fine, but {feature} is a must-have for us.",
            "We waited for {feature} as long as we could.",
        ],
        "ja": [
            "{feature}がどうしても必要でしたが、まだ対応していないようなので。",
            "{feature}がないため、結局手作業が多く残ってしまいました。",
            "数か月前に{feature}を要望しましたが、実装されませんでした。",
            "業務フローが{feature}前提なので、対応したらまた使いたいです。",
            "{feature}が使えないのが致命的でした。",
            "他は満足していますが、{feature}だけはどうしても必要です。",
            "{feature}の対応をずっと待っていましたが、限界でした。",
        ],
        "ko": [
            "{feature} 기능이 꼭 필요했는데 아직 지원이 안 되네요.",
            "{feature} 지원이 없어서 결국 수작업이 너무 많았습니다.",
            "몇 달 전에 {feature} 기능을 요청했는데 반영되지 않았어요.",
            "저희 업무가 {feature} 기능을 전제로 돌아가서, 생기면 다시 쓰고 싶어요.",
            "{feature} 기능이 없는 게 치명적이었습니다.",
            "다른 건 다 만족하지만 {feature} 기능은 필수예요.",
            "{feature} 지원을 계속 기다렸는데 더는 못 기다리겠어요.",
        ],
        "uk": [
            "Нам дуже потрібна функція «{feature}», а її досі немає.",
            "Без функції «{feature}» доводилося багато робити вручну, тому ми пішли.",
            "Я просив додати «{feature}» ще кілька місяців тому, але нічого не змінилося.",
            "Наш процес тримається на функції «{feature}». Повернемося, коли вона з’явиться.",
            "Відсутність функції «{feature}» стала для нас вирішальною.",
            "Усе інше влаштовує, але «{feature}» для нас обов’язкова річ.",
            "Ми чекали на «{feature}» скільки могли.",
        ],
        "zh-Hans": [
            "我们非常需要{feature}，但一直没有上线。",
            "因为没有{feature}，很多工作还得手动做，所以换掉了。",
            "几个月前就提过{feature}的需求，一直没有回音。",
            "我们的流程离不开{feature}，等支持了再回来。",
            "缺少{feature}对我们来说是致命的。",
            "其他都挺好，就是{feature}是刚需。",
            "等{feature}等了很久，实在等不下去了。",
        ],
        "zh-Hant": [
            "我們非常需要{feature}，但一直都沒有推出。",
            "因為沒有{feature}，很多工作還是要手動處理，所以我們離開了。",
            "好幾個月前就反映過需要{feature}，到現在都沒下文。",
            "我們的作業流程必須用到{feature}，等支援了會再回來。",
            "缺少{feature}對我們來說是致命傷。",
            "其他都還不錯，但{feature}是我們的必要需求。",
            "等{feature}等了很久，實在等不下去了。",
        ],
    },
    "usability": {
        "en": [
            "Too complicated to set up, we never got it working properly.",
            "The interface is confusing and my team kept getting lost.",
            "Honestly I couldn't figure out how to do the basic things.",
            "Way too many settings. We just wanted something simple.",
            "Onboarding took forever and we still didn't understand half the features.",
            "It felt clunky and slow to use day to day.",
            "spent two weekends trying to configure it, gave up",
            "Nobody on the team wanted to learn it, it's just not intuitive.",
        ],
        "ja": [
            "設定が複雑すぎて、最後まで使いこなせませんでした。",
            "画面が分かりにくく、チームのメンバーが迷ってばかりでした。",
            "基本的な操作の方法すら分かりませんでした。",
            "設定項目が多すぎます。もっとシンプルなものが欲しかったです。",
            "導入に時間がかかりすぎて、機能の半分も理解できませんでした。",
            "日々の操作がもっさりしていて使いづらかったです。",
            "週末を二回つぶして設定しようとしましたが、諦めました。",
            "直感的に使えないので、誰も覚えようとしませんでした。",
        ],
        "ko": [
            "설정이 너무 복잡해서 끝내 제대로 쓰지 못했어요.",
            "화면 구성이 헷갈려서 팀원들이 계속 헤맸습니다.",
            "기본적인 기능조차 어떻게 쓰는지 모르겠더라고요.",
            "설정 항목이 너무 많아요. 그냥 단순한 도구가 필요했어요.",
            "도입하는 데 시간이 너무 오래 걸렸고 기능의 절반도 이해 못 했어요.",
            "매일 쓰기에는 느리고 불편했습니다.",
            "주말 이틀을 날리면서 세팅해 보다가 포기했어요.",
            "직관적이지 않아서 아무도 배우려고 하지 않았습니다.",
        ],
        "uk": [
            "Надто складно налаштувати, ми так і не змогли нормально все запустити.",
            "Інтерфейс заплутаний, команда постійно губилася.",
            "Я навіть не зміг розібратися, як зробити базові речі.",
            "Забагато налаштувань. Нам потрібен був простий інструмент.",
            "Впровадження тривало вічність, а половину функцій ми так і не зрозуміли.",
            "Щодня користуватися було незручно й повільно.",
            "Два вихідні намагався все налаштувати, зрештою здався.",
            "Він зовсім не інтуїтивний, ніхто в команді не хотів його вчити.",
        ],
        "zh-Hans": [
            "配置太复杂了，最后也没能真正用起来。",
            "界面很混乱，团队成员经常找不到东西。",
            "连最基本的操作都搞不明白。",
            "设置项太多了，我们只想要个简单的工具。",
            "上手花了太长时间，一半的功能还是没弄懂。",
            "日常用起来又卡又不顺手。",
            "花了两个周末折腾配置，最后放弃了。",
            "一点都不直观，团队里没人愿意学。",
        ],
        "zh-Hant": [
            "設定太複雜了，最後還是沒辦法好好使用。",
            "介面很混亂，團隊成員常常找不到功能。",
            "連最基本的操作都搞不懂。",
            "設定選項太多了，我們只想要一個簡單的工具。",
            "導入花了太久，一半的功能到現在還是不懂。",
            "每天使用起來又慢又不順手。",
            "花了兩個週末在設定，最後放棄了。",
            "一點都不直覺，團隊裡沒有人想學。",
        ],
    },
    "support": {
        "en": [
            "Support took days to answer and my ticket is still open.",
            "We had a serious problem and nobody helped us.",
            "I got passed around between agents and never got a real answer.",
            "The onboarding call never happened even though we booked it twice.",
            "Customer service was slow and unhelpful exactly when we needed it.",
            "Our bug report was ignored for weeks.",
            "I felt completely ignored as a customer.",
        ],
        "ja": [
            "サポートの返信に何日もかかり、問い合わせはまだ解決していません。",
            "重大な問題が起きたのに、誰も助けてくれませんでした。",
            "担当者をたらい回しにされ、結局まともな回答がありませんでした。",
            "二回も予約したオンボーディングの打ち合わせが実施されませんでした。",
            "一番困っている時にサポートの対応が遅く、役に立ちませんでした。",
            "不具合の報告を何週間も放置されました。",
            "顧客として完全に無視されていると感じました。",
        ],
        "ko": [
            "고객지원 답변이 며칠씩 걸리고 문의는 아직도 해결이 안 됐어요.",
            "심각한 문제가 생겼는데 아무도 도와주지 않았습니다.",
            "상담원 사이에서 계속 돌려지기만 하고 제대로 된 답을 못 받았어요.",
            "두 번이나 예약한 온보딩 미팅이 진행되지 않았습니다.",
            "가장 급할 때 고객센터 대응이 느리고 도움이 안 됐어요.",
            "버그 신고를 몇 주 동안 방치하더군요.",
            "고객으로서 완전히 무시당한 느낌이었습니다.",
        ],
        "uk": [
            "Підтримка відповідає днями, а мій запит досі відкритий.",
            "У нас була серйозна проблема, і ніхто не допоміг.",
            "Мене перекидали від одного оператора до іншого, а відповіді так і не було.",
            "Дзвінок з онбордингу так і не відбувся, хоча ми двічі його бронювали.",
            "Служба підтримки була повільною й некорисною саме тоді, коли була потрібна.",
            "Наш звіт про помилку тижнями ігнорували.",
            "Я відчував, що нас як клієнтів просто ігнорують.",
        ],
        "zh-Hans": [
            "客服好几天才回复，我的工单到现在还没解决。",
            "我们遇到了严重的问题，却没有人帮忙。",
            "被不同的客服推来推去，始终没有得到明确答复。",
            "预约了两次的上手培训电话都没有兑现。",
            "最需要帮助的时候，客服反应又慢又没用。",
            "我们提交的bug报告被晾了好几周。",
            "作为客户，感觉完全被忽视了。",
        ],
        "zh-Hant": [
            "客服好幾天才回覆，我的問題單到現在還沒解決。",
            "我們遇到嚴重的問題，卻沒有人幫忙。",
            "一直被不同的客服轉來轉去，始終沒有得到明確的答覆。",
            "預約了兩次的導入說明會議都沒有進行。",
            "最需要幫忙的時候，客服回應又慢又沒幫助。",
            "我們回報的錯誤被擱置了好幾個星期。",
            "身為客戶，覺得完全被忽略了。",
        ],
    },
    "competitor": {
        "en": [
            "We switched to {competitor}, it fits our process better.",
            "Moving to {competitor} because the rest of the company already uses it.",
            "{competitor} offered us a better deal and more features.",
            "Went with {competitor}. Their reporting is just better for us.",
            "Our new manager prefers {competitor} so we're consolidating.",
            "Found an alternative ({competitor}) that does the same for less.",
            "We've already migrated everything to {competitor}.",
        ],
        "ja": [
            "{competitor}に乗り換えました。うちの業務にはそちらの方が合っています。",
            "社内の他部署が{competitor}を使っているので、そちらに統一します。",
            "{competitor}の方が条件も機能も良かったです。",
            "{competitor}にしました。レポート機能がうちには合っていました。",
            "新しい上司が{competitor}派なので、ツールを統一することになりました。",
            "同じことがより安くできる{competitor}を見つけました。",
            "すでにすべてのデータを{competitor}に移行しました。",
        ],
        "ko": [
            "{competitor} 쪽으로 옮겼어요. 저희 업무 방식에 더 잘 맞네요.",
            "다른 팀이 모두 {competitor} 서비스를 쓰고 있어서 통일하기로 했습니다.",
            "{competitor} 쪽이 조건도 기능도 더 좋았어요.",
            "{competitor} 서비스로 결정했습니다. 리포트 기능이 저희에게 더 맞아요.",
            "새로 온 팀장님이 {competitor} 서비스를 선호해서 도구를 통일합니다.",
            "같은 기능을 더 싸게 쓸 수 있는 {competitor} 서비스를 찾았어요.",
            "이미 모든 데이터를 {competitor} 쪽으로 옮겼습니다.",
        ],
        "uk": [
            "Ми перейшли на {competitor}, він краще підходить під наші процеси.",
            "Переходимо на {competitor}, бо решта компанії вже ним користується.",
            "{competitor} запропонував кращі умови й більше функцій.",
            "Обрали {competitor}, там звіти значно зручніші для нас.",
            "Новий керівник віддає перевагу {competitor}, тож об’єднуємо інструменти.",
            "Знайшли альтернативу — {competitor}, робить те саме, але дешевше.",
            "Ми вже перенесли все в {competitor}.",
        ],
        "zh-Hans": [
            "我们换成了{competitor}，它更适合我们的流程。",
            "公司其他部门都在用{competitor}，所以统一迁过去了。",
            "{competitor}给的价格更好，功能也更多。",
            "最后选了{competitor}，他们的报表更符合我们的需要。",
            "新来的主管更喜欢{competitor}，我们要统一工具。",
            "找到了替代品{competitor}，功能差不多但更便宜。",
            "我们已经把所有数据都迁移到{competitor}了。",
        ],
        "zh-Hant": [
            "我們改用{competitor}了，它比較符合我們的流程。",
            "公司其他部門都在用{competitor}，所以統一轉過去。",
            "{competitor}給的條件比較好，功能也比較多。",
            "最後選了{competitor}，他們的報表比較適合我們。",
            "新主管比較喜歡{competitor}，我們要統一工具。",
            "找到替代方案{competitor}，功能差不多但更便宜。",
            "我們已經把所有資料都搬到{competitor}了。",
        ],
    },
    "other": {
        "en": [
            "We're not using it enough to keep paying.",
            "The project we bought it for has ended.",
            "Our company is shutting down, nothing to do with you.",
            "Just don't need it anymore.",
            "We merged with another company and are consolidating tools.",
            "Taking a break, might come back next year.",
            "The person who used this left the company.",
            "Seasonal business - we only need it a few months a year.",
        ],
        "ja": [
            "あまり使っていないので、払い続ける理由がなくなりました。",
            "このサービスを導入したプロジェクトが終了しました。",
            "会社を畳むことになりました。御社のせいではありません。",
            "今はもう必要なくなりました。",
            "他社と合併し、ツールを整理しているところです。",
            "しばらく休止します。来年また検討するかもしれません。",
            "担当者が退職してしまい、使う人がいなくなりました。",
            "繁忙期の数か月しか使わないので、いったん解約します。",
        ],
        "ko": [
            "별로 안 쓰게 돼서 계속 결제할 이유가 없네요.",
            "이 서비스를 쓰던 프로젝트가 끝났습니다.",
            "회사를 정리하게 됐어요. 서비스 문제는 아닙니다.",
            "이제는 필요가 없어졌어요.",
            "다른 회사와 합병하면서 도구를 정리하는 중입니다.",
            "잠시 쉬려고 해요. 내년에 다시 고려해 볼게요.",
            "담당자가 퇴사해서 쓸 사람이 없어졌습니다.",
            "성수기 몇 달만 필요해서 일단 해지합니다.",
        ],
        "uk": [
            "Ми майже не користуємося, тож немає сенсу платити.",
            "Проєкт, для якого ми це купували, завершився.",
            "Наша компанія закривається, ви тут ні до чого.",
            "Просто більше не потрібно.",
            "Ми об’єдналися з іншою компанією й скорочуємо кількість інструментів.",
            "Беремо паузу, можливо, повернемося наступного року.",
            "Людина, яка цим користувалася, звільнилася.",
            "У нас сезонний бізнес, потрібно лише кілька місяців на рік.",
        ],
        "zh-Hans": [
            "用得不多，没必要继续付费。",
            "当初买这个是为了一个项目，现在项目结束了。",
            "公司要关门了，跟你们没有关系。",
            "现在已经不需要了。",
            "我们和另一家公司合并了，正在精简工具。",
            "先暂停一段时间，明年可能再考虑。",
            "负责使用它的同事离职了。",
            "我们是季节性业务，一年只需要用几个月。",
        ],
        "zh-Hant": [
            "用得不多，沒必要繼續付費。",
            "當初是為了一個專案才買的，現在專案結束了。",
            "公司要結束營業了，跟你們無關。",
            "現在已經用不到了。",
            "我們和另一家公司合併，正在整併工具。",
            "先暫停一陣子，明年可能會再考慮。",
            "負責使用的同事離職了。",
            "我們是季節性生意，一年只需要用幾個月。",
        ],
    },
}

# ---------------------------------------------------------------------------------------------
# E-commerce: why I stopped buying (lapsed-customer survey comment)
# ---------------------------------------------------------------------------------------------

SHOP_REASON_TEXTS: dict[str, dict[str, list[str]]] = {
    "price": {
        "en": [
            "Shipping costs got too high for small orders.",
            "I found the same items cheaper elsewhere.",
            "Prices went up a lot over the last few months.",
            "Without a discount it's just not worth it for me.",
            "the free shipping minimum is way too high now",
        ],
        "ja": [
            "少額の注文だと送料が高すぎます。",
            "同じ商品を他のお店でもっと安く見つけました。",
            "ここ数か月で値段がかなり上がりました。",
            "割引がないと、わざわざ買う理由がありません。",
            "送料無料になる金額が高くなりすぎです。",
        ],
        "ko": [
            "조금만 사면 배송비가 너무 비싸요.",
            "같은 상품을 다른 곳에서 더 싸게 찾았어요.",
            "최근 몇 달 사이에 가격이 많이 올랐네요.",
            "할인이 없으면 굳이 여기서 살 이유가 없어요.",
            "무료배송 기준 금액이 너무 높아졌어요.",
        ],
        "uk": [
            "Доставка для невеликих замовлень стала надто дорогою.",
            "Знайшла ті самі товари дешевше в іншому магазині.",
            "За останні місяці ціни сильно зросли.",
            "Без знижки мені просто невигідно тут купувати.",
            "Поріг безкоштовної доставки тепер завеликий.",
        ],
        "zh-Hans": [
            "小额订单的运费太贵了。",
            "同样的东西在别家买更便宜。",
            "这几个月价格涨了不少。",
            "没有优惠的话，实在不值得在这里买。",
            "现在包邮门槛太高了。",
        ],
        "zh-Hant": [
            "小額訂單的運費太貴了。",
            "同樣的商品在別家買比較便宜。",
            "這幾個月價格漲了不少。",
            "沒有折扣的話，真的不值得在這裡買。",
            "現在免運門檻太高了。",
        ],
    },
    "missing_feature": {
        "en": [
            "You stopped carrying the brand I always bought.",
            "The things I wanted were out of stock every single time.",
            "Not enough sizes, nothing fit me.",
            "The selection kept getting smaller.",
        ],
        "ja": [
            "いつも買っていたブランドの取り扱いがなくなりました。",
            "欲しい商品が毎回在庫切れでした。",
            "サイズ展開が少なく、合うものがありませんでした。",
            "品揃えがどんどん少なくなっていると感じます。",
        ],
        "ko": [
            "항상 사던 브랜드를 더 이상 취급하지 않더라고요.",
            "원하는 상품이 매번 품절이었어요.",
            "사이즈가 다양하지 않아서 맞는 게 없었어요.",
            "상품 구색이 점점 줄어드는 것 같아요.",
        ],
        "uk": [
            "Ви перестали продавати бренд, який я завжди купував.",
            "Потрібних мені товарів постійно не було в наявності.",
            "Замало розмірів, нічого мені не підійшло.",
            "Асортимент стає дедалі меншим.",
        ],
        "zh-Hans": [
            "我一直买的那个牌子不卖了。",
            "想要的东西每次都缺货。",
            "尺码太少，没有适合我的。",
            "商品种类越来越少了。",
        ],
        "zh-Hant": [
            "我一直買的那個品牌不賣了。",
            "想要的商品每次都缺貨。",
            "尺寸太少，沒有適合我的。",
            "商品種類越來越少了。",
        ],
    },
    "usability": {
        "en": [
            "Checkout kept failing on my phone.",
            "The app is confusing and search never finds anything.",
            "Too many steps to place a simple order.",
            "The website was slow and kept logging me out.",
        ],
        "ja": [
            "スマホだと決済画面で何度もエラーになりました。",
            "アプリが分かりにくく、検索しても何も出てきません。",
            "簡単な注文なのに手順が多すぎます。",
            "サイトが重く、何度もログアウトされました。",
        ],
        "ko": [
            "휴대폰에서 결제가 계속 실패했어요.",
            "앱이 헷갈리고 검색해도 원하는 게 안 나와요.",
            "간단한 주문 하나 하는데 단계가 너무 많아요.",
            "사이트가 느리고 자꾸 로그아웃됐어요.",
        ],
        "uk": [
            "Оформлення замовлення на телефоні постійно зависало.",
            "Застосунок заплутаний, а пошук нічого не знаходить.",
            "Забагато кроків, щоб зробити просте замовлення.",
            "Сайт повільний і постійно мене розлогінював.",
        ],
        "zh-Hans": [
            "用手机结账总是失败。",
            "App 很难用，搜索也搜不到东西。",
            "下一个简单的订单要点太多步了。",
            "网站很慢，还老是把我登出。",
        ],
        "zh-Hant": [
            "用手機結帳一直失敗。",
            "App 很難用，搜尋也找不到東西。",
            "下一張簡單的訂單要按太多步驟。",
            "網站很慢，還一直把我登出。",
        ],
    },
    "support": {
        "en": [
            "My package arrived late and nobody answered my emails.",
            "The return process was a nightmare.",
            "I waited three weeks for a refund.",
            "Got a damaged item and customer service didn't care.",
        ],
        "ja": [
            "荷物の到着が遅れたうえ、メールに誰も返信してくれませんでした。",
            "返品の手続きが本当に大変でした。",
            "返金まで三週間も待たされました。",
            "破損した商品が届いたのに、カスタマーサービスは無関心でした。",
        ],
        "ko": [
            "택배가 늦게 왔는데 이메일에 아무도 답을 안 했어요.",
            "반품 절차가 정말 악몽 같았어요.",
            "환불 받는 데 3주나 걸렸습니다.",
            "파손된 상품이 왔는데 고객센터는 신경도 안 쓰더라고요.",
        ],
        "uk": [
            "Посилка прийшла із запізненням, і ніхто не відповів на мої листи.",
            "Повернення товару перетворилося на справжній жах.",
            "Я три тижні чекав на повернення коштів.",
            "Отримав пошкоджений товар, а службі підтримки було байдуже.",
        ],
        "zh-Hans": [
            "包裹迟到了，发邮件也没人回。",
            "退货流程简直是噩梦。",
            "退款等了整整三周。",
            "收到的商品是坏的，客服却一点都不在乎。",
        ],
        "zh-Hant": [
            "包裹晚到，寄信詢問也沒人回覆。",
            "退貨流程簡直是惡夢。",
            "退款足足等了三個星期。",
            "收到的商品是壞的，客服卻一點都不在乎。",
        ],
    },
    "competitor": {
        "en": [
            "I do all my shopping on {competitor} now.",
            "{competitor} delivers faster.",
            "Switched to {competitor}, they have a better loyalty program.",
            "{competitor} has better prices and free returns.",
        ],
        "ja": [
            "今は買い物を全部{competitor}で済ませています。",
            "{competitor}の方が配送が早いです。",
            "ポイント制度が充実している{competitor}に乗り換えました。",
            "{competitor}の方が安くて、返品も無料です。",
        ],
        "ko": [
            "요즘은 쇼핑을 전부 {competitor}에서 해요.",
            "{competitor} 쪽이 배송이 더 빨라요.",
            "적립 혜택이 더 좋은 {competitor} 쪽으로 옮겼어요.",
            "{competitor} 쪽이 더 싸고 반품도 무료예요.",
        ],
        "uk": [
            "Тепер я купую все на {competitor}.",
            "{competitor} доставляє швидше.",
            "Перейшла на {competitor}, у них краща програма лояльності.",
            "На {competitor} нижчі ціни й безкоштовне повернення.",
        ],
        "zh-Hans": [
            "现在我都在{competitor}上买东西了。",
            "{competitor}发货更快。",
            "换到{competitor}了，他们的会员积分更划算。",
            "{competitor}价格更低，还能免费退货。",
        ],
        "zh-Hant": [
            "現在我都在{competitor}買東西了。",
            "{competitor}出貨比較快。",
            "改到{competitor}了，他們的會員點數比較划算。",
            "{competitor}價格比較低，還可以免費退貨。",
        ],
    },
    "other": {
        "en": [
            "I don't need these products anymore.",
            "I moved abroad.",
            "It was a one-time gift purchase.",
            "No particular reason, I just forgot about the shop.",
        ],
        "ja": [
            "もうこの商品は必要なくなりました。",
            "海外に引っ越しました。",
            "プレゼント用に一度だけ買っただけです。",
            "特に理由はなく、お店のことを忘れていただけです。",
        ],
        "ko": [
            "이제 이 제품들이 필요 없어졌어요.",
            "해외로 이사했어요.",
            "선물용으로 한 번 산 거였어요.",
            "특별한 이유는 없고 그냥 잊고 있었어요.",
        ],
        "uk": [
            "Мені більше не потрібні ці товари.",
            "Я переїхала за кордон.",
            "Це була разова покупка на подарунок.",
            "Особливої причини немає, просто забув про магазин.",
        ],
        "zh-Hans": [
            "我已经不需要这些东西了。",
            "我搬到国外去了。",
            "那次只是买个礼物。",
            "没什么特别原因，就是忘了这家店。",
        ],
        "zh-Hant": [
            "我已經不需要這些東西了。",
            "我搬到國外了。",
            "那次只是買禮物而已。",
            "沒什麼特別原因，只是忘了這家店。",
        ],
    },
}

# ---------------------------------------------------------------------------------------------
# Ticket subjects per topic
# ---------------------------------------------------------------------------------------------

TICKET_TOPICS: tuple[str, ...] = (
    "how_to", "billing", "bug", "integration", "account", "feature_request", "payment",
    "delivery", "returns", "refund", "product_question",
)

TICKET_SUBJECTS: dict[str, dict[str, list[str]]] = {
    "how_to": {
        "en": ["How do I invite my team?", "Can't find where to set up reports", "Question about automations"],
        "ja": ["チームメンバーの招待方法を教えてください", "レポートの設定場所が分かりません", "自動化の設定について"],
        "ko": ["팀원 초대는 어떻게 하나요?", "보고서 설정 위치를 못 찾겠어요", "자동화 설정 문의"],
        "uk": ["Як запросити команду?", "Не можу знайти налаштування звітів", "Питання щодо автоматизацій"],
        "zh-Hans": ["怎么邀请团队成员？", "找不到报表设置在哪里", "关于自动化的问题"],
        "zh-Hant": ["要怎麼邀請團隊成員？", "找不到報表設定在哪裡", "關於自動化的問題"],
    },
    "billing": {
        "en": ["Question about my invoice", "Charged twice this month?", "Need a VAT invoice"],
        "ja": ["請求書について質問です", "今月二重に請求されていませんか？", "適格請求書の発行をお願いします"],
        "ko": ["청구서 관련 문의", "이번 달 이중 결제된 것 같아요", "세금계산서 발행 요청"],
        "uk": ["Питання щодо рахунку", "Списали двічі цього місяця?", "Потрібен рахунок з ПДВ"],
        "zh-Hans": ["关于账单的问题", "这个月是不是重复扣款了？", "需要开发票"],
        "zh-Hant": ["關於帳單的問題", "這個月是不是重複扣款了？", "需要開立發票"],
    },
    "bug": {
        "en": ["Dashboard not loading", "Export fails with an error", "Data missing since yesterday"],
        "ja": ["ダッシュボードが表示されません", "エクスポートでエラーが出ます", "昨日からデータが欠けています"],
        "ko": ["대시보드가 안 열려요", "내보내기 시 오류가 납니다", "어제부터 데이터가 누락됐어요"],
        "uk": ["Не завантажується дашборд", "Експорт завершується помилкою", "З учора зникли дані"],
        "zh-Hans": ["仪表盘打不开", "导出时报错", "从昨天开始数据缺失"],
        "zh-Hant": ["儀表板打不開", "匯出時出現錯誤", "從昨天開始資料不見了"],
    },
    "integration": {
        "en": ["Sync with our CRM stopped", "API rate limit question", "Is there an integration with {feature}?"],
        "ja": ["CRMとの同期が止まりました", "APIの制限について", "{feature}との連携はありますか？"],
        "ko": ["CRM 동기화가 멈췄어요", "API 호출 제한 문의", "{feature} 연동이 가능한가요?"],
        "uk": ["Зупинилася синхронізація з CRM", "Питання щодо лімітів API", "Чи є інтеграція «{feature}»?"],
        "zh-Hans": ["和CRM的同步停了", "关于API调用限制", "有没有{feature}的集成？"],
        "zh-Hant": ["和CRM的同步停了", "關於API呼叫限制", "有沒有{feature}的整合？"],
    },
    "account": {
        "en": ["Can't log in", "Change account owner", "Please delete a user"],
        "ja": ["ログインできません", "アカウント管理者を変更したい", "ユーザーの削除をお願いします"],
        "ko": ["로그인이 안 돼요", "계정 소유자 변경 요청", "사용자 삭제 요청"],
        "uk": ["Не можу увійти", "Змінити власника акаунта", "Видаліть, будь ласка, користувача"],
        "zh-Hans": ["无法登录", "更换账户所有者", "请帮忙删除一个用户"],
        "zh-Hant": ["無法登入", "更換帳號擁有者", "請協助刪除使用者"],
    },
    "feature_request": {
        "en": ["Request: {feature}", "When will {feature} be available?", "Any plans for {feature}?"],
        "ja": ["要望：{feature}", "{feature}はいつ対応予定ですか？", "{feature}の予定はありますか？"],
        "ko": ["기능 요청: {feature}", "{feature} 기능은 언제 나오나요?", "{feature} 지원 계획이 있나요?"],
        "uk": ["Запит: «{feature}»", "Коли з’явиться «{feature}»?", "Чи плануєте «{feature}»?"],
        "zh-Hans": ["需求：{feature}", "{feature}什么时候上线？", "有计划支持{feature}吗？"],
        "zh-Hant": ["需求：{feature}", "{feature}什麼時候會推出？", "有計畫支援{feature}嗎？"],
    },
    "payment": {
        "en": ["My payment failed", "How do I update my card?", "Card declined but I have funds"],
        "ja": ["支払いに失敗しました", "カード情報の更新方法は？", "残高はあるのにカードが拒否されました"],
        "ko": ["결제가 실패했어요", "카드 정보는 어떻게 변경하나요?", "잔액이 있는데 카드가 거절됐어요"],
        "uk": ["Не пройшла оплата", "Як оновити картку?", "Картку відхилено, хоча кошти є"],
        "zh-Hans": ["付款失败了", "怎么更新银行卡？", "卡里有钱却被拒付"],
        "zh-Hant": ["付款失敗了", "要怎麼更新信用卡？", "卡片有餘額卻被拒絕"],
    },
    "delivery": {
        "en": ["Where is my order?", "Package marked delivered but not received", "Delivery is late"],
        "ja": ["注文した商品はいつ届きますか？", "配達済みなのに届いていません", "配送が遅れています"],
        "ko": ["주문한 상품이 어디쯤 있나요?", "배송 완료인데 못 받았어요", "배송이 늦어지고 있어요"],
        "uk": ["Де моє замовлення?", "Посилка позначена доставленою, але я її не отримав", "Доставка затримується"],
        "zh-Hans": ["我的订单到哪了？", "显示已签收但没收到", "配送延误了"],
        "zh-Hant": ["我的訂單到哪了？", "顯示已送達但沒收到", "配送延遲了"],
    },
    "returns": {
        "en": ["How do I return an item?", "Return label not working", "Wrong size, want to exchange"],
        "ja": ["返品の方法を教えてください", "返品ラベルが使えません", "サイズ違いなので交換したいです"],
        "ko": ["반품은 어떻게 하나요?", "반품 송장이 작동하지 않아요", "사이즈가 안 맞아 교환하고 싶어요"],
        "uk": ["Як повернути товар?", "Не працює етикетка для повернення", "Не той розмір, хочу обміняти"],
        "zh-Hans": ["怎么退货？", "退货面单用不了", "尺码不对，想换货"],
        "zh-Hant": ["要怎麼退貨？", "退貨標籤無法使用", "尺寸不對，想換貨"],
    },
    "refund": {
        "en": ["Still waiting for my refund", "Refund amount is wrong", "Refund for a damaged item"],
        "ja": ["返金がまだです", "返金額が間違っています", "破損品の返金について"],
        "ko": ["환불을 아직 못 받았어요", "환불 금액이 틀려요", "파손 상품 환불 요청"],
        "uk": ["Досі чекаю на повернення коштів", "Неправильна сума повернення",
               "Повернення коштів за пошкоджений товар"],
        "zh-Hans": ["退款还没到账", "退款金额不对", "商品损坏申请退款"],
        "zh-Hant": ["退款還沒收到", "退款金額不對", "商品損壞申請退款"],
    },
    "product_question": {
        "en": ["Is this item true to size?", "When will this be back in stock?", "Question about materials"],
        "ja": ["サイズ感について教えてください", "再入荷の予定はありますか？", "素材について質問です"],
        "ko": ["사이즈가 정사이즈인가요?", "재입고 언제 되나요?", "소재 관련 문의"],
        "uk": ["Чи відповідає розмір?", "Коли товар знову буде в наявності?", "Питання щодо матеріалу"],
        "zh-Hans": ["这件尺码标准吗？", "什么时候补货？", "关于材质的问题"],
        "zh-Hant": ["這件尺寸標準嗎？", "什麼時候會補貨？", "關於材質的問題"],
    },
}


class TextPool:
    """All sentences for (group, language, feature) expanded up front; ``draw`` indexes into them.

    ``groups`` maps a group key (a reason or topic) to {language: [templates]}. ``{competitor}``
    is expanded over ``competitors``; ``{feature}`` over :data:`FEATURES` (the feature axis).
    """

    def __init__(self, groups: Mapping[str, Mapping[str, Sequence[str]]], competitors: Sequence[str] = ()):
        self.groups = tuple(groups)
        strings: list[str] = []
        shape = (len(self.groups), len(LANGUAGES), len(FEATURES))
        self.start = np.zeros(shape, dtype=np.int64)
        self.count = np.zeros(shape, dtype=np.int64)
        for g, group in enumerate(self.groups):
            for lang_i, lang in enumerate(LANGUAGES):
                templates = groups[group].get(lang, [])
                for f, feature in enumerate(FEATURES):
                    self.start[g, lang_i, f] = len(strings)
                    for template in templates:
                        text = template
                        if "{feature}" in text:
                            text = text.replace("{feature}", FEATURE_LABELS[feature][lang])
                        if "{competitor}" in text and competitors:
                            strings.extend(text.replace("{competitor}", c) for c in competitors)
                        else:
                            strings.append(text)
                    self.count[g, lang_i, f] = len(strings) - self.start[g, lang_i, f]
        self.strings = pa.array(strings, type=pa.string())

    def code(self, group: str) -> int:
        return self.groups.index(group)

    def draw(self, rng: np.random.Generator, group: np.ndarray, language: np.ndarray,
             feature: np.ndarray | None = None) -> pa.Array:
        """One sentence per row for the given group, language and feature indices."""
        group = np.asarray(group, dtype=np.int64)
        language = np.asarray(language, dtype=np.int64)
        feature = np.zeros_like(group) if feature is None else np.asarray(feature, dtype=np.int64)
        count = self.count[group, language, feature]
        if (count == 0).any():
            raise ValueError("text pool has no sentence for some (group, language, feature)")
        idx = self.start[group, language, feature] + (rng.random(len(group)) * count).astype(np.int64)
        return self.strings.take(pa.array(idx))


def pool_sizes(groups: Mapping[str, Mapping[str, Sequence[str]]]) -> dict[str, dict[str, int]]:
    """Number of hand-written templates per group and language (for docs and tests)."""
    return {g: {lang: len(groups[g].get(lang, [])) for lang in LANGUAGES} for g in groups}
