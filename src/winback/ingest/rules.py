"""Cell rules per column kind, as DuckDB SQL over text cells (pure: builds strings, runs nothing).

For a column, :func:`parse_sql` gives the typed, normalised value and :func:`error_sql` a
reason string when the cell is invalid (NULL when it is fine). Both take the SQL of the raw,
already-trimmed text cell. The same grammar is written down in ``docs/ingest.md``; property
tests check the SQL against a plain-Python reading of it.
"""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.core import get_global

from winback.kit.money import currency_codes
from winback.models.history import Column

INTEGER_RE = r"^[+-]?[0-9]{1,18}$"
MONEY_RE = r"^[0-9]{1,18}$"
EMAIL_RE = r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f.]+(\.[^@\s\x00-\x1f\x7f.]+)+$"
PHONE_RE = r"^\+[1-9][0-9]{6,14}$"
# date, or date + time with optional fraction and optional Z / +HH[:MM] offset
TIMESTAMP_RE = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
                r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(\s?(Z|z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?))?)?$")
# the common exports' forms, which DuckDB's TIMESTAMP cast reads as UTC directly (fast path)
FAST_TIMESTAMP_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z?)?$"
EPOCH_RE = r"^[0-9]{9,10}$"
CONTROL_RE = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"  # control characters other than tab, LF, CR
ID_CONTROL_RE = r"[\x00-\x1f\x7f]"
# =, @, tab, CR start a formula; + or - do when followed by a non-digit, or when the cell goes on to
# call something (DDE "|", sheet reference "!", function "(" or another "=")
FORMULA_RE = r"^([=@\t\r]|[+\-][^\s0-9]|[+\-].*[|!(=])"
TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")
MAX_LENGTH = {"id": 255, "string": 255, "text": 10_000, "email": 254, "json": 100_000}
MIN_YEAR, MAX_YEAR = 1970, 2100


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def in_list(expr: str, values) -> str:
    return f"{expr} IN ({', '.join(lit(v) for v in sorted(values))})"


@lru_cache(maxsize=1)
def timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


# CLDR region codes that are not countries: unknown region, pseudo-locales, groupings
NOT_COUNTRIES = frozenset({"ZZ", "XA", "XB", "QO", "EU", "EZ", "UN"})


@lru_cache(maxsize=1)
def countries() -> frozenset[str]:
    territories = get_global("territory_currencies").keys() | set(Locale("en").territories)
    return frozenset(t for t in territories if len(t) == 2 and t.isalpha() and t.isupper()
                     and t not in NOT_COUNTRIES)


@lru_cache(maxsize=4096)
def normalise_locale(tag: str) -> str | None:
    """A BCP 47 tag Babel knows, normalised (``ja_jp`` -> ``ja-JP``), or None."""
    if not tag or len(tag) > 35:
        return None
    try:
        loc = Locale.parse(tag.replace("_", "-"), sep="-")
    except (ValueError, TypeError, UnknownLocaleError):
        return None
    parts = [loc.language]
    if loc.script:
        parts.append(loc.script)
    if loc.territory:
        parts.append(loc.territory)
    return "-".join(parts)


def _iso_sql(v: str) -> str:
    """SQL rewriting a TIMESTAMP_RE match into a form DuckDB's cast reads: Z/z -> +00, no space
    before the offset, and seconds added to HH:MM (DuckDB rejects ``14:05Z`` and ``14:05+09:00``)."""
    x = f"regexp_replace({v}, '\\s?[Zz]$', '+00')"
    x = f"regexp_replace({x}, '\\s([+-])', '\\1')"
    return (f"regexp_replace({x}, '^([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[T ][0-9]{{2}}:[0-9]{{2}})([+-]|$)', "
            f"'\\1:00\\2')")


def lookup_tables() -> dict[str, frozenset[str]]:
    """Small value tables the checks join against (an IN list of hundreds of literals is slow)."""
    return {"_valid_currency": currency_codes(), "_valid_country": countries(), "_valid_timezone": timezones()}


def lookup_sql() -> list[str]:
    """Statements creating the lookup tables in a DuckDB session (idempotent)."""
    statements = []
    for name, values in lookup_tables().items():
        rows = ", ".join(f"({lit(v)})" for v in sorted(values))
        statements.append(f"CREATE TEMP TABLE IF NOT EXISTS {name} AS SELECT * FROM (VALUES {rows}) AS t(v)")
    return statements


def parse_sql(column: Column, v: str) -> str:
    """SQL for the typed, normalised value of raw text ``v`` (NULL when unparsable)."""
    k = column.kind
    if k in ("id", "string", "text", "json"):
        return v
    if k == "email":
        return f"lower({v})"
    if k == "phone":
        return f"regexp_replace({v}, '[\\s().\\-]', '', 'g')"
    if k in ("currency", "country"):
        return f"upper({v})"
    if k == "enum":
        return f"lower({v})"
    if k == "integer" or k == "money":
        pattern = INTEGER_RE if k == "integer" else MONEY_RE
        return f"CASE WHEN regexp_full_match({v}, '{pattern}') THEN TRY_CAST({v} AS BIGINT) END"
    if k == "boolean":
        return (f"CASE WHEN lower({v}) IN ({', '.join(map(lit, TRUE_WORDS))}) THEN TRUE "
                f"WHEN lower({v}) IN ({', '.join(map(lit, FALSE_WORDS))}) THEN FALSE END")
    if k == "timestamp":
        return (f"CASE WHEN regexp_full_match({v}, '{FAST_TIMESTAMP_RE}') THEN TRY_CAST({v} AS TIMESTAMP) "
                f"WHEN regexp_full_match({v}, '{TIMESTAMP_RE}') "
                f"THEN TRY_CAST(TRY_CAST({_iso_sql(v)} AS TIMESTAMPTZ) AS TIMESTAMP) "
                f"WHEN regexp_full_match({v}, '{EPOCH_RE}') "
                f"THEN TRY_CAST(to_timestamp(TRY_CAST({v} AS BIGINT)) AS TIMESTAMP) END")
    if k == "locale":
        return f"_locale_map({v})"
    if k == "timezone":
        return v
    raise AssertionError(k)


def error_sql(column: Column, v: str, parsed: str, now_sql: str, reject_formulas: bool) -> str:
    """SQL giving a reason text when raw cell ``v`` (non-null) with value ``parsed`` is invalid."""
    k = column.kind
    checks: list[tuple[str, str]] = []  # (condition that means "bad", reason)
    if k in MAX_LENGTH:
        checks.append((f"length({v}) > {MAX_LENGTH[k]}", f"longer than {MAX_LENGTH[k]:,} characters"))
    if k in ("id", "string", "text"):
        # one cheap regex finds the few suspicious cells; only those get the specific tests
        control = ID_CONTROL_RE if k != "text" else CONTROL_RE
        prefilter = f"{control}|^[-=@+\t\r]" if reject_formulas else control
        specific = f"WHEN regexp_matches({v}, '{control}') THEN 'contains control characters' "
        if reject_formulas:
            specific += (f"WHEN regexp_matches({v}, '{FORMULA_RE}') THEN 'looks like a spreadsheet formula "
                         f"(starts with =, +, -, @, tab or CR); remove that first character' ")
        checks.append((f"regexp_matches({v}, '{prefilter}')", f"CASE {specific}END"))
    elif k in ("email", "phone", "json", "currency", "country", "enum", "locale", "timezone"):
        control = CONTROL_RE if k == "json" else ID_CONTROL_RE
        checks.append((f"regexp_matches({v}, '{control}')", "contains control characters"))
    if k == "email":
        checks.append((f"NOT regexp_full_match({v}, '{EMAIL_RE}')", "not an e-mail address"))
    elif k == "phone":
        checks.append((f"NOT regexp_full_match({parsed}, '{PHONE_RE}')",
                       "not an international phone number (E.164, e.g. +81312345678)"))
    elif k == "integer":
        checks.append((f"{parsed} IS NULL", "not a whole number"))
    elif k == "money":
        checks.append((f"{parsed} IS NULL AND regexp_full_match({v}, '^-?[0-9]*[.,][0-9]+$')",
                       "money must be whole minor units (cents, yen): write 12.50 USD as 1250"))
        checks.append((f"{parsed} IS NULL AND regexp_full_match({v}, '^-[0-9]+$')", "negative amount"))
        checks.append((f"{parsed} IS NULL", "not an amount in minor units (a whole number)"))
    elif k == "boolean":
        checks.append((f"{parsed} IS NULL", "not a boolean (true/false, yes/no, 1/0)"))
    elif k == "timestamp":
        checks.append((f"{parsed} IS NULL", "not a date or date-time (ISO 8601, e.g. 2025-03-31 or "
                                            "2025-03-31T14:05:00Z)"))
        checks.append((f"year({parsed}) < {MIN_YEAR} OR year({parsed}) > {MAX_YEAR}",
                       f"date outside {MIN_YEAR}-{MAX_YEAR}"))
        if not column.future_ok:
            checks.append((f"{parsed} > {now_sql}", "date is in the future"))
    elif k == "currency":
        checks.append((f"{parsed} NOT IN (SELECT v FROM _valid_currency)", "unknown currency (ISO 4217, e.g. USD)"))
    elif k == "country":
        checks.append((f"{parsed} NOT IN (SELECT v FROM _valid_country)", "unknown country (ISO 3166 alpha-2, e.g. JP)"))
    elif k == "timezone":
        checks.append((f"{parsed} NOT IN (SELECT v FROM _valid_timezone)", "unknown time zone (IANA, e.g. Asia/Tokyo)"))
    elif k == "locale":
        checks.append((f"{parsed} IS NULL", "unknown locale (BCP 47, e.g. en, ja-JP, zh-Hant)"))
    elif k == "enum":
        checks.append((f"NOT ({in_list(parsed, column.choices)})", f"expected one of {', '.join(column.choices)}"))
    elif k == "json":
        checks.append((f"NOT json_valid({v}) OR json_type({v}) <> 'OBJECT'", "not a JSON object"))
    if k in ("integer", "money"):
        if column.min is not None:
            checks.append((f"{parsed} < {column.min}", f"must be at least {column.min}"))
        if column.max is not None:
            checks.append((f"{parsed} > {column.max}", f"must be at most {column.max}"))
    whens = " ".join(f"WHEN {cond} THEN {reason if reason.startswith('CASE ') else lit(reason)}"
                     for cond, reason in checks)
    return f"CASE {whens} END" if whens else "NULL"
