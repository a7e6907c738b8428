"""The recipient routes: ``/o`` pixel, ``/c`` click, ``/u`` unsubscribe, ``/p`` preferences, ``/s``
survey, ``/b`` card update. No login: the signed token in the URL is the authority
(:mod:`winback.campaigns.links`).

Rules every route follows:

* a token that does not verify (tampered, another purpose, too long, not ASCII) changes nothing
  and gets a 400 page - the pixel still answers its GIF; an expired one gets a 410 page;
* ``HEAD`` requests change nothing; a ``GET`` changes nothing except recording an open or a
  click (link scanners are recorded as machine clicks by :mod:`winback.tracking.service`);
  unsubscribing takes a ``POST`` (RFC 8058 one-click, or the confirmation form);
* a click redirects only to the http(s) target its MAC covers, never anywhere else;
* forms posted from the preference centre and the survey carry a field derived from the token
  (HMAC, purpose ``prefs-form`` / ``survey-form``), so a form on another site cannot post them
  without knowing the token itself.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
from urllib.parse import parse_qs, urlsplit

from babel.dates import format_date
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from winback.campaigns.links import preferences_url
from winback.campaigns.topics import TOPIC_KEYS, topic_text
from winback.delivery import suppression
from winback.delivery.policy import address_problem, normalize_address
from winback.kit.db import write_transaction
from winback.kit.errors import WinbackError
from winback.kit.money import Money
from winback.kit.signing import BadSignature, verify
from winback.tracking import service as tracking
from winback.web.public import store
from winback.web.public import survey as exit_survey
from winback.web.public.texts import language, texts
from winback.web.templating import templates

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
MAX_TOKEN = 2048
MAX_BODY = 64 * 1024
PAUSE_DAYS = (30, 90)
NO_STORE = {"Cache-Control": "no-store"}


class LinkProblem(Exception):
    def __init__(self, status: int, kind: str):
        super().__init__(kind)
        self.status, self.kind = status, kind


# --- helpers --------------------------------------------------------------------------------------

def _now(request: Request) -> dt.datetime:
    return request.app.state.clock.now()


def check_token(request: Request, purpose: str, token: str) -> dict:
    """The payload of a valid, unexpired token of ``purpose``; :class:`LinkProblem` otherwise."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN or not token.isascii():
        raise LinkProblem(400, "invalid")
    try:
        data = verify(request.app.state.settings.signing_key(), purpose, token)
    except (BadSignature, TypeError, ValueError):
        raise LinkProblem(400, "invalid") from None
    exp = data.get("exp")
    if exp is not None:
        try:
            expired = _now(request).timestamp() > float(exp)
        except (TypeError, ValueError):
            raise LinkProblem(400, "invalid") from None
        if expired:
            raise LinkProblem(410, "expired")
    return data


def form_key(request: Request, purpose: str, token: str) -> str:
    """The hidden form field that ties a posted form to its own page's token."""
    key = request.app.state.settings.signing_key()
    return hmac.new(key, f"{purpose}\x00{token}".encode(), hashlib.sha256).hexdigest()[:32]


def _form_ok(request: Request, purpose: str, token: str, form: dict[str, list[str]]) -> bool:
    sent = (form.get("csrf") or [""])[0]
    return isinstance(sent, str) and sent.isascii() and hmac.compare_digest(sent, form_key(request, purpose, token))


async def _read_form(request: Request) -> dict[str, list[str]]:
    """The posted fields (url-encoded or multipart); an unreadable or other body gives no fields."""
    ctype = request.headers.get("content-type", "").lower()
    try:
        if ctype.startswith("multipart/form-data"):
            form = await request.form(max_files=0, max_fields=50)
            return {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form.keys()}
        body = await request.body()
        if len(body) > MAX_BODY:
            return {}
        if ctype.startswith("application/x-www-form-urlencoded") or not ctype:
            return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=50)
    except Exception:  # a malformed body is treated as no fields
        return {}
    return {}


def _lang(request: Request, customer_locale: str | None = None, form: dict | None = None) -> str:
    explicit = request.query_params.get("lang") or ((form or {}).get("lang") or [None])[0]
    return language(explicit, customer_locale, request.headers.get("accept-language"))


def _page(request: Request, template: str, lang: str, status: int = 200, **context) -> Response:
    settings = request.app.state.settings
    t = texts(lang)
    product = settings.sender.product_name
    return templates.TemplateResponse(request, f"public/{template}", {
        "t": t, "lang": lang, "product": product, "support": settings.sender.reply_to or settings.sender.from_address,
        "fmt": lambda key, **kw: t[key].format(product=product, **kw), **context,
    }, status_code=status, headers=NO_STORE)


def _problem(request: Request, problem: LinkProblem, lang: str | None = None) -> Response:
    lang = lang or _lang(request)
    key = {"invalid": "invalid", "expired": "expired", "notfound": "notfound"}[problem.kind]
    return _page(request, "message.html", lang, problem.status, title_key=f"{key}_title", body_key=f"{key}_body")


def _safe_target(target) -> str | None:
    """An absolute http(s) URL with a host and no whitespace or control characters, else None."""
    if not isinstance(target, str) or not target or len(target) > 4096:
        return None
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7f for ch in target) or "\\" in target:
        return None
    try:
        parts = urlsplit(target)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return target


def _client(request: Request) -> tuple[str | None, str | None]:
    return request.headers.get("user-agent"), (request.client.host if request.client else None)


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


# --- /o: the open pixel ---------------------------------------------------------------------------------

@router.api_route("/o/{token}.gif", methods=["GET", "HEAD"])
async def open_pixel(request: Request, token: str) -> Response:
    if request.method == "GET":
        try:
            data = check_token(request, "open", token)
            message = _text(data.get("m"))
            if message:
                ua, ip = _client(request)
                await run_in_threadpool(tracking.record_open, request.app.state.engine, request.app.state.settings,
                                        message=message, user_agent=ua, ip=ip, now=_now(request))
        except LinkProblem:
            pass
        except Exception:  # recording must never break the image
            log.exception("recording an open failed")
    return Response(GIF, media_type="image/gif",
                    headers={"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache"})


# --- /c: tracked clicks -----------------------------------------------------------------------------------

@router.api_route("/c/{token}", methods=["GET", "HEAD"])
async def click(request: Request, token: str) -> Response:
    try:
        data = check_token(request, "click", token)
    except LinkProblem as problem:
        return _problem(request, problem)
    target = _safe_target(data.get("t"))
    if target is None:
        return _problem(request, LinkProblem(400, "invalid"))
    message = _text(data.get("m"))
    if request.method == "GET" and message:
        ua, ip = _client(request)
        try:
            await run_in_threadpool(tracking.record_click, request.app.state.engine, request.app.state.settings,
                                    message=message, link=_text(data.get("l")), target=target, user_agent=ua, ip=ip,
                                    now=_now(request))
        except Exception:  # the reader still gets where they wanted to go
            log.exception("recording a click failed")
    return RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})


# --- /u: unsubscribe ------------------------------------------------------------------------------------

def _unsubscribe_target(request: Request, data: dict) -> tuple[dict | None, dict | None]:
    """(outbox row, customer) the token points at; either may be unknown."""
    with request.app.state.engine.connect() as conn:
        message = _text(data.get("m"))
        row = tracking.message_by_key(conn, message) if message else None
        customer = store.customer(conn, data.get("c"))
        if customer is None and row and row.get("customer_id") is not None:
            customer = store.customer(conn, row["customer_id"])
    return row, customer


def _do_unsubscribe(request: Request, data: dict, method: str, *, source: str) -> dict | None:
    """Suppress and opt out whatever the token identifies; record it once. Returns the customer."""
    engine, now = request.app.state.engine, _now(request)
    row, customer = _unsubscribe_target(request, data)
    customer_id = customer["id"] if customer else None
    addresses = []
    for candidate in ((row or {}).get("to_address"), (customer or {}).get("email")):
        if candidate and not address_problem(normalize_address(candidate)):
            addresses.append(normalize_address(candidate))
    if addresses:
        # one call suppresses the message's address and the customer's current one (it locks both)
        try:
            suppression.unsubscribe(engine, addresses[0], customer_id=customer_id, source=source,
                                    scope="commercial", now=now)
        except WinbackError:
            log.warning("unsubscribe of %s failed", addresses[0], exc_info=True)
    elif customer_id is not None:
        with write_transaction(engine) as conn:
            store.opt_out(conn, customer_id, now)
    _record(request, "unsubscribe", row, customer_id, {"method": method, "source": source},
            key=f"unsubscribe:{customer_id or '-'}:{_text(data.get('m')) or '-'}")
    return customer


def _record(request: Request, kind: str, row: dict | None, customer_id: int | None, detail: dict,
            key: str | None = None) -> None:
    try:
        with write_transaction(request.app.state.engine) as conn:
            tracking.record_event(conn, kind=kind, outbox_row=row, customer_id=customer_id, source="web",
                                  now=_now(request), detail=detail, event_key=key[:255] if key else None)
    except Exception:  # the change itself is committed; a lost tracking row must not turn it into an error
        log.exception("recording a %s event failed", kind)


@router.get("/u/{token}")
async def unsubscribe_page(request: Request, token: str) -> Response:
    try:
        data = check_token(request, "unsubscribe", token)
    except LinkProblem as problem:
        return _problem(request, problem)
    _row, customer = await run_in_threadpool(_unsubscribe_target, request, data)
    lang = _lang(request, (customer or {}).get("locale"))
    prefs = None
    if customer is not None:
        prefs = preferences_url(request.app.state.settings.signing_key(), "", customer_id=customer["id"])
    return _page(request, "unsubscribe.html", lang, action=request.url.path, prefs_url=prefs, done=False)


@router.post("/u/{token}")
async def unsubscribe_post(request: Request, token: str) -> Response:
    """RFC 8058 one-click (``List-Unsubscribe=One-Click``, any body) or the confirmation form."""
    try:
        data = check_token(request, "unsubscribe", token)
    except LinkProblem as problem:
        if problem.status == 400:
            return PlainTextResponse("invalid unsubscribe link\n", status_code=400, headers=NO_STORE)
        return _problem(request, problem)
    form = await _read_form(request)
    confirmed = (form.get("confirm") or [""])[0] == "1"
    customer = await run_in_threadpool(_do_unsubscribe, request, data, "page" if confirmed else "one-click",
                                       source="link" if confirmed else "one-click")
    if not confirmed:
        return PlainTextResponse("unsubscribed\n", headers=NO_STORE)
    lang = _lang(request, (customer or {}).get("locale"), form)
    return _page(request, "message.html", lang, title_key="unsub_done_title", body_key="unsub_done_body",
                 ok=True)


# --- /p: the preference centre ----------------------------------------------------------------------------

def _prefs_state(request: Request, customer_id: int) -> tuple[dict | None, dict]:
    with request.app.state.engine.connect() as conn:
        return store.customer(conn, customer_id), store.preferences(conn, customer_id)


def _prefs_page(request: Request, token: str, customer: dict, prefs: dict, lang: str, *, saved: bool = False,
                status: int = 200) -> Response:
    now = _now(request)
    paused = prefs["paused_until"] if prefs["paused_until"] and prefs["paused_until"] > now else None
    topics = [{"key": k, "title": topic_text(k, lang)[0], "description": topic_text(k, lang)[1],
               "on": k not in prefs["topics_off"]} for k in TOPIC_KEYS]
    paused_text = format_date(paused.date(), format="long", locale=lang) if paused else None
    return _page(request, "preferences.html", lang, status, action=request.url.path, topics=topics,
                 paused=paused_text, opted_out=bool(customer["marketing_opt_out"]), saved=saved,
                 csrf=form_key(request, "prefs-form", token), pause_days=PAUSE_DAYS)


@router.get("/p/{token}")
async def preferences_page(request: Request, token: str) -> Response:
    try:
        data = check_token(request, "preferences", token)
    except LinkProblem as problem:
        return _problem(request, problem)
    customer, prefs = await run_in_threadpool(_prefs_state, request, data.get("c"))
    if customer is None:
        return _problem(request, LinkProblem(404, "notfound"))
    return _prefs_page(request, token, customer, prefs, _lang(request, customer.get("locale")))


def _apply_preferences(request: Request, customer: dict, prefs: dict, action: str, form: dict) -> dict:
    now = _now(request)
    topics_off, paused_until = list(prefs["topics_off"]), prefs["paused_until"]
    if action == "save":
        chosen = set(form.get("topics") or [])
        topics_off = sorted(k for k in TOPIC_KEYS if k not in chosen) + \
            sorted(t for t in topics_off if t not in TOPIC_KEYS)  # keep topics this page does not know
    elif action.startswith("pause") and action[5:].isdigit() and int(action[5:]) in PAUSE_DAYS:
        paused_until = now + dt.timedelta(days=int(action[5:]))
    elif action == "resume":
        paused_until = None
    if action == "unsubscribe_all":
        _do_unsubscribe(request, {"c": customer["id"]}, "preferences", source="preferences")
    else:
        with write_transaction(request.app.state.engine) as conn:
            store.save_preferences(conn, customer["id"], topics_off=topics_off, paused_until=paused_until, now=now)
        _record(request, "preferences", None, customer["id"],
                {"action": action, "topics_off": topics_off,
                 "paused_until": paused_until.isoformat() if paused_until else None})
    return _prefs_state(request, customer["id"])


PREF_ACTIONS = ("save", "resume", "unsubscribe_all") + tuple(f"pause{d}" for d in PAUSE_DAYS)


@router.post("/p/{token}")
async def preferences_post(request: Request, token: str) -> Response:
    try:
        data = check_token(request, "preferences", token)
    except LinkProblem as problem:
        return _problem(request, problem)
    form = await _read_form(request)
    customer, prefs = await run_in_threadpool(_prefs_state, request, data.get("c"))
    if customer is None:
        return _problem(request, LinkProblem(404, "notfound"), _lang(request, None, form))
    lang = _lang(request, customer.get("locale"), form)
    action = (form.get("action") or ["save"])[0]
    if not _form_ok(request, "prefs-form", token, form) or action not in PREF_ACTIONS:
        return _problem(request, LinkProblem(400, "invalid"), lang)
    customer, prefs = await run_in_threadpool(_apply_preferences, request, customer, prefs, action, form)
    return _prefs_page(request, token, customer, prefs, lang, saved=True)


# --- /s: the exit survey -------------------------------------------------------------------------------

def _survey_state(request: Request, data: dict) -> tuple[dict | None, dict | None]:
    with request.app.state.engine.connect() as conn:
        customer = store.customer(conn, data.get("c"))
        message, name = _text(data.get("m")), _text(data.get("s")) or "exit"
        previous = store.survey_response(conn, customer["id"], name, message) if customer and message else None
    return customer, previous


def _survey_page(request: Request, token: str, lang: str, previous: dict | None, status: int = 200,
                 values: dict | None = None) -> Response:
    answers = dict((previous or {}).get("answers") or {})
    if previous:
        answers["comment"] = previous.get("comment")
    answers.update(values or {})
    return _page(request, "survey.html", lang, status, action=request.url.path, answers=answers,
                 reasons=exit_survey.REASONS, bring_back=exit_survey.BRING_BACK, max_text=exit_survey.MAX_TEXT,
                 csrf=form_key(request, "survey-form", token))


@router.get("/s/{token}")
async def survey_page(request: Request, token: str) -> Response:
    try:
        data = check_token(request, "survey", token)
    except LinkProblem as problem:
        return _problem(request, problem)
    customer, previous = await run_in_threadpool(_survey_state, request, data)
    if customer is None or not _text(data.get("m")):
        return _problem(request, LinkProblem(404, "notfound"))
    return _survey_page(request, token, _lang(request, customer.get("locale")), previous)


def _save_survey(request: Request, data: dict, customer: dict, lang: str, answers: exit_survey.Answers) -> None:
    now = _now(request)
    message, name = data["m"], _text(data.get("s")) or "exit"
    with write_transaction(request.app.state.engine) as conn:
        row = tracking.message_by_key(conn, message)
        response_id, version = store.save_survey(conn, customer_id=customer["id"], survey=name, message=message,
                                                 locale=lang, reason=answers.reason, answers=answers.as_json(),
                                                 comment=answers.comment, now=now)
        tracking.record_event(conn, kind="survey", outbox_row=row, customer_id=customer["id"], source="web",
                              now=now, detail={"survey": name, "reason": answers.reason,
                                               "response_id": response_id, "version": version},
                              event_key=f"survey:{response_id}:{version}")


@router.post("/s/{token}")
async def survey_post(request: Request, token: str) -> Response:
    try:
        data = check_token(request, "survey", token)
    except LinkProblem as problem:
        return _problem(request, problem)
    form = await _read_form(request)
    customer, _previous = await run_in_threadpool(_survey_state, request, data)
    if customer is None or not _text(data.get("m")):
        return _problem(request, LinkProblem(404, "notfound"), _lang(request, None, form))
    lang = _lang(request, customer.get("locale"), form)
    if not _form_ok(request, "survey-form", token, form):
        return _problem(request, LinkProblem(400, "invalid"), lang)
    try:
        answers = exit_survey.parse(form)
    except exit_survey.BadAnswer as bad:
        t = texts(lang)
        return _page(request, "message.html", lang, 400, title_key="bad_answer_title",
                     body=t["bad_answer_body"].format(field=t[exit_survey.QUESTIONS[bad.field]]),
                     back=request.url.path, field=bad.field)
    await run_in_threadpool(_save_survey, request, data, customer, lang, answers)
    return _page(request, "message.html", lang, title_key="thanks_title", body_key="thanks_body", ok=True)


# --- /b: the card-update page ------------------------------------------------------------------------------

CARD_FORM = "card-form"
_CARD_ERRORS = {"number": "card_bad_number", "expiry": "card_bad_expiry", "cvc": "card_bad_cvc"}


def _card_state(request: Request, data: dict):
    from winback.web.public import card as card_page

    return card_page.load(request.app.state.engine, data.get("c"), request.app.state.settings.dunning.gateway)


def _card_page(request: Request, token: str, state, lang: str, *, status: int = 200, result: str | None = None,
               body: str | None = None, error: str | None = None, error_field: str | None = None,
               show_form: bool = True) -> Response:
    """The page: what is due, then the form (sandbox) or the button to Stripe Checkout; ``result``
    names a heading (``paid``, ``declined``, ``error``, ``saved``, ``nothing``, ``returned``)."""
    settings = request.app.state.settings
    t = texts(lang)
    support = settings.sender.reply_to or settings.sender.from_address
    due = ", ".join(m.format(lang) for m in state.due()) if state.cases else None
    mode = None
    if show_form and state.customer_ref:
        mode = "stripe" if settings.dunning.gateway == "stripe" else "form"
    if result is None and not state.cases:
        result = "nothing"
    intro = None
    if state.cases and mode:
        intro = t["card_intro_stripe"] if mode == "stripe" else t["card_intro"]
    return _page(request, "card_update.html", lang, status, action=request.url.path,
                 csrf=form_key(request, CARD_FORM, token), mode=mode, due=t["card_due"].format(amount=due) if due else None,
                 intro=intro, result=result, ok=result in ("paid", "saved", "nothing", "returned"),
                 result_body=body or (t[f"card_{result}_body"] if result else None),
                 update_note=t["card_nothing_update"] if mode and not state.cases else None,
                 submit=t["card_submit"] if state.cases else t["card_submit_update"], error=error,
                 error_field=error_field, support_line=t["card_support"].format(support=support))


@router.get("/b/{token}")
async def card_update(request: Request, token: str) -> Response:
    try:
        data = check_token(request, "card_update", token)
    except LinkProblem as problem:
        return _problem(request, problem)
    state = await run_in_threadpool(_card_state, request, data)
    if state.customer is None:
        return _problem(request, LinkProblem(404, "notfound"))
    lang = _lang(request, state.customer.get("locale"))
    if request.query_params.get("done") == "1" and request.app.state.settings.dunning.gateway == "stripe":
        return _card_page(request, token, state, lang, result="returned", show_form=False)
    return _card_page(request, token, state, lang)


def _card_urls(request: Request, token: str) -> tuple[str, str]:
    base = request.app.state.settings.sender.base_url.rstrip("/")
    page = f"{base}/b/{token}"
    return f"{page}?done=1", page


def _gateway(request: Request):
    from winback.dunning.gateways import make_gateway

    return make_gateway(request.app.state.settings, engine=request.app.state.engine, clock=request.app.state.clock)


def _stripe_redirect(request: Request, token: str, customer_ref: str) -> str | None:
    return_url, cancel_url = _card_urls(request, token)
    return _gateway(request).card_update_redirect(customer_ref, return_url=return_url, cancel_url=cancel_url)


def _sandbox_update(request: Request, state, number: str, exp_month: str, exp_year: str, cvc: str) -> dict:
    """Check and store the typed card (the sandbox keeps brand, last4, expiry), make it the default and
    charge the open invoices with it. Raises ``CardRejected`` for a card no issuer would accept."""
    from winback.dunning import service

    gateway = _gateway(request)
    card_info = gateway.add_card(state.customer_ref, number=number, exp_month=exp_month, exp_year=exp_year,
                                 cvc=cvc)
    return service.update_card(request.app.state.settings, engine=request.app.state.engine,
                               provider=gateway.name, customer_ref=state.customer_ref, card=card_info,
                               via="customer", now=_now(request), charge_now=True, gateway=gateway)


@router.post("/b/{token}")
async def card_update_post(request: Request, token: str) -> Response:
    """Stripe: a 303 to Checkout in setup mode (the card then arrives by webhook). Sandbox: the form -
    the card is checked, stored as brand/last4/expiry only, and the open invoices are charged now.
    Nothing the customer typed is logged."""
    from winback.dunning.gateways.sandbox import CardRejected
    from winback.dunning.notices import decline_reason

    try:
        data = check_token(request, "card_update", token)
    except LinkProblem as problem:
        return _problem(request, problem)
    form = await _read_form(request)
    state = await run_in_threadpool(_card_state, request, data)
    if state.customer is None:
        return _problem(request, LinkProblem(404, "notfound"), _lang(request, None, form))
    lang = _lang(request, state.customer.get("locale"), form)
    if not _form_ok(request, CARD_FORM, token, form):
        return _problem(request, LinkProblem(400, "invalid"), lang)
    t = texts(lang)
    if not state.customer_ref:
        return _card_page(request, token, state, lang)
    settings = request.app.state.settings
    if settings.dunning.gateway == "stripe":
        try:
            target = await run_in_threadpool(_stripe_redirect, request, token, state.customer_ref)
        except Exception:
            log.exception("creating the card-update session failed")
            target = None
        if not _safe_target(target):
            support = settings.sender.reply_to or settings.sender.from_address
            return _page(request, "message.html", lang, 503, title_key="card_unavailable_title",
                         body=t["card_unavailable_body"].format(support=support))
        return RedirectResponse(target, status_code=303, headers=NO_STORE)

    def field(name: str) -> str:
        value = (form.get(name) or [""])[0]
        return value[:64] if isinstance(value, str) else ""

    exp_month, exp_year = _parse_expiry(field("exp"))
    try:
        result = await run_in_threadpool(_sandbox_update, request, state, field("number"), exp_month, exp_year,
                                         field("cvc"))
    except CardRejected as bad:
        key = "card_expired" if bad.field == "expiry" and "expired" in bad.reason.lower() else \
            _CARD_ERRORS.get(bad.field, "card_bad_number")
        return _card_page(request, token, state, lang, status=400, error=t[key], error_field=bad.field,
                          result="", body="")
    except Exception:
        log.exception("the card update failed")  # the exception carries no card data
        support = settings.sender.reply_to or settings.sender.from_address
        return _page(request, "message.html", lang, 503, title_key="card_unavailable_title",
                     body=t["card_unavailable_body"].format(support=support))
    charges = result.get("charges") or []
    state = await run_in_threadpool(_card_state, request, data)
    failed = [c for c in charges if c.get("status") == "failed"]
    if failed:
        reason = decline_reason(failed[0].get("decline_code"), lang)
        return _card_page(request, token, state, lang, result="declined",
                          body=t["card_declined_body"].format(reason=reason))
    if any(c.get("status") == "error" for c in charges):
        return _card_page(request, token, state, lang, result="error", show_form=False)
    paid = [c for c in charges if c.get("status") == "succeeded"]
    if paid:
        totals: dict[str, int] = {}
        for c in paid:
            totals[str(c["currency"]).upper()] = totals.get(str(c["currency"]).upper(), 0) + int(c["amount_minor"])
        amount = ", ".join(Money(v, k).format(lang) for k, v in sorted(totals.items()))
        return _card_page(request, token, state, lang, result="paid", body=t["card_paid_body"].format(amount=amount),
                          show_form=False)
    return _card_page(request, token, state, lang, result="saved", show_form=False)


def _parse_expiry(text: str) -> tuple[str, str]:
    from winback.web.public.card import parse_expiry

    return parse_expiry(text)
