"""Stripe Dashboard CSV exports -> canonical tables (winback ingest --format stripe)."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from winback.ingest.sources.base import ROW, RawTable
from winback.ingest.sources.stripe_export import STRIPE_KINDS, convert, detect_kind
from winback.models.history import get_table

FIXTURES = Path(__file__).parent / "fixtures"
GOOD = FIXTURES / "stripe"
BROKEN = FIXTURES / "stripe_broken"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def read_raw(path: Path) -> tuple[list[str], RawTable]:
    """Read a CSV the way the ingest readers do: every column a string, empty = null, _row = index + 2."""
    with path.open(encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh))
    data = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=True,
            null_values=[""],
        ),
    )
    data = data.append_column(ROW, pa.array(range(2, data.num_rows + 2), pa.int64()))
    return header, RawTable("stripe", str(path), data)


def raw_from_rows(header: list[str], rows: list[list[str | None]], file: str = "mem.csv") -> RawTable:
    cols = {name: pa.array([r[i] for r in rows], pa.string()) for i, name in enumerate(header)}
    cols[ROW] = pa.array(range(2, len(rows) + 2), pa.int64())
    return RawTable("stripe", file, pa.table(cols))


def convert_file(path: Path, kind: str | None = None):
    header, raw = read_raw(path)
    kind = kind or detect_kind(path.name, header)
    return convert(kind, raw)


def by_name(tables: list[RawTable]) -> dict[str, RawTable]:
    return {t.table: t for t in tables}


def rows_by(table: RawTable, key: str) -> dict[str, dict]:
    return {r[key]: r for r in table.data.to_pylist()}


def column(table: RawTable, key: str, col: str) -> dict[str, str | None]:
    return {r[key]: r[col] for r in table.data.to_pylist()}


def error_tuples(errors) -> list[tuple]:
    return [(Path(e.file).name, e.row, e.column, e.value) for e in errors]


# --------------------------------------------------------------------------------------------
# detection
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("customers.csv", "customers"),
        ("exports/Stripe customers 2024-05-31.csv", "customers"),
        ("subscriptions.csv", "subscriptions"),
        ("stripe_subscriptions_2024.CSV", "subscriptions"),
        ("invoices.csv", "invoices"),
        ("unified_payments.csv", "payments"),
        ("cgge_unified_payments_20250731.csv", "payments"),
        ("payments.csv", "payments"),
        ("charges.csv", "payments"),
        ("/tmp/dump/Charges (1).csv", "payments"),
    ],
)
def test_detect_kind_from_file_name(name, kind):
    assert detect_kind(name, []) == kind


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("customers.csv", "customers"),
        ("subscriptions.csv", "subscriptions"),
        ("invoices.csv", "invoices"),
        ("unified_payments.csv", "payments"),
    ],
)
def test_detect_kind_from_header_when_name_says_nothing(fixture, kind):
    header, _ = read_raw(GOOD / fixture)
    assert detect_kind("export (3).csv", header) == kind


def test_detect_kind_from_other_real_headers():
    charges = ("id,Description,Seller Message,Created (UTC),Amount,Amount Refunded,Currency,Converted Amount,"
               "Fee,Status,Customer ID,Customer Email,Captured,Card ID,Card Last4,Card Brand,Invoice ID").split(",")
    assert detect_kind("download.csv", charges) == "payments"
    customers = "id,Description,Email,Name,Created (UTC),Delinquent,Plan,Status,Total Spend".split(",")
    assert detect_kind("download.csv", customers) == "customers"
    invoices = "id,Amount Due,Billing,Closed,Currency,Customer,Date (UTC),Due Date (UTC),Number,Paid".split(",")
    assert detect_kind("download.csv", invoices) == "invoices"
    subs = "id,Customer ID,Plan,Quantity,Interval,Amount,Status,Created (UTC)".split(",")
    assert detect_kind("download.csv", subs) == "subscriptions"


def test_detect_kind_unknown():
    assert detect_kind("report.csv", ["foo", "bar"]) is None
    assert detect_kind("report.csv", []) is None


def test_unknown_kind_is_a_programming_error():
    _, raw = read_raw(GOOD / "customers.csv")
    with pytest.raises(ValueError):
        convert("refunds", raw)
    assert STRIPE_KINDS == ("customers", "subscriptions", "invoices", "payments")


# --------------------------------------------------------------------------------------------
# the good export: every table, exact values
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["customers.csv", "subscriptions.csv", "invoices.csv", "unified_payments.csv"])
def test_good_exports_convert_without_errors_and_keep_rows(fixture):
    path = GOOD / fixture
    _, raw = read_raw(path)
    tables, errors = convert_file(path)
    assert errors == []
    for t in tables:
        assert t.file == str(path)
        spec = get_table(t.table)
        assert set(t.columns) <= set(spec.column_names), set(t.columns) - set(spec.column_names)
        assert t.data.schema.field(ROW).type == pa.int64()
        assert all(t.data.schema.field(c).type == pa.string() for c in t.columns)
    main = tables[0]
    assert main.data.column(ROW).to_pylist() == raw.data.column(ROW).to_pylist()


def test_customers():
    tables, errors = convert_file(GOOD / "customers.csv")
    assert errors == []
    (customers,) = tables
    assert customers.table == "customers"
    rows = rows_by(customers, "customer_id")
    assert len(rows) == 12
    assert rows["cus_A01"] == {
        "customer_id": "cus_A01",
        "email": "alice@example.com",
        "name": "Alice Martin",
        "phone": "+14155550101",
        "locale": "en-US",
        "country": "US",
        "plan_id": "price_pro_monthly",
        "created_at": "2023-01-15T09:12:00Z",
        "attributes": '{"company_size": "11-50", "description": "Acme Analytics", "signup_source": "google_ads"}',
        ROW: 2,
    }
    jp = rows["cus_A07"]
    assert (jp["name"], jp["locale"], jp["country"], jp["phone"]) == ("佐藤 陽翔", "ja-JP", "JP", "+81312345678")
    assert json.loads(jp["attributes"]) == {"company_size": "11-50", "description": "株式会社サトウ",
                                            "signup_source": "partner"}
    assert rows["cus_A02"]["created_at"] == "2023-02-03T14:30:05Z"  # with seconds
    assert rows["cus_A02"]["phone"] is None and rows["cus_A02"]["locale"] is None
    assert rows["cus_A06"]["attributes"] is None  # no metadata, no description
    assert rows["cus_A05"]["plan_id"] is None


def test_subscriptions_amounts_mrr_and_currency():
    tables, errors = convert_file(GOOD / "subscriptions.csv")
    assert errors == []
    subs = by_name(tables)["subscriptions"]
    assert column(subs, "subscription_id", "mrr") == {
        "sub_S01": "2900",    # 29.00 usd / month
        "sub_S02": "29700",   # 99.00 x 3 seats
        "sub_S03": "2900",
        "sub_S04": "2900",
        "sub_S05": "2900",    # canceled: the MRR it had (lost MRR)
        "sub_S06": "9900",
        "sub_S07": "3000",    # 3000 jpy stays 3000 (no minor unit)
        "sub_S08": "2900",
        "sub_S09": "10000",   # 1200.00 / year -> 100.00 / month
        "sub_S10": "3033",    # 7.00 / week: 700 * 52 / 12 = 3033.33
        "sub_S11": "100",     # 12.06 / year: 1206 / 12 = 100.5 -> half-even 100
        "sub_S12": "2900",
    }
    currencies = column(subs, "subscription_id", "currency")
    assert currencies["sub_S07"] == "JPY"
    assert {c for k, c in currencies.items() if k != "sub_S07"} == {"USD"}
    assert column(subs, "subscription_id", "quantity")["sub_S02"] == "3"


def test_subscription_statuses_and_dates():
    tables, _ = convert_file(GOOD / "subscriptions.csv")
    subs = rows_by(by_name(tables)["subscriptions"], "subscription_id")
    assert {k: r["status"] for k, r in subs.items()} == {
        "sub_S01": "active", "sub_S02": "active", "sub_S03": "trialing", "sub_S04": "past_due",
        "sub_S05": "canceled", "sub_S06": "unpaid", "sub_S07": "active", "sub_S08": "active",
        "sub_S09": "active", "sub_S10": "active", "sub_S11": "active", "sub_S12": "canceled",
    }
    s3 = subs["sub_S03"]
    assert (s3["started_at"], s3["trial_start"], s3["trial_end"], s3["current_period_end"]) == (
        "2024-05-20T08:00:00Z", "2024-05-20T08:00:00Z", "2024-06-03T08:00:00Z", "2024-06-03T08:00:00Z")
    assert subs["sub_S02"]["started_at"] == "2023-02-03T14:30:05Z"
    assert subs["sub_S01"]["customer_id"] == "cus_A01"
    assert subs["sub_S01"]["plan_id"] == "price_pro_monthly"


def test_canceled_subscription_keeps_feedback_and_comment():
    tables, _ = convert_file(GOOD / "subscriptions.csv")
    subs = rows_by(by_name(tables)["subscriptions"], "subscription_id")
    s5 = subs["sub_S05"]
    assert s5["canceled_at"] == "2024-04-20T16:41:09Z"
    assert s5["ended_at"] == "2024-05-02T10:00:00Z"
    assert s5["cancel_at_period_end"] == "false"
    assert s5["cancel_reason_code"] == "too_expensive"  # the customer's feedback beats the generic reason
    assert s5["cancel_reason_text"] == "We found a cheaper tool that does what we need, sorry!"
    # Scheduled cancellation: still active, cancel_at_period_end true.
    s8 = subs["sub_S08"]
    assert (s8["status"], s8["cancel_at_period_end"], s8["cancel_reason_code"], s8["ended_at"]) == (
        "active", "true", "missing_features", None)
    # No feedback: Stripe's own reason is the code.
    s12 = subs["sub_S12"]
    assert (s12["cancel_reason_code"], s12["cancel_reason_text"]) == ("payment_failed", None)
    assert subs["sub_S01"]["cancel_reason_code"] is None


def test_plans_derived_from_subscriptions():
    tables, _ = convert_file(GOOD / "subscriptions.csv")
    assert [t.table for t in tables] == ["subscriptions", "plans"]
    plans = by_name(tables)["plans"]
    assert plans.data.to_pylist() == [
        {"plan_id": "price_pro_monthly", "name": "Pro", "interval": "month", "amount": "2900",
         "currency": "USD", ROW: 2},
        {"plan_id": "price_team_monthly", "name": "Team", "interval": "month", "amount": "9900",
         "currency": "USD", ROW: 3},
        {"plan_id": "price_jp_monthly", "name": "Pro (JP)", "interval": "month", "amount": "3000",
         "currency": "JPY", ROW: 8},
        {"plan_id": "price_pro_annual", "name": "Pro Annual", "interval": "year", "amount": "120000",
         "currency": "USD", ROW: 10},
        # weekly has no plans.interval: stored as its exact monthly equivalent
        {"plan_id": "price_starter_weekly", "name": "Starter Weekly", "interval": "month", "amount": "3033",
         "currency": "USD", ROW: 11},
        {"plan_id": "price_basic_annual", "name": "Basic Annual", "interval": "year", "amount": "1206",
         "currency": "USD", ROW: 12},
    ]


def test_no_plan_column_means_no_plans_table():
    header = ["id", "Customer ID", "Currency", "Interval", "Amount", "Status", "Created (UTC)"]
    raw = raw_from_rows(header, [["sub_1", "cus_1", "usd", "month", "10.00", "active", "2024-01-01 00:00"]])
    tables, errors = convert("subscriptions", raw)
    assert errors == []
    assert [t.table for t in tables] == ["subscriptions"]
    assert "plan_id" not in tables[0].columns


def test_invoices():
    tables, errors = convert_file(GOOD / "invoices.csv")
    assert errors == []
    (invoices,) = tables
    assert invoices.table == "invoices"
    rows = rows_by(invoices, "invoice_id")
    assert rows["in_001"] == {
        "invoice_id": "in_001",
        "customer_id": "cus_A01",
        "subscription_id": "sub_S01",
        "created_at": "2024-05-15T10:12:00Z",
        "due_at": None,
        "period_start": "2024-05-15T09:12:00Z",  # the line items' service period
        "period_end": "2024-06-15T09:12:00Z",
        "amount_due": "2900",
        "amount_paid": "2900",
        "currency": "USD",
        "status": "paid",
        "paid_at": "2024-05-15T10:13:02Z",
        "attempt_count": "1",
        "billing_reason": "subscription_cycle",
        ROW: 2,
    }
    assert (rows["in_006"]["amount_due"], rows["in_006"]["currency"]) == ("3000", "JPY")
    assert rows["in_007"]["amount_due"] == "120000"
    assert rows["in_009"]["amount_due"] == "1206"
    assert rows["in_012"]["amount_due"] == "0"
    assert {k: r["status"] for k, r in rows.items()} == {
        "in_001": "paid", "in_002": "paid", "in_003": "open", "in_004": "paid", "in_005": "uncollectible",
        "in_006": "paid", "in_007": "paid", "in_008": "paid", "in_009": "paid", "in_010": "void",
        "in_011": "paid", "in_012": "paid", "in_013": "draft",
    }
    assert rows["in_003"]["attempt_count"] == "3"
    assert rows["in_013"]["due_at"] == "2024-06-27T12:00:00Z"
    assert rows["in_013"]["subscription_id"] is None


def test_payments():
    tables, errors = convert_file(GOOD / "unified_payments.csv")
    assert errors == []
    (payments,) = tables
    assert payments.table == "payment_attempts"
    rows = rows_by(payments, "attempt_id")
    assert rows["ch_003"] == {
        "attempt_id": "ch_003",
        "invoice_id": "in_003",
        "customer_id": "cus_A04",
        "attempted_at": "2024-05-11T18:46:30Z",
        "amount": "2900",
        "currency": "USD",
        "status": "failed",
        "decline_code": "insufficient_funds",
        "failure_message": "The bank returned the decline code `insufficient_funds`.",
        "card_brand": "visa",
        "card_last4": "0341",
        "card_exp_month": "9",
        "card_exp_year": "2025",
        "payment_method_id": "pm_A04",
        ROW: 4,
    }
    assert {k: r["status"] for k, r in rows.items()} == {
        "ch_001": "succeeded", "ch_002": "succeeded", "ch_003": "failed", "ch_004": "failed",
        "ch_005": "failed", "ch_006": "failed", "ch_007": "succeeded", "ch_008": "succeeded",
        "ch_009": "succeeded",  # Refunded: the charge itself went through
        "ch_010": "succeeded", "ch_011": "succeeded", "ch_012": "succeeded", "ch_013": "failed",
        "ch_014": "failed",     # Blocked by Radar
        "ch_015": "pending",    # Incomplete
    }
    assert {k: r["decline_code"] for k, r in rows.items() if r["decline_code"]} == {
        "ch_003": "insufficient_funds", "ch_004": "insufficient_funds", "ch_005": "expired_card",
        "ch_006": "generic_decline",  # no Decline Reason: read from the Seller Message
        "ch_013": "do_not_honor",
    }
    assert rows["ch_001"]["failure_message"] is None  # "Payment complete." is not a failure
    assert rows["ch_014"]["failure_message"] == "Stripe blocked this payment as too risky."
    assert (rows["ch_007"]["amount"], rows["ch_007"]["currency"]) == ("3000", "JPY")
    assert rows["ch_008"]["amount"] == "120000"
    assert rows["ch_015"]["invoice_id"] is None


def test_ids_are_consistent_across_files():
    customers = {r["customer_id"] for r in convert_file(GOOD / "customers.csv")[0][0].data.to_pylist()}
    sub_tables = by_name(convert_file(GOOD / "subscriptions.csv")[0])
    subs = sub_tables["subscriptions"].data.to_pylist()
    plans = {r["plan_id"] for r in sub_tables["plans"].data.to_pylist()}
    invoices = convert_file(GOOD / "invoices.csv")[0][0].data.to_pylist()
    payments = convert_file(GOOD / "unified_payments.csv")[0][0].data.to_pylist()
    assert {s["customer_id"] for s in subs} <= customers
    assert {s["plan_id"] for s in subs} <= plans
    assert {i["customer_id"] for i in invoices} <= customers
    assert {i["subscription_id"] for i in invoices if i["subscription_id"]} <= {s["subscription_id"] for s in subs}
    assert {p["customer_id"] for p in payments} <= customers
    assert {p["invoice_id"] for p in payments if p["invoice_id"]} <= {i["invoice_id"] for i in invoices}


# --------------------------------------------------------------------------------------------
# MRR normalisation, intervals and header variants
# --------------------------------------------------------------------------------------------

SUB_HEADER = ["id", "Customer ID", "Plan", "Quantity", "Currency", "Interval", "Amount", "Status", "Created (UTC)"]


def _mrr(rows: list[list[str | None]], header: list[str] = SUB_HEADER) -> tuple[dict, list]:
    tables, errors = convert("subscriptions", raw_from_rows(header, rows))
    return column(by_name(tables)["subscriptions"], "subscription_id", "mrr"), errors


def test_mrr_normalisation_per_interval():
    mrr, errors = _mrr([
        ["s_month", "c", "p1", "1", "usd", "month", "29.00", "active", "2024-01-01 00:00"],
        ["s_year", "c", "p2", "1", "usd", "year", "1200.00", "active", "2024-01-01 00:00"],
        ["s_week", "c", "p3", "2", "usd", "week", "10.00", "active", "2024-01-01 00:00"],
        ["s_day", "c", "p4", "1", "usd", "day", "1.00", "active", "2024-01-01 00:00"],
        ["s_quarter", "c", "p5", "1", "usd", "3 months", "90.00", "active", "2024-01-01 00:00"],
        ["s_yen_year", "c", "p6", "1", "jpy", "year", "10000", "active", "2024-01-01 00:00"],
        ["s_half_up", "c", "p7", "1", "usd", "year", "12.18", "active", "2024-01-01 00:00"],
        ["s_no_qty", "c", "p1", None, "usd", "Monthly", "29.00", "active", "2024-01-01 00:00"],
        ["s_zero_qty", "c", "p1", "0", "usd", "month", "29.00", "canceled", "2024-01-01 00:00"],
    ])
    assert errors == []
    assert mrr == {
        "s_month": "2900",
        "s_year": "10000",
        "s_week": "8667",      # 2 x 1000 x 52 / 12 = 8666.67
        "s_day": "3042",       # 100 x 365 / 12 = 3041.67
        "s_quarter": "3000",
        "s_yen_year": "833",   # 10000 / 12 = 833.33 (JPY has no minor unit)
        "s_half_up": "102",    # 1218 / 12 = 101.5 -> half-even 102
        "s_no_qty": "2900",    # empty quantity = 1
        "s_zero_qty": "0",
    }


def test_interval_count_column():
    header = SUB_HEADER + ["Interval Count"]
    mrr, errors = _mrr([
        ["s1", "c", "p1", "1", "usd", "month", "90.00", "active", "2024-01-01 00:00", "3"],
        ["s2", "c", "p2", "1", "usd", "year", "240.00", "active", "2024-01-01 00:00", "2"],
        ["s3", "c", "p3", "1", "usd", "month", "10.00", "active", "2024-01-01 00:00", None],
    ], header)
    assert errors == []
    assert mrr == {"s1": "3000", "s2": "1000", "s3": "1000"}


def test_header_variants_are_accepted():
    header = ["ID", "customer", "price id", "quantity", "CURRENCY", "interval", "amount", "status", "created",
              "Start Date (UTC)", "canceled_at", "cancel_at_period_end", "Cancellation Reason"]
    raw = raw_from_rows(header, [[
        "sub_1", "cus_1", "price_1", "1", "EUR", "month", "1,234.50", "Past Due", "2024-01-01 00:00",
        "2024-01-02 03:04:05", "2024-03-01T10:00:00+01:00", "TRUE", "Too expensive",
    ]])
    tables, errors = convert("subscriptions", raw)
    assert errors == []
    (row,) = by_name(tables)["subscriptions"].data.to_pylist()
    assert row["customer_id"] == "cus_1"
    assert row["plan_id"] == "price_1"
    assert row["mrr"] == "123450"
    assert row["currency"] == "EUR"
    assert row["status"] == "past_due"
    assert row["started_at"] == "2024-01-02T03:04:05Z"     # Start Date preferred over Created
    assert row["canceled_at"] == "2024-03-01T09:00:00Z"    # offset converted to UTC
    assert row["cancel_at_period_end"] == "true"
    assert row["cancel_reason_code"] == "too_expensive"
    assert by_name(tables)["plans"].data.to_pylist()[0]["name"] == "price_1"  # no product: id as name


def test_charges_export_variant():
    header = ["id", "Description", "Seller Message", "Created (UTC)", "Amount", "Currency", "Status", "Customer",
              "Invoice ID", "Card ID", "Card Last4", "Card Brand", "Card Exp Month", "Card Exp Year"]
    raw = raw_from_rows(header, [
        ["ch_1", "x", "Payment complete.", "2024-05-01 10:00", "19.99", "gbp", "succeeded", "cus_1", "in_1",
         "card_1", "4242", "Visa", "04", "2026"],
        ["ch_2", "x", "The bank returned the decline code `lost_card`.", "2024-05-02 10:00", "19.99", "GBP",
         "failed", "cus_1", "in_1", "card_1", "4242", "Visa", "04", "2026"],
    ], file="charges.csv")
    tables, errors = convert("payments", raw)
    assert errors == []
    rows = rows_by(tables[0], "attempt_id")
    assert (rows["ch_1"]["amount"], rows["ch_1"]["currency"], rows["ch_1"]["status"]) == ("1999", "GBP", "succeeded")
    assert rows["ch_1"]["payment_method_id"] == "card_1"
    assert rows["ch_1"]["card_exp_month"] == "4"
    assert (rows["ch_2"]["status"], rows["ch_2"]["decline_code"]) == ("failed", "lost_card")


def test_invoice_status_from_paid_column_when_status_is_absent():
    header = ["id", "Amount Due", "Currency", "Customer", "Date (UTC)", "Paid", "Closed"]
    raw = raw_from_rows(header, [
        ["in_1", "10.00", "usd", "cus_1", "2024-01-01 00:00", "true", "true"],
        ["in_2", "10.00", "usd", "cus_1", "2024-02-01 00:00", "false", "false"],
    ])
    tables, errors = convert("invoices", raw)
    assert errors == []
    assert column(tables[0], "invoice_id", "status") == {"in_1": "paid", "in_2": "open"}


def test_empty_export():
    raw = raw_from_rows(["id", "Email", "Name", "Created (UTC)"], [])
    tables, errors = convert("customers", raw)
    assert errors == []
    assert tables[0].num_rows == 0


# --------------------------------------------------------------------------------------------
# broken exports: every bad cell reported with file, row, column, value
# --------------------------------------------------------------------------------------------

def test_missing_required_column_is_one_error_and_no_tables():
    tables, errors = convert_file(BROKEN / "customers.csv")
    assert tables == []
    assert len(errors) == 1
    (err,) = errors
    assert (Path(err.file).name, err.row, err.column, err.value) == ("customers.csv", None, "Created (UTC)", None)
    assert "missing required Stripe column" in err.reason


def test_several_missing_columns_named_together():
    raw = raw_from_rows(["id", "Status"], [["ch_1", "Paid"]])
    tables, errors = convert("payments", raw)
    assert tables == []
    (err,) = errors
    assert err.row is None
    for name in ("Created (UTC)", "Amount", "Currency", "Customer ID"):
        assert name in err.column and name in err.reason


def test_broken_subscriptions_report_every_bad_cell():
    tables, errors = convert_file(BROKEN / "subscriptions.csv")
    assert error_tuples(errors) == [
        ("subscriptions.csv", 2, "Amount", "12.3.4"),
        ("subscriptions.csv", 3, "Quantity", "two"),
        ("subscriptions.csv", 3, "Created (UTC)", "2024-13-01 10:00"),
        ("subscriptions.csv", 4, "Amount", "3000.5"),
        ("subscriptions.csv", 4, "Status", "zombie"),
        ("subscriptions.csv", 5, "Currency", "usdd"),
        ("subscriptions.csv", 5, "Interval", "fortnight"),
        ("subscriptions.csv", 5, "Cancel At Period End", "maybe"),
    ]
    reasons = {(e.row, e.column): e.reason for e in errors}
    assert reasons[(2, "Amount")] == "not a decimal amount"
    assert "JPY" in reasons[(4, "Amount")]
    assert "date" in reasons[(3, "Created (UTC)")]
    assert "currency" in reasons[(5, "Currency")]
    # Rows are all kept; bad cells are left empty, good rows are untouched.
    subs = rows_by(by_name(tables)["subscriptions"], "subscription_id")
    assert len(subs) == 5
    assert subs["sub_B01"]["mrr"] is None and subs["sub_B01"]["status"] == "active"
    assert subs["sub_B02"]["started_at"] is None and subs["sub_B02"]["mrr"] is None
    assert subs["sub_B04"]["currency"] is None and subs["sub_B04"]["cancel_at_period_end"] is None
    assert subs["sub_B05"]["mrr"] == "2900"
    # A plan takes its price from a row that converted.
    plans = rows_by(by_name(tables)["plans"], "plan_id")
    assert (plans["price_pro_monthly"]["amount"], plans["price_pro_monthly"][ROW]) == ("2900", 3)


def test_broken_invoices_report_every_bad_cell():
    tables, errors = convert_file(BROKEN / "invoices.csv")
    assert error_tuples(errors) == [
        ("invoices.csv", 2, "Amount Due", "abc"),
        ("invoices.csv", 2, "Amount Paid", "1,2"),
        ("invoices.csv", 3, "Currency", None),
        ("invoices.csv", 3, "Due Date (UTC)", "31/05/2024"),
        ("invoices.csv", 4, "Status", "settled"),
        ("invoices.csv", 4, "Attempt Count", "-1"),
    ]
    rows = rows_by(tables[0], "invoice_id")
    assert rows["in_B04"]["amount_due"] == "2900"
    assert rows["in_B02"]["amount_due"] is None  # no currency, no amount (the currency is what's reported)


def test_broken_payments_report_every_bad_cell():
    tables, errors = convert_file(BROKEN / "unified_payments.csv")
    assert error_tuples(errors) == [
        ("unified_payments.csv", 2, "Customer ID", None),
        ("unified_payments.csv", 3, "Amount", "$29.00"),
        ("unified_payments.csv", 3, "Card Exp Month", "May"),
        ("unified_payments.csv", 4, "Created date (UTC)", "yesterday"),
        ("unified_payments.csv", 4, "Status", "exploded"),
    ]
    assert "customer" in errors[0].reason
    for err in errors:
        assert err.file == str(BROKEN / "unified_payments.csv")
        assert str(err).startswith(str(BROKEN / "unified_payments.csv") + f", row {err.row}")


def test_every_broken_file_yields_errors():
    for path in sorted(BROKEN.glob("*.csv")):
        _, errors = convert_file(path)
        assert errors, path.name


# --------------------------------------------------------------------------------------------
# speed
# --------------------------------------------------------------------------------------------

def test_large_export_is_converted_quickly():
    n = 200_000
    header = ["id", "Created date (UTC)", "Amount", "Currency", "Status", "Customer ID", "Decline Reason"]
    cols = {
        "id": pa.array([f"ch_{i}" for i in range(n)]),
        "Created date (UTC)": pa.array([f"2024-05-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{i % 59:02d}"
                                        for i in range(n)]),
        "Amount": pa.array([f"{10 + i % 500}.{i % 100:02d}" for i in range(n)]),
        "Currency": pa.array(["usd" if i % 7 else "jpy" for i in range(n)]),
        "Status": pa.array(["Paid" if i % 5 else "Failed" for i in range(n)]),
        "Customer ID": pa.array([f"cus_{i % 5000}" for i in range(n)]),
        "Decline Reason": pa.array([None if i % 5 else "insufficient_funds" for i in range(n)], pa.string()),
    }
    # JPY rows get whole amounts so the file is valid
    cols["Amount"] = pa.array([a if i % 7 else str(1000 + i % 500)
                               for i, a in enumerate(cols["Amount"].to_pylist())])
    cols[ROW] = pa.array(range(2, n + 2), pa.int64())
    raw = RawTable("stripe", "big.csv", pa.table({**{h: cols[h] for h in header}, ROW: cols[ROW]}))
    start = time.perf_counter()
    tables, errors = convert("payments", raw)
    elapsed = time.perf_counter() - start
    assert errors == []
    assert tables[0].num_rows == n
    assert elapsed < 15, elapsed


# --------------------------------------------------------------------------------------------
# end to end: winback ingest DIR --format stripe
# --------------------------------------------------------------------------------------------

def test_ingest_stripe_directory_end_to_end(sqlite_workspace):
    from tests.helpers import history_rows
    from winback.ingest.service import IngestOptions, ingest

    result = ingest(sqlite_workspace, GOOD, IngestOptions(format="stripe"))
    assert result.source == "stripe"
    assert {name: c.inserted for name, c in result.tables.items()} == {
        "customers": 12, "plans": 6, "subscriptions": 12, "invoices": 13, "payment_attempts": 15}
    assert history_rows(sqlite_workspace, "SELECT subscription_id, mrr, currency, cancel_reason_code FROM subscriptions "
                                          "WHERE subscription_id IN ('sub_S05', 'sub_S07', 'sub_S09') "
                                          "ORDER BY subscription_id") == [
        ("sub_S05", 2900, "USD", "too_expensive"), ("sub_S07", 3000, "JPY", None), ("sub_S09", 10000, "USD", None)]
    assert history_rows(sqlite_workspace, "SELECT decline_code, count(*) FROM payment_attempts "
                                          "WHERE status = 'failed' GROUP BY 1 ORDER BY 1") == [
        ("do_not_honor", 1), ("expired_card", 1), ("generic_decline", 1), ("insufficient_funds", 2), (None, 1)]


def test_ingest_broken_stripe_directory_reports_the_stripe_cells(sqlite_workspace):
    from winback.ingest.service import IngestOptions, ingest
    from winback.kit.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as info:
        ingest(sqlite_workspace, BROKEN, IngestOptions(format="stripe"))
    reported = {(Path(e.file).name, e.row, e.column) for e in info.value.errors}
    for path in sorted(BROKEN.glob("*.csv")):
        _, errors = convert_file(path)
        assert {(Path(e.file).name, e.row, e.column) for e in errors} <= reported
