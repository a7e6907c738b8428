"""Hostile input on purpose: every bad file is rejected with a reason a user can act on, and a
rejected import leaves both stores exactly as they were (all-or-nothing, across files too).

Each test starts from a workspace already holding a small valid dataset (``seeded``), so
"nothing changed" is checked against non-empty stores.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import history_rows, snapshot, state_rows, write
from winback.config import Settings
from winback.ingest.service import IngestOptions, ingest
from winback.kit.errors import RowError, ValidationFailed, WinbackError

BASE_CUSTOMERS = """customer_id,email,name,created_at,marketing_basis
c1,ann@example.com,Ann,2025-01-01T10:00:00Z,consent
c2,bob@example.com,Bob,2025-02-01,none
c3,cy@example.com,Cy,2025-03-01 08:00:00+02:00,soft_opt_in
"""
BASE_ORDERS = """order_id,customer_id,ordered_at,total_amount,currency
o1,c1,2025-03-01,1000,USD
o2,c2,2025-03-02,2000,JPY
o3,c3,2025-03-03,3000,EUR
"""

# One valid row per table, as {column: value}; a case overrides one cell in a second row.
VALID = {
    "customers": {"customer_id": "c9", "email": "dee@example.com", "name": "Dee", "company": "Dee Ltd",
                  "phone": "+81312345678", "locale": "ja-JP", "timezone": "Asia/Tokyo", "country": "JP",
                  "created_at": "2025-04-01", "marketing_opt_out": "false", "attributes": '{"tier": "gold"}'},
    "orders": {"order_id": "o9", "customer_id": "c1", "ordered_at": "2025-04-01", "status": "completed",
               "total_amount": "1250", "discount_amount": "0", "currency": "USD", "coupon_code": "SPRING"},
    "plans": {"plan_id": "p9", "name": "Pro", "tier": "2", "amount": "1500", "currency": "USD",
              "trial_days": "14"},
    "subscriptions": {"subscription_id": "s9", "customer_id": "c1", "status": "trialing",
                      "started_at": "2026-01-01", "trial_end": "2026-01-31", "mrr": "1500", "currency": "USD"},
}
SECOND_ID = {"customers": ("customer_id", "c10"), "orders": ("order_id", "o10"), "plans": ("plan_id", "p10"),
             "subscriptions": ("subscription_id", "s10")}


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")  # quotes cells holding CR or LF
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def table_csv(table: str, **override: str) -> str:
    """A CSV for ``table``: row 2 is valid, row 3 is the same with ``override`` applied (and its own id)."""
    good = dict(VALID[table])
    bad = dict(good)
    key, second = SECOND_ID[table]
    bad[key] = second
    bad.update(override)
    header = list(bad)
    return csv_text(header, [[good.get(c, "") for c in header], [bad[c] for c in header]])


@pytest.fixture
def seeded(workspace: Settings, tmp_path: Path) -> Settings:
    base = tmp_path / "base"
    write(base / "customers.csv", BASE_CUSTOMERS)
    write(base / "orders.csv", BASE_ORDERS)
    result = ingest(workspace, base)
    assert result.tables["customers"].inserted == 3 and result.tables["orders"].inserted == 3
    return workspace


def reject(settings: Settings, path: Path, options: IngestOptions | None = None,
           expect: type[Exception] = ValidationFailed) -> Exception:
    """Ingest ``path`` expecting ``expect``; both stores must be unchanged afterwards."""
    before = snapshot(settings)
    with pytest.raises(expect) as info:
        ingest(settings, path, options)
    assert snapshot(settings) == before, "a rejected import changed the stores"
    if isinstance(info.value, ValidationFailed):
        assert str(info.value).startswith("import rejected, nothing written:")
        assert info.value.errors and info.value.total >= len(info.value.errors)
    return info.value


def only_error(exc: ValidationFailed) -> RowError:
    assert len(exc.errors) == 1 and exc.total == 1, [str(e) for e in exc.errors]
    return exc.errors[0]


def check(err: RowError, path: Path, row: int | None, column: str | None, value, *reasons: str) -> None:
    assert err.file == str(path), err
    assert err.row == row, err
    assert err.column == column, err
    if value is not ...:
        assert err.value == value, err
    for reason in reasons:
        assert reason in err.reason, err


def hostile(tmp_path: Path, name: str, content: str | bytes) -> Path:
    return write(tmp_path / "hostile" / name, content)


# --- wrong types and bad values -----------------------------------------------------------------

CELL_CASES = [
    # (table, column, value, reason substrings)
    ("orders", "total_amount", "abc", ["not an amount in minor units"]),
    ("orders", "total_amount", "12.50", ["whole minor units", "write 12.50 USD as 1250"]),
    ("orders", "total_amount", "12,50", ["whole minor units"]),
    ("orders", "total_amount", "-500", ["negative amount"]),
    ("orders", "total_amount", "1e3", ["not an amount in minor units"]),
    ("orders", "total_amount", "1234567890123456789", ["not an amount in minor units"]),
    ("orders", "discount_amount", "１２", ["not an amount"]),  # full-width digits
    ("orders", "status", "shipped", ["expected one of", "completed", "refunded"]),
    ("orders", "currency", "XYZ", ["unknown currency", "ISO 4217"]),
    ("orders", "currency", "US", ["unknown currency"]),
    ("orders", "ordered_at", "2025-13-01", ["not a date or date-time", "ISO 8601"]),
    ("orders", "ordered_at", "31/12/2025", ["not a date or date-time"]),
    ("orders", "ordered_at", "2025-02-29", ["not a date or date-time"]),
    ("orders", "ordered_at", "2025-03-01T10:00:00+99:99", ["not a date or date-time"]),
    ("orders", "ordered_at", "1969-12-31", ["date outside 1970-2100"]),
    ("customers", "marketing_opt_out", "maybe", ["not a boolean", "true/false"]),
    ("customers", "country", "ZZ", ["unknown country", "ISO 3166"]),
    ("customers", "country", "Japan", ["unknown country"]),
    ("customers", "timezone", "Mars/Olympus_Mons", ["unknown time zone", "IANA"]),
    ("customers", "timezone", "JST", ["unknown time zone"]),
    ("customers", "locale", "xx-YY", ["unknown locale", "BCP 47"]),
    ("customers", "email", "not-an-email", ["not an e-mail address"]),
    ("customers", "email", "ann@localhost", ["not an e-mail address"]),
    ("customers", "email", "ann smith@example.com", ["not an e-mail address"]),
    ("customers", "email", "a@b@example.com", ["not an e-mail address"]),
    ("customers", "phone", "555-1234", ["not an international phone number", "E.164"]),
    ("customers", "attributes", "{bad json", ["not a JSON object"]),
    ("customers", "attributes", "[1, 2]", ["not a JSON object"]),
    ("customers", "attributes", '"just a string"', ["not a JSON object"]),
    ("customers", "created_at", "2026-02-01", ["date is in the future"]),
    ("customers", "created_at", "2026-01-15T12:11:00Z", ["date is in the future"]),  # beyond the 10-min tolerance
    ("customers", "name", "x" * 20_000, ["longer than 10,000 characters"]),
    ("customers", "customer_id", "c" * 256, ["longer than 255 characters"]),
    ("plans", "tier", "three", ["not a whole number"]),
    ("plans", "tier", "2.0", ["not a whole number"]),
    ("plans", "tier", "1001", ["must be at most 1000"]),
    ("plans", "trial_days", "-1", ["must be at least 0"]),
    ("plans", "amount", "", ["required value is missing"]),
    ("subscriptions", "status", "ACTIVE-ish", ["expected one of", "trialing"]),
    ("subscriptions", "started_at", "2026-01-16", ["date is in the future"]),
]


@pytest.mark.parametrize("table,column,value,reasons", CELL_CASES,
                         ids=[f"{t}.{c}={v[:20]!r}" for t, c, v, _ in CELL_CASES])
def test_bad_cell_is_named_precisely(seeded, tmp_path, table, column, value, reasons):
    path = hostile(tmp_path, f"{table}.csv", table_csv(table, **{column: value}))
    err = only_error(reject(seeded, path))
    check(err, path, 3, column, value.strip() or None, *reasons)


def test_every_bad_cell_of_a_row_is_reported(seeded, tmp_path):
    path = hostile(tmp_path, "customers.csv", table_csv(
        "customers", email="nope", country="ZZ", timezone="Nowhere/Land", locale="qq-QQ", attributes="{"))
    exc = reject(seeded, path)
    assert exc.total == 5
    assert [e.column for e in exc.errors] == ["email", "locale", "timezone", "country", "attributes"]
    assert {e.row for e in exc.errors} == {3}


def test_values_are_trimmed_and_normalised_not_rejected(seeded, tmp_path):
    path = hostile(tmp_path, "customers.csv", table_csv(
        "customers", email="  Dee.Two@Example.COM ", country=" jp", locale="ja_jp", marketing_opt_out="YES",
        phone="+81 (3) 1234-5678", created_at="2025-03-31T14:05Z"))
    ingest(seeded, path)
    assert history_rows(seeded, "SELECT email, country, locale, marketing_opt_out, phone, created_at "
                                "FROM customers WHERE customer_id = 'c10'") == [
        ("dee.two@example.com", "JP", "ja-JP", True, "+81312345678", dt.datetime(2025, 3, 31, 14, 5))]


# --- the set of columns ---------------------------------------------------------------------------

def test_missing_required_column(seeded, tmp_path):
    path = hostile(tmp_path, "orders.csv", "order_id,customer_id,ordered_at,currency\no9,c1,2025-03-01,USD\n")
    check(only_error(reject(seeded, path)), path, 1, "total_amount", None,
          "required column 'total_amount' is missing")


def test_every_missing_required_column_is_listed(seeded, tmp_path):
    path = hostile(tmp_path, "orders.csv", "order_id,note\no9,hi\n")
    exc = reject(seeded, path)
    assert {e.column for e in exc.errors} >= {"customer_id", "ordered_at", "total_amount", "currency", "note"}


def test_unknown_column_then_allow_extra_columns(seeded, tmp_path):
    text = "order_id,customer_id,ordered_at,total_amount,currency,colour\no9,c1,2025-03-01,100,USD,red\n"
    path = hostile(tmp_path, "orders.csv", text)
    check(only_error(reject(seeded, path)), path, 1, "colour", None,
          "unknown column for table orders: colour", "--allow-extra-columns")
    result = ingest(seeded, path, IngestOptions(allow_extra_columns=True))
    assert result.tables["orders"].inserted == 1
    assert history_rows(seeded, "SELECT order_id, total_amount FROM orders WHERE order_id = 'o9'") == [("o9", 100)]


def test_misspelt_column_gets_a_hint(seeded, tmp_path):
    path = hostile(tmp_path, "customers.csv", "customer_id,emial,created_at\nc9,d@example.com,2025-01-01\n")
    check(only_error(reject(seeded, path)), path, 1, "emial", None, "did you mean 'emial' -> 'email'?")


def test_duplicate_column_names(seeded, tmp_path):
    path = hostile(tmp_path, "orders.csv",
                   "order_id,customer_id,ordered_at,total_amount,currency,currency\no9,c1,2025-03-01,1,USD,EUR\n")
    check(only_error(reject(seeded, path)), path, 1, "currency", "currency",
          "appears twice", "columns 5 and 6")


def test_duplicate_column_names_after_trimming(seeded, tmp_path):
    path = hostile(tmp_path, "orders.csv",
                   "order_id,customer_id,ordered_at,total_amount,currency, order_id\no9,c1,2025-03-01,1,USD,o9\n")
    check(only_error(reject(seeded, path)), path, 1, "order_id", "order_id", "appears twice")


def test_column_without_a_name(seeded, tmp_path):
    path = hostile(tmp_path, "orders.csv", "order_id,,customer_id\no9,x,c1\n")
    check(only_error(reject(seeded, path)), path, 1, None, None, "column 2 has no name")


def test_column_named_like_the_internal_row_number(seeded, tmp_path):
    # used to crash inside Arrow/DuckDB ("Multiple matches for FieldRef.Name(_row)")
    path = hostile(tmp_path, "orders.csv",
                   "order_id,customer_id,ordered_at,total_amount,currency,_row\no9,c1,2025-03-01,1,USD,7\n")
    check(only_error(reject(seeded, path)), path, 1, "_row", "_row", "reserved")
    reject(seeded, path, IngestOptions(allow_extra_columns=True))


# --- rows ------------------------------------------------------------------------------------------

def test_missing_required_value(seeded, tmp_path):
    path = hostile(tmp_path, "orders.csv", table_csv("orders", customer_id="   "))
    check(only_error(reject(seeded, path)), path, 3, "customer_id", None, "required value is missing")


def test_duplicate_ids_name_both_rows(seeded, tmp_path):
    path = hostile(tmp_path, "orders.csv", BASE_ORDERS.replace("o3,c3", "o1,c3").replace("o2,", "o9,"))
    err = only_error(reject(seeded, path))
    check(err, path, 4, "order_id", "o1", "duplicate order_id", "row 2 has the same key")


def test_duplicate_composite_keys(seeded, tmp_path):
    path = hostile(tmp_path, "order_items.csv", "order_id,line_number,category,unit_price,currency\n"
                                                "o1,1,books,100,USD\no1,2,books,100,USD\no1,1,toys,200,USD\n")
    check(only_error(reject(seeded, path)), path, 4, "order_id/line_number", "o1/1",
          "duplicate order_id/line_number", "row 2")


def test_three_copies_of_a_key(seeded, tmp_path):
    path = hostile(tmp_path, "orders.csv", BASE_ORDERS.replace("o2,", "o1,").replace("o3,", "o1,"))
    exc = reject(seeded, path)
    assert exc.total == 2
    assert [(e.row, e.value) for e in exc.errors] == [(3, "o1"), (4, "o1")]
    assert all("row 2 has the same key" in e.reason for e in exc.errors)


def test_rows_with_too_many_and_too_few_cells(seeded, tmp_path):
    path = hostile(tmp_path, "orders.csv", "order_id,customer_id,ordered_at,total_amount,currency\n"
                                           "o9,c1,2025-03-01,1,USD\no10,c1,2025-03-01,1,USD,extra\no11,c1\n")
    exc = reject(seeded, path)
    assert exc.total == 2
    check(exc.errors[0], path, 3, None, "o10,c1,2025-03-01,1,USD,extra", "expected 5 cells, found 6")
    check(exc.errors[1], path, 4, None, "o11,c1", "expected 5 cells, found 2")


def test_tsv_row_with_too_many_cells_keeps_its_row_number(seeded, tmp_path):
    rows = "".join(f"o{i}\tc1\t2025-03-01\t1\tUSD\n" for i in range(10, 30))
    path = hostile(tmp_path, "orders.tsv", "order_id\tcustomer_id\tordered_at\ttotal_amount\tcurrency\n"
                                           + rows + "o99\tc1\t2025-03-01\t1\tUSD\tx\n")
    check(only_error(reject(seeded, path)), path, 22, None, ..., "expected 5 cells, found 6")


def test_blank_lines_do_not_shift_row_numbers(seeded, tmp_path):
    path = hostile(tmp_path, "orders.csv", "order_id,customer_id,ordered_at,total_amount,currency\n"
                                           "o9,c1,2025-03-01,1,USD\n\n\r\no10,c1,2025-03-01,bad,USD\n\n")
    check(only_error(reject(seeded, path)), path, 5, "total_amount", "bad", "not an amount")


def test_multiline_quoted_cell_counts_as_one_row(seeded, tmp_path):
    path = hostile(tmp_path, "customers.csv", 'customer_id,name,created_at\nc9,"Dee\n\nSmith",2025-01-01\n'
                                              "c10,Eve,someday\n")
    check(only_error(reject(seeded, path)), path, 3, "created_at", "someday", "not a date")


def test_unclosed_quote(seeded, tmp_path):
    path = hostile(tmp_path, "customers.csv", 'customer_id,name,created_at\nc9,"Dee,2025-01-01\nc10,Eve,2025-01-01\n')
    err = only_error(reject(seeded, path))
    assert err.file == str(path) and "expected 3 cells, found 2" in err.reason


def test_control_characters_and_nul_bytes_in_ids(seeded, tmp_path):
    path = hostile(tmp_path, "customers.csv", b"customer_id,created_at\nc9,2025-01-01\nc\x0010,2025-01-01\n"
                                              b"c\x0111,2025-01-01\nc12\x7f,2025-01-01\n\"c\n13\",2025-01-01\n")
    exc = reject(seeded, path)
    assert [(e.row, e.column, e.value) for e in exc.errors] == [
        (3, "customer_id", "c\x0010"), (4, "customer_id", "c\x0111"), (5, "customer_id", "c12\x7f"),
        (6, "customer_id", "c\n13")]
    assert all("contains control characters" in e.reason for e in exc.errors)
    # the message shows the NUL escaped, on one line
    assert "\x00" not in str(exc) and "\n" not in str(exc)


def test_nul_in_jsonl_id_and_control_characters_in_text(seeded, tmp_path):
    path = hostile(tmp_path, "customers.jsonl",
                   json.dumps({"customer_id": "c\u00009", "created_at": "2025-01-01"}) + "\n"
                   + json.dumps({"customer_id": "c10", "created_at": "2025-01-01", "name": "bell\u0007"}) + "\n"
                   + json.dumps({"customer_id": "c11", "created_at": "2025-01-01", "name": "two\nlines\tok"}) + "\n")
    exc = reject(seeded, path)
    assert [(e.row, e.column) for e in exc.errors] == [(1, "customer_id"), (2, "name")]
    assert all("contains control characters" in e.reason for e in exc.errors)


# --- encodings ---------------------------------------------------------------------------------

def test_cp1252_bytes_in_a_utf8_file_then_with_encoding(seeded, tmp_path):
    path = hostile(tmp_path, "customers.csv",
                   "customer_id,name,created_at\nc9,Dee,2025-01-01\nc10,Café “Crème”,2025-01-01\n".encode("cp1252"))
    err = only_error(reject(seeded, path))
    # the bad byte is in row 3, not in the header (the decoder reads ahead of the header line)
    check(err, path, 3, None, None, "not valid utf-8 text", "--encoding", "cp1252")
    result = ingest(seeded, path, IngestOptions(encoding="cp1252"))
    assert result.tables["customers"].inserted == 2
    assert history_rows(seeded, "SELECT name FROM customers WHERE customer_id = 'c10'") == [("Café “Crème”",)]
    assert state_rows(seeded, "SELECT name FROM customers WHERE external_id = 'c10'") == [("Café “Crème”",)]


def test_bad_byte_deep_in_a_large_file(seeded, tmp_path):
    rows = "".join(f"c{i},Name {i},2025-01-01\n" for i in range(10, 3010))
    path = hostile(tmp_path, "customers.csv",
                   ("customer_id,name,created_at\n" + rows + "c9,Zoë,2025-01-01\n").encode("latin-1"))
    check(only_error(reject(seeded, path)), path, 3002, None, None, "not valid utf-8 text")


def test_shift_jis_file_with_encoding(seeded, tmp_path):
    text = "customer_id,name,company,created_at\nc9,山田太郎,株式会社テスト,2025-01-01\nc10,ｶﾀｶﾅ①,―～,2025-01-02\n"
    assert text.encode("cp932").decode("cp932") == text
    path = hostile(tmp_path, "customers.csv", text.encode("cp932"))
    err = only_error(reject(seeded, path))
    check(err, path, 2, None, None, "not valid utf-8 text", "--encoding")
    ingest(seeded, path, IngestOptions(encoding="cp932"))
    assert history_rows(seeded, "SELECT customer_id, name, company FROM customers WHERE customer_id IN ('c9', 'c10') "
                                "ORDER BY customer_id") == [("c10", "ｶﾀｶﾅ①", "―～"), ("c9", "山田太郎", "株式会社テスト")]
    assert state_rows(seeded, "SELECT name FROM customers WHERE external_id = 'c9'") == [("山田太郎",)]


def test_plain_shift_jis(seeded, tmp_path):
    path = hostile(tmp_path, "customers.csv", "customer_id,name,created_at\nc9,山田太郎,2025-01-01\n".encode("shift_jis"))
    ingest(seeded, path, IngestOptions(encoding="shift_jis"))
    assert history_rows(seeded, "SELECT name FROM customers WHERE customer_id = 'c9'") == [("山田太郎",)]
    assert state_rows(seeded, "SELECT name FROM customers WHERE external_id = 'c9'") == [("山田太郎",)]


def test_unknown_encoding_name(seeded, tmp_path):
    path = hostile(tmp_path, "customers.csv", "customer_id,created_at\nc9,2025-01-01\n")
    check(only_error(reject(seeded, path, IngestOptions(encoding="klingon"))), path, None, None, None,
          "unknown encoding 'klingon'")


def test_jsonl_not_utf8(seeded, tmp_path):
    path = hostile(tmp_path, "customers.jsonl",
                   '{"customer_id":"c9","created_at":"2025-01-01"}\n{"customer_id":"c10","name":"Zoë"}\n'
                   .encode("latin-1"))
    check(only_error(reject(seeded, path)), path, 2, None, None, "not valid utf-8 text")


# --- empty and huge -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,content,row,reason", [
    ("customers.csv", b"", None, "file is empty"),
    ("customers.jsonl", b"", None, "file is empty"),
    ("customers.csv", b"customer_id,created_at\n", None, "no data rows"),
    ("customers.csv", b"customer_id,created_at", None, "no data rows"),
    ("customers.csv", b"\n\n\n", 1, "no header row"),
    ("customers.csv", b",,\n", 1, "no header row"),
    ("customers.jsonl", b"\n  \n", None, "no records"),
])
def test_empty_and_header_only_files(seeded, tmp_path, name, content, row, reason):
    path = hostile(tmp_path, name, content)
    check(only_error(reject(seeded, path)), path, row, None, None, reason)


def test_empty_parquet(seeded, tmp_path):
    path = tmp_path / "hostile" / "customers.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"customer_id": pa.array([], pa.string()), "created_at": pa.array([], pa.string())}),
                   path)
    check(only_error(reject(seeded, path)), path, None, None, None, "no data rows")


def test_twenty_megabyte_cell(seeded, tmp_path):
    big = "x" * (20 << 20)
    path = hostile(tmp_path, "customers.csv", f'customer_id,name,created_at\nc9,"{big}",2025-01-01\n')
    err = only_error(reject(seeded, path))
    check(err, path, 2, "name", ..., "longer than 10,000 characters")
    assert len(str(err)) < 300  # the value is clipped in the message


def test_twenty_megabyte_unclosed_quote(seeded, tmp_path):
    path = hostile(tmp_path, "customers.csv", 'customer_id,name,created_at\nc9,"' + "x" * (20 << 20) + "\n")
    err = only_error(reject(seeded, path))
    assert err.file == str(path) and "expected 3 cells" in err.reason
    assert len(str(err)) < 300


def test_twenty_megabyte_jsonl_line(seeded, tmp_path):
    record = {"customer_id": "c9", "created_at": "2025-01-01", "name": "x" * (20 << 20)}
    path = hostile(tmp_path, "customers.jsonl", '{"customer_id":"c8","created_at":"2025-01-01"}\n'
                   + json.dumps(record) + "\n")
    check(only_error(reject(seeded, path)), path, 2, None, None, "line longer than 16 MB")


def test_huge_header_cell(seeded, tmp_path):
    path = hostile(tmp_path, "customers.csv", 'customer_id,"' + "h" * (1 << 20) + '",created_at\nc9,x,2025-01-01\n')
    err = only_error(reject(seeded, path))
    check(err, path, 1, None, None, "cannot read the header")


# --- spreadsheet formula injection ----------------------------------------------------------------

FORMULAS = ["=1+1", "@SUM(A1)", "+cmd|' /C calc'!A0", "\t=1", '=HYPERLINK("http://evil.example","click")',
            "-cmd|' /C calc'!A0", "=cmd|' /C notepad'!'A1'", "\r=1+1", " =1+1"]


@pytest.mark.parametrize("value", FORMULAS)
@pytest.mark.parametrize("table,column", [("customers", "name"), ("customers", "company"),
                                          ("customers", "customer_id"), ("orders", "coupon_code")])
def test_formulas_are_rejected(seeded, tmp_path, table, column, value):
    path = hostile(tmp_path, f"{table}.csv", table_csv(table, **{column: value}))
    err = only_error(reject(seeded, path))
    check(err, path, 3, column, ...)
    assert err.value.strip() == value.strip()  # leading whitespace may or may not be trimmed first
    if err.value[0] in "\t\r" and column in ("customer_id", "coupon_code"):
        # an id/string column refuses a leading tab or CR as a control character before the formula check
        assert "contains control characters" in err.reason or "spreadsheet formula" in err.reason
    else:
        assert "looks like a spreadsheet formula" in err.reason and "remove that first character" in err.reason


@pytest.mark.parametrize("value", ["-5 stars", "- fine", "+1 for support", "-5", "+81 3 1234 5678", "a=b",
                                   "email@me", "50% off"])
def test_formula_lookalikes_are_accepted(seeded, tmp_path, value):
    path = hostile(tmp_path, "customers.csv", table_csv("customers", name=value))
    ingest(seeded, path)
    assert history_rows(seeded, "SELECT name FROM customers WHERE customer_id = 'c10'") == [(value,)]


def test_formula_behind_a_leading_number_is_rejected(seeded, tmp_path):
    path = hostile(tmp_path, "customers.csv", table_csv("customers", name="-2+3+cmd|' /C calc'!A0"))
    reject(seeded, path)


def test_formulas_allowed_when_the_setting_is_off(seeded, tmp_path):
    seeded.ingest = seeded.ingest.model_copy(update={"reject_formulas": False})
    path = hostile(tmp_path, "customers.csv", table_csv("customers", name="=1+1"))
    ingest(seeded, path)
    assert history_rows(seeded, "SELECT name FROM customers WHERE customer_id = 'c10'") == [("=1+1",)]


# --- time -------------------------------------------------------------------------------------------

def test_future_ok_column_accepts_future_dates(seeded, tmp_path):
    path = hostile(tmp_path, "subscriptions.csv", table_csv("subscriptions", trial_end="2026-06-01",
                                                           current_period_end="2026-02-01T00:00:00+09:00"))
    result = ingest(seeded, path)
    assert result.tables["subscriptions"].inserted == 2
    assert history_rows(seeded, "SELECT trial_end, current_period_end FROM subscriptions "
                                "WHERE subscription_id = 's10'") == [
        (dt.datetime(2026, 6, 1), dt.datetime(2026, 1, 31, 15, 0))]


def test_small_clock_skew_is_tolerated(seeded, tmp_path):
    path = hostile(tmp_path, "customers.csv", table_csv("customers", created_at="2026-01-15T12:09:00Z"))
    assert ingest(seeded, path).tables["customers"].inserted == 2


@pytest.mark.parametrize("text,expected", [
    ("2025-03-31T14:05Z", dt.datetime(2025, 3, 31, 14, 5)),
    ("2025-03-31T14:05+09:00", dt.datetime(2025, 3, 31, 5, 5)),
    ("2025-03-31 14:05:06 +0530", dt.datetime(2025, 3, 31, 8, 35, 6)),
    ("2025-03-31T14:05:06.123456789z", dt.datetime(2025, 3, 31, 14, 5, 6, 123456)),
    ("2025-03-31T14:05:06-03", dt.datetime(2025, 3, 31, 17, 5, 6)),
    ("1743429906", dt.datetime(2025, 3, 31, 14, 5, 6)),
])
def test_timestamp_forms_convert_to_utc(seeded, tmp_path, text, expected):
    path = hostile(tmp_path, "orders.csv", table_csv("orders", ordered_at=text))
    ingest(seeded, path)
    assert history_rows(seeded, "SELECT ordered_at FROM orders WHERE order_id = 'o10'") == [(expected,)]


# --- references ---------------------------------------------------------------------------------------

def test_reference_to_unknown_customer(seeded, tmp_path):
    path = hostile(tmp_path, "orders.csv", table_csv("orders", customer_id="nobody"))
    check(only_error(reject(seeded, path)), path, 3, "customer_id", "nobody",
          "unknown customer_id", "no such row in customers")


def test_reference_to_a_customer_of_another_source(seeded, tmp_path):
    path = hostile(tmp_path, "orders.csv", table_csv("orders"))
    exc = reject(seeded, path, IngestOptions(source="crm"))
    assert [(e.row, e.column, e.value) for e in exc.errors] == [(2, "customer_id", "c1"), (3, "customer_id", "c1")]
    assert "source 'crm'" in exc.errors[0].reason


def test_reference_case_matters(seeded, tmp_path):
    path = hostile(tmp_path, "orders.csv", table_csv("orders", customer_id="C1"))
    check(only_error(reject(seeded, path)), path, 3, "customer_id", "C1", "unknown customer_id")


# --- JSON Lines and Parquet -------------------------------------------------------------------------

def test_jsonl_garbage_lines(seeded, tmp_path):
    good = {"order_id": "o9", "customer_id": "c1", "ordered_at": "2025-03-01", "total_amount": 1, "currency": "USD"}
    path = hostile(tmp_path, "orders.jsonl", "\n".join([
        json.dumps(good),
        "{not json}",
        "[1, 2, 3]",
        json.dumps({**good, "order_id": {"nested": True}}),
        json.dumps({**good, "order_id": "o12", "currency": ["USD"]}),
        '"a string"',
        json.dumps({**good, "order_id": "o13"})[:-3],
    ]) + "\n")
    exc = reject(seeded, path)
    assert [(e.row, e.column) for e in exc.errors] == [(2, None), (3, None), (4, "order_id"), (5, "currency"),
                                                       (6, None), (7, None)]
    assert "not valid JSON" in exc.errors[0].reason and exc.errors[0].value == "{not json}"
    assert "each line must be a JSON object" in exc.errors[1].reason and exc.errors[1].value == "[1, 2, 3]"
    assert "nested object or list where a single value belongs" in exc.errors[2].reason
    assert exc.errors[2].value == '{"nested": true}'
    assert "nested object or list" in exc.errors[3].reason
    assert "each line must be a JSON object" in exc.errors[4].reason
    assert "not valid JSON" in exc.errors[5].reason


def test_jsonl_nested_object_is_fine_in_a_json_column(seeded, tmp_path):
    path = hostile(tmp_path, "customers.jsonl", json.dumps(
        {"customer_id": "c9", "created_at": "2025-01-01", "attributes": {"plan": {"seats": 3}, "tags": ["a"]}}) + "\n")
    ingest(seeded, path)
    assert json.loads(history_rows(seeded, "SELECT attributes FROM customers WHERE customer_id = 'c9'")[0][0]) == {
        "plan": {"seats": 3}, "tags": ["a"]}


def test_jsonl_list_in_json_column_is_not_an_object(seeded, tmp_path):
    path = hostile(tmp_path, "customers.jsonl", json.dumps(
        {"customer_id": "c9", "created_at": "2025-01-01", "attributes": [1, 2]}) + "\n")
    check(only_error(reject(seeded, path)), path, 1, "attributes", "[1,2]", "not a JSON object")


def test_jsonl_numbers(seeded, tmp_path):
    base = {"customer_id": "c1", "ordered_at": "2025-03-01", "currency": "USD"}
    path = hostile(tmp_path, "orders.jsonl", "\n".join(json.dumps({**base, "order_id": f"o{i}", "total_amount": v})
                                                      for i, v in [(10, 12.5), (11, True), (12, "12")]) + "\n")
    exc = reject(seeded, path)
    assert [(e.row, e.value) for e in exc.errors] == [(1, "12.5"), (2, "true")]
    assert "whole minor units" in exc.errors[0].reason
    # a whole-number float (as many exporters write integers) is a whole number
    path = hostile(tmp_path, "orders.jsonl", json.dumps({**base, "order_id": "o10", "total_amount": 1250.0}) + "\n")
    ingest(seeded, path)
    assert history_rows(seeded, "SELECT total_amount FROM orders WHERE order_id = 'o10'") == [(1250,)]


def test_corrupt_parquet(seeded, tmp_path):
    path = hostile(tmp_path, "orders.parquet", b"PAR1 this is not really parquet PAR1")
    check(only_error(reject(seeded, path)), path, None, None, None, "not a readable Parquet file")


def test_truncated_parquet(seeded, tmp_path):
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"order_id": [f"o{i}" for i in range(10, 1000)], "customer_id": ["c1"] * 990,
                             "ordered_at": ["2025-03-01"] * 990, "total_amount": list(range(990)),
                             "currency": ["USD"] * 990}), good)
    data = good.read_bytes()
    path = hostile(tmp_path, "orders.parquet", data[: len(data) // 2])
    check(only_error(reject(seeded, path)), path, None, None, None, "not a readable Parquet file")


def test_parquet_bad_cells_name_the_record(seeded, tmp_path):
    path = tmp_path / "hostile" / "orders.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"order_id": ["o9", "o10"], "customer_id": ["c1", "c1"],
                             "ordered_at": ["2025-03-01", "2025-03-01"], "total_amount": [12.0, 12.5],
                             "currency": ["USD", "USD"]}), path)
    check(only_error(reject(seeded, path)), path, 2, "total_amount", "12.5", "whole minor units")


def test_parquet_zoned_timestamps_keep_their_instant(seeded, tmp_path):
    path = tmp_path / "hostile" / "orders.parquet"
    path.parent.mkdir(parents=True)
    instant = dt.datetime(2025, 3, 1, 0, 30, tzinfo=dt.timezone.utc)
    pq.write_table(pa.table({"order_id": ["o9"], "customer_id": ["c1"], "total_amount": [100], "currency": ["USD"],
                             "ordered_at": pa.array([instant], pa.timestamp("us", tz="Asia/Tokyo"))}), path)
    ingest(seeded, path)
    assert history_rows(seeded, "SELECT ordered_at FROM orders WHERE order_id = 'o9'") == [
        (dt.datetime(2025, 3, 1, 0, 30),)]


# --- many errors, many files ----------------------------------------------------------------------

def test_errors_are_capped_but_all_counted(seeded, tmp_path):
    rows = [[f"o{i}", "c1", "2025-03-01", "lots", "USD"] for i in range(10, 310)]
    path = hostile(tmp_path, "orders.csv", csv_text(["order_id", "customer_id", "ordered_at", "total_amount",
                                                     "currency"], rows))
    exc = reject(seeded, path)
    cap = seeded.ingest.max_errors
    assert len(exc.errors) == cap < 300
    assert exc.total == 300
    assert [e.row for e in exc.errors] == list(range(2, 2 + cap))
    assert "and 299 more problems" in str(exc)


def test_error_cap_follows_the_setting(seeded, tmp_path):
    seeded.ingest = seeded.ingest.model_copy(update={"max_errors": 7})
    rows = [[f"o{i}", "nobody", "2025-03-01", "1", "USD"] for i in range(10, 60)]
    path = hostile(tmp_path, "orders.csv", csv_text(["order_id", "customer_id", "ordered_at", "total_amount",
                                                     "currency"], rows))
    exc = reject(seeded, path)
    assert len(exc.errors) == 7 and exc.total == 50
    assert all("unknown customer_id" in e.reason for e in exc.errors)


def test_bad_row_shapes_are_capped_but_all_counted(seeded, tmp_path):
    rows = "".join(f"o{i},c1,2025-03-01,1,USD,extra\n" for i in range(10, 510))
    path = hostile(tmp_path, "orders.csv", "order_id,customer_id,ordered_at,total_amount,currency\n" + rows)
    exc = reject(seeded, path)
    assert len(exc.errors) == seeded.ingest.max_errors and exc.total == 500


def test_jsonl_error_total_counts_every_bad_line(seeded, tmp_path):
    path = hostile(tmp_path, "orders.jsonl", "[1]\n" * 1500)
    assert reject(seeded, path).total == 1500


def test_directory_with_one_bad_file_writes_nothing(seeded, tmp_path):
    data = tmp_path / "batch"
    write(data / "customers.csv", BASE_CUSTOMERS.replace("Bob", "Robert") + "c4,dee@example.com,Dee,2025-04-01,none\n")
    write(data / "plans.csv", "plan_id,name,amount,currency\np1,Pro,1500,USD\n")
    write(data / "orders.csv", BASE_ORDERS + "o4,c4,2025-04-02,400,USD\no5,c4,2025-04-03,4.00,USD\n")
    exc = reject(seeded, data)
    check(only_error(exc), data / "orders.csv", 6, "total_amount", "4.00", "whole minor units")
    assert history_rows(seeded, "SELECT count(*) FROM customers WHERE customer_id = 'c4' OR name = 'Robert'") == [(0,)]
    assert history_rows(seeded, "SELECT count(*) FROM plans") == [(0,)]
    assert state_rows(seeded, "SELECT count(*) FROM customers WHERE external_id = 'c4' OR name = 'Robert'") == [(0,)]
    assert state_rows(seeded, "SELECT count(*) FROM import_runs") == [(1,)]


def test_directory_with_a_bad_referenced_file_reports_only_the_cause(seeded, tmp_path):
    data = tmp_path / "batch"
    write(data / "customers.csv", "customer_id,created_at\nc4,yesterday\n")
    write(data / "orders.csv", "order_id,customer_id,ordered_at,total_amount,currency\no4,c4,2025-04-02,400,USD\n")
    exc = reject(seeded, data)
    check(only_error(exc), data / "customers.csv", 2, "created_at", "yesterday", "not a date")


def test_directory_errors_from_several_files(seeded, tmp_path):
    data = tmp_path / "batch"
    write(data / "plans.csv", "plan_id,name,amount,currency\np1,Pro,15.00,USD\n")
    write(data / "orders.csv", "order_id,customer_id,ordered_at,total_amount,currency\no4,ghost,2025-04-02,400,USD\n")
    write(data / "tickets.jsonl", "nope\n")
    exc = reject(seeded, data)
    assert sorted((Path(e.file).name, e.row, e.column) for e in exc.errors) == [
        ("orders.csv", 2, "customer_id"), ("plans.csv", 2, "amount"), ("tickets.jsonl", 1, None)]


def test_directory_with_two_files_for_one_table(seeded, tmp_path):
    data = tmp_path / "batch"
    write(data / "orders.csv", BASE_ORDERS)
    write(data / "orders.jsonl", "{}\n")
    exc = reject(seeded, data, expect=WinbackError)
    assert "both orders.csv and orders.jsonl hold table orders" in str(exc)


def test_unknown_file_type_and_missing_path(seeded, tmp_path):
    path = hostile(tmp_path, "orders.xlsx", b"PK\x03\x04")
    check(only_error(reject(seeded, path)), path, None, None, None, "unknown file type", ".csv")
    path = hostile(tmp_path, "stuff.xlsx", b"PK\x03\x04")
    assert "cannot tell which table" in str(reject(seeded, path, expect=WinbackError))
    assert "no such file" in str(reject(seeded, tmp_path / "missing.csv", expect=WinbackError))


# --- idempotency on both backends ---------------------------------------------------------------------

def stores_without_audit(settings: Settings) -> dict[str, str]:
    """Snapshot minus the import audit trail (every successful import adds one row to it)."""
    return {k: v for k, v in snapshot(settings).items() if k != "state.import_runs"}


def test_reimport_changes_nothing_and_one_changed_row_updates_one_row(seeded, tmp_path):
    data = tmp_path / "base"  # what `seeded` imported
    before = stores_without_audit(seeded)
    history_before = history_rows(seeded, "SELECT * EXCLUDE (_import_id) FROM customers ORDER BY customer_id")
    state_before = state_rows(seeded, "SELECT external_id, name, row_hash, updated_at FROM customers "
                                      "ORDER BY external_id")
    again = ingest(seeded, data)
    assert {t: (c.inserted, c.updated, c.unchanged) for t, c in again.tables.items()} == {
        "customers": (0, 0, 3), "orders": (0, 0, 3)}
    assert (again.state_customers.inserted, again.state_customers.updated, again.state_customers.unchanged) == (0, 0, 3)
    assert stores_without_audit(seeded) == before

    write(data / "customers.csv", BASE_CUSTOMERS.replace("Bob", "Robert"))
    third = ingest(seeded, data)
    assert {t: (c.inserted, c.updated, c.unchanged) for t, c in third.tables.items()} == {
        "customers": (0, 1, 2), "orders": (0, 0, 3)}
    assert (third.state_customers.inserted, third.state_customers.updated, third.state_customers.unchanged) == (0, 1, 2)
    after = stores_without_audit(seeded)
    assert {k for k in after if after[k] != before[k]} == {"history.customers", "state.customers"}
    history_after = history_rows(seeded, "SELECT * EXCLUDE (_import_id) FROM customers ORDER BY customer_id")
    changed = [(old, new) for old, new in zip(history_before, history_after) if old != new]
    assert len(history_after) == 3 and len(changed) == 1
    assert changed[0][0][0] == "c2" and changed[0][1][2] == "Robert"
    state_after = state_rows(seeded, "SELECT external_id, name, row_hash, updated_at FROM customers "
                                     "ORDER BY external_id")
    assert [r for r in state_after if r not in state_before] == [state_after[1]]
    assert state_after[1][:2] == ("c2", "Robert")
    runs = state_rows(seeded, "SELECT status, rows_updated, rows_unchanged FROM import_runs ORDER BY id")
    assert runs == [("succeeded", 0, 0), ("succeeded", 0, 6), ("succeeded", 1, 5)]
