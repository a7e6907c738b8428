"""The built-in sandbox gateway (embedded default): simulated issuers, realistic decline codes, offline.

Its books live in the state store (``sandbox_cards``, ``sandbox_charges``), so several workers and
the web app see the same cards and charges, and a charge is unique per idempotency key: asking
again with the same key replays the first answer and moves no money (like Stripe). An invoice is
paid once: a charge of an invoice that already has a successful charge answers ``already_paid``.

Cards behave like Stripe's documented test cards (4242 4242 4242 4242 pays, 4000 0000 0000 9995
is declined for insufficient funds, ...); any other valid number pays. A card's ``behaviour`` is
``ok`` or a decline code; a soft decline clears at ``recovers_at`` (the customer was paid, the
issuer's limit reset), a hard one never does. A card past its expiry month is declined
``expired_card``.

Faults for tests and drills (:meth:`SandboxGateway.inject`): ``timeout`` (no answer, nothing
charged), ``timeout_after_charge`` (the charge went through but the answer was lost - the case a
later look-up must catch), ``api_error`` and ``rate_limit``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import defaultdict, deque

from sqlalchemy import Engine, insert, select, update

from winback.dunning.gateways.base import CardInfo, ChargeResult, InvoiceState
from winback.kit.db import write_transaction
from winback.kit.errors import WinbackError
from winback.models.dunning import BillingSubscription, SandboxCard, SandboxCharge

CARDS = SandboxCard.__table__
CHARGES = SandboxCharge.__table__
SUBSCRIPTIONS = BillingSubscription.__table__

# Stripe's test card numbers and what they do (https://docs.stripe.com/testing#declined-payments).
TEST_CARDS = {
    "4242424242424242": "ok",
    "4000056655665556": "ok",
    "5555555555554444": "ok",
    "2223003122003222": "ok",
    "378282246310005": "ok",
    "6011111111111117": "ok",
    "3566002020360505": "ok",
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000009987": "lost_card",
    "4000000000009979": "stolen_card",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
    "4000000000000119": "processing_error",
    "4100000000000019": "fraudulent",
    "4000000000006975": "card_velocity_exceeded",
}
FAULTS = ("timeout", "timeout_after_charge", "api_error", "rate_limit")


class CardRejected(WinbackError):
    """A card number, expiry or CVC that no issuer would accept (shown to the customer)."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def brand_of(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in ("34", "37"):
        return "amex"
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return "mastercard"
    if number.startswith(("6011", "65")) or number[:3] in {"644", "645", "646", "647", "648", "649"}:
        return "discover"
    if number[:4] in {"3528", "3529"} or "353" <= number[:3] <= "358":
        return "jcb"
    if number[:2] in ("36", "38", "39") or number[:3] in {"300", "301", "302", "303", "304", "305"}:
        return "diners"
    if number.startswith("62"):
        return "unionpay"
    return "unknown"


def card_expired(exp_month: int, exp_year: int, now: dt.datetime) -> bool:
    """A card is valid through the last day of its expiry month."""
    return (exp_year, exp_month) < (now.year, now.month)


class SandboxGateway:
    name = "sandbox"

    def __init__(self, engine: Engine, clock=None):
        if engine is None:
            raise ValueError("the sandbox gateway needs the state store's engine")
        self.engine = engine
        self.clock = clock
        self._faults: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []  # (method, invoice/subscription) for tests and drills

    def _now(self) -> dt.datetime:
        return self.clock.now() if self.clock is not None else dt.datetime.now(dt.timezone.utc)

    # --- cards ---------------------------------------------------------------------------------------

    def add_card(self, customer_ref: str, *, number: str, exp_month: int | str, exp_year: int | str,
                 cvc: str = "", now: dt.datetime | None = None) -> CardInfo:
        """Check and store a card the customer typed (the card-update page). Only brand, last4, expiry
        and a fingerprint are kept; the number itself is never stored."""
        now = now or self._now()
        digits = "".join(ch for ch in str(number) if ch not in " -")
        if not digits.isdigit() or not 12 <= len(digits) <= 19:
            raise CardRejected("number", "The card number should be 12 to 19 digits.")
        if not luhn_ok(digits):
            raise CardRejected("number", "The card number is not valid.")
        try:
            month, year = int(exp_month), int(exp_year)
        except (TypeError, ValueError):
            raise CardRejected("expiry", "The expiry date is not valid.") from None
        if year < 100:
            year += 2000
        if not 1 <= month <= 12 or not 2000 <= year <= 2100:
            raise CardRejected("expiry", "The expiry date is not valid.")
        if card_expired(month, year, now):
            raise CardRejected("expiry", "The card has expired.")
        brand = brand_of(digits)
        cvc = str(cvc or "").strip()
        if cvc and (not cvc.isdigit() or len(cvc) != (4 if brand == "amex" else 3)):
            raise CardRejected("cvc", "The security code is not valid.")
        fingerprint = hashlib.sha256(f"winback-sandbox:{digits}".encode()).hexdigest()[:16]
        ref = "pm_sbx_" + hashlib.sha256(f"{customer_ref}:{fingerprint}:{month}/{year}:{now.isoformat()}"
                                         .encode()).hexdigest()[:20]
        behaviour = TEST_CARDS.get(digits, "ok")
        return self.register_card(ref, customer_ref=customer_ref, brand=brand, last4=digits[-4:],
                                  exp_month=month, exp_year=year, fingerprint=fingerprint, behaviour=behaviour,
                                  now=now)

    def register_card(self, ref: str, *, customer_ref: str | None, brand: str, last4: str, exp_month: int,
                      exp_year: int, fingerprint: str | None = None, behaviour: str = "ok",
                      recovers_at: dt.datetime | None = None, now: dt.datetime | None = None) -> CardInfo:
        """Put a card in the simulated issuer's books (synced or generated cards; tests)."""
        now = now or self._now()
        fingerprint = fingerprint or hashlib.sha256(f"winback-sandbox-ref:{ref}".encode()).hexdigest()[:16]
        row = dict(payment_method_ref=ref, customer_ref=customer_ref, brand=brand, last4=last4, exp_month=exp_month,
                   exp_year=exp_year, fingerprint=fingerprint, behaviour=behaviour, recovers_at=recovers_at,
                   created_at=now)
        with write_transaction(self.engine) as conn:
            if conn.execute(select(CARDS.c.payment_method_ref).where(CARDS.c.payment_method_ref == ref)).first():
                conn.execute(update(CARDS).where(CARDS.c.payment_method_ref == ref)
                             .values({k: v for k, v in row.items() if k not in ("payment_method_ref", "created_at")}))
            else:
                conn.execute(insert(CARDS).values(row))
        return CardInfo(ref=ref, customer_ref=customer_ref, brand=brand, last4=last4, exp_month=exp_month,
                        exp_year=exp_year, fingerprint=fingerprint)

    # --- faults --------------------------------------------------------------------------------------

    def inject(self, invoice_ref: str, *faults: str) -> None:
        """The next charges of this invoice meet these faults, in order (see the module docstring)."""
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown sandbox fault(s): {sorted(unknown)}; use {FAULTS}")
        with self._lock:
            self._faults[invoice_ref].extend(faults)

    def _next_fault(self, invoice_ref: str) -> str | None:
        with self._lock:
            queue = self._faults.get(invoice_ref)
            return queue.popleft() if queue else None

    # --- the gateway interface -----------------------------------------------------------------------

    def charge_invoice(self, invoice_ref: str, *, payment_method_ref: str | None, amount_minor: int,
                       currency: str, idempotency_key: str) -> ChargeResult:
        now = self._now()
        self.calls.append(("charge", invoice_ref))
        fault = self._next_fault(invoice_ref)
        if fault in ("timeout", "api_error", "rate_limit"):
            return ChargeResult("error", fault, f"sandbox fault: {fault}")
        with write_transaction(self.engine) as conn:
            seen = conn.execute(select(CHARGES).where(CHARGES.c.idempotency_key == idempotency_key)).mappings().first()
            if seen is not None:  # a replay: the first answer again, nothing moves
                result = _result_of(seen)
            else:
                result = self._decide(conn, invoice_ref, payment_method_ref, now)
                if result.status in ("succeeded", "failed"):
                    conn.execute(insert(CHARGES).values(
                        idempotency_key=idempotency_key, invoice_ref=invoice_ref,
                        payment_method_ref=payment_method_ref, amount_minor=int(amount_minor),
                        currency=(currency or "USD").upper(), status=result.status, decline_code=result.decline_code,
                        created_at=now))
                    ref = conn.execute(select(CHARGES.c.id).where(CHARGES.c.idempotency_key == idempotency_key)
                                       ).scalar_one()
                    result = ChargeResult(result.status, result.decline_code, result.message, f"ch_sbx_{ref}")
        if fault == "timeout_after_charge":
            return ChargeResult("error", "timeout", "sandbox fault: the answer was lost after charging")
        return result

    def _decide(self, conn, invoice_ref: str, payment_method_ref: str | None, now: dt.datetime) -> ChargeResult:
        paid = conn.execute(select(CHARGES.c.id).where(CHARGES.c.invoice_ref == invoice_ref,
                                                       CHARGES.c.status == "succeeded")).first()
        if paid is not None:
            return ChargeResult("already_paid", None, "This invoice is already paid.")
        if not payment_method_ref:
            return ChargeResult("failed", "invalid_number", "No card on file.")
        card = conn.execute(select(CARDS).where(CARDS.c.payment_method_ref == payment_method_ref)).mappings().first()
        if card is None:
            return ChargeResult("failed", "invalid_number", "The card is not known to the issuer.")
        if card_expired(card["exp_month"], card["exp_year"], now):
            return ChargeResult("failed", "expired_card", "Your card has expired.")
        behaviour = card["behaviour"] or "ok"
        if behaviour == "ok":
            return ChargeResult("succeeded")
        from winback.dunning.policy import classify

        if classify(behaviour) == "soft" and card["recovers_at"] is not None and card["recovers_at"] <= now:
            return ChargeResult("succeeded")
        return ChargeResult("failed", behaviour, _MESSAGES.get(behaviour, "Your card was declined."))

    def lookup_invoice(self, invoice_ref: str) -> InvoiceState:
        self.calls.append(("lookup", invoice_ref))
        with self.engine.connect() as conn:
            rows = conn.execute(select(CHARGES).where(CHARGES.c.invoice_ref == invoice_ref)
                                .order_by(CHARGES.c.id)).mappings().all()
        paid = [r for r in rows if r["status"] == "succeeded"]
        last = rows[-1] if rows else None
        if paid:
            return InvoiceState(invoice_ref, "paid", paid[0]["amount_minor"], paid[0]["currency"],
                                paid_at=paid[0]["created_at"])
        return InvoiceState(invoice_ref, "open", last["amount_minor"] if last else 0,
                            last["currency"] if last else None,
                            decline_code=last["decline_code"] if last else None,
                            payment_method_ref=last["payment_method_ref"] if last else None)

    def end_subscription(self, subscription_ref: str, *, action: str, idempotency_key: str) -> None:
        self.calls.append((action, subscription_ref))
        if action not in ("cancel", "pause"):
            raise ValueError(f"end_subscription: action must be cancel or pause, not {action!r}")
        with write_transaction(self.engine) as conn:
            conn.execute(update(SUBSCRIPTIONS).where(SUBSCRIPTIONS.c.provider == self.name,
                                                     SUBSCRIPTIONS.c.external_id == subscription_ref)
                         .values(status="canceled" if action == "cancel" else "paused", updated_at=self._now()))

    def card_update_redirect(self, customer_ref: str, *, return_url: str, cancel_url: str) -> str | None:
        return None  # winback's own card form (web/public) collects the card

    def set_default_payment_method(self, customer_ref: str, payment_method_ref: str) -> None:
        self.calls.append(("default", customer_ref))  # the service updates billing_subscriptions itself


_MESSAGES = {
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "An error occurred while processing your card. Try again in a little bit.",
    "lost_card": "Your card was declined.",
    "stolen_card": "Your card was declined.",
    "fraudulent": "Your card was declined.",
    "card_velocity_exceeded": "Your card was declined for making repeated attempts too frequently.",
}


def _result_of(row) -> ChargeResult:
    return ChargeResult(row["status"], row["decline_code"], _MESSAGES.get(row["decline_code"] or ""),
                        f"ch_sbx_{row['id']}")
