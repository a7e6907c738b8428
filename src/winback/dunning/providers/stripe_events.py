"""Stripe Event objects -> :class:`~winback.dunning.events.BillingEvent`.

An event is ``{"id": "evt_...", "object": "event", "type": ..., "created": <unix>, "data":
{"object": {...}, "previous_attributes": {...}}}`` (https://docs.stripe.com/api/events/object).
The mapping (``STRIPE_KINDS``):

==========================================================  =========================================
Stripe type                                                 kind
==========================================================  =========================================
``invoice.payment_failed``                                  ``invoice_payment_failed``
``invoice.paid``, ``invoice.payment_succeeded``             ``invoice_paid``
``invoice.voided``, ``invoice.marked_uncollectible``        ``invoice_closed``
``charge.failed``, ``payment_intent.payment_failed``        ``payment_failed_detail``
``payment_method.automatically_updated``                    ``payment_method_updated`` (card updater)
``payment_method.attached`` / ``.updated`` / ``.detached``  ``payment_method_updated`` (customer;
                                                            ``card.detached`` for detached)
``customer.updated`` (with a default payment method)        ``default_payment_method``
``setup_intent.succeeded``                                  ``default_payment_method`` (customer)
``customer.subscription.created|updated|deleted|paused|     ``subscription_updated``
resumed``
anything else                                               ``ignored``
==========================================================  =========================================

Lenient about API versions: since 2025-03-31 (basil) an invoice names its subscription under
``parent.subscription_details.subscription``, a subscription's ``current_period_end`` sits on its
items, and charges / payment intents no longer name their invoice (then ``invoice`` is None on a
``payment_failed_detail`` event and ``extra`` holds ``payment_intent`` / ``charge`` /
``decline_code`` for matching). Expanded objects (``customer``, ``charge``, ``payment_intent``,
``payment_method``) are read as their ids, and their details are used when present.

Decline codes: a charge's ``outcome.reason`` (the issuer's reason, e.g. ``insufficient_funds``) wins
over its ``failure_code`` (often just ``card_declined``); a payment intent's
``last_payment_error.decline_code`` wins over its ``code``. An ``invoice.payment_failed`` event
usually carries no decline code (Stripe's ``charge.failed`` that comes with it does); one is taken
from an expanded ``charge`` / ``payment_intent`` or from ``last_finalization_error`` when present.

Money stays in Stripe's minor units. MRR of a subscription is the list price of its licensed
recurring items (``unit_amount * quantity``, before discounts and tax), normalised to a month:
a year is 12 months, a week 52/12 of a month, a day 365/12; divided by ``interval_count``; rounded
to the nearest minor unit.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from winback.dunning.events import BillingEvent, CardEvent, InvoiceInfo, SubscriptionInfo
from winback.dunning.providers import BadBillingEvent, as_int, as_str, dig, from_unix, ref, upper

__all__ = ["STRIPE_KINDS", "parse", "monthly_amount"]

STRIPE_KINDS: dict[str, str] = {
    "invoice.payment_failed": "invoice_payment_failed",
    "invoice.paid": "invoice_paid",
    "invoice.payment_succeeded": "invoice_paid",
    "invoice.voided": "invoice_closed",
    "invoice.marked_uncollectible": "invoice_closed",
    "charge.failed": "payment_failed_detail",
    "payment_intent.payment_failed": "payment_failed_detail",
    "payment_method.automatically_updated": "payment_method_updated",
    "payment_method.attached": "payment_method_updated",
    "payment_method.updated": "payment_method_updated",
    "payment_method.detached": "payment_method_updated",
    "customer.updated": "default_payment_method",
    "setup_intent.succeeded": "default_payment_method",
    "customer.subscription.created": "subscription_updated",
    "customer.subscription.updated": "subscription_updated",
    "customer.subscription.deleted": "subscription_updated",
    "customer.subscription.paused": "subscription_updated",
    "customer.subscription.resumed": "subscription_updated",
}
MONTHS_PER_INTERVAL = {"month": Fraction(1), "year": Fraction(12), "week": Fraction(12, 52),
                       "day": Fraction(12, 365)}


def parse(event: dict, *, event_id: str | None = None) -> BillingEvent:
    """One Stripe Event object (already JSON-decoded)."""
    evt_id = as_str(event.get("id")) or (event_id or None)
    if not evt_id:
        raise BadBillingEvent("stripe: the event has no id")
    raw_type = as_str(event.get("type"))
    if raw_type is None:
        raise BadBillingEvent(f"stripe {evt_id}: the event has no type")
    occurred_at = from_unix(event.get("created"))
    if occurred_at is None:
        raise BadBillingEvent(f"stripe {evt_id}: the event has no created time (unix seconds)")
    extra = {key: event[key] for key in ("livemode", "api_version", "account") if event.get(key) is not None}
    base = {"provider": "stripe", "event_id": evt_id, "raw_type": raw_type, "occurred_at": occurred_at}
    kind = STRIPE_KINDS.get(raw_type)
    obj = dig(event, "data", "object")
    if kind is None:
        customer = ref(obj.get("customer")) if isinstance(obj, dict) else None
        return BillingEvent(kind="ignored", customer_ref=customer, extra=extra, **base)
    if not isinstance(obj, dict):
        raise BadBillingEvent(f"stripe {evt_id} ({raw_type}): data.object is missing")
    if ref(obj) is None:
        raise BadBillingEvent(f"stripe {evt_id} ({raw_type}): data.object has no id")
    previous = dig(event, "data", "previous_attributes")
    previous = previous if isinstance(previous, dict) else {}
    fields = _BUILDERS[kind](obj, raw_type, previous, extra)
    return BillingEvent(kind=fields.pop("kind", kind), extra=extra, **base, **fields)


# --- invoices ---------------------------------------------------------------------------------

def _invoice_fields(obj: dict, raw_type: str, previous: dict, extra: dict) -> dict:
    charge = obj.get("charge") if isinstance(obj.get("charge"), dict) else None
    intent = obj.get("payment_intent") if isinstance(obj.get("payment_intent"), dict) else None
    if intent is None:  # basil: payments.data[].payment.payment_intent (expanded when asked)
        for payment in _list(dig(obj, "payments", "data")):
            candidate = dig(payment, "payment", "payment_intent")
            if ref(candidate):
                extra.setdefault("payment_intent", ref(candidate))
            if intent is None and isinstance(candidate, dict):
                intent = candidate
    decline, message = None, None
    if charge is not None:
        decline, message = _charge_decline(charge)
    if decline is None and intent is not None:
        decline, message = _intent_decline(intent)
    if decline is None:
        error = obj.get("last_finalization_error")
        if isinstance(error, dict):
            decline = as_str(error.get("decline_code")) or as_str(error.get("code"))
            message = message or as_str(error.get("message"))
    payment_method = (ref(obj.get("default_payment_method")) or ref((intent or {}).get("payment_method"))
                      or ref((charge or {}).get("payment_method")))
    if ref(obj.get("payment_intent")):
        extra["payment_intent"] = ref(obj.get("payment_intent"))
    next_attempt = from_unix(obj.get("next_payment_attempt"))
    if next_attempt is not None:
        extra["next_payment_attempt"] = next_attempt
    invoice = InvoiceInfo(
        ref=ref(obj) or "", customer_ref=ref(obj.get("customer")),
        subscription_ref=ref(obj.get("subscription")) or ref(dig(obj, "parent", "subscription_details",
                                                                   "subscription")),
        amount_minor=as_int(obj.get("amount_due")), currency=upper(obj.get("currency")),
        status=as_str(obj.get("status")), attempt_count=as_int(obj.get("attempt_count")),
        decline_code=decline, failure_message=message, payment_method_ref=payment_method,
        charge_ref=ref(obj.get("charge")) or ref((intent or {}).get("latest_charge")),
        paid_at=from_unix(dig(obj, "status_transitions", "paid_at")),
        billing_reason=as_str(obj.get("billing_reason")))
    return {"customer_ref": invoice.customer_ref, "customer_email": as_str(obj.get("customer_email")),
            "invoice": invoice}


# --- failed charges and payment intents ---------------------------------------------------------

def _charge_decline(charge: dict) -> tuple[str | None, str | None]:
    code = as_str(dig(charge, "outcome", "reason")) or as_str(charge.get("failure_code"))
    return code, as_str(charge.get("failure_message")) or as_str(dig(charge, "outcome", "seller_message"))


def _intent_decline(intent: dict) -> tuple[str | None, str | None]:
    error = intent.get("last_payment_error")
    if not isinstance(error, dict):
        return None, None
    return (as_str(error.get("decline_code")) or as_str(error.get("code")), as_str(error.get("message")))


def _invoice_ref_of_payment(obj: dict) -> str | None:
    """The invoice a charge or payment intent paid: ``invoice`` before basil, else any place a
    newer version or an integration puts it."""
    for path in (("invoice",), ("payment_details", "invoice"), ("parent", "invoice"),
                 ("parent", "invoice_details", "invoice"), ("metadata", "invoice"), ("metadata", "invoice_id")):
        found = ref(dig(obj, *path))
        if found:
            return found
    order = as_str(dig(obj, "payment_details", "order_reference"))
    return order if order and order.startswith("in_") else None


def _payment_failed_fields(obj: dict, raw_type: str, previous: dict, extra: dict) -> dict:
    if raw_type == "charge.failed":
        decline, message = _charge_decline(obj)
        charge_ref = ref(obj)
        intent_ref = ref(obj.get("payment_intent"))
        payment_method = ref(obj.get("payment_method"))
        card = _card_event(payment_method, ref(obj.get("customer")), dig(obj, "payment_method_details", "card"))
        email = as_str(dig(obj, "billing_details", "email")) or as_str(obj.get("receipt_email"))
    else:
        decline, message = _intent_decline(obj)
        charge_ref = ref(obj.get("latest_charge"))
        intent_ref = ref(obj)
        error_method = dig(obj, "last_payment_error", "payment_method")
        payment_method = ref(error_method) or ref(obj.get("payment_method"))
        card = _card_event(payment_method, ref(obj.get("customer")),
                           dig(error_method, "card") if isinstance(error_method, dict) else None)
        email = as_str(dig(error_method, "billing_details", "email")) or as_str(obj.get("receipt_email"))
    customer = ref(obj.get("customer"))
    extra.update({k: v for k, v in (("charge", charge_ref), ("payment_intent", intent_ref),
                                    ("decline_code", decline), ("failure_message", message)) if v})
    invoice_ref = _invoice_ref_of_payment(obj)
    invoice = None
    if invoice_ref:
        invoice = InvoiceInfo(ref=invoice_ref, customer_ref=customer, amount_minor=as_int(obj.get("amount")),
                              currency=upper(obj.get("currency")), decline_code=decline, failure_message=message,
                              payment_method_ref=payment_method, charge_ref=charge_ref)
    return {"customer_ref": customer, "customer_email": email, "invoice": invoice, "card": card}


# --- cards ---------------------------------------------------------------------------------------

def _card_event(payment_method: str | None, customer: str | None, details: Any, *,
                detached: bool = False) -> CardEvent | None:
    if payment_method is None:
        return None
    details = details if isinstance(details, dict) else {}
    last4 = details.get("last4")
    return CardEvent(ref=payment_method, customer_ref=customer, brand=as_str(details.get("brand")),
                     last4=str(last4) if isinstance(last4, (str, int)) and not isinstance(last4, bool) else None,
                     exp_month=as_int(details.get("exp_month")), exp_year=as_int(details.get("exp_year")),
                     fingerprint=as_str(details.get("fingerprint")), detached=detached)


def _payment_method_fields(obj: dict, raw_type: str, previous: dict, extra: dict) -> dict:
    detached = raw_type == "payment_method.detached"
    # a detached payment method has customer null; the customer it left is in previous_attributes
    customer = ref(obj.get("customer")) or (ref(previous.get("customer")) if detached else None)
    kind_details = obj.get(obj.get("type")) if isinstance(obj.get("type"), str) else None
    details = obj.get("card") if isinstance(obj.get("card"), dict) else kind_details
    card = _card_event(ref(obj), customer, details, detached=detached)
    if card is not None and card.brand is None and isinstance(obj.get("type"), str) and obj["type"] != "card":
        card = CardEvent(**{**card.__dict__, "brand": obj["type"]})
    via = "card_updater" if raw_type == "payment_method.automatically_updated" else "customer"
    return {"customer_ref": customer, "customer_email": as_str(dig(obj, "billing_details", "email")),
            "card": card, "card_via": via}


def _default_method_fields(obj: dict, raw_type: str, previous: dict, extra: dict) -> dict:
    if raw_type == "customer.updated":
        method = dig(obj, "invoice_settings", "default_payment_method")
        out = {"customer_ref": ref(obj), "customer_email": as_str(obj.get("email"))}
        if ref(method) is None:
            return {**out, "kind": "ignored"}
        card = _card_event(ref(method), ref(obj), method.get("card")) if isinstance(method, dict) else None
        # Stripe lists what changed in previous_attributes: a customer.updated about the e-mail, the
        # delinquent flag or metadata carries the same default card and must not start a charge
        settings_before = previous.get("invoice_settings")
        if not (isinstance(settings_before, dict) and "default_payment_method" in settings_before):
            return {**out, "kind": "ignored"}
        return {**out, "default_payment_method_ref": ref(method), "card": card, "card_via": "customer"}
    # setup_intent.succeeded: a card saved for later (Checkout in setup mode, our card-update page)
    method, customer = obj.get("payment_method"), ref(obj.get("customer"))
    if ref(method) is None or customer is None:
        return {"customer_ref": customer, "kind": "ignored"}
    card = _card_event(ref(method), customer, method.get("card")) if isinstance(method, dict) else None
    extra["setup_intent"] = ref(obj)
    return {"customer_ref": customer, "default_payment_method_ref": ref(method), "card": card,
            "card_via": "customer",
            "customer_email": as_str(dig(method, "billing_details", "email")) if isinstance(method, dict) else None}


# --- subscriptions -------------------------------------------------------------------------------

def monthly_amount(unit_amount: int, quantity: int, interval: str, interval_count: int = 1) -> int | None:
    """``unit_amount * quantity`` per ``interval_count`` ``interval``s, as minor units per month."""
    months = MONTHS_PER_INTERVAL.get(interval)
    if months is None or interval_count < 1:
        return None
    return round(Fraction(unit_amount * quantity) / (months * interval_count))


def _item_mrr(item: dict) -> int | None:
    price = item.get("price") if isinstance(item.get("price"), dict) else item.get("plan")
    if not isinstance(price, dict):
        return None
    recurring = price.get("recurring") if isinstance(price.get("recurring"), dict) else price  # legacy plans
    if recurring.get("usage_type") == "metered":
        return None
    amount = as_int(price.get("unit_amount"))
    if amount is None:
        amount = as_int(price.get("amount"))  # legacy plan
    if amount is None and isinstance(price.get("unit_amount_decimal"), str):
        try:
            amount = round(Fraction(price["unit_amount_decimal"]))
        except (ValueError, ZeroDivisionError):
            amount = None
    interval = as_str(recurring.get("interval"))
    if amount is None or interval is None:
        return None
    quantity = as_int(item.get("quantity"))
    return monthly_amount(amount, 1 if quantity is None else quantity, interval,
                          as_int(recurring.get("interval_count")) or 1)


def _subscription_fields(obj: dict, raw_type: str, previous: dict, extra: dict) -> dict:
    items = [item for item in _list(dig(obj, "items", "data")) if isinstance(item, dict)]
    amounts = [a for a in (_item_mrr(item) for item in items) if a is not None]
    prices = [item.get("price") if isinstance(item.get("price"), dict) else item.get("plan") for item in items]
    prices = [p for p in prices if isinstance(p, dict)]
    period_end = from_unix(obj.get("current_period_end"))
    if period_end is None:
        ends = [end for end in (from_unix(item.get("current_period_end")) for item in items) if end is not None]
        period_end = max(ends) if ends else None
    currency = upper(obj.get("currency")) or next((upper(p.get("currency")) for p in prices if p.get("currency")),
                                                  None)
    for key in ("cancel_at_period_end", "canceled_at", "ended_at"):
        if obj.get(key) is not None:
            extra[key] = from_unix(obj[key]) if key.endswith("_at") else obj[key]
    reason = as_str(dig(obj, "cancellation_details", "reason"))
    if reason:
        extra["cancellation_reason"] = reason  # payment_failed: Stripe ended it for non-payment
    info = SubscriptionInfo(
        ref=ref(obj) or "", customer_ref=ref(obj.get("customer")), status=as_str(obj.get("status")),
        plan_id=ref(prices[0]) if prices else None, mrr_minor=sum(amounts) if amounts else None,
        currency=currency, current_period_end=period_end,
        default_payment_method_ref=ref(obj.get("default_payment_method")))
    return {"customer_ref": info.customer_ref, "subscription": info}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


_BUILDERS = {
    "invoice_payment_failed": _invoice_fields, "invoice_paid": _invoice_fields, "invoice_closed": _invoice_fields,
    "payment_failed_detail": _payment_failed_fields, "payment_method_updated": _payment_method_fields,
    "default_payment_method": _default_method_fields, "subscription_updated": _subscription_fields,
}
