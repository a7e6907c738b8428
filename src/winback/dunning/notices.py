"""Dunning e-mails: transactional notices through the delivery engine's outbox.

Everything here writes ``outbox_messages`` rows with ``category='transactional'``: the delivery
worker sends them whatever the customer's marketing opt-out, preference-centre pause or frequency
cap says (an address suppressed for *all* mail - a hard bounce, a complaint - still stops them).
They carry no promotion: no offer, coupon, discount or upsell; only what happened, what happens
next and the signed, expiring, no-login card-update link (:func:`winback.campaigns.links.card_update_url`,
lifetime ``[dunning] card_link_days``; its message key is the notice's Message-ID, so visits are
tracked like any click).

Failed-payment sequence (:func:`schedule_case_notices`), for each ``open`` case with
``first_failed_at`` and a customer with an e-mail address:

* one notice per ``[dunning] notice_days`` offset (default 0, 3, 7 days after the first failure),
  key ``dunning:case:{case}:{index}`` (``index`` is the offset's position in ``notice_days``),
  and a final notice 2 days before ``grace_until``, key ``dunning:case:{case}:final``;
* only the latest step that is due is written - a scheduler that was down for a week sends one
  current notice, never a backlog - and an older notice of the case still waiting in the outbox
  is canceled (superseded); nothing is written once ``grace_until`` has passed;
* the content follows the case: a hard decline (``needs_update``) says what the bank answered, in
  plain words, and asks for a new card (``dunning/payment_failed_hard``); a soft one says when we
  try again - nothing to do, or update the card (``dunning/payment_failed_soft``); the final notice
  says when the subscription ends (``dunning/final_notice``). While a gateway error is being retried
  within minutes (``quick_retries``) nothing is sent: the bank has not answered yet.

:func:`cancel_case_notices` cancels a case's waiting notices (recovered or closed);
:func:`enqueue_recovered_notice` writes the receipt ``dunning:case:{case}:recovered``
(``dunning/payment_received``).

Card-expiry reminders (:func:`schedule_expiry_reminders`): for each active card that is the
default card of an active, trialing or past-due subscription of a customer with an e-mail address,
valid through the last day of its expiry month, one reminder per threshold of
``[dunning] expiry_reminder_days`` (30, 15, 7): the nearest threshold the card is within, once,
key ``dunning:expiry:{provider}:{card}:{year}-{month:02d}:{days}``. A new expiry (the customer or
the networks' card updater changed the card) gives new keys - and no reminder while it is far
away; :func:`cancel_expiry_reminders` cancels what was waiting for the old card, and each run also
cancels waiting notices whose case or card no longer needs them (a missed call is repaired).

Templates live in ``campaigns/templates/dunning/`` (en, ja, ko, uk, zh) and are rendered by
:func:`winback.campaigns.rendering.render_message`; their extra merge tags are under ``dunning``
(see :data:`DUNNING_TAGS`). The functions take an open connection; the caller commits.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from winback.campaigns import links
from winback.campaigns.rendering import KNOWN_TAGS, render_message, resolve_locale
from winback.campaigns.scheduler import message_id, template_paths
from winback.config import Settings
from winback.delivery.outbox import enqueue
from winback.models.customer import Customer
from winback.models.delivery import OutboxMessage
from winback.models.dunning import BillingPaymentMethod, BillingSubscription, DunningCase

OUTBOX = OutboxMessage.__table__
CASES = DunningCase.__table__
CARDS = BillingPaymentMethod.__table__
SUBSCRIPTIONS = BillingSubscription.__table__
CUSTOMERS = Customer.__table__

PRIORITY = 90  # transactional notices go before campaign mail (campaign priorities default to 50)
FINAL_BEFORE = dt.timedelta(days=2)  # the final notice: this long before the grace period ends
LIVE_SUBSCRIPTIONS = ("active", "trialing", "past_due")
TEMPLATES = ("dunning/payment_failed_hard", "dunning/payment_failed_soft", "dunning/final_notice",
             "dunning/card_expiring", "dunning/payment_received")

# --- merge tags -------------------------------------------------------------------------------------------

#: The ``dunning`` merge tags of the templates above (declared with the renderer's other tags).
DUNNING_TAGS: dict[str, Any] = KNOWN_TAGS["dunning"]

# the greeting when the customer's name is unknown (same words as the default playbook's fallbacks)
FALLBACKS = {"customer.first_name": {"en": "there", "ja": "お客様", "ko": "고객님", "uk": "друже", "zh": "您好"}}

# --- the bank's answer in plain words ------------------------------------------------------------------------

_REASON_GROUPS: dict[str, tuple[str, ...]] = {
    "expired": ("expired_card", "invalid_expiry_month", "invalid_expiry_year"),
    "details": ("incorrect_number", "invalid_number", "incorrect_cvc", "invalid_cvc", "incorrect_zip",
                "invalid_account"),
    "blocked": ("lost_card", "stolen_card", "pickup_card"),
    "closed": ("account_closed", "no_account", "revocation_of_authorization", "revocation_of_all_authorizations",
               "new_account_information_available", "card_declined_permanently"),
    "not_supported": ("card_not_supported", "currency_not_supported", "transaction_not_allowed", "not_permitted",
                      "restricted_card", "service_not_allowed"),
    "authentication": ("authentication_required", "approve_with_id", "offline_pin_required",
                       "online_or_offline_pin_required", "pin_try_exceeded", "incorrect_pin"),
    "do_not_retry": ("fraudulent", "merchant_blacklist", "security_violation", "do_not_try_again",
                     "stop_payment_order", "testmode_decline"),
    "funds": ("insufficient_funds", "card_velocity_exceeded", "withdrawal_count_limit_exceeded"),
    "temporary": ("try_again_later", "processing_error", "issuer_not_available", "reenter_transaction",
                  "timeout", "api_connection_error", "rate_limit", "api_error", "gateway_error"),
}
_GROUP_OF = {code: group for group, codes in _REASON_GROUPS.items() for code in codes}

REASONS: dict[str, dict[str, str]] = {
    "en": {
        "expired": "the card has expired",
        "details": "the card details no longer match what the bank has on file",
        "blocked": "the bank has blocked this card (this happens, for example, after a card is reported lost)",
        "closed": "the account behind this card is closed or the card was replaced",
        "not_supported": "this card cannot be used for this kind of payment",
        "authentication": "the bank asked for a confirmation that cannot be given for an automatic payment",
        "do_not_retry": "the bank declined the payment and asked us not to charge this card again",
        "funds": "the card did not have enough available funds, or a card limit was reached",
        "temporary": "the bank could not process the payment at that moment",
        "generic": "the bank declined the payment without giving a reason",
    },
    "ja": {
        "expired": "カードの有効期限が切れています",
        "details": "カード情報がカード会社の登録内容と一致しません",
        "blocked": "カード会社によってこのカードの利用が停止されています（紛失の届け出があった場合など）",
        "closed": "このカードの口座が解約されているか、カードが新しいものに切り替わっています",
        "not_supported": "このカードはこの種類のお支払いにご利用いただけません",
        "authentication": "自動でのお支払いでは行えない追加の本人確認をカード会社が求めています",
        "do_not_retry": "カード会社がお支払いを承認せず、このカードへの再請求をしないよう求めています",
        "funds": "カードのご利用可能額が不足しているか、利用限度額に達しています",
        "temporary": "カード会社がその時点でお支払いを処理できませんでした",
        "generic": "カード会社が理由を示さずにお支払いを承認しませんでした",
    },
    "ko": {
        "expired": "카드 유효기간이 지났습니다",
        "details": "카드 정보가 카드사에 등록된 정보와 일치하지 않습니다",
        "blocked": "카드사에서 이 카드의 사용을 정지했습니다(예: 분실 신고가 된 경우)",
        "closed": "이 카드의 계좌가 해지되었거나 카드가 새 카드로 교체되었습니다",
        "not_supported": "이 카드는 이런 종류의 결제에 사용할 수 없습니다",
        "authentication": "카드사에서 자동 결제로는 진행할 수 없는 추가 인증을 요청했습니다",
        "do_not_retry": "카드사에서 결제를 거절하고 이 카드로 다시 청구하지 말 것을 요청했습니다",
        "funds": "카드의 사용 가능 금액이 부족하거나 한도에 도달했습니다",
        "temporary": "카드사에서 그 시점에 결제를 처리하지 못했습니다",
        "generic": "카드사에서 사유를 밝히지 않고 결제를 거절했습니다",
    },
    "uk": {
        "expired": "термін дії картки закінчився",
        "details": "дані картки не збігаються з тими, що має банк",
        "blocked": "банк заблокував цю картку (так буває, наприклад, коли про втрату картки повідомили банк)",
        "closed": "рахунок цієї картки закрито або картку замінено на нову",
        "not_supported": "цією карткою не можна оплатити такий платіж",
        "authentication": "банк попросив підтвердження, яке неможливо надати для автоматичного платежу",
        "do_not_retry": "банк відхилив платіж і попросив більше не списувати кошти з цієї картки",
        "funds": "на картці бракувало коштів або досягнуто ліміту картки",
        "temporary": "банк не зміг обробити платіж у той момент",
        "generic": "банк відхилив платіж, не пояснивши причини",
    },
    "zh": {
        "expired": "银行卡已过期",
        "details": "银行卡信息与发卡行登记的信息不一致",
        "blocked": "发卡行已停用这张卡（例如在挂失之后）",
        "closed": "这张卡对应的账户已关闭，或卡片已换新",
        "not_supported": "这张卡不支持此类付款",
        "authentication": "发卡行要求进行自动扣款无法完成的额外验证",
        "do_not_retry": "发卡行拒绝了这笔付款，并要求我们不要再从这张卡扣款",
        "funds": "卡内可用余额不足，或已达到卡片限额",
        "temporary": "发卡行当时无法处理这笔付款",
        "generic": "发卡行拒绝了这笔付款，未说明原因",
    },
}


def decline_reason(decline_code: str | None, locale: str | None) -> str:
    """What the bank's decline code means, in plain words in the reader's language (no jargon)."""
    lang = resolve_locale(locale)
    group = _GROUP_OF.get((decline_code or "").strip().lower(), "generic")
    return REASONS.get(lang, REASONS["en"])[group]


# --- helpers ------------------------------------------------------------------------------------------------

def plan_name(plan_id: str | None) -> str | None:
    """A plan id as a reader sees it: ``plan_pro_monthly`` -> ``Pro Monthly``."""
    if not plan_id:
        return None
    text = str(plan_id).strip()
    for prefix in ("plan_", "price_"):
        if text.lower().startswith(prefix):
            text = text[len(prefix):]
    text = " ".join(text.replace("_", " ").replace("-", " ").split())
    return text.title() if text else None


def card_valid_through(exp_month: int, exp_year: int) -> dt.date:
    """A card is valid through the last day of its expiry month."""
    return dt.date(exp_year, exp_month, calendar.monthrange(exp_year, exp_month)[1])


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _customer(conn: Connection, customer_id: int | None) -> dict | None:
    if customer_id is None:
        return None
    row = conn.execute(select(CUSTOMERS.c.id, CUSTOMERS.c.external_id, CUSTOMERS.c.source, CUSTOMERS.c.email,
                              CUSTOMERS.c.name, CUSTOMERS.c.locale, CUSTOMERS.c.plan_id, CUSTOMERS.c.country)
                       .where(CUSTOMERS.c.id == customer_id)).first()
    if row is None or not (row.email or "").strip():
        return None
    return dict(row._mapping)


def _first_name(name: str | None) -> str | None:
    if not name:
        return None
    name = " ".join(str(name).split())
    return name.split(" ")[0] if " " in name else name


def _message(settings: Settings, customer: dict, *, idempotency_key: str, template: str, dunning: dict,
             now: dt.datetime, due_at: dt.datetime, payload: dict) -> dict:
    """The outbox row of one notice (rendered now, in the customer's language)."""
    mid = message_id(settings, idempotency_key)
    key = settings.signing_key()
    base = settings.sender.base_url
    address = customer["email"].strip()
    card_link = links.card_update_url(key, base, customer_id=customer["id"], message=mid, now=now,
                                      days=settings.dunning.card_link_days)
    link_set = {"card_update": card_link, "cta": card_link}
    context = {
        "customer": {"id": customer["external_id"], "first_name": _first_name(customer.get("name")),
                     "name": customer.get("name"), "email": address, "locale": customer.get("locale"),
                     "country": customer.get("country"), "plan": customer.get("plan_id"),
                     "plan_name": dunning.get("plan_name")},
        "product": {"name": settings.sender.product_name, "url": settings.sender.product_url.rstrip("/")},
        "sender": {"name": settings.sender.from_name, "address": settings.sender.from_address,
                   "postal_address": settings.sender.postal_address},
        "links": link_set,
        "dunning": dunning,
    }
    rendered = render_message(template, customer.get("locale"), context, category="transactional",
                              search_paths=template_paths(settings), fallbacks=FALLBACKS,
                              open_pixel=links.open_pixel_url(key, base, message=mid))
    body = {"postal_address": settings.sender.postal_address, "links": link_set, "template": template, **payload}
    return {
        "idempotency_key": idempotency_key, "message_id": mid, "customer_id": customer["id"], "campaign_id": None,
        "enrollment_id": None, "step": None, "channel": "email", "category": "transactional",
        "priority": PRIORITY, "variant": None, "locale": rendered.locale, "to_address": address,
        "from_address": settings.sender.from_address, "subject": rendered.subject, "text_body": rendered.text,
        "html_body": rendered.html, "headers": None, "payload": json.dumps(body, default=str, ensure_ascii=False),
        "status": "pending", "due_at": due_at, "attempts": 0, "created_at": now,
    }


def _pending(conn: Connection, prefix: str) -> list[tuple[int, str]]:
    return [(r.id, r.idempotency_key) for r in conn.execute(
        select(OUTBOX.c.id, OUTBOX.c.idempotency_key).where(
            OUTBOX.c.idempotency_key.startswith(prefix, autoescape=True), OUTBOX.c.status == "pending"))]


def _cancel(conn: Connection, ids: list[int], reason: str) -> int:
    if not ids:
        return 0
    return conn.execute(update(OUTBOX).where(OUTBOX.c.id.in_(ids), OUTBOX.c.status == "pending")
                        .values(status="canceled", status_reason=reason[:500])).rowcount or 0


def _exists(conn: Connection, key: str) -> bool:
    return conn.execute(select(OUTBOX.c.id).where(OUTBOX.c.idempotency_key == key)).first() is not None


# --- the failed-payment sequence --------------------------------------------------------------------------

def case_key(case_id: int, step: int | str) -> str:
    return f"dunning:case:{case_id}:{step}"


def case_steps(settings: Settings, first_failed_at: dt.datetime, grace_until: dt.datetime | None
               ) -> list[tuple[str, dt.datetime]]:
    """(step, due time) of a case's notices in time order: ``0``, ``1`` ... per ``notice_days`` offset,
    then ``final`` 2 days before ``grace_until``; steps due after the final notice are dropped."""
    first = _aware(first_failed_at)
    steps = [(str(i), first + dt.timedelta(days=float(d))) for i, d in enumerate(settings.dunning.notice_days)]
    grace = _aware(grace_until)
    if grace is not None:
        final_at = max(grace - FINAL_BEFORE, first)
        steps = [(s, at) for s, at in steps if at < final_at] + [("final", final_at)]
    return sorted(steps, key=lambda s: s[1])


def _case_data(conn: Connection, case: dict, locale: str | None) -> dict:
    plan = None
    if case.get("subscription_ref"):
        plan = conn.execute(select(SUBSCRIPTIONS.c.plan_id).where(
            SUBSCRIPTIONS.c.provider == case["provider"],
            SUBSCRIPTIONS.c.external_id == case["subscription_ref"])).scalar()
    card = None
    if case.get("payment_method_ref"):
        row = conn.execute(select(CARDS.c.brand, CARDS.c.last4, CARDS.c.exp_month, CARDS.c.exp_year).where(
            CARDS.c.provider == case["provider"], CARDS.c.external_id == case["payment_method_ref"])).first()
        if row is not None and row.last4:
            card = {"brand": (row.brand or "").title() or None, "last4": row.last4, "exp_month": row.exp_month,
                    "exp_year": row.exp_year}
    code = case.get("last_decline_code") or case.get("first_decline_code")
    return {"card": card, "amount_minor": int(case["amount_minor"] or 0), "currency": case.get("currency"),
            "plan_name": plan_name(plan), "reason": decline_reason(code, locale), "decline_code": code,
            "failed_at": _aware(case.get("first_failed_at")), "next_attempt_at": _aware(case.get("next_attempt_at")),
            "grace_until": _aware(case.get("grace_until")), "paid_at": _aware(case.get("recovered_at"))}


def _case_template(case: dict, step: str) -> str:
    if step == "final":
        return "dunning/final_notice"
    if case.get("needs_update"):
        return "dunning/payment_failed_hard"
    return "dunning/payment_failed_soft"


def schedule_case_notices(conn: Connection, settings: Settings, now: dt.datetime) -> int:
    """Write the failed-payment notice that is due for every open case (see the module docstring);
    returns how many messages were new. Idempotent: a re-run writes nothing."""
    cancel_stale_notices(conn, now)
    if not settings.dunning.notices:
        return 0
    cases = [dict(r._mapping) for r in conn.execute(
        select(CASES).where(CASES.c.status == "open", CASES.c.first_failed_at.is_not(None),
                            CASES.c.customer_id.is_not(None)).order_by(CASES.c.id))]
    written = 0
    for case in cases:
        grace = _aware(case["grace_until"])
        if grace is not None and now >= grace:
            continue  # the grace period is over: the service ends the case, no more notices
        if case.get("last_category") == "gateway" and case.get("quick_retries") and case.get("next_attempt_at"):
            continue  # a gateway error retried within minutes: the bank has not answered yet
        due = [(step, at) for step, at in case_steps(settings, case["first_failed_at"], grace) if at <= now]
        if not due:
            continue
        step, due_at = due[-1]
        key = case_key(case["id"], step)
        if _exists(conn, key):
            continue
        customer = _customer(conn, case["customer_id"])
        if customer is None:
            continue
        data = _case_data(conn, case, customer.get("locale"))
        row = _message(settings, customer, idempotency_key=key, template=_case_template(case, step), dunning=data,
                       now=now, due_at=due_at, payload={"dunning": {"kind": "case", "case_id": case["id"],
                                                                    "step": step}})
        older = [i for i, k in _pending(conn, case_key(case["id"], "")) if k != key and not k.endswith(":recovered")]
        _cancel(conn, older, f"superseded by {key}")
        written += enqueue(conn, [row], now)
    return written


def cancel_case_notices(conn: Connection, case_id: int, now: dt.datetime, reason: str) -> int:
    """Cancel the case's notices still waiting in the outbox (the receipt is kept); returns how many."""
    ids = [i for i, k in _pending(conn, case_key(case_id, "")) if not k.endswith(":recovered")]
    return _cancel(conn, ids, reason or "dunning case closed")


def enqueue_recovered_notice(conn: Connection, settings: Settings, case_id: int, now: dt.datetime) -> int:
    """The receipt ``payment received, thanks`` of a recovered case (once); cancels the case's waiting
    notices. Returns 1 when the receipt was written, else 0 (no failure, no e-mail, sent before)."""
    case = conn.execute(select(CASES).where(CASES.c.id == case_id)).first()
    if case is None:
        return 0
    case = dict(case._mapping)
    cancel_case_notices(conn, case_id, now, "payment received")
    if not settings.dunning.notices or case["status"] != "recovered" or case["first_failed_at"] is None:
        return 0
    key = case_key(case_id, "recovered")
    if _exists(conn, key):
        return 0
    customer = _customer(conn, case["customer_id"])
    if customer is None:
        return 0
    data = _case_data(conn, case, customer.get("locale"))
    data["paid_at"] = data["paid_at"] or now
    row = _message(settings, customer, idempotency_key=key, template="dunning/payment_received", dunning=data,
                   now=now, due_at=now, payload={"dunning": {"kind": "case", "case_id": case_id, "step": "recovered"}})
    return enqueue(conn, [row], now)


# --- card-expiry reminders ---------------------------------------------------------------------------------

def expiry_key(provider: str, payment_method_ref: str, exp_year: int, exp_month: int, days: int) -> str:
    return f"dunning:expiry:{provider}:{payment_method_ref}:{exp_year}-{exp_month:02d}:{days}"


def due_threshold(thresholds: list[int], days_left: int) -> int | None:
    """The nearest reminder threshold a card ``days_left`` from its end is within (None: none, or
    already expired)."""
    if days_left < 0:
        return None
    within = [t for t in thresholds if days_left <= t]
    return min(within) if within else None


def _reminder_cards(conn: Connection, until: dt.date | None = None) -> list[dict]:
    """Active default cards of live subscriptions (one row per card; the customer of either row) that
    run out by ``until`` (all when None). Two plain scans joined here: SQLite without statistics
    would otherwise search every subscription of the provider for each card."""
    cards = select(CARDS.c.provider, CARDS.c.external_id, CARDS.c.brand, CARDS.c.last4, CARDS.c.exp_month,
                   CARDS.c.exp_year, CARDS.c.customer_id.label("card_customer")).where(
        CARDS.c.status == "active", CARDS.c.exp_month.between(1, 12), CARDS.c.exp_year.is_not(None))
    if until is not None:
        cards = cards.where(CARDS.c.exp_year * 12 + CARDS.c.exp_month <= until.year * 12 + until.month)
    wanted = {(r.provider, r.external_id): dict(r._mapping) for r in conn.execute(cards)}
    if not wanted:
        return []
    subs = select(SUBSCRIPTIONS.c.provider, SUBSCRIPTIONS.c.payment_method_ref, SUBSCRIPTIONS.c.customer_id,
                  SUBSCRIPTIONS.c.plan_id, SUBSCRIPTIONS.c.external_id).where(
        SUBSCRIPTIONS.c.status.in_(LIVE_SUBSCRIPTIONS), SUBSCRIPTIONS.c.payment_method_ref.is_not(None)
    ).order_by(SUBSCRIPTIONS.c.external_id)
    seen: dict[tuple[str, str], dict] = {}
    for r in conn.execute(subs):
        card = wanted.get((r.provider, r.payment_method_ref))
        if card is None or (r.customer_id is None and card["card_customer"] is None):
            continue
        seen.setdefault((r.provider, r.payment_method_ref), {**card, "sub_customer": r.customer_id,
                                                            "plan_id": r.plan_id, "subscription_ref": r.external_id})
    return [seen[k] for k in sorted(seen)]


def schedule_expiry_reminders(conn: Connection, settings: Settings, now: dt.datetime) -> int:
    """Remind customers whose default card runs out soon (see the module docstring); returns how many
    reminders were new. Idempotent."""
    thresholds = sorted({int(d) for d in settings.dunning.expiry_reminder_days if int(d) >= 0})
    # cards further from their end than the largest threshold need nothing (and no pending reminder)
    horizon = now.date() + dt.timedelta(days=max(thresholds, default=0) + 1)
    cards = _reminder_cards(conn, until=horizon)
    _cancel_stale_reminders(conn, {(c["provider"], c["external_id"]): (c["exp_year"], c["exp_month"]) for c in cards})
    if not thresholds:
        return 0
    today = now.date()
    written = 0
    for card in cards:
        try:
            through = card_valid_through(int(card["exp_month"]), int(card["exp_year"]))
        except (ValueError, TypeError):
            continue
        days_left = (through - today).days
        threshold = due_threshold(thresholds, days_left)
        if threshold is None:
            continue
        key = expiry_key(card["provider"], card["external_id"], card["exp_year"], card["exp_month"], threshold)
        if _exists(conn, key):
            continue
        customer = _customer(conn, card["sub_customer"] or card["card_customer"])
        if customer is None:
            continue
        data = {"plan_name": plan_name(card["plan_id"]), "days_left": days_left,
                "card": {"brand": (card["brand"] or "").title() or None, "last4": card["last4"],
                         "exp_month": card["exp_month"], "exp_year": card["exp_year"],
                         "expires": f"{int(card['exp_month']):02d}/{int(card['exp_year'])}"},
                "valid_through": through}
        row = _message(settings, customer, idempotency_key=key, template="dunning/card_expiring", dunning=data,
                       now=now, due_at=now, payload={"dunning": {"kind": "expiry", "provider": card["provider"],
                                                                 "payment_method_ref": card["external_id"],
                                                                 "days": threshold, "valid_through": through}})
        prefix = f"dunning:expiry:{card['provider']}:{card['external_id']}:"
        _cancel(conn, [i for i, k in _pending(conn, prefix) if k != key], f"superseded by {key}")
        written += enqueue(conn, [row], now)
    return written


def cancel_expiry_reminders(conn: Connection, provider: str, payment_method_ref: str, now: dt.datetime) -> int:
    """Cancel the card's reminders still waiting in the outbox (the card was updated); returns how many."""
    ids = [i for i, _ in _pending(conn, f"dunning:expiry:{provider}:{payment_method_ref}:")]
    return _cancel(conn, ids, "the card was updated")


# --- repairs -------------------------------------------------------------------------------------------------

def cancel_stale_notices(conn: Connection, now: dt.datetime) -> int:
    """Cancel waiting case notices whose case is no longer open (a missed :func:`cancel_case_notices`)."""
    stale = []
    pending = _pending(conn, "dunning:case:")
    if not pending:
        return 0
    ids = {}
    for outbox_id, key in pending:
        parts = key.split(":")
        if len(parts) == 4 and parts[2].isdigit() and parts[3] != "recovered":
            ids.setdefault(int(parts[2]), []).append(outbox_id)
    if not ids:
        return 0
    open_ids = set(conn.execute(select(CASES.c.id).where(CASES.c.id.in_(sorted(ids)), CASES.c.status == "open"))
                   .scalars())
    for case_id, outbox_ids in ids.items():
        if case_id not in open_ids:
            stale.extend(outbox_ids)
    return _cancel(conn, stale, "dunning case is no longer open")


def _cancel_stale_reminders(conn: Connection, current: dict[tuple[str, str], tuple[int, int]]) -> int:
    """Cancel waiting reminders of cards that changed expiry, were detached or are no longer a default."""
    stale = []
    for outbox_id, key in _pending(conn, "dunning:expiry:"):
        body = key[len("dunning:expiry:"):]
        head, _, days = body.rpartition(":")
        card, _, expiry = head.rpartition(":")
        provider, _, ref = card.partition(":")
        exp = current.get((provider, ref))
        if exp is None or f"{int(exp[0])}-{int(exp[1]):02d}" != expiry:
            stale.append(outbox_id)
    return _cancel(conn, stale, "the card changed or is no longer used")


__all__ = ["DUNNING_TAGS", "FALLBACKS", "REASONS", "TEMPLATES", "cancel_case_notices", "cancel_expiry_reminders",
           "cancel_stale_notices", "card_valid_through", "case_key", "case_steps", "decline_reason",
           "due_threshold", "enqueue_recovered_notice", "expiry_key", "plan_name", "schedule_case_notices",
           "schedule_expiry_reminders"]
