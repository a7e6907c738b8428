"""Dunning rows written straight into the state store, for tests that need a billing world without
going through webhooks (``flow_helpers.World`` is the path through ``apply_event``).

Every helper takes an open connection (use ``winback.kit.db.write_transaction``), fills sensible
defaults and returns the new row's id (cases) or its reference::

    with write_transaction(engine) as conn:
        cid = add_customer(conn, "ada@example.com", locale="ja")
        add_payment_method(conn, "pm_1", customer_ref="cus_1", customer_id=cid, exp=(2, 2026))
        add_subscription(conn, "sub_1", customer_ref="cus_1", customer_id=cid, payment_method_ref="pm_1")
        case_id = add_case(conn, "in_1", customer_ref="cus_1", customer_id=cid, subscription_ref="sub_1",
                           first_failed_at=T0, decline_code="insufficient_funds")

``provider`` defaults to ``sandbox``; times default to ``T0`` (the test workspaces' pinned clock).
"""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy import Connection, insert

from winback.dunning.policy import classify
from winback.models.customer import Customer
from winback.models.dunning import BillingPaymentMethod, BillingSubscription, DunningCase

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # tests/conftest.py TEST_NOW
_seq = itertools.count(1)


def add_customer(conn: Connection, email: str | None = "ada@example.com", *, name: str | None = "Ada Lovelace",
                 locale: str | None = "en", external_id: str | None = None, opt_out: bool = False,
                 basis: str = "none", plan_id: str | None = None) -> int:
    """A customer record (``marketing_basis`` none by default: dunning mail is transactional)."""
    table = Customer.__table__
    return conn.execute(insert(table).returning(table.c.id).values(
        source="test", external_id=external_id or f"cust-{next(_seq)}", email=email, name=name, locale=locale,
        plan_id=plan_id, marketing_basis=basis, marketing_opt_out=opt_out, row_hash=0, first_seen_at=T0,
        updated_at=T0)).scalar_one()


def add_subscription(conn: Connection, ref: str, *, customer_ref: str, customer_id: int | None,
                     payment_method_ref: str | None = None, status: str = "active", plan_id: str | None = "plan_pro",
                     mrr_minor: int = 4900, currency: str = "USD", provider: str = "sandbox") -> str:
    conn.execute(insert(BillingSubscription.__table__).values(
        provider=provider, external_id=ref, customer_ref=customer_ref, customer_id=customer_id, plan_id=plan_id,
        mrr_minor=mrr_minor, currency=currency, status=status, payment_method_ref=payment_method_ref,
        current_period_end=T0 + dt.timedelta(days=30), event_at=T0, updated_at=T0))
    return ref


def add_payment_method(conn: Connection, ref: str, *, customer_ref: str, customer_id: int | None = None,
                       exp: tuple[int, int] = (12, 2030), brand: str = "visa", last4: str = "4242",
                       status: str = "active", via: str = "import", provider: str = "sandbox") -> str:
    """A card on file; ``exp`` is (month, year)."""
    conn.execute(insert(BillingPaymentMethod.__table__).values(
        provider=provider, external_id=ref, customer_ref=customer_ref, customer_id=customer_id, brand=brand,
        last4=last4, exp_month=exp[0], exp_year=exp[1], fingerprint=f"fp_{ref}", status=status, updated_via=via,
        event_at=T0, updated_at=T0))
    return ref


def add_case(conn: Connection, invoice_ref: str, *, customer_ref: str, customer_id: int | None,
             subscription_ref: str | None = None, first_failed_at: dt.datetime | None = T0,
             decline_code: str | None = "insufficient_funds", amount_minor: int = 4900, currency: str = "USD",
             status: str = "open", next_attempt_at: dt.datetime | None = None, needs_update: bool | None = None,
             grace_days: float = 14.0, grace_until: dt.datetime | None = None,
             payment_method_ref: str | None = None, provider: str = "sandbox", **overrides) -> int:
    """A failed invoice. ``needs_update`` defaults to True for a hard decline; a soft one gets its first
    retry one day after the failure unless ``next_attempt_at`` is given; ``grace_until`` defaults to
    ``first_failed_at + grace_days``."""
    category = classify(decline_code) if decline_code else None
    if needs_update is None:
        needs_update = category == "hard"
    if next_attempt_at is None and category == "soft" and first_failed_at is not None and status == "open":
        next_attempt_at = first_failed_at + dt.timedelta(days=1)
    if grace_until is None and first_failed_at is not None:
        grace_until = first_failed_at + dt.timedelta(days=grace_days)
    values = dict(
        provider=provider, invoice_ref=invoice_ref, subscription_ref=subscription_ref, customer_ref=customer_ref,
        customer_id=customer_id, amount_minor=amount_minor, currency=currency, mrr_minor=amount_minor,
        status=status, first_failed_at=first_failed_at, first_decline_code=decline_code, first_category=category,
        last_decline_code=decline_code, last_category=category, attempts=1 if first_failed_at else 0,
        retry_index=0, quick_retries=0, next_attempt_at=next_attempt_at, needs_update=needs_update,
        payment_method_ref=payment_method_ref, grace_until=grace_until, event_at=first_failed_at or T0,
        created_at=first_failed_at or T0, updated_at=first_failed_at or T0)
    values.update(overrides)
    table = DunningCase.__table__
    return conn.execute(insert(table).returning(table.c.id).values(**values)).scalar_one()


def add_billing_customer(conn: Connection, email: str | None = "ada@example.com", *, ref: str | None = None,
                         locale: str | None = "en", exp: tuple[int, int] = (12, 2030), status: str = "active",
                         plan_id: str | None = "plan_pro", provider: str = "sandbox", **customer) -> dict:
    """A customer with a subscription and its default card: ``{customer_id, ref, card, subscription}``."""
    n = next(_seq)
    ref = ref or f"cus_{n}"
    cid = add_customer(conn, email, locale=locale, external_id=ref, **customer)
    card = add_payment_method(conn, f"pm_{ref}", customer_ref=ref, customer_id=cid, exp=exp, provider=provider)
    sub = add_subscription(conn, f"sub_{ref}", customer_ref=ref, customer_id=cid, payment_method_ref=card,
                           status=status, plan_id=plan_id, provider=provider)
    return {"customer_id": cid, "ref": ref, "card": card, "subscription": sub}


__all__ = ["T0", "UTC", "add_billing_customer", "add_case", "add_customer", "add_payment_method", "add_subscription"]
