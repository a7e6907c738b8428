"""A multilingual customer base: names in native scripts, companies, contact details and consent.

Everything is drawn per locale from small lists and assembled with vectorised string operations.
E-mail addresses use only the reserved example domains (RFC 2606) and are unique because they
carry the customer's number. Phone numbers use fictional ranges where a country reserves one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from winback.synth.arrays import DAY, choice, ids, join, take
from winback.synth.texts import LANGUAGES

LOCALE_WEIGHTS = (0.50, 0.14, 0.10, 0.08, 0.10, 0.08)  # en ja ko uk zh-Hans zh-Hant

# (country, timezone, weight, phone prefix, random digits) per locale
PLACES: dict[str, list[tuple[str, str, float, str, int]]] = {
    "en": [("US", "America/New_York", 0.24, "+1212555", 4), ("US", "America/Chicago", 0.12, "+1312555", 4),
           ("US", "America/Denver", 0.06, "+1303555", 4), ("US", "America/Los_Angeles", 0.18, "+1415555", 4),
           ("GB", "Europe/London", 0.20, "+44207946", 4), ("CA", "America/Toronto", 0.10, "+1416555", 4),
           ("AU", "Australia/Sydney", 0.10, "+6125550", 4)],
    "ja": [("JP", "Asia/Tokyo", 1.0, "+813", 8)],
    "ko": [("KR", "Asia/Seoul", 1.0, "+8210", 8)],
    "uk": [("UA", "Europe/Kyiv", 1.0, "+38044", 7)],
    "zh-Hans": [("CN", "Asia/Shanghai", 0.85, "+86138", 8), ("SG", "Asia/Singapore", 0.15, "+656", 7)],
    "zh-Hant": [("TW", "Asia/Taipei", 0.70, "+8862", 8), ("HK", "Asia/Hong_Kong", 0.30, "+8522", 7)],
}

# (native, romanised) given names and family names; ``family_first`` orders the full name.
NAMES: dict[str, dict] = {
    "en": {
        "given": [("Emma", "emma"), ("Olivia", "olivia"), ("Liam", "liam"), ("Noah", "noah"), ("James", "james"),
                  ("Sophia", "sophia"), ("Ava", "ava"), ("Mason", "mason"), ("Lucas", "lucas"), ("Mia", "mia"),
                  ("Ethan", "ethan"), ("Amelia", "amelia"), ("Harper", "harper"), ("Benjamin", "benjamin"),
                  ("Charlotte", "charlotte"), ("Henry", "henry"), ("Grace", "grace"), ("Daniel", "daniel"),
                  ("Chloe", "chloe"), ("Priya", "priya")],
        "family": [("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"), ("Brown", "brown"),
                   ("Jones", "jones"), ("Garcia", "garcia"), ("Miller", "miller"), ("Davis", "davis"),
                   ("Wilson", "wilson"), ("Taylor", "taylor"), ("Anderson", "anderson"), ("O'Connor", "oconnor"),
                   ("Moore", "moore"), ("Martin", "martin"), ("Clark", "clark"), ("Patel", "patel"),
                   ("Walker", "walker"), ("Hall", "hall"), ("Nguyen", "nguyen"), ("King", "king")],
        "family_first": False, "sep": " ",
    },
    "ja": {
        "given": [("翔太", "shota"), ("陽菜", "hina"), ("大輔", "daisuke"), ("美咲", "misaki"), ("健太", "kenta"),
                  ("彩", "aya"), ("拓海", "takumi"), ("結衣", "yui"), ("直樹", "naoki"), ("葵", "aoi"),
                  ("さくら", "sakura"), ("悠人", "yuto")],
        "family": [("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka"), ("伊藤", "ito"),
                   ("渡辺", "watanabe"), ("山本", "yamamoto"), ("中村", "nakamura"), ("小林", "kobayashi"),
                   ("加藤", "kato")],
        "family_first": True, "sep": " ",
    },
    "ko": {
        "given": [("민준", "minjun"), ("서연", "seoyeon"), ("지훈", "jihoon"), ("하은", "haeun"), ("도윤", "doyun"),
                  ("지우", "jiwoo"), ("현우", "hyunwoo"), ("수빈", "subin"), ("예준", "yejun"), ("지민", "jimin")],
        "family": [("김", "kim"), ("이", "lee"), ("박", "park"), ("최", "choi"), ("정", "jung"), ("강", "kang"),
                   ("조", "cho"), ("윤", "yoon"), ("장", "jang"), ("임", "lim")],
        "family_first": True, "sep": "",
    },
    "uk": {
        "given": [("Олена", "olena"), ("Андрій", "andrii"), ("Оксана", "oksana"), ("Дмитро", "dmytro"),
                  ("Ірина", "iryna"), ("Максим", "maksym"), ("Наталія", "nataliia"), ("Богдан", "bohdan"),
                  ("Юлія", "yuliia"), ("Тарас", "taras")],
        "family": [("Коваленко", "kovalenko"), ("Бондаренко", "bondarenko"), ("Шевченко", "shevchenko"),
                   ("Мельник", "melnyk"), ("Ткаченко", "tkachenko"), ("Кравченко", "kravchenko"),
                   ("Олійник", "oliinyk"), ("Бойко", "boiko"), ("Савченко", "savchenko"), ("Руденко", "rudenko")],
        "family_first": False, "sep": " ",
    },
    "zh-Hans": {
        "given": [("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("磊", "lei"),
                  ("洋", "yang"), ("婷", "ting"), ("杰", "jie"), ("晓明", "xiaoming"), ("思雨", "siyu")],
        "family": [("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
                   ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou")],
        "family_first": True, "sep": "",
    },
    "zh-Hant": {
        "given": [("怡君", "yichun"), ("志明", "chihming"), ("雅婷", "yating"), ("家豪", "chiahao"),
                  ("淑芬", "shufen"), ("俊傑", "chunchieh"), ("佳穎", "chiaying"), ("冠宇", "kuanyu"),
                  ("詩涵", "shihhan"), ("宗翰", "tsunghan")],
        "family": [("陳", "chen"), ("林", "lin"), ("黃", "huang"), ("張", "chang"), ("李", "lee"), ("王", "wang"),
                   ("吳", "wu"), ("劉", "liu"), ("蔡", "tsai"), ("楊", "yang")],
        "family_first": True, "sep": "",
    },
}

# company name = prefix + stem + suffix
COMPANIES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "en": ([""], ["Northwind", "Bluebird", "Summit", "Brightline", "Oakridge", "Silverleaf", "Redwood", "Harbor",
                  "Pinecrest", "Lumen", "Copperfield", "Maple & Finch"],
           [" Labs", " Analytics", " Studio", " Logistics", " Consulting", " Software", " Media", " Partners",
            " Health", " Foods", " Inc.", " Ltd"]),
    "ja": (["株式会社"], ["さくら", "青空", "富士見", "ひかり", "みなと", "若葉", "日の出", "北斗"],
           ["テック", "ソリューションズ", "商事", "デザイン", "システムズ", "製作所"]),
    "ko": (["(주)"], ["한빛", "누리", "미래", "푸른", "새봄", "다온", "가람"], ["소프트", "랩스", "솔루션", "디자인", "커머스"]),
    "uk": (["ТОВ «"], ["Світанок", "Дніпро", "Карпати", "Соняшник", "Криниця", "Зоря", "Полісся"],
           [" Софт»", " Лабс»", " Консалтинг»", " Медіа»", " Трейд»"]),
    "zh-Hans": ([""], ["云帆", "星辰", "海纳", "智远", "博雅", "青禾", "启明"],
                ["科技有限公司", "网络科技有限公司", "信息技术有限公司", "文化传媒有限公司"]),
    "zh-Hant": ([""], ["晨光", "雲帆", "星河", "青田", "明道", "海山"],
                ["科技股份有限公司", "資訊有限公司", "設計工作室", "國際有限公司"]),
}

EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
INDUSTRIES = ("software", "ecommerce", "agency", "education", "healthcare", "finance", "media", "nonprofit")
COMPANY_SIZES = ("1", "2-10", "11-50", "51-200", "201-1000", "1000+")
CHANNELS = ("organic", "paid_search", "referral", "partner", "social", "outbound")
MARKETING_BASES = ("consent", "soft_opt_in", "none")


@dataclass
class People:
    """Per-customer attributes (index i = customer i) plus ready-made Arrow columns."""

    n: int
    customer_id: pa.Array
    locale: np.ndarray  # index into LANGUAGES
    place: np.ndarray  # index into the flat place table
    columns: dict  # customers-table columns except created_at / plan_id / opted_out_at
    opt_out: np.ndarray  # bool
    email: pa.Array


def _flat_places():
    rows = []
    for lang in LANGUAGES:
        for country, tz, weight, prefix, digits in PLACES[lang]:
            rows.append((lang, country, tz, weight, prefix, digits))
    return rows


FLAT_PLACES = _flat_places()


def make_people(rng: np.random.Generator, n: int, number_width: int, *, companies_share: float = 0.75,
                attributes: str = "saas") -> People:
    """``n`` customers numbered 1..n (``cus_`` ids); the caller adds times, plans and consent times."""
    numbers = np.arange(1, n + 1, dtype=np.int64)
    customer_id = ids("cus_", numbers, number_width)
    locale = choice(rng, n, LOCALE_WEIGHTS)

    # place (country + timezone + phone prefix) within the locale
    place = np.empty(n, dtype=np.int64)
    offset = 0
    for li, lang in enumerate(LANGUAGES):
        options = PLACES[lang]
        rows = np.nonzero(locale == li)[0]
        place[rows] = offset + choice(rng, len(rows), [o[2] for o in options])
        offset += len(options)
    country = take([p[1] for p in FLAT_PLACES], place)
    timezone = take([p[2] for p in FLAT_PLACES], place)

    # names: per-locale lists flattened, with per-row index offsets
    g_all, f_all = [], []
    g_off, f_off, g_len, f_len = [], [], [], []
    for lang in LANGUAGES:
        spec = NAMES[lang]
        g_off.append(len(g_all))
        f_off.append(len(f_all))
        g_len.append(len(spec["given"]))
        f_len.append(len(spec["family"]))
        g_all.extend(spec["given"])
        f_all.extend(spec["family"])
    g_idx = np.asarray(g_off)[locale] + (rng.random(n) * np.asarray(g_len)[locale]).astype(np.int64)
    f_idx = np.asarray(f_off)[locale] + (rng.random(n) * np.asarray(f_len)[locale]).astype(np.int64)
    given = take([g[0] for g in g_all], g_idx)
    family = take([f[0] for f in f_all], f_idx)
    given_rom = take([g[1] for g in g_all], g_idx)
    family_rom = take([f[1] for f in f_all], f_idx)
    family_first = np.array([NAMES[lang]["family_first"] for lang in LANGUAGES])[locale]
    sep = take([NAMES[lang]["sep"] for lang in LANGUAGES], locale)
    first = pc.if_else(pa.array(family_first), family, given)
    second = pc.if_else(pa.array(family_first), given, family)
    name_native = join(first, sep, second)

    # unique e-mail: given.family<number>@example.*; a few use initials or underscores
    style = choice(rng, n, [0.6, 0.25, 0.15])
    initial = pc.utf8_slice_codeunits(given_rom, 0, 1)
    local = pc.if_else(pa.array(style == 0), join(given_rom, ".", family_rom),
                       pc.if_else(pa.array(style == 1), join(initial, family_rom), join(family_rom, "_", given_rom)))
    domain = take(EMAIL_DOMAINS, choice(rng, n, [0.6, 0.25, 0.15]))
    email_local = join(local, pa.array(numbers).cast(pa.string()), "@", domain)

    # companies
    c_parts = []
    for lang in LANGUAGES:
        prefixes, stems, suffixes = COMPANIES[lang]
        c_parts.append((prefixes, stems, suffixes))
    has_company = rng.random(n) < companies_share
    company_texts = []
    company_codes = np.zeros(n, dtype=np.int64)
    base = 0
    for li, (prefixes, stems, suffixes) in enumerate(c_parts):
        names = [p + s + x for p in prefixes for s in stems for x in suffixes]
        rows = np.nonzero(locale == li)[0]
        company_codes[rows] = base + (rng.random(len(rows)) * len(names)).astype(np.int64)
        company_texts.extend(names)
        base += len(names)
    company = take(company_texts, company_codes, mask=~has_company)

    # phones for about a third of the customers
    has_phone = rng.random(n) < 0.35
    digits = np.array([p[5] for p in FLAT_PLACES])[place]
    phone_body = np.zeros(n, dtype=np.int64)
    for d in np.unique(digits):
        rows = np.nonzero(digits == d)[0]
        lo = 10 ** (d - 1) if d > 4 else 100
        hi = 10 ** d if d > 4 else 200  # 555-01xx fictional ranges for 4-digit bodies
        phone_body[rows] = rng.integers(lo, hi, len(rows))
    phone_digits = pc.utf8_lpad(pa.array(phone_body).cast(pa.string()), 4, "0")
    phone = join(take([p[4] for p in FLAT_PLACES], place), phone_digits)
    phone = take(phone, np.arange(n), mask=~has_phone)

    # consent and opt-out
    basis = choice(rng, n, [0.45, 0.35, 0.20])
    opt_out = rng.random(n) < 0.03

    # attributes: a JSON object of a few plain codes
    if attributes == "saas":
        industry = take(INDUSTRIES, choice(rng, n, [0.3, 0.15, 0.15, 0.1, 0.08, 0.1, 0.07, 0.05]))
        size = take(COMPANY_SIZES, np.where(has_company, 1 + choice(rng, n, [0.4, 0.3, 0.17, 0.09, 0.04]), 0))
        channel = take(CHANNELS, choice(rng, n, [0.4, 0.2, 0.15, 0.1, 0.1, 0.05]))
        attrs = join('{"industry": "', industry, '", "company_size": "', size, '", "acquisition_channel": "',
                     channel, '"}')
    else:
        channel = take(("organic", "paid_social", "paid_search", "email", "affiliate"),
                       choice(rng, n, [0.35, 0.25, 0.2, 0.1, 0.1]))
        device = take(("mobile", "desktop", "tablet"), choice(rng, n, [0.62, 0.32, 0.06]))
        attrs = join('{"acquisition_channel": "', channel, '", "first_device": "', device, '"}')

    columns = {
        "customer_id": customer_id,
        "email": email_local,
        "name": name_native,
        "company": company,
        "phone": phone,
        "locale": take(LANGUAGES, locale),
        "timezone": timezone,
        "country": country,
        "marketing_basis": take(MARKETING_BASES, basis),
        "marketing_opt_out": opt_out,
        "attributes": attrs,
    }
    return People(n=n, customer_id=customer_id, locale=locale, place=place, columns=columns, opt_out=opt_out,
                  email=email_local)


def opted_out_at(rng: np.random.Generator, opt_out: np.ndarray, created: np.ndarray, horizon: int) -> np.ndarray:
    """An opt-out instant between sign-up and the horizon for opted-out customers, else NA."""
    span = np.maximum(horizon - created, DAY)
    out = created + (rng.random(len(created)) * span).astype(np.int64)
    return np.where(opt_out, np.minimum(out, horizon), -1)


def signup_times(rng: np.random.Generator, n: int, start: int, end: int, growth: float = 1.5) -> np.ndarray:
    """Sorted sign-up instants in [start, end) with a linearly growing rate (``growth`` = end/start - 1)."""
    v = np.sort(rng.random(n))
    g = growth
    u = (-1.0 + np.sqrt(1.0 + 2.0 * g * (1.0 + g / 2.0) * v)) / g
    return start + (u * (end - start)).astype(np.int64)


__all__ = ["People", "make_people", "signup_times", "opted_out_at"]
