"""A SIMULATED billing system for the sandbox gateway: subscriptions renew, some charges fail, the
card networks' updater renews some expiring cards, and customers who read a notice update their
card. It feeds dunning exactly as a real provider would - through billing webhook events stored in
``webhook_events`` (provider ``sandbox``, the Standard Webhooks body format) - so the demo exercises
the whole path: webhook -> case -> retries -> notices -> recovery.

* :func:`import_from_history` copies the active subscriptions and their last card from the history
  store into the sandbox's books (``billing_subscriptions``, ``billing_payment_methods``,
  ``sandbox_cards``) and draws how each card's issuer behaves at the next renewal (seeded): most
  pay; a few are declined with realistic codes (insufficient funds most often; soft declines often
  clear within days, when the customer is paid); cards past their expiry are declined
  ``expired_card``.
* :func:`advance` moves the billing system to ``now``: renewals due are charged (a failure emits
  ``invoice.payment_failed``), the card updater renews some expiring cards (emits
  ``payment_method.automatically_updated``), and simulated customers act on the dunning e-mails
  they received (a new card through the same code path as the card-update page).

Everything here is labelled simulated; nothing of it runs against a real provider.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Engine, func, insert, select, update

from winback.dunning.gateways.sandbox import CARDS as SANDBOX_CARDS, SandboxGateway, card_expired
from winback.dunning.service import store_sandbox_event, update_card
from winback.kit.db import write_transaction
from winback.kit.errors import WinbackError
from winback.models.customer import Customer
from winback.models.delivery import OutboxMessage
from winback.models.dunning import BillingPaymentMethod, BillingSubscription

SUBS = BillingSubscription.__table__
CARDS = BillingPaymentMethod.__table__
CUSTOMERS = Customer.__table__
OUTBOX = OutboxMessage.__table__

# A renewal that fails, by issuer answer (shares of failures; expired cards come on top, from the data).
SOFT = {"insufficient_funds": 0.46, "do_not_honor": 0.12, "generic_decline": 0.12, "try_again_later": 0.05,
        "processing_error": 0.04, "card_velocity_exceeded": 0.02}
HARD = {"lost_card": 0.05, "stolen_card": 0.03, "fraudulent": 0.03, "do_not_try_again": 0.04, "incorrect_number": 0.04}
P_RENEWAL_FAILS = 0.07  # share of renewals with a valid card that the issuer declines
P_SOFT_CLEARS = 0.70  # a soft decline clears (funds arrive, limit resets) ...
CLEAR_MEAN_DAYS = 4.0  # ... after about this many days
P_CARD_UPDATER = 0.35  # expiring cards renewed by the networks' updater before they expire
P_ACT = {"hard": 0.30, "soft": 0.12, "final": 0.20, "expiry": 0.30}  # a customer updates after reading
ACT_MEAN_HOURS = 20.0


@dataclass
class BillingSummary:
    imported_subscriptions: int = 0
    imported_cards: int = 0
    renewals: int = 0
    renewals_failed: int = 0
    failed_by_code: dict = field(default_factory=dict)
    card_updater_renewals: int = 0
    customer_card_updates: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def add(self, other: "BillingSummary") -> None:
        for name, value in other.__dict__.items():
            if isinstance(value, dict):
                for k, v in value.items():
                    self.failed_by_code[k] = self.failed_by_code.get(k, 0) + v
            else:
                setattr(self, name, getattr(self, name) + value)


def _draw(seed: int, *parts) -> np.random.Generator:
    digest = hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _naive(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _aware(t) -> dt.datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def _month_end(year: int, month: int) -> dt.datetime:
    return dt.datetime(year, month, calendar.monthrange(year, month)[1], 23, 59, 59, tzinfo=dt.timezone.utc)


def _add_month(t: dt.datetime) -> dt.datetime:
    year, month = (t.year + (t.month == 12), t.month % 12 + 1)
    return t.replace(year=year, month=month, day=min(t.day, calendar.monthrange(year, month)[1]))


def import_from_history(settings, engine: Engine, *, now: dt.datetime, seed: int = 7) -> BillingSummary:
    """Copy active subscriptions and their last card from the history store into the sandbox's books."""
    from winback.history.store import open_history

    if not str(settings.history_url).startswith("duckdb"):
        raise WinbackError("the sandbox billing import reads the embedded DuckDB history store; "
                           f"history_url is {settings.history_url}")
    sql = """
        WITH last_card AS (
            SELECT customer_id, card_brand, card_last4, card_exp_month, card_exp_year, payment_method_id,
                   row_number() OVER (PARTITION BY customer_id ORDER BY attempted_at DESC) AS rn
            FROM payment_attempts WHERE card_last4 IS NOT NULL AND card_exp_year IS NOT NULL)
        SELECT s.subscription_id, s.customer_id, s.plan_id, s.current_period_end, s.mrr, s.currency,
               c.card_brand, c.card_last4, c.card_exp_month, c.card_exp_year, c.payment_method_id
        FROM subscriptions s
        JOIN last_card c ON c.customer_id = s.customer_id AND c.rn = 1
        WHERE s.status IN ('active', 'past_due') AND (s.ended_at IS NULL OR s.ended_at > ?) AND s.mrr > 0
          AND s.current_period_end IS NOT NULL
        ORDER BY s.subscription_id"""
    with open_history(settings.history_path, read_only=True) as con:
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
        if not {"subscriptions", "payment_attempts"} <= tables:
            raise WinbackError("the history store has no subscriptions or payment attempts to bill")
        rows = con.execute(sql, [_naive(now)]).fetchall()
    summary = BillingSummary()
    if not rows:
        return summary
    with engine.connect() as conn:
        ids = dict(conn.execute(select(CUSTOMERS.c.external_id, CUSTOMERS.c.id)).all())
    subs, cards, sandbox = [], [], []
    for (sub_id, cust, plan, period_end, mrr, currency, brand, last4, exp_m, exp_y, pm) in rows:
        pm = pm or f"pm_sbx_{cust}"
        period_end = _aware(period_end)
        while period_end <= now:  # the history ended before today: the next renewal is ahead
            period_end = _add_month(period_end)
        behaviour, recovers = "ok", None
        rng = _draw(seed, "renewal", sub_id)
        if not card_expired(int(exp_m), int(exp_y), period_end) and rng.random() < P_RENEWAL_FAILS:
            codes = {**SOFT, **HARD}
            names = list(codes)
            p = np.array([codes[n] for n in names])
            behaviour = names[int(rng.choice(len(names), p=p / p.sum()))]
            if behaviour in SOFT and rng.random() < P_SOFT_CLEARS:
                recovers = period_end + dt.timedelta(days=float(rng.exponential(CLEAR_MEAN_DAYS)))
        subs.append(dict(provider="sandbox", external_id=str(sub_id), customer_ref=str(cust),
                         customer_id=ids.get(str(cust)), plan_id=plan, mrr_minor=int(mrr),
                         currency=(currency or "USD").upper(), status="active", current_period_end=period_end,
                         payment_method_ref=pm, event_at=None, updated_at=now))
        fingerprint = hashlib.sha256(f"history-card:{cust}:{last4}".encode()).hexdigest()[:16]
        cards.append(dict(provider="sandbox", external_id=pm, customer_ref=str(cust), customer_id=ids.get(str(cust)),
                          brand=brand, last4=str(last4)[-4:], exp_month=int(exp_m), exp_year=int(exp_y),
                          fingerprint=fingerprint, status="active", updated_via="import", event_at=None,
                          updated_at=now))
        sandbox.append(dict(payment_method_ref=pm, customer_ref=str(cust), brand=brand or "visa",
                            last4=str(last4)[-4:], exp_month=int(exp_m), exp_year=int(exp_y), fingerprint=fingerprint,
                            behaviour=behaviour, recovers_at=recovers, created_at=now))
    with write_transaction(engine) as conn:
        known_subs = set(conn.execute(select(SUBS.c.external_id).where(SUBS.c.provider == "sandbox")).scalars())
        known_cards = set(conn.execute(select(CARDS.c.external_id).where(CARDS.c.provider == "sandbox")).scalars())
        new_subs = [s for s in subs if s["external_id"] not in known_subs]
        new_cards = {c["external_id"]: c for c in cards if c["external_id"] not in known_cards}
        new_sandbox = {c["payment_method_ref"]: c for c in sandbox if c["payment_method_ref"] in new_cards}
        for start in range(0, len(new_subs), 1000):
            conn.execute(insert(SUBS), new_subs[start:start + 1000])
        values = list(new_cards.values())
        for start in range(0, len(values), 1000):
            conn.execute(insert(CARDS), values[start:start + 1000])
        values = list(new_sandbox.values())
        for start in range(0, len(values), 1000):
            conn.execute(insert(SANDBOX_CARDS), values[start:start + 1000])
    summary.imported_subscriptions = len(new_subs)
    summary.imported_cards = len(new_cards)
    return summary


def _event(kind: str, at: dt.datetime, event_id: str, data: dict) -> dict:
    return {"id": event_id, "type": kind, "timestamp": at.isoformat().replace("+00:00", "Z"), "data": data}


def renew_due(settings, engine: Engine, gateway: SandboxGateway, *, now: dt.datetime) -> BillingSummary:
    """Charge every sandbox subscription whose period ended; a decline becomes a webhook event. Renewals
    on healthy cards are booked in one transaction (the issuer's answer is known: they pay)."""
    from winback.dunning.gateways.sandbox import CHARGES
    from winback.kit.db import insert_ignore

    summary = BillingSummary()
    with engine.connect() as conn:
        due = conn.execute(select(SUBS).where(SUBS.c.provider == "sandbox", SUBS.c.status == "active",
                                              SUBS.c.current_period_end <= now)).mappings().all()
        refs = sorted({s["payment_method_ref"] for s in due if s["payment_method_ref"]})
        cards = {}
        for start in range(0, len(refs), 500):
            cards.update({r.payment_method_ref: r for r in conn.execute(select(SANDBOX_CARDS).where(
                SANDBOX_CARDS.c.payment_method_ref.in_(refs[start:start + 500])))})
    healthy, others = [], []
    for sub in due:
        card = cards.get(sub["payment_method_ref"])
        ok = card is not None and card.behaviour == "ok" and not card_expired(card.exp_month, card.exp_year,
                                                                              sub["current_period_end"])
        (healthy if ok else others).append(sub)
    if healthy:
        with write_transaction(engine) as conn:
            insert_ignore(conn, CHARGES, [dict(
                idempotency_key=f"renewal:{_invoice(s)}", invoice_ref=_invoice(s), payment_method_ref=s["payment_method_ref"],
                amount_minor=int(s["mrr_minor"] or 0), currency=s["currency"] or "USD", status="succeeded",
                decline_code=None, created_at=s["current_period_end"]) for s in healthy], ["idempotency_key"])
            for s in healthy:
                conn.execute(update(SUBS).where(SUBS.c.id == s["id"]).values(
                    current_period_end=_add_month(s["current_period_end"]), updated_at=now))
        summary.renewals += len(healthy)
    for sub in others:
        period_end = sub["current_period_end"]
        invoice = _invoice(sub)
        result = gateway.charge_invoice(invoice, payment_method_ref=sub["payment_method_ref"],
                                        amount_minor=sub["mrr_minor"] or 0, currency=sub["currency"] or "USD",
                                        idempotency_key=f"renewal:{invoice}")
        summary.renewals += 1
        with write_transaction(engine) as conn:
            conn.execute(update(SUBS).where(SUBS.c.id == sub["id"]).values(current_period_end=_add_month(period_end),
                                                                           updated_at=now))
        if result.status == "succeeded":
            continue
        code = result.decline_code or "generic_decline"
        summary.renewals_failed += 1
        summary.failed_by_code[code] = summary.failed_by_code.get(code, 0) + 1
        store_sandbox_event(engine, _event("invoice.payment_failed", period_end, f"evt_sbx_fail_{invoice}", {
            "invoice_id": invoice, "customer_id": sub["customer_ref"], "subscription_id": sub["external_id"],
            "amount_due": int(sub["mrr_minor"] or 0), "currency": sub["currency"], "status": "open",
            "attempt_count": 1, "decline_code": code, "failure_message": result.message,
            "payment_method_id": sub["payment_method_ref"], "charge_id": result.gateway_ref,
            "billing_reason": "subscription_cycle"}), now=now)
    return summary


def _invoice(sub) -> str:
    return f"in_sbx_{sub['external_id']}_{sub['current_period_end']:%Y%m%d}"


def card_updater(settings, engine: Engine, gateway: SandboxGateway, *, now: dt.datetime, seed: int) -> BillingSummary:
    """The networks' account updater: some cards are renewed (new expiry) in the days before they expire."""
    summary = BillingSummary()
    horizon = now + dt.timedelta(days=45)
    with engine.connect() as conn:
        cards = conn.execute(select(CARDS).where(
            CARDS.c.provider == "sandbox", CARDS.c.status == "active", CARDS.c.updated_via == "import",
            (CARDS.c.exp_year * 12 + CARDS.c.exp_month) <= horizon.year * 12 + horizon.month)).mappings().all()
    for card in cards:
        rng = _draw(seed, "updater", card["external_id"])
        if rng.random() >= P_CARD_UPDATER:
            continue
        at = _month_end(card["exp_year"], card["exp_month"]) - dt.timedelta(days=float(rng.uniform(1, 20)))
        if at > now:
            continue
        new_year = card["exp_year"] + 3
        gateway.register_card(card["external_id"], customer_ref=card["customer_ref"], brand=card["brand"] or "visa",
                              last4=card["last4"] or "0000", exp_month=card["exp_month"], exp_year=new_year,
                              fingerprint=card["fingerprint"], behaviour="ok", now=now)
        store_sandbox_event(engine, _event("payment_method.automatically_updated", at,
                                           f"evt_sbx_upd_{card['external_id']}_{new_year}", {
            "customer_id": card["customer_ref"], "payment_method_id": card["external_id"],
            "card": {"brand": card["brand"], "last4": card["last4"], "exp_month": card["exp_month"],
                     "exp_year": new_year, "fingerprint": card["fingerprint"]}}), now=now)
        summary.card_updater_renewals += 1
    return summary


def customers_act(settings, engine: Engine, gateway: SandboxGateway, *, now: dt.datetime, seed: int,
                  since: dt.datetime | None = None) -> BillingSummary:
    """SIMULATED customers: some who received a failed-payment notice or an expiry reminder update their
    card a while later, through the same code path as the card-update page. Each message's reaction is
    drawn once (seeded); only reactions that fall in ``(since, now]`` happen in this call."""
    from winback.dunning.apply import CASES

    summary = BillingSummary()
    with engine.connect() as conn:
        sent = conn.execute(select(OUTBOX.c.idempotency_key, OUTBOX.c.sent_at, OUTBOX.c.customer_id)
                            .where(OUTBOX.c.idempotency_key.like("dunning:%"), OUTBOX.c.status == "sent",
                                   OUTBOX.c.sent_at <= now, OUTBOX.c.sent_at > now - dt.timedelta(days=30))
                            .order_by(OUTBOX.c.sent_at)).all()
        case_ids = {int(k.split(":")[2]) for k, _, _ in sent if k.startswith("dunning:case:")}
        hard = set(conn.execute(select(CASES.c.id).where(CASES.c.id.in_(sorted(case_ids)),
                                                         CASES.c.first_category == "hard")).scalars()) \
            if case_ids else set()
    for key, sent_at, customer_id in sent:
        kind = _notice_kind(key, hard)
        if kind is None:
            continue
        rng = _draw(seed, "act", key)
        if rng.random() >= P_ACT[kind]:
            continue
        act_at = _aware(sent_at) + dt.timedelta(hours=float(rng.exponential(ACT_MEAN_HOURS)))
        if act_at > now or (since is not None and act_at <= since):
            continue
        ref = _customer_ref(engine, customer_id)
        if ref is None or _updated_since(engine, ref, _aware(sent_at)):
            continue
        if kind != "expiry" and not _has_open_case(engine, ref):
            continue
        card = gateway.add_card(ref, number=_new_card_number(rng), exp_month=(now.month % 12) + 1,
                                exp_year=now.year + 4, cvc="123", now=now)
        update_card(settings, engine=engine, provider="sandbox", customer_ref=ref, card=card, via="customer",
                    now=now, gateway=gateway, charge_now=True)
        summary.customer_card_updates += 1
    return summary


def _new_card_number(rng: np.random.Generator) -> str:
    """A valid Visa number of the simulated customer's new card (each customer's own card)."""
    from winback.dunning.gateways.sandbox import TEST_CARDS, luhn_ok

    while True:
        body = "4" + "".join(str(d) for d in rng.integers(0, 10, size=14))
        number = next(body + str(d) for d in range(10) if luhn_ok(body + str(d)))
        if number not in TEST_CARDS:
            return number


def _notice_kind(key: str, hard_cases: set[int]) -> str | None:
    """expiry | final | hard | soft for a dunning message key (None: a receipt)."""
    parts = key.split(":")
    if parts[1] == "expiry":
        return "expiry"
    if parts[1] != "case" or len(parts) < 4 or parts[3] == "recovered":
        return None
    if parts[3] == "final":
        return "final"
    return "hard" if int(parts[2]) in hard_cases else "soft"


def _customer_ref(engine: Engine, customer_id: int | None) -> str | None:
    if customer_id is None:
        return None
    with engine.connect() as conn:
        return conn.execute(select(SUBS.c.customer_ref).where(SUBS.c.provider == "sandbox",
                                                              SUBS.c.customer_id == customer_id).limit(1)).scalar()


def _updated_since(engine: Engine, customer_ref: str, since: dt.datetime) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(CARDS).where(
            CARDS.c.provider == "sandbox", CARDS.c.customer_ref == customer_ref, CARDS.c.updated_via == "customer",
            CARDS.c.updated_at >= since)).scalar_one() > 0


def _has_open_case(engine: Engine, customer_ref: str) -> bool:
    from winback.dunning.apply import CASES

    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(CASES).where(
            CASES.c.provider == "sandbox", CASES.c.customer_ref == customer_ref, CASES.c.status == "open")
        ).scalar_one() > 0


def advance(settings, engine: Engine, gateway: SandboxGateway, *, now: dt.datetime, seed: int = 7,
            since: dt.datetime | None = None) -> BillingSummary:
    """Move the simulated billing system from ``since`` to ``now`` (renewals, card updater, customers)."""
    summary = renew_due(settings, engine, gateway, now=now)
    summary.add(card_updater(settings, engine, gateway, now=now, seed=seed))
    summary.add(customers_act(settings, engine, gateway, now=now, seed=seed, since=since))
    return summary


def hard_share(codes: dict) -> float:
    total = sum(codes.values())
    return sum(v for k, v in codes.items() if k in HARD or k == "expired_card") / total if total else 0.0


__all__ = ["import_from_history", "advance", "renew_due", "card_updater", "customers_act", "BillingSummary",
           "json"]


class _RoundClock:
    def __init__(self, now: dt.datetime):
        self.t = now

    def now(self) -> dt.datetime:
        return self.t


class SimulatedBilling:
    """The demo's billing system and dunning worker, one round per step of the simulated clock:
    pass it as ``on_round`` to :func:`winback.delivery.service.run_simulated`."""

    def __init__(self, settings, engine: Engine, *, start: dt.datetime, seed: int = 7):
        from winback.dunning.service import tick

        self._tick = tick
        self.settings = settings
        self.engine = engine
        self.seed = seed
        self.clock = _RoundClock(start)
        self.gateway = SandboxGateway(engine, clock=self.clock)
        self.summary = import_from_history(settings, engine, now=start, seed=seed)
        self.last: dt.datetime | None = None
        self.dunning: dict = {}

    def __call__(self, now: dt.datetime, engine: Engine | None = None) -> None:
        since, self.clock.t = self.last, now
        self.summary.add(advance(self.settings, self.engine, self.gateway, now=now, seed=self.seed, since=since))
        self.last = now
        result = self._tick(self.settings, engine=self.engine, gateway=self.gateway, clock=self.clock,
                            worker="demo-dunning")
        for group, values in result.items():
            bucket = self.dunning.setdefault(group, {})
            for name, value in values.items():
                bucket[name] = bucket.get(name, 0) + value
