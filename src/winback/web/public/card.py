"""The card-update page's reads (``/b/TOKEN``): who the customer is at the billing provider and what
they owe. Card data never passes through here: the sandbox form hands the typed number straight to
the sandbox gateway (which keeps brand, last4, expiry and a fingerprint), Stripe takes the card on
its own Checkout page."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from winback.dunning.service import open_cases_for_customer
from winback.kit.money import Money
from winback.models.dunning import BillingPaymentMethod, BillingSubscription
from winback.web.public import store

SUBSCRIPTIONS = BillingSubscription.__table__
CARDS = BillingPaymentMethod.__table__
LIVE = ("active", "trialing", "past_due", "unpaid", "paused", "incomplete")


@dataclass
class CardState:
    customer: dict | None
    provider: str
    customer_ref: str | None = None
    cases: list[dict] = field(default_factory=list)  # the open failed invoices at this provider

    def due(self) -> list[Money]:
        """The open amount per currency."""
        totals: dict[str, int] = {}
        for case in self.cases:
            if case.get("currency") and case.get("amount_minor"):
                totals[case["currency"].upper()] = totals.get(case["currency"].upper(), 0) + int(case["amount_minor"])
        return [Money(amount, currency) for currency, amount in sorted(totals.items())]


def load(engine: Engine, customer_id, provider: str) -> CardState:
    """The customer of a card-update token and their open cases at ``provider``."""
    with engine.connect() as conn:
        customer = store.customer(conn, customer_id)
        if customer is None:
            return CardState(None, provider)
        ref = conn.execute(select(SUBSCRIPTIONS.c.customer_ref).where(
            SUBSCRIPTIONS.c.customer_id == customer["id"], SUBSCRIPTIONS.c.provider == provider,
            SUBSCRIPTIONS.c.status.in_(LIVE), SUBSCRIPTIONS.c.customer_ref.is_not(None))
            .order_by(SUBSCRIPTIONS.c.updated_at.desc(), SUBSCRIPTIONS.c.id.desc()).limit(1)).scalar()
        if ref is None:
            ref = conn.execute(select(CARDS.c.customer_ref).where(
                CARDS.c.customer_id == customer["id"], CARDS.c.provider == provider, CARDS.c.status == "active",
                CARDS.c.customer_ref.is_not(None)).order_by(CARDS.c.id.desc()).limit(1)).scalar()
    cases = [c for c in open_cases_for_customer(engine, customer["id"])
             if c["provider"] == provider and c.get("first_failed_at") is not None and c.get("customer_ref")]
    if cases:
        ref = cases[0]["customer_ref"]
    return CardState(customer, provider, ref, cases)


def parse_expiry(text: str) -> tuple[str, str]:
    """``MM/YY`` (also ``MM / YYYY``, ``MM-YY``, ``MMYY``) -> (month, year) as typed; the gateway
    checks the values."""
    value = "".join(str(text or "").split())
    for sep in ("/", "-", "."):
        if sep in value:
            month, _, year = value.partition(sep)
            return month, year
    if value.isdigit() and len(value) in (4, 6):
        return value[:2], value[2:]
    return value, ""
