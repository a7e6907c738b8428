"""The canonical history: one declarative schema per fact table.

These specs are the single source of truth for the history store's DDL, for ingest
validation (types, required columns, allowed values, references) and for the data
generator's output. Every history row also carries ``source`` (where it came from,
e.g. ``csv`` or ``stripe``): the key of a row is ``(source, *key)``.

Column kinds:

``id``        an external identifier (<= 255 chars, no control characters)
``string``    a short code or label (<= 255 chars)
``text``      free text (<= 10,000 chars); spreadsheet formulas are rejected
``email``     an e-mail address (lower-cased on ingest)
``phone``     an E.164 phone number (``+81312345678``)
``timestamp`` an ISO 8601 date or date-time; offsets are converted to UTC
``integer``   a whole number
``money``     a whole number of minor units (cents, yen) of the row's ``currency``
``currency``  an ISO 4217 code (upper-cased on ingest)
``boolean``   true/false/1/0/yes/no
``enum``      one of ``choices`` (lower-cased on ingest)
``locale``    a BCP 47 language tag Babel knows (``en``, ``ja-JP``, ``zh-Hant``)
``timezone``  an IANA time zone (``Asia/Tokyo``)
``country``   an ISO 3166-1 alpha-2 code (upper-cased on ingest)
``json``      a JSON object
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = frozenset(
    "id string text email phone timestamp integer money currency boolean enum locale timezone country json".split()
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    required: bool = False
    choices: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None
    future_ok: bool = False  # timestamps: may lie after the import's "now"
    references: tuple[str, str] | None = None  # (table, column) within the same source
    default: str | None = None  # applied when the column is absent or the cell empty
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}")
        if self.kind == "enum" and not self.choices:
            raise ValueError(f"enum column {self.name!r} needs choices")
        if self.kind == "money" and self.min is None:
            object.__setattr__(self, "min", 0)


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    description: str = ""
    time_column: str | None = None  # the fact's own instant, for ordering and partition pruning
    _by_name: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate column in {self.name}")
        self._by_name.update({c.name: c for c in self.columns})
        for k in self.key:
            if k not in self._by_name or not self._by_name[k].required:
                raise ValueError(f"{self.name}: key column {k!r} must be a required column")
        money = [c for c in self.columns if c.kind == "money"]
        if money and "currency" not in self._by_name:
            raise ValueError(f"{self.name}: money columns need a currency column")

    def column(self, name: str) -> Column:
        return self._by_name[name]

    def has(self, name: str) -> bool:
        return name in self._by_name

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_names(self) -> list[str]:
        return [c.name for c in self.columns if c.required and c.default is None]


def C(name: str, kind: str, **kw) -> Column:  # noqa: N802 - short constructor for readability
    return Column(name, kind, **kw)


SUBSCRIPTION_STATUSES = (
    "trialing", "active", "past_due", "unpaid", "paused", "canceled", "incomplete", "incomplete_expired",
)
INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")
PAYMENT_STATUSES = ("succeeded", "failed", "pending")
CHECKOUT_STATUSES = ("completed", "abandoned", "incomplete")
ORDER_STATUSES = ("completed", "pending", "refunded", "canceled")
TICKET_STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
MARKETING_BASES = ("consent", "soft_opt_in", "none")

CUSTOMERS = Table(
    "customers",
    key=("customer_id",),
    time_column="created_at",
    description="People and accounts: contact, locale, consent. Also kept in the state store.",
    columns=(
        C("customer_id", "id", required=True),
        C("email", "email"),
        C("name", "text"),
        C("company", "text"),
        C("phone", "phone"),
        C("locale", "locale"),
        C("timezone", "timezone"),
        C("country", "country"),
        C("plan_id", "id", description="current or last plan"),
        C("created_at", "timestamp", required=True),
        C("marketing_basis", "enum", choices=MARKETING_BASES, required=True, default="none",
          description="lawful basis for marketing: consent, soft_opt_in (existing customer) or none"),
        C("marketing_opt_out", "boolean", required=True, default="false"),
        C("opted_out_at", "timestamp"),
        C("attributes", "json", description="any other properties, as a JSON object"),
    ),
)

PLANS = Table(
    "plans",
    key=("plan_id",),
    columns=(
        C("plan_id", "id", required=True),
        C("name", "text", required=True),
        C("tier", "integer", min=0, max=1000, description="0 = lowest tier"),
        C("interval", "enum", choices=("month", "year"), required=True, default="month"),
        C("amount", "money", required=True, description="list price per interval"),
        C("currency", "currency", required=True),
        C("trial_days", "integer", min=0, max=3650),
        C("active", "boolean", default="true"),
    ),
)

PRICE_CHANGES = Table(
    "price_changes",
    key=("price_change_id",),
    time_column="effective_at",
    columns=(
        C("price_change_id", "id", required=True),
        C("plan_id", "id", required=True, references=("plans", "plan_id")),
        C("announced_at", "timestamp"),
        C("effective_at", "timestamp", required=True, future_ok=True),
        C("old_amount", "money"),
        C("new_amount", "money", required=True),
        C("currency", "currency", required=True),
    ),
)

SUBSCRIPTIONS = Table(
    "subscriptions",
    key=("subscription_id",),
    time_column="started_at",
    columns=(
        C("subscription_id", "id", required=True),
        C("customer_id", "id", required=True, references=("customers", "customer_id")),
        C("plan_id", "id", references=("plans", "plan_id")),
        C("status", "enum", choices=SUBSCRIPTION_STATUSES, required=True),
        C("started_at", "timestamp", required=True),
        C("trial_start", "timestamp"),
        C("trial_end", "timestamp", future_ok=True),
        C("current_period_end", "timestamp", future_ok=True),
        C("mrr", "money", required=True, description="monthly recurring revenue, minor units"),
        C("currency", "currency", required=True),
        C("quantity", "integer", min=0, default="1"),
        C("cancel_at_period_end", "boolean", default="false"),
        C("canceled_at", "timestamp"),
        C("ended_at", "timestamp", future_ok=True),
        C("cancel_reason_code", "string",
          description="e.g. Stripe's too_expensive, missing_features, too_complex, customer_service, "
                      "switched_service, unused, low_quality, other; payment_failed"),
        C("cancel_reason_text", "text"),
    ),
)

SUBSCRIPTION_CHANGES = Table(
    "subscription_changes",
    key=("change_id",),
    time_column="changed_at",
    columns=(
        C("change_id", "id", required=True),
        C("subscription_id", "id", required=True, references=("subscriptions", "subscription_id")),
        C("customer_id", "id", required=True, references=("customers", "customer_id")),
        C("changed_at", "timestamp", required=True),
        C("change_type", "enum", required=True,
          choices=("upgrade", "downgrade", "price_increase", "price_decrease", "quantity_change", "plan_change")),
        C("from_plan_id", "id"),
        C("to_plan_id", "id"),
        C("old_mrr", "money", required=True),
        C("new_mrr", "money", required=True),
        C("currency", "currency", required=True),
    ),
)

INVOICES = Table(
    "invoices",
    key=("invoice_id",),
    time_column="created_at",
    columns=(
        C("invoice_id", "id", required=True),
        C("customer_id", "id", required=True, references=("customers", "customer_id")),
        C("subscription_id", "id", references=("subscriptions", "subscription_id")),
        C("created_at", "timestamp", required=True),
        C("due_at", "timestamp", future_ok=True),
        C("period_start", "timestamp", future_ok=True),
        C("period_end", "timestamp", future_ok=True),
        C("amount_due", "money", required=True),
        C("amount_paid", "money", default="0"),
        C("currency", "currency", required=True),
        C("status", "enum", choices=INVOICE_STATUSES, required=True),
        C("paid_at", "timestamp"),
        C("attempt_count", "integer", min=0, default="0"),
        C("billing_reason", "string"),
    ),
)

PAYMENT_ATTEMPTS = Table(
    "payment_attempts",
    key=("attempt_id",),
    time_column="attempted_at",
    columns=(
        C("attempt_id", "id", required=True),
        C("invoice_id", "id", references=("invoices", "invoice_id")),
        C("customer_id", "id", required=True, references=("customers", "customer_id")),
        C("attempted_at", "timestamp", required=True),
        C("amount", "money", required=True),
        C("currency", "currency", required=True),
        C("status", "enum", choices=PAYMENT_STATUSES, required=True),
        C("decline_code", "string", description="issuer decline code, e.g. insufficient_funds"),
        C("failure_message", "text"),
        C("card_brand", "string"),
        C("card_last4", "string"),
        C("card_exp_month", "integer", min=1, max=12),
        C("card_exp_year", "integer", min=1970, max=2100),
        C("payment_method_id", "id"),
    ),
)

ORDERS = Table(
    "orders",
    key=("order_id",),
    time_column="ordered_at",
    columns=(
        C("order_id", "id", required=True),
        C("customer_id", "id", required=True, references=("customers", "customer_id")),
        C("ordered_at", "timestamp", required=True),
        C("status", "enum", choices=ORDER_STATUSES, required=True, default="completed"),
        C("total_amount", "money", required=True),
        C("discount_amount", "money", default="0"),
        C("currency", "currency", required=True),
        C("coupon_code", "string"),
        C("channel", "string"),
    ),
)

ORDER_ITEMS = Table(
    "order_items",
    key=("order_id", "line_number"),
    columns=(
        C("order_id", "id", required=True, references=("orders", "order_id")),
        C("line_number", "integer", required=True, min=1),
        C("product_id", "id"),
        C("product_name", "text"),
        C("category", "string", required=True),
        C("quantity", "integer", required=True, min=1, default="1"),
        C("unit_price", "money", required=True),
        C("currency", "currency", required=True),
    ),
)

CHECKOUTS = Table(
    "checkouts",
    key=("checkout_id",),
    time_column="started_at",
    description="Checkouts: completed, abandoned (email given, never finished) or incomplete (payment declined).",
    columns=(
        C("checkout_id", "id", required=True),
        C("customer_id", "id", references=("customers", "customer_id")),
        C("email", "email"),
        C("started_at", "timestamp", required=True),
        C("status", "enum", choices=CHECKOUT_STATUSES, required=True),
        C("amount", "money"),
        C("currency", "currency"),
        C("plan_id", "id"),
        C("items_count", "integer", min=0),
        C("decline_code", "string"),
        C("completed_at", "timestamp"),
        C("order_id", "id"),
    ),
)

PRODUCT_EVENTS = Table(
    "product_events",
    key=("event_id",),
    time_column="occurred_at",
    description="Product analytics: login, feature_used, feature_requested, session_start, product_view, "
                "add_to_cart ... ``count`` > 1 when a source exports rolled-up counts.",
    columns=(
        C("event_id", "id", required=True),
        C("customer_id", "id", required=True, references=("customers", "customer_id")),
        C("occurred_at", "timestamp", required=True),
        C("event_type", "string", required=True),
        C("feature", "string"),
        C("session_id", "id"),
        C("count", "integer", min=1, default="1"),
        C("properties", "json"),
    ),
)

TICKETS = Table(
    "tickets",
    key=("ticket_id",),
    time_column="opened_at",
    columns=(
        C("ticket_id", "id", required=True),
        C("customer_id", "id", required=True, references=("customers", "customer_id")),
        C("opened_at", "timestamp", required=True),
        C("first_response_at", "timestamp"),
        C("resolved_at", "timestamp"),
        C("status", "enum", choices=TICKET_STATUSES, required=True),
        C("priority", "enum", choices=("low", "normal", "high", "urgent"), default="normal"),
        C("topic", "string"),
        C("subject", "text"),
        C("csat", "integer", min=1, max=5, description="customer satisfaction 1-5"),
    ),
)

SURVEY_RESPONSES = Table(
    "survey_responses",
    key=("response_id",),
    time_column="responded_at",
    columns=(
        C("response_id", "id", required=True),
        C("customer_id", "id", required=True, references=("customers", "customer_id")),
        C("responded_at", "timestamp", required=True),
        C("survey", "string", required=True, description="exit, nps, csat, ..."),
        C("question_id", "string", required=True),
        C("choice", "string"),
        C("text", "text"),
        C("score", "integer", min=0, max=10),
        C("language", "locale"),
    ),
)

RELEASES = Table(
    "releases",
    key=("release_id",),
    time_column="released_at",
    columns=(
        C("release_id", "id", required=True),
        C("released_at", "timestamp", required=True, future_ok=True),
        C("title", "text", required=True),
        C("feature", "string", description="the feature or integration key requests refer to"),
        C("kind", "enum", choices=("feature", "integration", "improvement", "fix", "pricing", "support"),
          default="feature"),
        C("description", "text"),
    ),
)

# Dependency order: a table appears after every table it references.
TABLES: tuple[Table, ...] = (
    CUSTOMERS, PLANS, PRICE_CHANGES, SUBSCRIPTIONS, SUBSCRIPTION_CHANGES, INVOICES, PAYMENT_ATTEMPTS,
    ORDERS, ORDER_ITEMS, CHECKOUTS, PRODUCT_EVENTS, TICKETS, SURVEY_RESPONSES, RELEASES,
)
TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}


def get_table(name: str) -> Table:
    try:
        return TABLES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES_BY_NAME)}") from None


def render_markdown() -> str:
    """The data model as Markdown (docs/data-model.md is generated from this; a test keeps them equal)."""
    lines = ["# The canonical data model", "",
             "Generated from `src/winback/models/history.py` (`python -m winback.models.history > "
             "docs/data-model.md`). Every row also has `source`; a row's key is `(source, key columns)`.",
             "Money columns hold integer minor units of the row's `currency`.", ""]
    for table in TABLES:
        lines += [f"## {table.name}", ""]
        if table.description:
            lines += [table.description, ""]
        lines += [f"Key: `{', '.join(table.key)}`", "", "| column | kind | required | notes |", "|---|---|---|---|"]
        for c in table.columns:
            notes = []
            if c.choices:
                notes.append("one of " + ", ".join(f"`{x}`" for x in c.choices))
            if c.references:
                notes.append(f"references `{c.references[0]}.{c.references[1]}`")
            if c.default is not None:
                notes.append(f"default `{c.default}`")
            if c.min is not None or c.max is not None:
                notes.append(f"range {c.min if c.min is not None else ''}..{c.max if c.max is not None else ''}")
            if c.kind == "timestamp" and c.future_ok:
                notes.append("may lie in the future")
            if c.description:
                notes.append(c.description)
            lines.append(f"| `{c.name}` | {c.kind} | {'yes' if c.required else ''} | {'; '.join(notes)} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(render_markdown(), end="")
