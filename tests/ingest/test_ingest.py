"""Ingest happy paths: formats, directories, mapping, idempotency, both stores in step."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import history_rows, snapshot, state_rows, write
from winback.ingest.service import IngestOptions, ingest, parse_mapping
from winback.kit.errors import ValidationFailed, WinbackError

CUSTOMERS = """customer_id,email,name,company,locale,timezone,country,created_at,marketing_basis,marketing_opt_out
c1,Ann@Example.COM,Ann Lee,Acme,en_US,America/New_York,us,2024-01-05T10:00:00Z,consent,false
c2,kenji@example.jp,山田 健二,株式会社テスト,ja-jp,Asia/Tokyo,JP,2024-02-01,soft_opt_in,no
c3,olena@example.com.ua,Олена,ТОВ Приклад,uk,Europe/Kyiv,UA,2024-03-01 08:30:00+02:00,none,yes
"""
ORDERS = """order_id,customer_id,ordered_at,total_amount,currency
o1,c1,2024-03-01 10:00:00+09:00,1250,usd
o2,c2,2024-03-02,3000,JPY
o3,c2,2024-04-02T00:00:00Z,4500,JPY
"""


def test_csv_directory_loads_both_stores(workspace, tmp_path):
    data = tmp_path / "data"
    write(data / "customers.csv", CUSTOMERS)
    write(data / "orders.csv", ORDERS)
    write(data / "README.txt", "not a table")
    result = ingest(workspace, data)
    assert result.tables["customers"].inserted == 3
    assert result.tables["orders"].inserted == 3
    assert result.skipped == ["README.txt"]
    # normalisation: e-mail lower-cased, locale canonical, country upper-case, offsets converted to UTC
    rows = history_rows(workspace, "SELECT customer_id, email, locale, country, created_at, marketing_opt_out "
                                   "FROM customers ORDER BY customer_id")
    assert rows[0] == ("c1", "ann@example.com", "en-US", "US", dt.datetime(2024, 1, 5, 10), False)
    assert rows[1][2] == "ja-JP" and rows[1][5] is False
    assert rows[2][4] == dt.datetime(2024, 3, 1, 6, 30) and rows[2][5] is True
    assert history_rows(workspace, "SELECT ordered_at, total_amount, currency FROM orders WHERE order_id='o1'") == [
        (dt.datetime(2024, 3, 1, 1, 0), 1250, "USD")]
    # the state store holds the same customers, keyed by source + external id
    state = state_rows(workspace, "SELECT source, external_id, email, name, marketing_basis, marketing_opt_out "
                                  "FROM customers ORDER BY external_id")
    assert [r[1] for r in state] == ["c1", "c2", "c3"]
    assert state[1][3] == "山田 健二" and state[1][4] == "soft_opt_in"
    assert {r[0] for r in state} == {"default"}
    assert bool(state[2][5]) is True
    # an audit row for the import
    runs = state_rows(workspace, "SELECT status, rows_read, rows_inserted FROM import_runs")
    assert runs == [("succeeded", 6, 6)]


def test_reimport_changes_nothing_and_changed_row_updates(workspace, tmp_path):
    data = tmp_path / "data"
    write(data / "customers.csv", CUSTOMERS)
    write(data / "orders.csv", ORDERS)
    ingest(workspace, data)
    before = {k: v for k, v in snapshot(workspace).items() if k != "state.import_runs"}
    again = ingest(workspace, data)
    assert all(c.inserted == 0 and c.updated == 0 for c in again.tables.values())
    assert again.tables["orders"].unchanged == 3
    after = {k: v for k, v in snapshot(workspace).items() if k != "state.import_runs"}
    assert after == before
    write(data / "orders.csv", ORDERS.replace("4500", "4600"))
    third = ingest(workspace, data)
    assert (third.tables["orders"].inserted, third.tables["orders"].updated, third.tables["orders"].unchanged) == (0, 1, 2)
    assert history_rows(workspace, "SELECT count(*), sum(total_amount) FROM orders") == [(3, 1250 + 3000 + 4600)]


def test_sources_keep_keys_apart(workspace, tmp_path):
    write(tmp_path / "customers.csv", CUSTOMERS)
    ingest(workspace, tmp_path / "customers.csv")
    ingest(workspace, tmp_path / "customers.csv", IngestOptions(source="crm"))
    assert history_rows(workspace, "SELECT source, count(*) FROM customers GROUP BY 1 ORDER BY 1") == [
        ("crm", 3), ("default", 3)]
    assert state_rows(workspace, "SELECT count(*) FROM customers") == [(6,)]


def test_state_customer_update_follows_history(workspace, tmp_path):
    write(tmp_path / "customers.csv", CUSTOMERS)
    ingest(workspace, tmp_path / "customers.csv")
    write(tmp_path / "customers.csv", CUSTOMERS.replace("consent,false", "consent,true"))
    result = ingest(workspace, tmp_path / "customers.csv")
    assert result.tables["customers"].updated == 1
    assert result.state_customers.updated == 1 and result.state_customers.unchanged == 2
    assert state_rows(workspace, "SELECT marketing_opt_out FROM customers WHERE external_id = 'c1'") in ([(1,)], [(True,)])


def test_single_file_with_table_option_and_mapping(sqlite_workspace, tmp_path):
    write(tmp_path / "customers.csv", CUSTOMERS)
    ingest(sqlite_workspace, tmp_path / "customers.csv")
    path = write(tmp_path / "export-2025.csv", "Order #,Customer,Date,Total (cents),Cur\nA1,c1,2024-05-01,999,USD\n")
    options = IngestOptions(table="orders", mapping=parse_mapping(
        ["order_id=Order #", "customer_id=Customer", "ordered_at=Date", "total_amount=Total (cents)", "currency=Cur"]))
    result = ingest(sqlite_workspace, path, options)
    assert result.tables["orders"].inserted == 1
    assert history_rows(sqlite_workspace, "SELECT order_id, total_amount, status FROM orders") == [("A1", 999, "completed")]


def test_mapping_syntax_errors():
    with pytest.raises(WinbackError, match="CANONICAL=COLUMN"):
        parse_mapping(["email"])


def test_file_whose_table_cannot_be_inferred(sqlite_workspace, tmp_path):
    path = write(tmp_path / "export.csv", "a,b\n1,2\n")
    with pytest.raises(WinbackError, match="--table"):
        ingest(sqlite_workspace, path)


def test_jsonl_and_parquet(sqlite_workspace, tmp_path):
    lines = [
        {"customer_id": "j1", "email": "j1@example.com", "created_at": "2024-01-01T00:00:00Z",
         "attributes": {"industry": "retail", "seats": 5}, "marketing_opt_out": True},
        {"customer_id": "j2", "email": None, "created_at": "2024-01-02", "name": "김민준", "locale": "ko-KR"},
    ]
    write(tmp_path / "j" / "customers.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
    pq.write_table(pa.table({
        "order_id": ["p1", "p2"], "customer_id": ["j1", "j2"],
        "ordered_at": pa.array([dt.datetime(2024, 6, 1, 12), dt.datetime(2024, 6, 2)], pa.timestamp("us", tz="UTC")),
        "total_amount": pa.array([1999, 2500], pa.int64()), "currency": ["USD", "USD"],
    }), tmp_path / "j" / "orders.parquet")
    result = ingest(sqlite_workspace, tmp_path / "j")
    assert result.tables["customers"].inserted == 2 and result.tables["orders"].inserted == 2
    attrs, opt_out = history_rows(sqlite_workspace, "SELECT attributes, marketing_opt_out FROM customers "
                                                    "WHERE customer_id='j1'")[0]
    assert json.loads(attrs) == {"industry": "retail", "seats": 5} and opt_out is True
    assert history_rows(sqlite_workspace, "SELECT ordered_at FROM orders WHERE order_id='p1'") == [
        (dt.datetime(2024, 6, 1, 12),)]
    assert state_rows(sqlite_workspace, "SELECT name, locale FROM customers WHERE external_id='j2'") == [
        ("김민준", "ko-KR")]


def test_gzip_csv_and_bom(sqlite_workspace, tmp_path):
    import gzip

    path = tmp_path / "customers.csv.gz"
    path.write_bytes(gzip.compress(("\ufeff" + CUSTOMERS).encode("utf-8")))
    result = ingest(sqlite_workspace, path)
    assert result.tables["customers"].inserted == 3


def test_references_resolve_against_existing_history(sqlite_workspace, tmp_path):
    write(tmp_path / "customers.csv", CUSTOMERS)
    ingest(sqlite_workspace, tmp_path / "customers.csv")
    write(tmp_path / "orders.csv", ORDERS)
    assert ingest(sqlite_workspace, tmp_path / "orders.csv").tables["orders"].inserted == 3
    write(tmp_path / "more" / "orders.csv", ORDERS.replace("o1,c1", "o9,c9"))
    with pytest.raises(ValidationFailed) as info:
        ingest(sqlite_workspace, tmp_path / "more" / "orders.csv")
    (err,) = info.value.errors
    assert (err.row, err.column, err.value) == (2, "customer_id", "c9")
    assert "unknown customer_id" in err.reason


FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


def test_stripe_export_end_to_end(workspace):
    result = ingest(workspace, FIXTURES / "stripe", IngestOptions(format="stripe"))
    assert result.source == "stripe"
    assert set(result.tables) == {"customers", "plans", "subscriptions", "invoices", "payment_attempts"}
    assert result.tables["payment_attempts"].inserted > 0
    # amounts arrive in minor units, currencies upper-case, references resolve across files
    bad = history_rows(workspace, "SELECT count(*) FROM payment_attempts p LEFT JOIN customers c "
                                  "ON c.customer_id = p.customer_id AND c.source = p.source WHERE c.customer_id IS NULL")
    assert bad == [(0,)]
    currencies = {r[0] for r in history_rows(workspace, "SELECT DISTINCT currency FROM subscriptions")}
    assert currencies and all(c.isupper() for c in currencies)
    declines = {r[0] for r in history_rows(workspace, "SELECT decline_code FROM payment_attempts WHERE status='failed'")}
    assert {"insufficient_funds", "expired_card"} <= declines
    n = len(state_rows(workspace, "SELECT external_id FROM customers WHERE source = 'stripe'"))
    assert n == result.tables["customers"].rows
    before = {k: v for k, v in snapshot(workspace).items() if k != "state.import_runs"}
    again = ingest(workspace, FIXTURES / "stripe", IngestOptions(format="stripe"))
    assert sum(c.inserted + c.updated for c in again.tables.values()) == 0
    assert {k: v for k, v in snapshot(workspace).items() if k != "state.import_runs"} == before


def test_broken_stripe_export_writes_nothing(workspace):
    before = snapshot(workspace)
    with pytest.raises(ValidationFailed) as info:
        ingest(workspace, FIXTURES / "stripe_broken", IngestOptions(format="stripe"))
    assert snapshot(workspace) == before
    cells = {(e.file.rsplit("/", 1)[-1], e.row, e.column) for e in info.value.errors}
    assert ("unified_payments.csv", 3, "Amount") in cells
    assert any(e.row is None and "Created (UTC)" in e.reason for e in info.value.errors)
    # one problem, one report: the validator does not repeat what the converter said
    assert len(cells) == len(info.value.errors)
