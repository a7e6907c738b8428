"""Apply a normalised billing event to the dunning state, in the caller's transaction.

Ordering: every state row keeps ``event_at``, the provider's creation time of the newest event
applied to it; an older event arriving late does not overwrite a newer state. Cases have terminal
states: once an invoice is known paid, a late ``invoice.payment_failed`` only fills in the
failure facts (when the case had none) and never reopens it; a ``paid`` arriving before the
``payment_failed`` it follows gives the same final state as the right order.

Our own charges also come back as webhooks (Stripe sends ``invoice.payment_failed`` for a retry
we made): a failure whose charge id (or time) matches one of our attempts is not counted twice.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Connection, and_, func, insert, literal, or_, select, update

from winback.dunning.events import BillingEvent, CardEvent, InvoiceInfo
from winback.dunning.policy import Policy, after_failure, classify
from winback.kit.db import insert_ignore
from winback.models.campaigns import CustomerEvent
from winback.models.customer import Customer
from winback.models.dunning import BillingPaymentMethod, BillingSubscription, DunningAttempt, DunningCase

CASES = DunningCase.__table__
ATTEMPTS = DunningAttempt.__table__
SUBS = BillingSubscription.__table__
CARDS = BillingPaymentMethod.__table__
CUSTOMERS = Customer.__table__
EVENTS = CustomerEvent.__table__

OWN_TRIGGERS = ("schedule", "quick", "customer_update", "card_updater", "manual")
RECOVERED_BY = {"schedule": "retry", "quick": "retry", "manual": "retry", "customer_update": "customer_update",
                "card_updater": "card_updater"}
OWN_MATCH = dt.timedelta(minutes=15)


def customer_id_for(conn: Connection, customer_ref: str | None, email: str | None = None) -> int | None:
    """The state store's customer for a billing customer id (its external id), else by e-mail."""
    if customer_ref:
        row = conn.execute(select(CUSTOMERS.c.id).where(CUSTOMERS.c.external_id == customer_ref)
                           .order_by(CUSTOMERS.c.id).limit(1)).first()
        if row:
            return row[0]
    if email:
        row = conn.execute(select(CUSTOMERS.c.id).where(func.lower(CUSTOMERS.c.email) == email.strip().lower())
                           .order_by(CUSTOMERS.c.id).limit(1)).first()
        if row:
            return row[0]
    return None


def add_customer_event(conn: Connection, *, event_id: str, customer_id: int | None, type_: str,
                       occurred_at: dt.datetime, now: dt.datetime, properties: dict) -> bool:
    """A ``customer_events`` fact (idempotent by ``event_id``): conversions and win-back triggers."""
    if customer_id is None:
        return False
    return insert_ignore(conn, EVENTS, [dict(event_id=event_id, customer_id=customer_id, type=type_,
                                             occurred_at=occurred_at, received_at=now, source="dunning",
                                             properties=json.dumps(properties, separators=(",", ":")))],
                         ["event_id"]) > 0


def case_by_invoice(conn: Connection, provider: str, invoice_ref: str) -> dict | None:
    row = conn.execute(select(CASES).where(CASES.c.provider == provider, CASES.c.invoice_ref == invoice_ref)
                       ).mappings().first()
    return dict(row) if row else None


def _notices():
    from winback.dunning import notices

    return notices


def apply_event(conn: Connection, settings, ev: BillingEvent, now: dt.datetime) -> str:
    """Apply ``ev``; returns ``applied``, ``stale`` (older than the state) or ``ignored``."""
    handler = _HANDLERS.get(ev.kind)
    if handler is None:
        return "ignored"
    return handler(conn, settings, ev, now)


# --- invoices -------------------------------------------------------------------------------------------

def _subscription(conn: Connection, provider: str, ref: str | None) -> dict | None:
    if not ref:
        return None
    row = conn.execute(select(SUBS).where(SUBS.c.provider == provider, SUBS.c.external_id == ref)).mappings().first()
    return dict(row) if row else None


def _default_card(conn: Connection, provider: str, customer_ref: str | None, sub: dict | None) -> str | None:
    if sub and sub.get("payment_method_ref"):
        return sub["payment_method_ref"]
    if not customer_ref:
        return None
    row = conn.execute(select(SUBS.c.payment_method_ref).where(SUBS.c.provider == provider,
                                                               SUBS.c.customer_ref == customer_ref,
                                                               SUBS.c.payment_method_ref.is_not(None))
                       .order_by(SUBS.c.updated_at.desc()).limit(1)).first()
    return row[0] if row else None


def card_key(conn: Connection, provider: str, payment_method_ref: str | None, invoice_ref: str,
             customer_ref: str | None = None) -> str:
    """What the 30-day cap counts per: the card's fingerprint, else its id, else the customer (whose
    default card the provider charges), else the invoice."""
    if payment_method_ref:
        fp = conn.execute(select(CARDS.c.fingerprint).where(CARDS.c.provider == provider,
                                                            CARDS.c.external_id == payment_method_ref)).scalar()
        return f"fp:{fp}" if fp else f"pm:{payment_method_ref}"
    if customer_ref:
        return f"customer:{provider}:{customer_ref}"
    return f"invoice:{provider}:{invoice_ref}"


def _is_own_attempt(conn: Connection, case_id: int, inv: InvoiceInfo, occurred_at: dt.datetime) -> bool:
    own = conn.execute(select(ATTEMPTS.c.gateway_ref, ATTEMPTS.c.started_at, ATTEMPTS.c.finished_at)
                       .where(ATTEMPTS.c.case_id == case_id, ATTEMPTS.c.trigger.in_(OWN_TRIGGERS))).all()
    if inv.charge_ref and any(r.gateway_ref == inv.charge_ref for r in own):
        return True
    for r in own:
        end = r.finished_at or r.started_at
        if r.started_at - OWN_MATCH <= occurred_at <= end + OWN_MATCH:
            return True
    return False


def _failure(conn: Connection, settings, ev: BillingEvent, now: dt.datetime) -> str:
    inv = ev.invoice
    if inv is None or not inv.ref:
        return "ignored"
    if ev.card is not None and ev.card.ref:
        known = conn.execute(select(CARDS.c.id).where(CARDS.c.provider == ev.provider,
                                                      CARDS.c.external_id == ev.card.ref)).first()
        if known is None:  # a card winback had not seen yet: keep it for the cap and the reminders
            upsert_card(conn, ev.provider, ev.card, via="webhook", at=ev.occurred_at, now=now)
    policy = Policy.from_settings(settings.dunning)
    case = case_by_invoice(conn, ev.provider, inv.ref)
    code = inv.decline_code
    if case is None:
        sub = _subscription(conn, ev.provider, inv.subscription_ref)
        customer_ref = inv.customer_ref or ev.customer_ref or (sub or {}).get("customer_ref")
        pm = inv.payment_method_ref or _default_card(conn, ev.provider, customer_ref, sub)
        category = classify(code)
        step = after_failure(policy, category=category, first_failed_at=ev.occurred_at, now=max(now, ev.occurred_at),
                             retry_index=0, quick_retries=0)
        grace = policy.grace_until(ev.occurred_at)
        next_at, trigger = (step.at, step.trigger) if step.at else (grace, "exhaust")
        customer_id = customer_id_for(conn, customer_ref, ev.customer_email) or (sub or {}).get("customer_id")
        conn.execute(insert(CASES).values(
            provider=ev.provider, invoice_ref=inv.ref, subscription_ref=inv.subscription_ref, customer_ref=customer_ref,
            customer_id=customer_id, amount_minor=int(inv.amount_minor or 0),
            currency=(inv.currency or (sub or {}).get("currency") or "USD").upper(),
            mrr_minor=(sub or {}).get("mrr_minor"), status="open", first_failed_at=ev.occurred_at,
            first_decline_code=code, first_category=category, last_decline_code=code, last_category=category,
            attempts=0, retry_index=step.retry_index, quick_retries=step.quick_retries, next_attempt_at=next_at,
            next_trigger=trigger, needs_update=step.wait_for_update, payment_method_ref=pm, grace_until=grace,
            event_at=ev.occurred_at, created_at=now, updated_at=now))
        case = case_by_invoice(conn, ev.provider, inv.ref)
        _record_external_attempt(conn, case, ev, inv, code, category)
        if sub and sub["status"] in ("active", "trialing"):
            conn.execute(update(SUBS).where(SUBS.c.id == sub["id"]).values(status="past_due", updated_at=now))
        add_customer_event(conn, event_id=f"dunning:failed:{case['id']}", customer_id=customer_id,
                           type_="payment_failed", occurred_at=ev.occurred_at, now=now,
                           properties={"invoice": inv.ref, "decline_code": code, "category": category,
                                       "amount_minor": case["amount_minor"], "currency": case["currency"]})
        return "applied"
    if case["first_failed_at"] is None:
        # the invoice was seen paid / closed first: the failure came before it (out of order)
        category = classify(code)
        conn.execute(update(CASES).where(CASES.c.id == case["id"]).values(
            first_failed_at=ev.occurred_at, first_decline_code=code, first_category=category,
            last_decline_code=code, last_category=category, updated_at=now,
            grace_until=policy.grace_until(ev.occurred_at)))
        _record_external_attempt(conn, case, ev, inv, code, category)
        return "applied"
    if case["status"] != "open":
        if code and not case["first_decline_code"]:
            conn.execute(update(CASES).where(CASES.c.id == case["id"]).values(
                first_decline_code=code, first_category=classify(code), updated_at=now))
        return "stale"
    if _is_own_attempt(conn, case["id"], inv, ev.occurred_at):
        if code and not case["first_decline_code"]:
            conn.execute(update(CASES).where(CASES.c.id == case["id"]).values(first_decline_code=code,
                                                                              first_category=classify(code)))
        return "applied"  # our own retry coming back: recorded when we made it
    _record_external_attempt(conn, case, ev, inv, code, classify(code))
    return _decline_fact(conn, settings, case, ev, code, now)


def _decline_fact(conn: Connection, settings, case: dict, ev: BillingEvent, code: str | None,
                  now: dt.datetime) -> str:
    """A decline code learnt after the case opened (a detail event, the provider's own retry)."""
    if not code:
        return "applied"
    category = classify(code)
    values = dict(updated_at=now)
    if not case["first_decline_code"]:
        values.update(first_decline_code=code, first_category=category)
    if case["event_at"] is None or ev.occurred_at >= case["event_at"]:
        values.update(last_decline_code=code, last_category=category, event_at=ev.occurred_at)
        if category == "hard" and not case["needs_update"]:
            values.update(needs_update=True, next_attempt_at=case["grace_until"], next_trigger="exhaust")
    conn.execute(update(CASES).where(CASES.c.id == case["id"]).values(**values))
    return "applied"


def _record_external_attempt(conn: Connection, case: dict, ev: BillingEvent, inv: InvoiceInfo, code: str | None,
                             category: str) -> None:
    """The provider's own charge (its first attempt, its own retries): counted for the per-card cap."""
    key = f"external:{ev.provider}:{inv.charge_ref or ev.event_id}"
    number = (conn.execute(select(func.max(ATTEMPTS.c.number)).where(ATTEMPTS.c.case_id == case["id"])).scalar()
              or 0) + 1
    pm = inv.payment_method_ref or case["payment_method_ref"]
    added = insert_ignore(conn, ATTEMPTS, [dict(
        case_id=case["id"], number=number, idempotency_key=key, trigger="initial" if number == 1 else "external",
        payment_method_ref=pm, card_key=card_key(conn, ev.provider, pm, case["invoice_ref"], case["customer_ref"]),
        status="failed",
        decline_code=code, category=category, message=inv.failure_message, gateway_ref=inv.charge_ref, worker=None,
        started_at=ev.occurred_at, finished_at=ev.occurred_at)], ["idempotency_key"])
    if added:
        conn.execute(update(CASES).where(CASES.c.id == case["id"]).values(attempts=CASES.c.attempts + 1))


def _detail(conn: Connection, settings, ev: BillingEvent, now: dt.datetime) -> str:
    inv = ev.invoice
    if inv is None or not inv.ref:
        return "ignored"  # a charge that belongs to no invoice (one-off payments): not dunning's
    case = case_by_invoice(conn, ev.provider, inv.ref)
    if case is None:
        return _failure(conn, settings, ev, now)
    if case["status"] != "open":
        if inv.decline_code and not case["first_decline_code"]:
            conn.execute(update(CASES).where(CASES.c.id == case["id"]).values(
                first_decline_code=inv.decline_code, first_category=classify(inv.decline_code), updated_at=now))
        return "stale"
    return _decline_fact(conn, settings, case, ev, inv.decline_code, now)


def mark_recovered(conn: Connection, settings, case: dict, *, by: str, at: dt.datetime, now: dt.datetime) -> bool:
    """Open (or exhausted) case -> recovered; notices stop, a receipt and a ``payment_recovered`` fact."""
    done = conn.execute(update(CASES).where(CASES.c.id == case["id"], CASES.c.status.in_(("open", "exhausted")))
                        .values(status="recovered", recovered_at=at, recovered_by=by, next_attempt_at=None,
                                next_trigger=None, needs_update=False, claimed_by=None, lease_until=None,
                                updated_at=now)).rowcount
    if not done:
        return False
    if case.get("subscription_ref"):
        conn.execute(update(SUBS).where(SUBS.c.provider == case["provider"], SUBS.c.external_id == case["subscription_ref"],
                                        SUBS.c.status.in_(("past_due", "unpaid")))
                     .values(status="active", updated_at=now))
    notices = _notices()
    notices.cancel_case_notices(conn, case["id"], now, "recovered")
    if settings.dunning.notices:
        notices.enqueue_recovered_notice(conn, settings, case["id"], now)
    add_customer_event(conn, event_id=f"dunning:recovered:{case['id']}", customer_id=case["customer_id"],
                       type_="payment_recovered", occurred_at=at, now=now,
                       properties={"invoice": case["invoice_ref"], "recovered_by": by,
                                   "revenue_minor": int(case["amount_minor"] or 0), "currency": case["currency"],
                                   "mrr_minor": case["mrr_minor"]})
    return True


def _who_paid(conn: Connection, case: dict) -> str:
    """An invoice paid outside our own successful charge: by our in-flight charge, a new card, or else."""
    rows = conn.execute(select(ATTEMPTS.c.trigger, ATTEMPTS.c.status).where(ATTEMPTS.c.case_id == case["id"])
                        .order_by(ATTEMPTS.c.number.desc())).all()
    latest = rows[0] if rows else None  # only our last charge can be the one that paid
    if latest is not None and latest.status in ("started", "succeeded", "error") and latest.trigger in RECOVERED_BY:
        return RECOVERED_BY[latest.trigger]
    if case.get("next_trigger") in ("customer_update", "card_updater"):
        return case["next_trigger"]
    return "external"


def _paid(conn: Connection, settings, ev: BillingEvent, now: dt.datetime) -> str:
    inv = ev.invoice
    if inv is None or not inv.ref:
        return "ignored"
    at = inv.paid_at or ev.occurred_at
    case = case_by_invoice(conn, ev.provider, inv.ref)
    if case is None:  # paid without failing (or the failure is still on its way)
        conn.execute(insert(CASES).values(
            provider=ev.provider, invoice_ref=inv.ref, subscription_ref=inv.subscription_ref,
            customer_ref=inv.customer_ref or ev.customer_ref,
            customer_id=customer_id_for(conn, inv.customer_ref or ev.customer_ref, ev.customer_email),
            amount_minor=int(inv.amount_minor or 0), currency=(inv.currency or "USD").upper(), status="recovered",
            recovered_at=at, recovered_by="external", event_at=ev.occurred_at, created_at=now, updated_at=now))
        return "applied"
    if case["status"] == "recovered":
        return "stale"
    if case["status"] == "closed":
        return "stale"
    mark_recovered(conn, settings, case, by=_who_paid(conn, case), at=at, now=now)
    conn.execute(update(ATTEMPTS).where(ATTEMPTS.c.case_id == case["id"], ATTEMPTS.c.status == "started")
                 .values(status="succeeded", finished_at=now))
    conn.execute(update(CASES).where(CASES.c.id == case["id"]).values(event_at=ev.occurred_at))
    return "applied"


def _closed(conn: Connection, settings, ev: BillingEvent, now: dt.datetime) -> str:
    inv = ev.invoice
    if inv is None or not inv.ref:
        return "ignored"
    reason = "voided" if (inv.status or "").startswith("void") else "uncollectible"
    case = case_by_invoice(conn, ev.provider, inv.ref)
    if case is None:
        conn.execute(insert(CASES).values(
            provider=ev.provider, invoice_ref=inv.ref, subscription_ref=inv.subscription_ref,
            customer_ref=inv.customer_ref or ev.customer_ref, amount_minor=int(inv.amount_minor or 0),
            currency=(inv.currency or "USD").upper(), status="closed", closed_at=ev.occurred_at, close_reason=reason,
            event_at=ev.occurred_at, created_at=now, updated_at=now))
        return "applied"
    if case["status"] != "open":
        return "stale"
    conn.execute(update(CASES).where(CASES.c.id == case["id"], CASES.c.status == "open").values(
        status="closed", closed_at=ev.occurred_at, close_reason=reason, next_attempt_at=None, next_trigger=None,
        event_at=ev.occurred_at, updated_at=now))
    _notices().cancel_case_notices(conn, case["id"], now, reason)
    return "applied"


# --- cards and subscriptions ------------------------------------------------------------------------------

def upsert_card(conn: Connection, provider: str, card: CardEvent, *, via: str, at: dt.datetime,
                now: dt.datetime) -> tuple[str, dict | None]:
    """Insert or update a card unless the stored one is newer; returns (outcome, previous row)."""
    old = conn.execute(select(CARDS).where(CARDS.c.provider == provider, CARDS.c.external_id == card.ref)
                       ).mappings().first()
    old = dict(old) if old else None
    if old and old["event_at"] is not None and at < old["event_at"]:
        return "stale", old
    customer_ref = card.customer_ref or (old or {}).get("customer_ref")
    values = dict(customer_ref=customer_ref, status="detached" if card.detached else "active", updated_via=via,
                  event_at=at, updated_at=now)
    for name in ("brand", "last4", "exp_month", "exp_year", "fingerprint"):
        value = getattr(card, name)
        if value is not None:
            values[name] = value
    if old is None:
        values["customer_id"] = customer_id_for(conn, customer_ref)
        conn.execute(insert(CARDS).values(provider=provider, external_id=card.ref, **values))
    else:
        conn.execute(update(CARDS).where(CARDS.c.id == old["id"]).values(**values))
    changed = old is None or (old["exp_month"], old["exp_year"], old["last4"]) != (
        card.exp_month or old["exp_month"], card.exp_year or old["exp_year"], card.last4 or old["last4"])
    if via in ("customer", "card_updater") and changed and not card.detached:
        # the payment-update campaigns exit on it; the timeline shows it
        add_customer_event(conn, event_id=f"dunning:card:{provider}:{card.ref}:{at.isoformat()}",
                           customer_id=values.get("customer_id") or (old or {}).get("customer_id")
                           or customer_id_for(conn, customer_ref), type_="card_updated", occurred_at=at, now=now,
                           properties={"via": via, "brand": card.brand, "last4": card.last4,
                                       "exp_month": card.exp_month, "exp_year": card.exp_year})
    return "applied", old


def retry_open_cases(conn: Connection, provider: str, *, customer_ref: str | None, payment_method_ref: str,
                     trigger: str, now: dt.datetime, only_card: str | None = None) -> list[int]:
    """A new or renewed card: the customer's open cases are charged again now (with that card)."""
    cond = [CASES.c.provider == provider, CASES.c.status == "open"]
    if only_card is not None:
        cond.append(or_(CASES.c.payment_method_ref == only_card, CASES.c.payment_method_ref.is_(None)))
        if customer_ref:
            cond.append(CASES.c.customer_ref == customer_ref)
    elif customer_ref:
        cond.append(CASES.c.customer_ref == customer_ref)
    else:
        return []
    # a hard-declined case is never charged again with the card that failed
    cond.append(or_(CASES.c.needs_update.is_(False), CASES.c.payment_method_ref.is_(None),
                    CASES.c.payment_method_ref != payment_method_ref, literal(trigger == "card_updater")))
    ids = [r[0] for r in conn.execute(select(CASES.c.id).where(and_(*cond))).all()]
    if ids:
        conn.execute(update(CASES).where(CASES.c.id.in_(ids)).values(
            payment_method_ref=payment_method_ref, needs_update=False, next_attempt_at=now, next_trigger=trigger,
            quick_retries=0, updated_at=now))
    return ids


def _card(conn: Connection, settings, ev: BillingEvent, now: dt.datetime) -> str:
    card = ev.card
    if card is None or not card.ref:
        return "ignored"
    via = ev.card_via or "customer"
    outcome, old = upsert_card(conn, ev.provider, card, via=via, at=ev.occurred_at, now=now)
    if outcome == "stale":
        return "stale"
    expiry_changed = old is None or (old["exp_month"], old["exp_year"]) != (card.exp_month, card.exp_year)
    if card.detached or via == "card_updater" or expiry_changed:
        _notices().cancel_expiry_reminders(conn, ev.provider, card.ref, now)
    if card.detached:
        return "applied"
    renewed = via == "card_updater" or (old is not None and (expiry_changed or old.get("last4") != card.last4))
    if renewed:
        # the card on file changed (new expiry / number from the updater, or the customer edited it)
        retry_open_cases(conn, ev.provider, customer_ref=card.customer_ref or (old or {}).get("customer_ref"),
                         payment_method_ref=card.ref, trigger="card_updater" if via == "card_updater"
                         else "customer_update", now=now, only_card=card.ref)
    return "applied"


def set_default_card(conn: Connection, provider: str, customer_ref: str, payment_method_ref: str, *,
                     at: dt.datetime, now: dt.datetime, trigger: str = "customer_update") -> list[int]:
    subs = conn.execute(select(SUBS.c.id, SUBS.c.payment_method_ref).where(
        SUBS.c.provider == provider, SUBS.c.customer_ref == customer_ref)).all()
    for s in subs:
        if s.payment_method_ref and s.payment_method_ref != payment_method_ref:
            _notices().cancel_expiry_reminders(conn, provider, s.payment_method_ref, now)
    conn.execute(update(SUBS).where(SUBS.c.provider == provider, SUBS.c.customer_ref == customer_ref)
                 .values(payment_method_ref=payment_method_ref, updated_at=now))
    via = conn.execute(select(CARDS.c.updated_via).where(CARDS.c.provider == provider,
                                                         CARDS.c.external_id == payment_method_ref)).scalar()
    if via == "card_updater":
        trigger = "card_updater"
    return retry_open_cases(conn, provider, customer_ref=customer_ref, payment_method_ref=payment_method_ref,
                            trigger=trigger, now=now)


def _default(conn: Connection, settings, ev: BillingEvent, now: dt.datetime) -> str:
    customer_ref = ev.customer_ref or (ev.card.customer_ref if ev.card else None)
    ref = ev.default_payment_method_ref or (ev.card.ref if ev.card else None)
    if not customer_ref or not ref:
        return "ignored"
    if ev.card is not None:
        upsert_card(conn, ev.provider, ev.card, via=ev.card_via or "customer", at=ev.occurred_at, now=now)
    current = conn.execute(select(SUBS.c.payment_method_ref).where(SUBS.c.provider == ev.provider,
                                                                   SUBS.c.customer_ref == customer_ref)).scalars().all()
    open_cards = conn.execute(select(CASES.c.payment_method_ref).where(
        CASES.c.provider == ev.provider, CASES.c.customer_ref == customer_ref, CASES.c.status == "open")).scalars().all()
    if (current and all(c == ref for c in current)) and all(c == ref for c in open_cards):
        return "stale"  # nothing changed (a customer.updated about something else)
    set_default_card(conn, ev.provider, customer_ref, ref, at=ev.occurred_at, now=now,
                     trigger="card_updater" if ev.card_via == "card_updater" else "customer_update")
    return "applied"


def _subscription_event(conn: Connection, settings, ev: BillingEvent, now: dt.datetime) -> str:
    info = ev.subscription
    if info is None or not info.ref:
        return "ignored"
    old = _subscription(conn, ev.provider, info.ref)
    if old and old["event_at"] is not None and ev.occurred_at < old["event_at"]:
        return "stale"
    values = dict(event_at=ev.occurred_at, updated_at=now)
    for column, value in (("customer_ref", info.customer_ref or ev.customer_ref), ("status", info.status),
                          ("plan_id", info.plan_id), ("mrr_minor", info.mrr_minor),
                          ("currency", (info.currency or "").upper() or None),
                          ("current_period_end", info.current_period_end),
                          ("payment_method_ref", info.default_payment_method_ref)):
        if value is not None:
            values[column] = value
    if old is None:
        values.setdefault("status", "active")
        values["customer_id"] = customer_id_for(conn, values.get("customer_ref"), ev.customer_email)
        conn.execute(insert(SUBS).values(provider=ev.provider, external_id=info.ref, **values))
    else:
        conn.execute(update(SUBS).where(SUBS.c.id == old["id"]).values(**values))
    if info.status in ("canceled", "incomplete_expired"):
        # ended at the provider (its own dunning rules, an operator): open cases are lost
        for case in conn.execute(select(CASES).where(CASES.c.provider == ev.provider,
                                                     CASES.c.subscription_ref == info.ref,
                                                     CASES.c.status == "open")).mappings().all():
            conn.execute(update(CASES).where(CASES.c.id == case["id"], CASES.c.status == "open").values(
                status="exhausted", close_reason="canceled", closed_at=ev.occurred_at, next_attempt_at=None,
                next_trigger=None, updated_at=now))
            _notices().cancel_case_notices(conn, case["id"], now, "canceled")
            enter_winback(conn, dict(case), at=ev.occurred_at, now=now, action="canceled")
    return "applied"


def enter_winback(conn: Connection, case: dict, *, at: dt.datetime, now: dt.datetime, action: str) -> None:
    """The subscription ended for a failed payment: a ``dunning_exhausted`` fact (reason involuntary),
    which the playbook's ``involuntary_lapsed`` win-back campaign reacts to at once. (Not a
    ``subscription_canceled``: the history's cancellations already feed the segment-based
    campaigns, and the exit survey must not ask someone whose card simply failed.)"""
    add_customer_event(conn, event_id=f"dunning:ended:{case['id']}", customer_id=case["customer_id"],
                       type_="dunning_exhausted", occurred_at=at, now=now,
                       properties={"reason": "involuntary", "source": "dunning", "action": action,
                                   "invoice": case["invoice_ref"], "decline_code": case.get("last_decline_code"),
                                   "mrr_minor": case.get("mrr_minor"), "currency": case.get("currency")})


_HANDLERS = {
    "invoice_payment_failed": _failure,
    "payment_failed_detail": _detail,
    "invoice_paid": _paid,
    "invoice_closed": _closed,
    "payment_method_updated": _card,
    "default_payment_method": _default,
    "subscription_updated": _subscription_event,
}
