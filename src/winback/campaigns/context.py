"""The merge data of one message (the tags a template may use; see :mod:`winback.campaigns.rendering`).

Built from the customer record the delivery engine trusts (state store), the merge data captured
from the history when the customer was enrolled (plan, features used, past purchases, what shipped
while they were away, the checkout), the enrollment's decision (reason, strategy, offer) and the
coupon issued for it. Every link is signed (:mod:`winback.campaigns.links`); calls to action go
through the click redirect so they can be tracked.
"""

from __future__ import annotations

import datetime as dt
import json

from winback.campaigns import links
from winback.config import Settings
from winback.playbooks.spec import PlaybookSpec


def _first_name(name: str | None) -> str | None:
    if not name:
        return None
    name = " ".join(str(name).split())
    # CJK names are written family name first without a space: address the whole name
    return name.split(" ")[0] if " " in name else name


def _localised(texts: dict | None, locale: str | None) -> str | None:
    if not texts:
        return None
    lang = (locale or "en").split("-")[0].lower()
    return texts.get(lang) or texts.get("en")


def build_context(settings: Settings, *, spec: PlaybookSpec, customer: dict, enrollment: dict | None,
                  context: dict, offer_key: str | None, offer, coupon: dict | None, message: str,
                  now: dt.datetime, step_key: str, step_index: int, subject_variant: str | None = None,
                  cta_variant: str | None = None, unsubscribe: str | None = None) -> dict:
    key = settings.signing_key()
    base = settings.sender.base_url
    product = settings.sender.product_url.rstrip("/")
    details = context.get("details") or {}
    facts = context.get("facts") or {}
    locale = customer.get("locale")
    decision = json.loads(enrollment["decision"]) if enrollment and enrollment.get("decision") else {}
    reason = facts.get("reason") or customer.get("reason") or "unknown"
    strategy_key = (enrollment or {}).get("strategy") or decision.get("strategy")
    strategy = spec.strategies.get(strategy_key) if strategy_key else None
    created = customer.get("created_at")
    tenure = facts.get("tenure_days")
    address = (customer.get("email") or "").strip()

    def click(target: str, name: str) -> str:
        return links.tracked_url(key, base, message=message, target=target, link=name)

    code = coupon["code"] if coupon else None
    reactivate = f"{product}/reactivate" + (f"?coupon={code}" if code else "")
    event = context.get("event") or {}
    props = event.get("properties") or {}
    checkout = None
    if event.get("type") in ("checkout_abandoned", "checkout_failed"):
        checkout = {"items": [{"name": _plan_name(spec, props.get("plan_id"), details),
                               "quantity": int(props.get("items_count") or 1),
                               "amount_minor": int(props.get("amount_minor") or 0)}],
                    "amount_minor": int(props.get("amount_minor") or 0),
                    "currency": props.get("currency") or facts.get("currency") or spec.currency,
                    "id": props.get("checkout_id")}
    cta_target = reactivate
    if checkout:
        cta_target = f"{product}/checkout/{checkout['id'] or ''}".rstrip("/")
    link_set = {
        "cta": click(cta_target, "cta"),
        "unsubscribe": unsubscribe,
        "preferences": links.preferences_url(key, base, customer_id=customer["id"]) if address else None,
        "survey": links.survey_url(key, base, customer_id=customer["id"], message=message, now=now),
        "card_update": links.card_update_url(key, base, customer_id=customer["id"], message=message, now=now),
        "booking": click(f"{product}/book-session", "booking"),
        "referral": click(f"{product}/referral", "referral"),
        "tutorials": click(f"{product}/tutorials", "tutorials"),
    }
    releases = details.get("releases") or {}
    requested = []
    for feature in facts.get("requested_features") or ():
        shipped = releases.get(feature)
        requested.append({"key": feature, "name": shipped["name"] if shipped else feature.replace("_", " "),
                          "shipped": shipped is not None, "shipped_at": shipped["shipped_at"] if shipped else None})
    if event.get("type") == "release_shipped" and props.get("feature"):
        requested = [r for r in requested if r["key"] == props["feature"]] or [
            {"key": props["feature"], "name": props.get("title") or props["feature"], "shipped": True,
             "shipped_at": None}]
    offer_ctx = None
    if offer is not None and offer.kind != "none":
        expires = coupon["expires_at"] if coupon else now + dt.timedelta(days=offer.expires_days)
        offer_ctx = {"key": offer_key, "kind": offer.kind, "title": _localised(offer.title, locale),
                     "percent": offer.percent, "months": offer.months, "days": offer.days,
                     "free_months": offer.free_months, "amount_minor": offer.amount_minor,
                     "currency": spec.currency, "expires_at": _date(expires)}
    return {
        "customer": {"id": customer.get("external_id"), "first_name": _first_name(customer.get("name")),
                     "name": customer.get("name"), "company": customer.get("company"), "email": address or None,
                     "plan": customer.get("plan_id"), "plan_name": details.get("plan_name") or customer.get("plan_id"),
                     "locale": locale, "country": customer.get("country"),
                     "since": _date(created), "tenure_months": int(tenure // 30) if tenure else None},
        "product": {"name": settings.sender.product_name, "url": product},
        "sender": {"name": settings.sender.from_name, "address": settings.sender.from_address,
                   "postal_address": settings.sender.postal_address},
        "reason": reason,
        "strategy": {"key": strategy_key, "title": strategy.title if strategy else None,
                     "message": _localised(strategy.message, locale) if strategy else None},
        "features_used": [f.replace("_", " ") for f in details.get("features_used") or ()],
        "past_purchases": details.get("past_purchases") or [],
        "requested_features": requested,
        "shipped_while_away": details.get("shipped_while_away") or [],
        "competitor": facts.get("competitor"),
        "offer": offer_ctx,
        "coupon": {"code": code, "expires_at": _date(coupon["expires_at"])} if coupon else None,
        "checkout": checkout,
        "links": link_set,
        "variant": {"subject": subject_variant, "cta": cta_variant},
        "step": {"key": step_key, "index": step_index},
    }


def _plan_name(spec: PlaybookSpec, plan_id: str | None, details: dict) -> str:
    return (plan_id or details.get("plan_name") or "your order").replace("plan_", "").replace("_", " ").title()


def _date(value) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.datetime.fromisoformat(str(value)).date()
    except ValueError:
        return None
