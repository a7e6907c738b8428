"""A small, high-precision cue lexicon per churn reason and language, with negation scopes.

The lexicon adds what a thousand-odd training sentences cannot: words for a reason that the
corpus happens not to contain. Cues are lower-case, NFKC-normalised (see :mod:`.text`) and matched
as substrings; English and Ukrainian cues are stems matched at the start of a word ("expens"
matches "expensive") or, when they end in ``_``, whole words ("fee_" does not match "feedback");
CJK and Korean cues match anywhere. A cue is *negated* when the words around it
say it was not the reason ("not the price", "価格には満足", "가격은 괜찮", "ціна влаштовувала",
"跟竞品无关"); negated and plain cue counts become separate features (:mod:`.cues`), so "not the
price, it was support" counts one negated price cue and one support cue.
"""

from __future__ import annotations

import re

from winback.analytics.reasons import COMPETITOR, MISSING_FEATURE, OTHER, PRICE, SUPPORT, USABILITY

#: reason -> language -> cues. zh-Hans and zh-Hant lists are written separately (different words,
#: not just different characters).
CUES: dict[str, dict[str, tuple[str, ...]]] = {
    PRICE: {
        "en": ("expens", "pricey", "overpriced", "price", "pricing", "cost", "afford", "can't afford",
               "cannot afford", "budget", "cheap", "too much money", "fee_", "fees_", "discount", "not worth",
               "worth the money", "value for money", "per seat", "per user", "spend", "money", "save money",
               "invoice was", "bill got", "the bill", "renewal quote", "roi_", "shipping cost", "coupon", "pricier",
               "charges", "charged", "billing", "paid plan", "licence", "license", "subscription fee", "unaffordable",
               "financ", "cash", "runway", "downgrad", "lower tier", "cheaper plan", "promo", "price increase",
               "price hike", "overkill", "delivery fee", "shipping fee", "wallet", "pay for", "paying for",
               "pay more", "raised prices", "raised the price"),
        "ja": ("高い", "高すぎ", "高く", "高額", "料金", "価格", "値段", "値上げ", "値上が", "費用", "予算", "コスト", "安い", "安けれ", "安く", "割高",
               "割引", "月額", "年額", "請求額", "金額", "払え", "お金", "出費", "経費", "コスパ", "費用対効果", "送料", "会費", "節約", "ライセンス費",
               "値下げ", "割安", "有料", "課金", "ライセンス", "支払", "払う", "払って", "請求", "セール", "クーポン", "負担", "財布", "資金", "もったいな",
               "見合わな", "見合う", "配送料", "値段が"),
        "ko": ("비싸", "비쌉", "비싼", "비용", "가격", "요금", "금액", "예산", "인상", "올랐", "할인", "저렴", "싸면", "돈", "부담", "구독료", "가성비",
               "배송비", "회비", "청구", "유료", "결제 금액", "라이선스", "지출", "세일", "쿠폰", "지갑", "자금", "아까워", "값이", "가격이", "돈이", "정가",
               "배송료", "요금제가"),
        "uk": ("дорог", "дорож", "подорож", "цін", "вартість", "коштує", "кошт", "гроші", "грошей", "бюджет", "знижк",
               "дешев", "платити", "плата", "платн", "рахунок", "витрат", "економ", "переплач", "задорог", "недешев",
               "зекономи", "грош", "коштув", "ліценз", "підписк", "знижок", "розпродаж", "промокод", "доплат",
               "гаманец", "фінанс", "тариф"),
        "zh-Hans": ("贵", "价格", "价钱", "费用", "预算", "涨价", "便宜", "折扣", "优惠", "付不起", "负担", "省钱", "性价比", "月费", "年费", "收费",
                    "账单", "运费", "会员费", "钱", "划算", "不值", "太高", "付费", "打折", "优惠券", "积分", "钱包", "资金", "开支", "开销", "不划算",
                    "涨了", "降价", "订阅费", "原价", "配送费"),
        "zh-Hant": ("貴", "價格", "價錢", "費用", "預算", "漲價", "調漲", "便宜", "折扣", "優惠", "付不起", "負擔", "省錢", "cp值", "月費", "年費",
                    "收費", "帳單", "運費", "會員費", "錢", "划算", "不值", "太高", "付費", "打折", "折價券", "點數", "荷包", "資金", "開支", "開銷",
                    "不划算", "漲了", "降價", "訂閱費", "原價", "運送費"),
    },
    MISSING_FEATURE: {
        "en": ("missing", "lack", "no integration", "integration", "integrate", "doesn't support", "does not support",
               "don't support", "not supported", "no support for", "feature", "roadmap", "api", "wish it had",
               "would be perfect", "not available", "doesn't have", "does not have", "there's no", "there is no",
               "no way to", "can't do", "sso", "webhook", "sync", "out of stock", "sold out", "discontinued",
               "restock", "stop stocking", "stopped stocking", "stopped selling", "must-have", "requir",
               "doesn't offer", "don't offer", "no option to", "import from", "integrations", "add-on",
               "functionality", "capabilit", "limited", "too basic", "not possible", "unsupported",
               "no longer available", "no longer sell", "no longer carry", "don't carry", "don't sell",
               "stopped carrying", "we need", "we needed", "needs to", "lacking"),
        "ja": ("機能がな", "機能が足り", "機能があれば", "機能さえ", "機能が欲し", "対応していな", "対応しておら", "非対応", "未対応", "連携", "足りな", "不足", "実装",
               "要望", "ロードマップ", "api", "sso", "つなげ", "取り扱い", "在庫切れ", "売り切れ", "品揃え", "品切れ", "販売終了", "再入荷", "がなく", "機能が",
               "機能を追加", "機能の追加", "必要な機能", "欲しい機能", "サポートしていな", "扱っていな", "取り扱って", "品切", "入荷", "欠品", "ラインナップ", "種類が少な",
               "対応して欲し", "連携でき"),
        "ko": ("기능이 없", "기능이 부족", "기능만 있", "지원하지 않", "지원 안", "지원이 안", "미지원", "연동", "부족", "로드맵", "api", "sso", "할 수 없",
               "할 수가 없", "품절", "단종", "구색", "팔지 않", "재입고", "기능이", "기능을 추가", "필요한 기능", "지원되지", "지원하지", "취급하지", "취급 안",
               "입고", "재고", "종류가 적", "라인업", "없는 게", "없다는", "제공하지 않"),
        "uk": ("бракує", "не вистачає", "відсутн", "не підтриму", "інтеграц", "api", "sso", "розпродан",
               "зняли з продажу", "асортимент", "не з'явил", "немає функц", "немає інтеграц", "немає можливост",
               "немає підтримки", "не підтримує", "не підтримуєт", "функціонал", "обмежен", "потрібна функц",
               "потрібен", "потрібна", "потрібне", "в наявності", "не продаєте", "не пропонуєте", "додати функц"),
        "zh-Hans": ("缺少", "不支持", "集成", "对接", "功能不够", "需要的功能", "功能需求", "希望有", "要是有", "上线", "api", "sso", "缺货", "售罄",
                    "下架", "停产", "补货", "不卖", "不卖了", "功能不", "没有这个功能", "不提供", "支持不了", "实现不了", "接入", "接口", "刚需", "种类",
                    "新品", "现货", "库存", "不再卖"),
        "zh-Hant": ("缺少", "不支援", "整合", "串接", "功能不夠", "需要的功能", "功能需求", "希望有", "要是有", "上線", "api", "sso", "缺貨", "賣完",
                    "下架", "停產", "補貨", "不賣", "不賣了", "功能不", "沒有這個功能", "不提供", "支援不了", "做不到", "接入", "介接", "必要需求", "種類",
                    "新品", "現貨", "庫存", "不再賣"),
    },
    USABILITY: {
        "en": ("complicated", "complex", "confus", "hard to use", "difficult", "not intuitive", "unintuitive",
               "intuitive", "clunky", "slow", "laggy", "lag_", "lags_", "crash", "bug", "glitch", "freez", "clutter",
               "learning curve", "too many clicks", "too many steps", "user friendly", "user-friendly", "interface",
               "ui_", "ux_", "navigat", "layout", "set up", "setup", "configur", "figure out", "hard to find",
               "can't find", "mess_", "messy", "tedious", "fiddly", "overwhelm", "steps", "usab", "a pain to use",
               "doesn't work", "not working", "hard to", "hard to learn", "too hard", "frustrat", "annoying",
               "painful", "unusable", "broken", "error", "takes forever", "clicks", "unclear", "cumbersome",
               "awkward", "not easy", "loading", "sluggish", "overcomplicated", "too complicated", "usability",
               "hard to navigate", "keeps crashing", "doesn't load", "won't load"),
        "ja": ("使いにく", "使いづら", "分かりにく", "わかりにく", "分かりづら", "わかりづら", "分からな", "難し", "複雑", "面倒", "重い", "重すぎ", "遅い", "遅く",
               "動作", "操作", "画面", "ui", "直感", "迷", "手順", "クリック", "不具合", "バグ", "落ち", "固ま", "見にく", "ややこし", "手間", "使いこな",
               "カクカク", "ステップ", "不便", "エラー", "フリーズ", "読み込み", "煩雑", "ボタン", "レイアウト", "もっさり", "重た", "慣れ", "覚える", "使い方",
               "ストレス"),
        "ko": ("불편", "복잡", "어렵", "어려워", "어려운", "헷갈", "직관", "느려", "느리", "버벅", "무거", "오류", "버그", "튕", "멈춰", "조작", "화면",
               "ui", "사용법", "번거", "단계", "어려웠", "불편해", "에러", "먹통", "로딩", "버튼", "레이아웃", "익숙", "배우기", "답답", "헤매", "헤맸",
               "찾기 어렵", "쓰기 힘들", "쓰기 어렵", "멈추"),
        "uk": ("складн", "незручн", "заплута", "незрозум", "повільн", "гальму", "лага", "зависа", "вилітає", "баг_",
               "баги", "багів", "помилк", "інтерфейс", "клік", "налаштуван", "налаштувати", "розібратися",
               "інтуїтивн", "важко", "крок", "незрозуміл", "неможливо знайти", "не знайти", "важко знайти", "глючить",
               "глюк", "помилки", "вантаж", "завантажу", "кнопк", "незручно", "мука", "навігац", "повільно", "зависає"),
        "zh-Hans": ("难用", "复杂", "麻烦", "不直观", "直观", "卡顿", "卡死", "很卡", "太慢", "慢得", "闪退", "崩溃", "bug", "操作", "界面", "看不懂",
                    "搞不懂", "弄不懂", "找不到", "步骤", "混乱", "不好用", "上手", "琐碎", "不方便", "报错", "加载", "按钮", "布局", "不会用", "难上手",
                    "太难", "好难", "卡住", "找不着", "看不清", "不顺手", "费劲"),
        "zh-Hant": ("難用", "複雜", "麻煩", "不直覺", "直覺", "卡頓", "很卡", "太慢", "慢到", "閃退", "當掉", "bug", "操作", "介面", "看不懂",
                    "搞不懂", "找不到", "步驟", "混亂", "不好用", "上手", "瑣碎", "不方便", "錯誤", "載入", "按鈕", "版面", "不會用", "難上手", "太難",
                    "好難", "卡住", "看不清楚", "不順手", "很吃力"),
    },
    SUPPORT: {
        "en": ("support", "customer service", "customer care", "help desk", "helpdesk", "ticket", "respon", "reply",
               "replied", "answer", "ignored", "agent", "rude", "onboarding", "training", "account manager",
               "callback", "call back", "escalat", "live chat", "refund", "return", "nobody", "no one", "follow up",
               "follows up", "service is", "service was", "unhelpful", "not helpful", "never heard back",
               "customer support", "support team", "no response", "no reply", "unanswered", "never replied",
               "never responded", "complain", "representative", "assistance", "no help", "get help", "getting help",
               "warranty", "courier", "parcel", "package", "arrived", "damaged", "wrong item", "never arrived",
               "lost my", "apolog", "care about", "service_", "contacted", "closed my ticket", "closed the ticket"),
        "ja": ("サポート", "問い合わせ", "問合せ", "返信", "回答", "返事", "対応が", "対応は", "担当者", "担当", "窓口", "カスタマー", "チャット", "電話", "放置",
               "無視", "連絡", "導入支援", "トレーニング", "研修", "オンボーディング", "返金", "返品", "交換", "届か", "フォロー", "対応が遅", "対応が悪",
               "対応してもらえ", "対応してくれ", "対応がひど", "返答", "つながらな", "チケット", "連絡がな", "謝罪", "態度", "届いていな", "配送", "配達", "宅配",
               "荷物", "破損", "保証", "遅延"),
        "ko": ("고객지원", "고객센터", "지원팀", "상담", "문의", "답변", "답이 없", "답장", "연락", "응대", "대응", "담당자", "무시", "방치", "챗봇", "전화",
               "교육", "온보딩", "환불", "반품", "교환", "배송", "헬프데스크", "고객 응대", "답변이", "답을 안", "연락이 없", "연락도", "사과", "태도", "택배",
               "파손", "보증", "지연", "담당 매니저", "상담원", "불친절"),
        "uk": ("підтримк", "обслуговуван", "сервіс", "оператор", "менеджер", "відповід", "звернен", "тікет", "ігнор",
               "не допомог", "чат", "передзвон", "навчан", "онбординг", "повернення коштів", "повернен", "обмін",
               "посилк", "впроваджен", "служб", "не відповіда", "без відповіді", "відповіді", "скарг", "вибач",
               "груб", "кур'єр", "доставк", "пошкоджен", "гаранті", "запізн", "допомог"),
        "zh-Hans": ("客服", "回复", "回应", "没人", "工单", "投诉", "售后", "培训", "没下文", "不理", "电话", "退款", "退货", "换货", "快递", "态度",
                    "跟进", "没有回复", "不回复", "联系不上", "打不通", "道歉", "服务态度", "服务差", "服务很", "包裹", "发错", "破损", "保修", "延误",
                    "客户经理"),
        "zh-Hant": ("客服", "回覆", "回應", "沒人", "案件", "客訴", "售後", "教育訓練", "沒消息", "不理", "電話", "專線", "退款", "退貨", "換貨", "物流",
                    "宅配", "態度", "追蹤", "沒有回覆", "不回覆", "聯絡不上", "打不通", "道歉", "服務態度", "服務差", "服務很", "包裹", "寄錯", "破損",
                    "保固", "延遲", "客戶經理"),
    },
    COMPETITOR: {
        "en": ("switched to", "switch to", "switching to", "switched over", "moved to", "moving to", "migrated to",
               "migrating to", "went with", "going with", "chose", "chosen", "replaced", "alternative", "competitor",
               "rival", "another vendor", "another provider", "other vendor", "other provider", "another tool",
               "another service", "another store", "another shop", "another online shop", "consolidat", "standardis",
               "standardiz", "instead", "now use", "order from", "shop at", "went back to", "moved over",
               "moving over", "migrat", "switched", "competition", "another app", "another platform",
               "other platform", "different tool", "different vendor", "different provider", "different company",
               "different shop", "elsewhere", "better deal", "better offer", "we now use"),
        "ja": ("乗り換え", "移行", "切り替え", "他社", "競合", "別のサービス", "別のツール", "代替", "代わり", "統一", "一本化", "集約", "に移り", "に移行",
               "に決まり", "にしました", "他のサービス", "他のお店", "別のお店", "別の通販", "で買っています", "に変え", "に変更し", "へ移行", "を導入", "に統一",
               "にまとめ", "別の会社", "他のツール", "他の製品", "競合製品", "他社製品", "他社サービス", "で十分", "で注文", "で買って", "に戻し"),
        "ko": ("옮겼", "옮기", "갈아타", "갈아탔", "바꿨", "넘어갔", "이전했", "이전할", "경쟁사", "경쟁 제품", "다른 서비스", "다른 업체", "다른 회사",
               "다른 툴", "대안", "대체", "통일", "으로 정했", "로 정했", "로 결정", "결정됐", "선택했", "다른 쇼핑몰", "다른 곳", "에서 사요", "로 바꿨",
               "으로 바꿨", "로 옮겼", "으로 옮겼", "로 갈아", "으로 갈아", "로 돌아갔", "다른 제품", "다른 플랫폼", "경쟁 서비스", "로 통일", "으로 통일",
               "에서 주문", "로 충분", "으로 충분"),
        "uk": ("перейшли на", "перейшла на", "перейшов на", "переходимо", "перейти на", "перейшли в", "мігрува",
               "обрали", "конкурент", "альтернатив", "інший сервіс", "інший постачальник", "іншого постачальника",
               "інша платформа", "іншій платформі", "інший магазин", "замінили", "об'єдн", "тепер працюємо",
               "тепер купую", "на користь", "перейш", "переход", "переїхал", "повернулися до", "замість", "натомість",
               "інший інструмент", "інша компанія", "іншої компанії", "інший бренд", "в іншому", "вистачає вбудован"),
        "zh-Hans": ("换成", "改用", "换了", "转到", "迁到", "迁移到", "搬到", "竞品", "竞争对手", "别家", "另一家", "替代", "统一", "选了", "决定用",
                    "现在用", "现在都在", "换到", "改成", "转用", "迁移", "回到", "别的工具", "其他工具", "同类产品", "替代品", "平替", "在别家", "另一个平台",
                    "就够用了", "全家桶"),
        "zh-Hant": ("換成", "改用", "換了", "轉到", "搬到", "競品", "競爭對手", "別家", "另一家", "替代", "統一", "選了", "決定用", "現在用", "現在都在",
                    "換到", "改成", "轉用", "搬遷", "回去用", "別的工具", "其他工具", "同類產品", "替代品", "在別家", "另一個平台", "就夠用了", "全家桶"),
    },
    OTHER: {
        "en": ("no longer need", "don't need", "do not need", "not needed", "no need", "not using", "closed down",
               "closing", "shut down", "shutting down", "out of business", "wound down", "winding down", "retir",
               "pause", "pausing", "break_", "temporar", "season", "left the company", "leaving the company",
               "maternity", "health", "no reason", "no particular reason", "by accident", "duplicate", "one-off",
               "just exploring", "not the right time", "busy", "project ended", "is over", "ended", "moving house",
               "outgrew", "anymore", "no longer", "for now", "for a while", "next year", "resubscribe", "closed",
               "bankrupt", "acquired", "merged", "reorganis", "restructur", "new job", "changing jobs", "relocat",
               "travel", "holiday", "vacation", "illness", "sick_", "passed away", "family", "pregnan", "student",
               "graduat", "semester", "finished", "forgot", "wrong plan", "unused", "rarely use", "hardly use",
               "barely use", "by mistake"),
        "ja": ("必要なくな", "必要ありません", "不要", "使わなくな", "使っていな", "廃業", "閉鎖", "閉店", "たたみ", "引退", "退職", "休止", "しばらく", "事情",
               "特に理由", "理由はな", "特になし", "間違えて", "重複", "試用", "時間がな", "忙し", "引っ越", "終わりました", "終了しました", "もう使わな", "使う予定がな",
               "使う機会がな", "予定がな", "撤退", "終了", "完了", "休業", "辞め", "転勤", "転職", "育休", "産休", "妊娠", "病気", "体調", "家庭の事情",
               "家族", "忘れ", "テスト", "一時", "落ち着いたら", "来年", "当面", "倒産"),
        "ko": ("필요 없", "필요가 없", "필요없", "안 쓰", "쓸 일", "폐업", "사업을 접", "접었", "끝났", "은퇴", "퇴사", "잠시", "당분간", "사정", "이유 없",
               "실수로", "중복", "체험", "시간이 없", "바빠", "이사", "접게", "더는 필요", "더 이상 필요", "필요 없어", "쓸 일이 없", "안 쓰게", "안 써요",
               "끝나서", "완료", "휴업", "그만두", "이직", "육아휴직", "출산", "임신", "건강", "집안", "가족", "잊고", "까먹", "테스트", "일시", "내년",
               "파산", "해체"),
        "uk": ("не потрібн", "більше не треба", "не користуємося", "закри", "пенсі", "звільн", "відпустк", "пауз",
               "тимчасово", "причин", "випадково", "дубль", "пробн", "зайнят", "переїжд", "переїзд", "закінчил",
               "обставин", "більше не", "вже не потріб", "не треба", "не користу", "закінчи", "завершен", "банкрут",
               "звільняюся", "нова робота", "змінюю роботу", "декрет", "вагітн", "хвороб", "здоров'", "сімейн",
               "забув", "забула", "помилков", "тимчасов", "наступного року", "сезон"),
        "zh-Hans": ("不需要", "用不到", "用不上", "不再需要", "关门", "倒闭", "结束", "退休", "离职", "暂停", "特别的原因", "不小心", "重复", "试用",
                    "没时间", "太忙", "搬家", "清算", "不再", "用不着", "不用了", "完成了", "结束了", "停业", "歇业", "不干了", "换工作", "辞职", "产假",
                    "怀孕", "生病", "家里", "忘了", "注册错", "买错", "测试", "暂时", "明年", "破产", "解散", "淡季", "转型"),
        "zh-Hant": ("不需要", "用不到", "用不上", "不再需要", "關門", "收起來", "結束", "退休", "離職", "暫停", "特別原因", "不小心", "重複", "試用",
                    "沒時間", "太忙", "搬家", "收尾", "不再", "用不著", "不用了", "完成了", "結束了", "停業", "歇業", "不做了", "換工作", "辭職", "產假",
                    "懷孕", "生病", "家裡", "忘了", "註冊錯", "買錯", "測試", "暫時", "明年", "破產", "解散", "淡季", "轉型"),
    },
}

# Negation scopes: NEGATION_BEFORE is searched in the window that ends where a cue starts (anchored at
# the window's end), NEGATION_AFTER is matched at the position where the cue ends.
_EN_BEFORE = (r"(?:\bnot|n't)\s+(?:really\s+|just\s+|only\s+)?(?:about|because of|due to|the|a|an|our|your)\s+"
              r"(?:the\s+|your\s+|a\s+|an\s+)?$"
              r"|(?:nothing to do with|no (?:problems?|issues?|complaints?) (?:with|about)|nothing wrong with"
              r"|never had (?:a |any )?(?:problems?|issues?) with)\s+(?:the\s+|your\s+|our\s+)?$")
_EN_AFTER = (r"\S*\s+(?:itself\s+)?(?:(?:is|was|were|are|has been|seemed|felt)\s+(?:really\s+|totally\s+|always\s+)?"
             r"(?:fine|ok|okay|great|good|reasonable|acceptable|fair|lovely|responsive|helpful|quick|fast|friendly"
             r"|excellent|not (?:the|an?) (?:issue|problem|reason)|never (?:the|an?) (?:issue|problem))"
             r"|(?:isn't|wasn't|aren't|weren't|is not|was not|are not) the (?:issue|problem|reason)|aside)")
_JA_AFTER = (r"[^。、,.!?！？]{0,6}?(?:問題(?:ない|なく|ありません|はな|はありません)|満足|納得|十分|良かった|よかった"
             r"|親切|早かった|丁寧|不満はな|不満もな|関係な|どうこう|せいではな|ではなく|じゃなく|ではありません"
             r"|理由ではな|原因ではな)")
_KO_AFTER = (r"[^.,!?]{0,6}?(?:괜찮|만족|문제(?:는|가)?\s*(?:없|아니)|불만(?:은|이)?\s*없|상관(?:은|이)?\s*없|친절"
             r"|빨랐|좋았|훌륭|때문이\s*아니|때문은\s*아니|얘기가\s*아니|탓이\s*아니)")
_UK_BEFORE = r"(?:не через|справа не в|справа не у|не в|не у|не про|не за|ні до чого)\s+$"
_UK_AFTER = (r"\S*\s+(?:(?:все|усе|теж|була|був|було|були|тут|нам|—|-)\s+)*"
             r"(?:нормальн|влаштов|чудов|гаразд|задовол|хорош|швидк|ні до чого|не проблема|не причина|претензій немає)")
_ZH_BEFORE = r"(?:不是|并不是|並不是|并非|並非)(?:因为|因為|由于|由於)?$"
_ZH_AFTER = (r"[^，,。.！!？?]{0,4}?(?:没问题|沒問題|没意见|沒意見|没有不满|沒有不滿|没什么不满|沒什麼不滿|无关|無關"
             r"|还行|還行|还可以|還可以|可以接受|挺满意|很满意|很滿意|满意|滿意|不错|不錯|很热情|很親切|挺快|很快"
             r"|没毛病|沒毛病|很棒|倒是其次|不是问题|不是問題)")

#: Negation before a cue (the window ends where the cue starts).
NEGATION_BEFORE = re.compile("|".join(f"(?:{p})" for p in (_EN_BEFORE, _UK_BEFORE, _ZH_BEFORE)))
#: Substrings without which NEGATION_BEFORE cannot match (a cheap test before the regular expression).
NEGATION_BEFORE_TRIGGERS = ("not", "n't", "nothing", "no ", "never", "не ", "ні ", "不是", "非")
#: Negation after a cue (the window starts where the cue ends).
NEGATION_AFTER = re.compile("|".join(f"(?:{p})" for p in (_EN_AFTER, _JA_AFTER, _KO_AFTER, _UK_AFTER, _ZH_AFTER)))
