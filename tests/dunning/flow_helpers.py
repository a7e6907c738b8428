"""A small billing world for retry-flow tests: a customer, a subscription, a sandbox card, and
failure events applied through the real ``apply_event`` (the path webhooks take)."""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy import func, insert, select

from winback.dunning.apply import apply_event
from winback.dunning.events import BillingEvent, CardEvent, InvoiceInfo
from winback.dunning.gateways.sandbox import SandboxGateway
from winback.kit.db import make_engine, write_transaction
from winback.models.customer import Customer
from winback.models.dunning import BillingSubscription, DunningAttempt, DunningCase, SandboxCharge

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
CASES = DunningCase.__table__
ATTEMPTS = DunningAttempt.__table__
CHARGES = SandboxCharge.__table__
_ids = itertools.count(1)


class Clock:
    def __init__(self, now: dt.datetime = T0):
        self.t = now

    def now(self) -> dt.datetime:
        return self.t

    def at(self, t: dt.datetime) -> "Clock":
        self.t = t
        return self


def with_dunning(settings, **values):
    """The workspace settings with some ``[dunning]`` values changed."""
    return settings.model_copy(update={"dunning": settings.dunning.model_copy(update=values)})


class World:
    def __init__(self, settings, clock: Clock | None = None):
        self.settings = settings
        self.engine = make_engine(settings.resolved_state_url)
        self.clock = clock or Clock()
        self.gateway = SandboxGateway(self.engine, clock=self.clock)

    def customer(self, ref: str = "cus_1", email: str = "ada@example.com", *, card_behaviour: str = "ok",
                 recovers_at: dt.datetime | None = None, exp=(12, 2030), mrr: int = 4900, card: str | None = None,
                 fingerprint: str | None = None) -> dict:
        card = card or f"pm_{ref}"
        with write_transaction(self.engine) as conn:
            cid = conn.execute(select(Customer.__table__.c.id).where(Customer.__table__.c.external_id == ref)).scalar()
            if cid is None:
                cid = conn.execute(insert(Customer.__table__).returning(Customer.__table__.c.id).values(
                    source="test", external_id=ref, email=email, name="Ada Lovelace", locale="en",
                    marketing_basis="none", marketing_opt_out=False, row_hash=0, first_seen_at=T0,
                    updated_at=T0)).scalar_one()
            conn.execute(insert(BillingSubscription.__table__).values(
                provider="sandbox", external_id=f"sub_{ref}_{next(_ids)}", customer_ref=ref, customer_id=cid,
                plan_id="pro", mrr_minor=mrr, currency="USD", status="active", payment_method_ref=card,
                updated_at=T0))
        self.gateway.register_card(card, customer_ref=ref, brand="visa", last4="4242", exp_month=exp[0],
                                   exp_year=exp[1], behaviour=card_behaviour, recovers_at=recovers_at,
                                   fingerprint=fingerprint, now=T0)
        with write_transaction(self.engine) as conn:
            from winback.dunning.apply import upsert_card

            upsert_card(conn, "sandbox", CardEvent(ref=card, customer_ref=ref, brand="visa", last4="4242",
                                                   exp_month=exp[0], exp_year=exp[1],
                                                   fingerprint=fingerprint or f"fp_{card}"),
                        via="import", at=T0 - dt.timedelta(days=400), now=T0)
        sub = self.one(select(BillingSubscription.__table__).where(
            BillingSubscription.__table__.c.customer_ref == ref).order_by(BillingSubscription.__table__.c.id.desc()))
        return {"customer_id": cid, "ref": ref, "card": card, "subscription": sub["external_id"]}

    def event(self, kind: str, *, at: dt.datetime | None = None, event_id: str | None = None, **kwargs) -> str:
        at = at or self.clock.now()
        ev = BillingEvent(provider="sandbox", event_id=event_id or f"evt_{next(_ids)}", kind=kind,
                          raw_type=kind, occurred_at=at, **kwargs)
        with write_transaction(self.engine) as conn:
            return apply_event(conn, self.settings, ev, self.clock.now())

    def fail(self, who: dict, invoice: str, code: str, *, at: dt.datetime | None = None, amount: int = 4900,
             event_id: str | None = None, charge: str | None = None) -> str:
        return self.event("invoice_payment_failed", at=at, event_id=event_id, customer_ref=who["ref"],
                          invoice=InvoiceInfo(ref=invoice, customer_ref=who["ref"], subscription_ref=who["subscription"],
                                              amount_minor=amount, currency="USD", status="open", decline_code=code,
                                              payment_method_ref=who["card"], charge_ref=charge))

    def paid(self, who: dict, invoice: str, *, at: dt.datetime | None = None, event_id: str | None = None) -> str:
        return self.event("invoice_paid", at=at, event_id=event_id, customer_ref=who["ref"],
                          invoice=InvoiceInfo(ref=invoice, customer_ref=who["ref"], subscription_ref=who["subscription"],
                                              amount_minor=4900, currency="USD", status="paid", paid_at=at))

    def run(self, at: dt.datetime, worker: str = "w1") -> dict:
        from winback.dunning.service import run_due

        self.clock.at(at)
        return run_due(self.settings, engine=self.engine, gateway=self.gateway, clock=self.clock, worker=worker)

    def one(self, stmt) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return dict(row) if row else None

    def all(self, stmt) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings().all()]

    def case(self, invoice: str) -> dict:
        return self.one(select(CASES).where(CASES.c.invoice_ref == invoice))

    def attempts(self, invoice: str) -> list[dict]:
        case = self.case(invoice)
        return self.all(select(ATTEMPTS).where(ATTEMPTS.c.case_id == case["id"]).order_by(ATTEMPTS.c.number))

    def charges(self, invoice: str, status: str | None = None) -> int:
        stmt = select(func.count()).select_from(CHARGES).where(CHARGES.c.invoice_ref == invoice)
        if status:
            stmt = stmt.where(CHARGES.c.status == status)
        with self.engine.connect() as conn:
            return conn.execute(stmt).scalar_one()

    def dispose(self):
        self.engine.dispose()
