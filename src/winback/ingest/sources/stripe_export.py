"""Stripe Dashboard CSV exports (Customers, Subscriptions, Invoices, Payments) -> canonical tables.

The Dashboard's *Export* button writes CSVs with Stripe's own column names and conventions, which
differ from the API and from our canonical model:

* headers are human labels (``Customer ID``, ``Current Period End (UTC)``, ``Amount Due``) and vary
  a little between exports and over time (``Created (UTC)`` vs ``Created date (UTC)``,
  ``Customer`` vs ``Customer ID``), so headers are matched case-insensitively, ignoring a trailing
  ``(UTC)`` and ``_`` vs space, against a list of known variants;
* amounts are decimal *major* units (``"29.00"``) and currencies lower-case (``"usd"``); they are
  converted exactly to integer minor units of the row's currency (JPY has none);
* times are ``YYYY-MM-DD HH:MM[:SS]`` in UTC; they become ISO 8601 ``YYYY-MM-DDTHH:MM:SSZ``;
* statuses use Stripe's words (``Paid``, ``Failed``, ``past_due`` ...) and are mapped to our enums.

:func:`convert` keeps every source row (with its ``_row``) and reports *every* cell it cannot
convert as a :class:`RowError` naming the Stripe column and the raw value; the bad cell is left
empty in the output. The generic validator checks the canonical result afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import PurePath

import pyarrow as pa
import pyarrow.compute as pc

from winback.ingest.sources.base import ROW, RawTable
from winback.kit.errors import RowError, WinbackError
from winback.kit.money import is_currency, to_minor

STRIPE_KINDS = ("customers", "subscriptions", "invoices", "payments")

# Canonical table(s) each kind produces.
KIND_TABLES = {
    "customers": ("customers",),
    "subscriptions": ("subscriptions", "plans"),
    "invoices": ("invoices",),
    "payments": ("payment_attempts",),
}

# ---------------------------------------------------------------------------------------------
# Column vocabulary: logical field -> Stripe header variants (first = the name shown in errors).
# ---------------------------------------------------------------------------------------------

_CREATED = ("Created (UTC)", "Created date (UTC)", "Created", "Created At (UTC)")

_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "customers": {
        "id": ("id", "Customer ID"),
        "email": ("Email", "Customer Email"),
        "name": ("Name", "Customer Name"),
        "description": ("Description", "Customer Description"),
        "created": _CREATED,
        "phone": ("Phone", "Phone Number"),
        "company": ("Business Name", "Company", "Company Name"),
        "country": ("Address Country", "Country", "Billing Address Country"),
        "locale": ("Preferred Locales", "Preferred Locale", "Locale"),
        "plan": ("Plan", "Plan ID", "Price ID"),
    },
    "subscriptions": {
        "id": ("id", "Subscription ID"),
        "customer": ("Customer ID", "Customer"),
        "plan": ("Plan", "Plan ID", "Price", "Price ID"),
        "plan_name": ("Plan Nickname", "Price Nickname", "Plan Name", "Price Name", "Product Name",
                      "Product"),
        "quantity": ("Quantity",),
        "interval": ("Interval", "Plan Interval", "Price Interval", "Billing Interval"),
        "interval_count": ("Interval Count", "Plan Interval Count", "Price Interval Count"),
        "amount": ("Amount", "Plan Amount", "Price Amount", "Unit Amount"),
        "currency": ("Currency", "Plan Currency", "Price Currency"),
        "status": ("Status",),
        "start": ("Start Date (UTC)", "Start (UTC)", "Started At (UTC)"),
        "created": _CREATED,
        "current_period_end": ("Current Period End (UTC)",),
        "trial_start": ("Trial Start (UTC)",),
        "trial_end": ("Trial End (UTC)",),
        "canceled_at": ("Canceled At (UTC)", "Cancelled At (UTC)"),
        "ended_at": ("Ended At (UTC)",),
        "cancel_at_period_end": ("Cancel At Period End",),
        "cancel_feedback": ("Cancellation Feedback", "Cancellation Details Feedback", "Cancel Feedback"),
        "cancel_reason": ("Cancellation Reason", "Cancellation Details Reason", "Cancel Reason"),
        "cancel_comment": ("Cancellation Comment", "Cancellation Details Comment", "Cancel Comment"),
    },
    "invoices": {
        "id": ("id", "Invoice ID"),
        "customer": ("Customer", "Customer ID"),
        "subscription": ("Subscription", "Subscription ID"),
        "date": ("Date (UTC)", "Date", "Invoice Date (UTC)"),
        "created": _CREATED,
        "due": ("Due Date (UTC)", "Due Date"),
        "period_start": ("Minimum Line Item Period Start (UTC)", "Period Start (UTC)"),
        "period_end": ("Maximum Line Item Period End (UTC)", "Period End (UTC)"),
        "amount_due": ("Amount Due",),
        "amount_paid": ("Amount Paid",),
        "currency": ("Currency",),
        "status": ("Status",),
        "paid": ("Paid",),
        "paid_at": ("Paid At (UTC)",),
        "attempt_count": ("Attempt Count",),
        "billing_reason": ("Billing Reason",),
    },
    "payments": {
        "id": ("id", "Payment ID", "Charge ID"),
        "created": _CREATED,
        "amount": ("Amount",),
        "currency": ("Currency",),
        "status": ("Status",),
        "customer": ("Customer ID", "Customer"),
        "invoice": ("Invoice ID", "Invoice"),
        "decline": ("Decline Reason", "Decline Code", "Failure Code"),
        "message": ("Failure Message", "Seller Message", "Outcome Seller Message"),
        "card_brand": ("Card Brand", "Payment Method Brand"),
        "card_last4": ("Card Last4", "Card Last 4", "Payment Method Last4"),
        "card_exp_month": ("Card Exp Month", "Card Expiry Month"),
        "card_exp_year": ("Card Exp Year", "Card Expiry Year"),
        "payment_method": ("Payment Method ID", "PaymentMethod ID", "Card ID"),
    },
}

# Each group must have at least one of its fields present in the header.
_REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "customers": (("id",), ("created",)),
    "subscriptions": (("id",), ("customer",), ("status",), ("amount",), ("currency",), ("interval",),
                      ("start", "created")),
    "invoices": (("id",), ("customer",), ("amount_due",), ("currency",), ("date", "created"),
                 ("status", "paid")),
    "payments": (("id",), ("created",), ("amount",), ("currency",), ("status",), ("customer",)),
}

# ---------------------------------------------------------------------------------------------
# Value vocabularies
# ---------------------------------------------------------------------------------------------

_SUBSCRIPTION_STATUS = {
    s: s for s in ("trialing", "active", "past_due", "unpaid", "paused", "canceled", "incomplete",
                   "incomplete_expired")
} | {"cancelled": "canceled", "trial": "trialing", "pastdue": "past_due"}

_INVOICE_STATUS = {s: s for s in ("draft", "open", "paid", "uncollectible", "void")} | {
    "voided": "void",
}

_PAYMENT_STATUS = {
    **dict.fromkeys(("succeeded", "paid", "success", "successful", "captured", "refunded",
                     "partially_refunded", "refund_pending", "disputed", "dispute_lost", "dispute_won",
                     "won", "lost", "early_fraud_warning"), "succeeded"),
    **dict.fromkeys(("failed", "declined", "blocked", "canceled", "cancelled", "failure"), "failed"),
    **dict.fromkeys(("pending", "processing", "incomplete", "uncaptured", "requires_capture",
                     "requires_payment_method", "requires_confirmation", "requires_action"), "pending"),
}

_INTERVAL_WORDS = {
    "day": "day", "daily": "day", "week": "week", "weekly": "week", "month": "month",
    "monthly": "month", "year": "year", "yearly": "year", "annual": "year", "annually": "year",
}
_INTERVAL_RE = re.compile(r"^(?:every\s+)?(\d+)?\s*(day|week|month|year)s?$")
# Months per interval unit, exactly: a year is 12 months, a week 12/52, a day 12/365.
_MONTHS_PER = {"day": Fraction(12, 365), "week": Fraction(12, 52), "month": Fraction(1), "year": Fraction(12)}

_TRUE = frozenset(("true", "t", "yes", "y", "1"))
_FALSE = frozenset(("false", "f", "no", "n", "0"))

_DECIMAL_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
_INTEGER_RE = re.compile(r"^\+?\d+$")
_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9 _-]{0,63}$")
_SELLER_DECLINE_RE = re.compile(r"decline code\W+([a-z_]+)", re.IGNORECASE)
_TS_RE = (r"^(?P<d>\d{4}-\d{2}-\d{2})(?:[ T](?P<hm>\d{2}:\d{2})(?P<s>:\d{2})?(?:\.\d+)?)?"
          r"\s*(?:Z|z|UTC|utc|\+00:?00)?$")
_TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TS_REASON = "not a date-time (expected YYYY-MM-DD HH:MM[:SS] in UTC, or ISO 8601)"

_KEY_SEP = "\x1f"


# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------

def _norm(header: str) -> str:
    """Header as compared: lower case, no BOM, ``_`` as space, no trailing ``(UTC)``."""
    h = header.replace("\ufeff", "").strip().lower().replace("_", " ")
    h = re.sub(r"\s*\(utc\)$", "", h)
    return re.sub(r"\s+", " ", h)


_NAME_TOKENS = (
    ("subscriptions", ("subscriptions", "subscription", "subs")),
    ("invoices", ("invoices", "invoice")),
    ("payments", ("payments", "payment", "charges", "charge", "transactions")),
    ("customers", ("customers", "customer")),
)


def detect_kind(file_name: str, header: list[str]) -> str | None:
    """Which Stripe export a file is: from its name (``customers.csv``, ``unified_payments.csv``,
    ``charges.csv`` ...) or, failing that, from its header columns. ``None`` if neither tells."""
    stem = PurePath(str(file_name)).name.lower()
    stem = re.sub(r"\.(csv|tsv|txt)(\.gz)?$", "", stem)
    tokens = set(re.split(r"[^a-z0-9]+", stem))
    for kind, words in _NAME_TOKENS:
        if tokens & set(words):
            return kind
    cols = {_norm(h) for h in header}
    if "current period end" in cols or (
        "interval" in cols and cols & {"plan", "price", "plan id", "price id"} and "status" in cols
    ):
        return "subscriptions"
    if cols & {"amount due", "attempt count", "amount remaining"}:
        return "invoices"
    if cols & {"seller message", "card last4", "decline reason", "created date", "paymentintent id",
               "payment intent id", "captured", "amount refunded"}:
        return "payments"
    if "id" in cols and "email" in cols and cols & {"created", "name", "description"}:
        return "customers"
    return None


# ---------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------

def convert(kind: str, raw: RawTable) -> tuple[list[RawTable], list[RowError]]:
    """Turn one Stripe export into canonical :class:`RawTable` s plus every cell-level problem.

    ``customers`` -> customers; ``subscriptions`` -> subscriptions and the plans they use;
    ``invoices`` -> invoices; ``payments`` -> payment_attempts. Missing required Stripe columns give
    a single error (``row=None``) and no tables.
    """
    if kind not in STRIPE_KINDS:
        raise ValueError(f"unknown Stripe export kind {kind!r}; known: {', '.join(STRIPE_KINDS)}")
    job = _Job(kind, raw)
    missing = job.missing_columns()
    if missing:
        names = ", ".join(missing)
        return [], [RowError(raw.file, None, names, None,
                             f"missing required Stripe column{'s' if len(missing) > 1 else ''}: {names}")]
    tables = {"customers": _customers, "subscriptions": _subscriptions, "invoices": _invoices,
              "payments": _payments}[kind](job)
    return tables, job.sorted_errors()


class _Job:
    """One file being converted: resolved columns, cleaned cells, collected errors."""

    def __init__(self, kind: str, raw: RawTable):
        self.kind = kind
        self.raw = raw
        self.file = raw.file
        self.n = raw.num_rows
        self.rows = _array(raw.data.column(ROW)).cast(pa.int64())
        self.errors: list[tuple[int, int, RowError]] = []
        self.position = {name: i for i, name in enumerate(raw.data.column_names)}
        by_norm: dict[str, str] = {}
        for name in raw.columns:
            by_norm.setdefault(_norm(name), name)
        self.header: dict[str, str] = {}
        for field, aliases in _FIELDS[kind].items():
            for alias in aliases:
                if _norm(alias) in by_norm:
                    self.header[field] = by_norm[_norm(alias)]
                    break
        self._cells: dict[str, pa.Array] = {}

    # -- columns ----------------------------------------------------------------------------

    def has(self, field: str) -> bool:
        return field in self.header

    def missing_columns(self) -> list[str]:
        missing = []
        for group in _REQUIRED[self.kind]:
            if not any(self.has(f) for f in group):
                missing.append(" or ".join(_FIELDS[self.kind][f][0] for f in group))
        return missing

    def cell(self, field: str) -> pa.Array | None:
        """The field's cells, trimmed, empty -> null; ``None`` when the column is absent."""
        if field not in self.header:
            return None
        if field not in self._cells:
            arr = _array(self.raw.data.column(self.header[field])).cast(pa.string())
            arr = pc.utf8_trim_whitespace(arr)
            self._cells[field] = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
        return self._cells[field]

    def metadata_columns(self) -> list[tuple[str, str]]:
        """``(key, header)`` for every ``<key> (metadata)`` column."""
        out = []
        for name in self.raw.columns:
            m = re.match(r"^\s*(.*?)\s*\(metadata\)\s*$", name.replace("\ufeff", ""), re.IGNORECASE)
            if m and m.group(1):
                out.append((m.group(1), name))
        return out

    # -- errors -----------------------------------------------------------------------------

    def report(self, field: str, values: pa.Array, reasons: pa.Array) -> None:
        """One RowError per non-null reason, naming the Stripe column and the raw value."""
        if reasons.null_count == len(reasons):
            return
        idx = pc.indices_nonzero(pc.is_valid(reasons))
        column = self.header[field]
        pos = self.position.get(column, 0)
        for row, value, reason in zip(self.rows.take(idx).to_pylist(), values.take(idx).to_pylist(),
                                      reasons.take(idx).to_pylist()):
            self.errors.append((row, pos, RowError(self.file, row, column, value, reason)))

    def report_rows(self, field: str, mask: pa.Array, reason: str) -> None:
        values = self.cell(field)
        reasons = pc.if_else(mask, pa.scalar(reason), pa.scalar(None, pa.string()))
        self.report(field, values, reasons)

    def sorted_errors(self) -> list[RowError]:
        return [e for _, _, e in sorted(self.errors, key=lambda t: (t[0], t[1]))]

    # -- typed conversions (each reports its own bad cells) -------------------------------

    def mapped(self, field: str, fn: Callable[[str], tuple[str | None, str | None]]) -> pa.Array | None:
        values = self.cell(field)
        if values is None:
            return None
        out, reasons = _map_unique(values, fn)
        self.report(field, values, reasons)
        return out

    def timestamp(self, field: str) -> pa.Array | None:
        values = self.cell(field)
        if values is None:
            return None
        out, reasons = _timestamps(values)
        self.report(field, values, reasons)
        return out

    def currency(self, field: str = "currency") -> pa.Array:
        values = self.cell(field)
        out, reasons = _map_unique(values, _currency)
        self.report(field, values, reasons)
        self.report_rows(field, pc.is_null(values), "empty: every amount needs its currency")
        return out

    def money(self, field: str, currency: pa.Array) -> pa.Array | None:
        """Major-unit decimals of ``field`` -> minor-unit integer strings in each row's currency.

        Rows whose currency is missing or invalid are left empty (the currency is reported)."""
        values = self.cell(field)
        if values is None:
            return None
        keys = pc.binary_join_element_wise(values, currency, _KEY_SEP)
        out, reasons = _map_unique(keys, _money)
        self.report(field, values, reasons)
        return out


# ---------------------------------------------------------------------------------------------
# Per-kind converters
# ---------------------------------------------------------------------------------------------

def _customers(job: _Job) -> list[RawTable]:
    cols: dict[str, pa.Array | None] = {
        "customer_id": job.cell("id"),
        "email": job.cell("email"),
        "name": job.cell("name"),
        "company": job.cell("company"),
        "phone": job.mapped("phone", _phone),
        "locale": job.mapped("locale", _first_locale),
        "country": job.cell("country"),
        "plan_id": job.cell("plan"),
        "created_at": job.timestamp("created"),
        "attributes": _attributes(job),
    }
    return [_table(job, "customers", cols)]


def _attributes(job: _Job) -> pa.Array | None:
    """Metadata columns (``plan_tier (metadata)``) and the description, as one JSON object per row."""
    sources = [(key, job.raw.data.column(name)) for key, name in job.metadata_columns()]
    if job.has("description"):
        sources.insert(0, ("description", job.cell("description")))
    if not sources:
        return None
    lists = [(key, _array(col).to_pylist()) for key, col in sources]
    out = []
    for i in range(job.n):
        obj = {}
        for key, values in lists:
            v = values[i]
            if v is not None and str(v).strip() != "":
                obj[key] = str(v).strip()
        out.append(json.dumps(obj, ensure_ascii=False, sort_keys=True) if obj else None)
    return pa.array(out, pa.string())


def _subscriptions(job: _Job) -> list[RawTable]:
    currency = job.currency()
    amount = job.money("amount", currency)
    quantity = job.mapped("quantity", _integer)
    interval = _intervals(job)

    status = job.mapped("status", _enum(_SUBSCRIPTION_STATUS, "subscription status"))
    started = _coalesce(job.timestamp("start"), job.timestamp("created"))

    # cancel_reason_code: the customer's feedback (too_expensive ...) if given, else Stripe's reason
    # (cancellation_requested, payment_failed ...); cancel_reason_text: the free-text comment.
    reason_code = _coalesce(job.mapped("cancel_feedback", _code), job.mapped("cancel_reason", _code))
    mrr = _mrr(job, amount, quantity, interval)

    cols = {
        "subscription_id": job.cell("id"),
        "customer_id": job.cell("customer"),
        "plan_id": job.cell("plan"),
        "status": status,
        "started_at": started,
        "trial_start": job.timestamp("trial_start"),
        "trial_end": job.timestamp("trial_end"),
        "current_period_end": job.timestamp("current_period_end"),
        "mrr": mrr,
        "currency": currency,
        "quantity": quantity,
        "cancel_at_period_end": job.mapped("cancel_at_period_end", _boolean),
        "canceled_at": job.timestamp("canceled_at"),
        "ended_at": job.timestamp("ended_at"),
        "cancel_reason_code": reason_code,
        "cancel_reason_text": job.cell("cancel_comment"),
    }
    tables = [_table(job, "subscriptions", cols)]
    if job.has("plan"):
        tables.append(_plans(job, amount, currency, interval))
    return tables


def _intervals(job: _Job) -> pa.Array:
    """Each row's billing interval as ``"<unit>:<count>"`` (``month:1``, ``month:3``, ``year:1``)."""
    spec = job.mapped("interval", _interval)
    if not job.has("interval_count"):
        return spec
    count = job.mapped("interval_count", _positive_integer)
    count = pc.if_else(pc.is_null(job.cell("interval_count")), pa.scalar("1"), count)
    keys = pc.binary_join_element_wise(spec, count, _KEY_SEP)

    def fn(key: str) -> tuple[str | None, str | None]:
        unit_count, extra = key.split(_KEY_SEP)
        unit, own = unit_count.split(":")
        # An explicit count in the Interval cell ("3 months") wins over the Interval Count column.
        return (unit_count if own != "1" else f"{unit}:{extra}"), None

    out, _ = _map_unique(keys, fn)
    return out


def _mrr(job: _Job, amount: pa.Array, quantity: pa.Array | None, interval: pa.Array) -> pa.Array:
    """amount x quantity per month, exactly, rounded half to even to whole minor units."""
    if quantity is None:
        qty = pa.array(["1"] * job.n, pa.string())
    else:  # an empty Quantity means 1; a bad one (already reported) leaves mrr empty
        qty = pc.if_else(pc.is_null(job.cell("quantity")), pa.scalar("1"), quantity)
    keys = pc.binary_join_element_wise(amount, qty, interval, _KEY_SEP)

    def fn(key: str) -> tuple[str | None, str | None]:
        minor, q, spec = key.split(_KEY_SEP)
        return str(_round_half_even(int(minor) * int(q) * _monthly_factor(spec))), None

    out, _ = _map_unique(keys, fn)
    return out


def _plans(job: _Job, amount: pa.Array, currency: pa.Array, interval: pa.Array) -> RawTable:
    """One plans row per distinct Plan/Price id, from the first subscription row that uses it.

    Month and year plans keep their list price; other cadences (weekly, daily, every 3 months)
    cannot be expressed by ``plans.interval`` and are stored as their exact monthly equivalent."""
    plan = job.cell("plan")
    name = job.cell("plan_name") if job.has("plan_name") else None
    name = _coalesce(name, plan)
    # Prefer each plan's first row whose amount and interval converted (bad rows are reported).
    usable = pc.and_(pc.is_valid(amount), pc.is_valid(interval)).to_pylist()
    seen: dict[str, int] = {}
    for i, pid in enumerate(plan.to_pylist()):
        if pid is not None and (pid not in seen or (usable[i] and not usable[seen[pid]])):
            seen[pid] = i
    seen = dict(sorted(seen.items(), key=lambda kv: kv[1]))
    idx = pa.array(list(seen.values()), pa.int64())
    specs = interval.take(idx).to_pylist()
    amounts = amount.take(idx).to_pylist()
    out_interval, out_amount = [], []
    for spec, minor in zip(specs, amounts):
        if spec is None:
            out_interval.append(None)
            out_amount.append(None)
            continue
        unit, count = spec.split(":")
        if count == "1" and unit in ("month", "year"):
            out_interval.append(unit)
            out_amount.append(minor)
        else:
            out_interval.append("month")
            out_amount.append(None if minor is None else str(_round_half_even(int(minor) * _monthly_factor(spec))))
    data = pa.table({
        "plan_id": plan.take(idx),
        "name": name.take(idx),
        "interval": pa.array(out_interval, pa.string()),
        "amount": pa.array(out_amount, pa.string()),
        "currency": currency.take(idx),
        ROW: job.rows.take(idx),
    })
    return RawTable("plans", job.file, data)


def _invoices(job: _Job) -> list[RawTable]:
    currency = job.currency()
    status = job.mapped("status", _enum(_INVOICE_STATUS, "invoice status"))
    if job.has("paid"):
        # Older exports: no (or an empty) Status, but a Paid true/false column.
        paid_cells = job.cell("paid")
        if job.has("status"):
            paid_cells = pc.if_else(pc.is_null(job.cell("status")), paid_cells, pa.scalar(None, pa.string()))
        paid, reasons = _map_unique(paid_cells, _boolean)
        job.report("paid", paid_cells, reasons)
        from_paid = pc.if_else(pc.equal(paid, "true"), pa.scalar("paid"), pa.scalar("open"))
        status = _coalesce(status, from_paid)
    cols = {
        "invoice_id": job.cell("id"),
        "customer_id": job.cell("customer"),
        "subscription_id": job.cell("subscription"),
        "created_at": _coalesce(job.timestamp("date"), job.timestamp("created")),
        "due_at": job.timestamp("due"),
        "period_start": job.timestamp("period_start"),
        "period_end": job.timestamp("period_end"),
        "amount_due": job.money("amount_due", currency),
        "amount_paid": job.money("amount_paid", currency),
        "currency": currency,
        "status": status,
        "paid_at": job.timestamp("paid_at"),
        "attempt_count": job.mapped("attempt_count", _integer),
        "billing_reason": job.cell("billing_reason"),
    }
    return [_table(job, "invoices", cols)]


def _payments(job: _Job) -> list[RawTable]:
    currency = job.currency()
    status = job.mapped("status", _enum(_PAYMENT_STATUS, "payment status"))
    customer = job.cell("customer")
    job.report_rows("customer", pc.is_null(customer), "empty: every payment needs a Stripe customer id")

    decline = job.mapped("decline", _code)
    message = job.cell("message")
    if message is not None:
        # Charges exports have no decline column but say "... the decline code `insufficient_funds`".
        from_message, _ = _map_unique(message, _decline_from_message)
        decline = _coalesce(decline, from_message)
        # "Payment complete." is not a failure message.
        succeeded = pc.fill_null(pc.equal(status, "succeeded"), False)
        message = pc.if_else(succeeded, pa.scalar(None, pa.string()), message)

    cols = {
        "attempt_id": job.cell("id"),
        "invoice_id": job.cell("invoice"),
        "customer_id": customer,
        "attempted_at": job.timestamp("created"),
        "amount": job.money("amount", currency),
        "currency": currency,
        "status": status,
        "decline_code": decline,
        "failure_message": message,
        "card_brand": job.cell("card_brand"),
        "card_last4": job.cell("card_last4"),
        "card_exp_month": job.mapped("card_exp_month", _integer),
        "card_exp_year": job.mapped("card_exp_year", _integer),
        "payment_method_id": job.cell("payment_method"),
    }
    return [_table(job, "payment_attempts", cols)]


def _table(job: _Job, table: str, cols: dict[str, pa.Array | None]) -> RawTable:
    present = {name: arr for name, arr in cols.items() if arr is not None}
    present[ROW] = job.rows
    return RawTable(table, job.file, pa.table(present))


# ---------------------------------------------------------------------------------------------
# Cell converters: str -> (canonical value or None, reason or None)
# ---------------------------------------------------------------------------------------------

def _currency(value: str) -> tuple[str | None, str | None]:
    code = value.upper()
    if len(code) == 3 and is_currency(code):
        return code, None
    return None, "not an ISO 4217 currency code"


def _money(key: str) -> tuple[str | None, str | None]:
    amount, currency = key.split(_KEY_SEP)
    text = amount.replace(",", "") if _THOUSANDS_RE.match(amount) else amount
    if not _DECIMAL_RE.match(text):
        return None, "not a decimal amount"
    try:
        return str(to_minor(text, currency)), None
    except WinbackError as exc:
        return None, str(exc)


def _integer(value: str) -> tuple[str | None, str | None]:
    if _INTEGER_RE.match(value):
        return str(int(value)), None
    return None, "not a whole number"


def _positive_integer(value: str) -> tuple[str | None, str | None]:
    out, reason = _integer(value)
    if out is not None and int(out) < 1:
        return None, "must be 1 or more"
    return out, reason


def _boolean(value: str) -> tuple[str | None, str | None]:
    v = value.lower()
    if v in _TRUE:
        return "true", None
    if v in _FALSE:
        return "false", None
    return None, "not true or false"


def _snake(value: str) -> str:
    return re.sub(r"[\s-]+", "_", value.strip().lower())


def _enum(mapping: dict[str, str], what: str) -> Callable[[str], tuple[str | None, str | None]]:
    def fn(value: str) -> tuple[str | None, str | None]:
        out = mapping.get(_snake(value))
        if out is None:
            return None, f"unknown {what}"
        return out, None
    return fn


def _interval(value: str) -> tuple[str | None, str | None]:
    v = value.strip().lower()
    if v in _INTERVAL_WORDS:
        return f"{_INTERVAL_WORDS[v]}:1", None
    m = _INTERVAL_RE.match(v)
    if m and (m.group(1) is None or int(m.group(1)) >= 1):
        return f"{m.group(2)}:{int(m.group(1) or 1)}", None
    return None, "not a billing interval (day, week, month or year)"


def _monthly_factor(spec: str) -> Fraction:
    unit, count = spec.split(":")
    return 1 / (_MONTHS_PER[unit] * int(count))


def _round_half_even(value: Fraction) -> int:
    return round(value)  # Fraction.__round__ rounds half to even


def _code(value: str) -> tuple[str | None, str | None]:
    """Stripe codes as codes: ``Too expensive`` -> ``too_expensive``; longer prose is kept as is."""
    if _CODE_RE.match(value):
        return _snake(value), None
    return value, None


def _decline_from_message(value: str) -> tuple[str | None, str | None]:
    m = _SELLER_DECLINE_RE.search(value)
    return (m.group(1).lower() if m else None), None


def _phone(value: str) -> tuple[str | None, str | None]:
    compact = re.sub(r"[\s().-]", "", value)
    if re.fullmatch(r"\+\d{6,15}", compact):
        return compact, None
    return value, None  # left for the validator to judge


def _first_locale(value: str) -> tuple[str | None, str | None]:
    parts = [p for p in re.split(r"[\s,;|\[\]\"']+", value) if p]
    return (parts[0] if parts else None), None


# ---------------------------------------------------------------------------------------------
# Arrow helpers
# ---------------------------------------------------------------------------------------------

def _array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _coalesce(*arrays: pa.Array | None) -> pa.Array | None:
    present = [a for a in arrays if a is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else pc.coalesce(*present)


def _map_unique(values: pa.Array, fn: Callable[[str], tuple[str | None, str | None]]
                ) -> tuple[pa.Array, pa.Array]:
    """Apply ``fn`` once per distinct non-null value; returns (converted, reasons) per row."""
    if len(values) == 0 or values.null_count == len(values):
        nulls = pa.nulls(len(values), pa.string())
        return nulls, nulls
    enc = pc.dictionary_encode(values)
    results = [fn(v) for v in enc.dictionary.to_pylist()]
    out = pa.array([r[0] for r in results], pa.string()).take(enc.indices)
    reasons = pa.array([r[1] for r in results], pa.string()).take(enc.indices)
    return out, reasons


def _timestamps(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Stripe UTC times -> ``YYYY-MM-DDTHH:MM:SSZ``; vectorised for the usual forms, Python for the rest."""
    n = len(values)
    if n == 0 or values.null_count == n:
        nulls = pa.nulls(n, pa.string())
        return nulls, nulls
    parts = pc.extract_regex(values, pattern=_TS_RE)
    empty_to = lambda arr, default: pc.if_else(pc.equal(arr, ""), pa.scalar(default), arr)  # noqa: E731
    hm = empty_to(pc.struct_field(parts, "hm"), "00:00")
    sec = empty_to(pc.struct_field(parts, "s"), ":00")
    canon = pc.binary_join_element_wise(pc.struct_field(parts, "d"), "T", hm, sec, "Z", "")
    # Round-trip through a real timestamp so impossible dates (Feb 30, 25:00) are rejected.
    parsed = pc.strptime(canon, format=_TS_FORMAT, unit="s", error_is_null=True)
    ok = pc.fill_null(pc.equal(pc.strftime(parsed, format=_TS_FORMAT), canon), False)
    out = pc.if_else(ok, canon, pa.scalar(None, pa.string()))
    left = pc.and_(pc.is_valid(values), pc.invert(ok))
    if not pc.any(left).as_py():
        return out, pa.nulls(n, pa.string())
    out_list = out.to_pylist()
    reasons: list[str | None] = [None] * n
    for i in pc.indices_nonzero(left).to_pylist():
        parsed_value = _timestamp_fallback(values[i].as_py())
        if parsed_value is None:
            reasons[i] = _TS_REASON
        else:
            out_list[i] = parsed_value
    return pa.array(out_list, pa.string()), pa.array(reasons, pa.string())


def _timestamp_fallback(value: str) -> str | None:
    """ISO 8601 with an offset or fractions (``2024-05-01T10:00:00+02:00``) -> UTC ``...Z``."""
    text = value.strip()
    if text.upper().endswith(" UTC"):
        text = text[:-4]
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.strftime(_TS_FORMAT)

