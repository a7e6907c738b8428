"""A fake of Stripe's v1 API that speaks the real wire protocol, for the official SDK to talk to.

Stripe's servers cannot run here, so this is a real HTTP server on 127.0.0.1 (stdlib
``ThreadingHTTPServer`` in a thread) implementing the few endpoints the dunning gateway uses, with
Stripe's conventions:

* ``Authorization: Bearer <secret key>`` - anything else is a 401 with Stripe's error envelope;
* form-encoded parameters (``a[b]=c``, ``expand[]=x`` / ``expand[0]=x``) in the body or the query;
  unknown parameters are a 400 ``parameter_unknown``;
* Stripe-shaped objects (API version basil and later: invoices carry ``payments`` - an includable
  list of invoice payments - instead of ``charge``/``payment_intent``), ``expand`` up to 4 levels;
* the error envelope ``{"error": {"type", "code", "decline_code", "message", "param",
  "request_log_url", ...}}``: 402 card errors, 400 invalid requests, 404 missing objects, 429 rate
  limits, 500 api errors; every response has a ``Request-Id`` header;
* idempotency (v1 semantics): a POST's ``Idempotency-Key`` saves the first response once the
  endpoint starts executing (successes, 402 declines, 400s of the endpoint and 500s alike) and
  replays it (``Idempotent-Replayed: true``) for the same endpoint and parameters without running
  it again; other parameters with the same key are a 400 ``idempotency_error``; a request while
  another with the same key is still running is a 409 ``idempotency_key_in_use``; 429s are not
  saved (they never reach the endpoint).

``POST /v1/invoices/{id}/pay`` is scripted per invoice with a queue of outcomes (the default, once
the queue is empty, is ``paid``):

* ``"paid"`` - the charge succeeds;
* a decline code - ``"insufficient_funds"``, ``"fraudulent"``, ... come back as ``code=card_declined``
  with that ``decline_code``; :data:`CODE_ONLY_DECLINES` (``expired_card``, ``incorrect_number``,
  ...) come back as the ``code`` alone, as Stripe sends them;
* ``"500"``, ``"429"`` - Stripe's server error / rate limit (no charge);
* ``"timeout"`` (or ``"timeout:<outcome>"``) - the outcome happens at once (``paid`` by default:
  the money moves) but the request keeps running for :attr:`FakeStripe.hang_seconds`, longer than
  the client's timeout, so the client never hears back: a lost response. Meanwhile a request with
  the same key gets the 409; afterwards it gets the saved response replayed.

Every request is recorded (:attr:`FakeStripe.requests`) and every charge that reached the issuer is
counted (:attr:`FakeStripe.attempts`; successful ones: :attr:`FakeStripe.charges`), so tests can
assert "charged at most once".
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DEFAULT_API_KEY = "sk_test_winback_fake_0123456789"

# Declines Stripe reports with ``code`` alone (no ``decline_code``).
CODE_ONLY_DECLINES = frozenset({"expired_card", "incorrect_number", "incorrect_cvc", "invalid_cvc",
                                "invalid_expiry_month", "invalid_expiry_year", "processing_error",
                                "authentication_required", "invoice_payment_intent_requires_action"})
DECLINE_MESSAGES = {
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_number": "Your card number is incorrect.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "An error occurred while processing your card. Try again in a little bit.",
    "lost_card": "Your card has been declined.",
    "stolen_card": "Your card has been declined.",
    "fraudulent": "Your card has been declined.",
}

_ALLOWED = {
    ("POST", "pay"): {"expand", "forgive", "mandate", "off_session", "paid_out_of_band", "payment_method", "source"},
    ("GET", "invoice"): {"expand"},
    ("GET", "subscription"): {"expand"},
    ("DELETE", "subscription"): {"expand", "cancellation_details", "invoice_now", "prorate"},
    ("POST", "subscription"): {"expand", "pause_collection", "default_payment_method", "metadata",
                               "cancel_at_period_end", "cancellation_details", "proration_behavior"},
    ("POST", "checkout_sessions"): {"mode", "customer", "payment_method_types", "success_url", "cancel_url",
                                    "return_url", "currency", "metadata", "setup_intent_data", "ui_mode",
                                    "client_reference_id", "locale", "expand"},
    ("POST", "customer"): {"expand", "invoice_settings", "metadata", "email", "name"},
    ("GET", "customer"): {"expand"},
}
_ROUTES = [
    ("POST", re.compile(r"^/v1/invoices/(?P<id>[^/]+)/pay$"), "pay"),
    ("GET", re.compile(r"^/v1/invoices/(?P<id>[^/]+)$"), "invoice"),
    ("GET", re.compile(r"^/v1/subscriptions/(?P<id>[^/]+)$"), "subscription"),
    ("DELETE", re.compile(r"^/v1/subscriptions/(?P<id>[^/]+)$"), "subscription"),
    ("POST", re.compile(r"^/v1/subscriptions/(?P<id>[^/]+)$"), "subscription"),
    ("POST", re.compile(r"^/v1/checkout/sessions$"), "checkout_sessions"),
    ("POST", re.compile(r"^/v1/customers/(?P<id>[^/]+)$"), "customer"),
    ("GET", re.compile(r"^/v1/customers/(?P<id>[^/]+)$"), "customer"),
]
_PREFIXES = {"in_": "invoices", "sub_": "subscriptions", "cus_": "customers", "pi_": "payment_intents",
             "pm_": "payment_methods", "ch_": "charges", "cs_": "checkout_sessions"}


class StripeHTTPError(Exception):
    """An error response in Stripe's envelope."""

    def __init__(self, status: int, type_: str, message: str, *, code: str | None = None,
                 param: str | None = None, save: bool = True, **extra: Any):
        super().__init__(message)
        self.status = status
        self.save = save  # whether the idempotency layer keeps this response
        self.hold = 0.0  # seconds the request keeps running after its outcome (the client times out)
        self.error = {"type": type_, "message": message, **({"code": code} if code else {}),
                      **({"param": param} if param else {}), **extra}


@dataclass
class RecordedRequest:
    """One request as the fake received it (headers with lower-case names)."""

    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, Any]
    raw_body: str
    status: int | None = None
    replayed: bool = False
    request_id: str | None = None

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


@dataclass
class _Saved:
    fingerprint: tuple
    status: int
    body: bytes


@dataclass
class FakeStripe:
    """The server and its state; use as a context manager or call :meth:`start` / :meth:`stop`."""

    api_key: str = DEFAULT_API_KEY
    hang_seconds: float = 1.5
    requests: list[RecordedRequest] = field(default_factory=list)
    attempts: collections.Counter = field(default_factory=collections.Counter)
    charges: collections.Counter = field(default_factory=collections.Counter)

    def __post_init__(self):
        self.objects: dict[str, dict[str, dict]] = {kind: {} for kind in _PREFIXES.values()}
        self.outcomes: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._saved: dict[str, _Saved] = {}
        self._running_keys: set[str] = set()
        self._lock = threading.RLock()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeStripe":
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-stripe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeStripe":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until no request is being handled (a held-back response has been written)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the fake is still handling a request")
                self._idle.wait(remaining)

    # ------------------------------------------------------------------ state set-up

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):04d}{secrets.token_hex(6)}"

    def add_customer(self, id: str | None = None, *, default_payment_method: str | None = None) -> dict:
        customer = {"id": id or self._new_id("cus_"), "object": "customer", "created": int(time.time()),
                    "livemode": False, "email": None, "metadata": {},
                    "invoice_settings": {"default_payment_method": default_payment_method, "custom_fields": None,
                                         "footer": None, "rendering_options": None}}
        self.objects["customers"][customer["id"]] = customer
        return customer

    def add_subscription(self, id: str | None = None, *, customer: str, status: str = "past_due",
                         default_payment_method: str | None = None) -> dict:
        subscription = {"id": id or self._new_id("sub_"), "object": "subscription", "customer": customer,
                        "status": status, "default_payment_method": default_payment_method,
                        "pause_collection": None, "canceled_at": None, "ended_at": None,
                        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
                        "metadata": {}, "created": int(time.time()), "livemode": False}
        self.objects["subscriptions"][subscription["id"]] = subscription
        return subscription

    def add_invoice(self, id: str | None = None, *, customer: str, amount_due: int = 4900, currency: str = "eur",
                    status: str = "open", subscription: str | None = None,
                    default_payment_method: str | None = None, paid_at: int | None = None) -> dict:
        now = int(time.time())
        invoice = {
            "id": id or self._new_id("in_"), "object": "invoice", "customer": customer, "currency": currency,
            "amount_due": amount_due, "amount_paid": amount_due if status == "paid" else 0,
            "amount_remaining": 0 if status == "paid" else amount_due, "attempt_count": 0, "attempted": False,
            "auto_advance": True, "collection_method": "charge_automatically", "created": now,
            "default_payment_method": default_payment_method, "livemode": False, "metadata": {},
            "status": status, "next_payment_attempt": None,
            "status_transitions": {"finalized_at": now, "paid_at": paid_at if status == "paid" else None,
                                   "voided_at": now if status == "void" else None,
                                   "marked_uncollectible_at": now if status == "uncollectible" else None},
            "parent": ({"type": "subscription_details", "quote_details": None,
                        "subscription_details": {"subscription": subscription, "metadata": {}}}
                       if subscription else None),
            "last_finalization_error": None,
        }
        invoice["_payments"] = []
        if status == "paid":
            invoice["status_transitions"]["paid_at"] = paid_at or now
            self._add_payment(invoice, self._new_payment_intent(invoice, None, succeeded=True), "paid")
        self.objects["invoices"][invoice["id"]] = invoice
        return invoice

    def script(self, invoice_id: str, *outcomes: str) -> None:
        """Queue outcomes for the next pay requests of this invoice."""
        with self._lock:
            self.outcomes[invoice_id].extend(outcomes)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # ------------------------------------------------------------------ request handling

    def handle(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request."""
        request.request_id = "req_" + secrets.token_hex(7)
        headers = {"Request-Id": request.request_id, "Stripe-Version": request.headers.get("stripe-version", "")}
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            shown = auth.removeprefix("Bearer ").strip()
            masked = (shown[:8] + "*" * 8 + shown[-4:]) if len(shown) > 12 else "****"
            error = StripeHTTPError(401, "invalid_request_error", f"Invalid API Key provided: {masked}")
            return 401, headers, self._error_body(error, request)

        key = request.idempotency_key if request.method == "POST" else None
        fingerprint = (request.method, request.path, _canonical(request.params))
        with self._lock:
            if key is not None:
                saved = self._saved.get(key)
                if saved is not None:
                    if saved.fingerprint != fingerprint:
                        error = StripeHTTPError(
                            400, "idempotency_error",
                            "Keys for idempotent requests can only be used with the same parameters they were "
                            f"first used with. Try using a key other than '{key}' if you meant to execute a "
                            "different request.")
                        return 400, headers, self._error_body(error, request)
                    request.replayed = True
                    return saved.status, {**headers, "Idempotent-Replayed": "true"}, saved.body
                if key in self._running_keys:
                    error = StripeHTTPError(
                        409, "invalid_request_error", "There is currently another in-progress request using this "
                        "Stripe API key and idempotency key. Retry this request after the other one finishes.",
                        code="idempotency_key_in_use")
                    return 409, headers, self._error_body(error, request)
                self._running_keys.add(key)
        hold = 0.0
        try:
            try:
                status, payload, hold = self._dispatch(request)
                body = json.dumps(payload).encode()
                save = True
            except StripeHTTPError as error:
                status, body, save = error.status, self._error_body(error, request), error.save
                hold = error.hold
            if hold:  # Stripe is still busy with the request: the key stays in use until it ends
                time.sleep(hold)
            with self._lock:
                if key is not None and save:
                    self._saved[key] = _Saved(fingerprint, status, body)
        finally:
            with self._lock:
                if key is not None:
                    self._running_keys.discard(key)
        return status, headers, body

    def _error_body(self, error: StripeHTTPError, request: RecordedRequest) -> bytes:
        envelope = {**error.error,
                    "request_log_url": f"{self.url}/logs/{request.request_id}" if self._server else None}
        return json.dumps({"error": envelope}).encode()

    def _dispatch(self, request: RecordedRequest) -> tuple[int, dict, float]:
        for method, pattern, name in _ROUTES:
            match = pattern.match(request.path)
            if match and method == request.method:
                allowed = _ALLOWED[(method, name)]
                for param in request.params:
                    if param not in allowed:
                        raise StripeHTTPError(400, "invalid_request_error", f"Received unknown parameter: {param}",
                                              code="parameter_unknown", param=param, save=False)
                with self._lock:
                    handler = getattr(self, f"_{method.lower()}_{name}")
                    return handler(match.groupdict().get("id"), request.params)
        raise StripeHTTPError(404, "invalid_request_error",
                              f"Unrecognized request URL ({request.method}: {request.path}).", save=False)

    # ------------------------------------------------------------------ endpoints

    def _post_pay(self, invoice_id: str, params: dict) -> tuple[int, dict, float]:
        invoice = self._get("invoices", invoice_id, "invoice")
        if invoice["status"] == "paid":
            raise StripeHTTPError(400, "invalid_request_error", "Invoice is already paid")
        if invoice["status"] != "open":
            raise StripeHTTPError(400, "invalid_request_error",
                                  f"This invoice can no longer be paid: its status is {invoice['status']}.")
        payment_method = params.get("payment_method")
        if payment_method is not None and not str(payment_method).startswith("pm_"):
            raise StripeHTTPError(400, "invalid_request_error", f"No such PaymentMethod: '{payment_method}'",
                                  code="resource_missing", param="payment_method")
        payment_method = payment_method or self._default_payment_method(invoice)
        queue = self.outcomes[invoice_id]
        outcome = queue.popleft() if queue else "paid"
        hold = 0.0
        if outcome.startswith("timeout"):
            outcome = outcome.partition(":")[2] or "paid"
            hold = self.hang_seconds
        if outcome == "500":
            raise StripeHTTPError(500, "api_error", "Sorry, something went wrong. We've already been notified of "
                                  "the problem, but if you need any help, you can reach us at our support site.")
        if outcome == "429":
            raise StripeHTTPError(429, "invalid_request_error", "Request rate limit exceeded. Learn more about rate "
                                  "limits in the API docs.", code="rate_limit", save=False)
        self.attempts[invoice_id] += 1
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        if outcome == "paid":
            intent = self._new_payment_intent(invoice, payment_method, succeeded=True)
            self._add_payment(invoice, intent, "paid")
            invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
            invoice["status_transitions"]["paid_at"] = int(time.time())
            self.charges[invoice_id] += 1
            return 200, self._export(invoice, params.get("expand")), hold
        code, decline_code = (outcome, None) if outcome in CODE_ONLY_DECLINES else ("card_declined", outcome)
        message = DECLINE_MESSAGES.get(outcome, "Your card was declined.")
        intent = self._new_payment_intent(invoice, payment_method, succeeded=False,
                                          error={"type": "card_error", "code": code, "decline_code": decline_code,
                                                 "message": message})
        self._add_payment(invoice, intent, "open")
        error = StripeHTTPError(402, "card_error", message, code=code,
                                **({"decline_code": decline_code} if decline_code else {}),
                                charge=intent["latest_charge"], payment_intent=intent,
                                doc_url=f"{self.url}/docs/error-codes/{code}")
        error.hold = hold  # a slow decline: the request keeps running (outside the lock)
        raise error

    def _get_invoice(self, invoice_id: str, params: dict) -> tuple[int, dict, float]:
        return 200, self._export(self._get("invoices", invoice_id, "invoice"), params.get("expand")), 0.0

    def _get_subscription(self, subscription_id: str, params: dict) -> tuple[int, dict, float]:
        subscription = self._get("subscriptions", subscription_id, "subscription")
        return 200, self._export(subscription, params.get("expand")), 0.0

    def _delete_subscription(self, subscription_id: str, params: dict) -> tuple[int, dict, float]:
        subscription = self._get("subscriptions", subscription_id, "subscription")
        if subscription["status"] == "canceled":
            raise StripeHTTPError(400, "invalid_request_error", "A canceled subscription can only update its "
                                  "cancellation_details and metadata.")
        now = int(time.time())
        subscription.update(status="canceled", canceled_at=now, ended_at=now)
        subscription["cancellation_details"]["reason"] = "cancellation_requested"
        return 200, self._export(subscription, params.get("expand")), 0.0

    def _post_subscription(self, subscription_id: str, params: dict) -> tuple[int, dict, float]:
        subscription = self._get("subscriptions", subscription_id, "subscription")
        if subscription["status"] == "canceled" and set(params) - {"metadata", "cancellation_details", "expand"}:
            raise StripeHTTPError(400, "invalid_request_error", "A canceled subscription can only update its "
                                  "cancellation_details and metadata.")
        if "pause_collection" in params:
            pause = params["pause_collection"]
            if pause == "":
                subscription["pause_collection"] = None
            else:
                behavior = pause.get("behavior") if isinstance(pause, dict) else None
                if behavior not in ("keep_as_draft", "mark_uncollectible", "void"):
                    raise StripeHTTPError(400, "invalid_request_error", f"Invalid pause_collection[behavior]: "
                                          f"must be one of keep_as_draft, mark_uncollectible, or void",
                                          code="parameter_invalid_empty" if not behavior else None,
                                          param="pause_collection[behavior]")
                subscription["pause_collection"] = {"behavior": behavior,
                                                    "resumes_at": _int(pause.get("resumes_at"))}
        if "default_payment_method" in params:
            subscription["default_payment_method"] = params["default_payment_method"] or None
        if isinstance(params.get("metadata"), dict):
            subscription["metadata"].update(params["metadata"])
        return 200, self._export(subscription, params.get("expand")), 0.0

    def _post_checkout_sessions(self, _id: None, params: dict) -> tuple[int, dict, float]:
        mode = params.get("mode")
        if mode not in ("payment", "setup", "subscription"):
            raise StripeHTTPError(400, "invalid_request_error", "Missing required param: mode.",
                                  code="parameter_missing", param="mode")
        if params.get("ui_mode", "hosted") == "hosted" and not params.get("success_url"):
            raise StripeHTTPError(400, "invalid_request_error", "Missing required param: success_url.",
                                  code="parameter_missing", param="success_url")
        if mode == "setup" and not params.get("payment_method_types") and not params.get("currency"):
            raise StripeHTTPError(400, "invalid_request_error", "currency is required in setup mode when "
                                  "payment_method_types is not set.", code="parameter_missing", param="currency")
        customer = params.get("customer")
        if customer is not None:
            self._get("customers", customer, "customer", param="customer")
        session_id = self._new_id("cs_test_")
        session = {"id": session_id, "object": "checkout.session", "mode": mode, "customer": customer,
                   "currency": params.get("currency"), "payment_method_types": params.get("payment_method_types"),
                   "success_url": params.get("success_url"), "cancel_url": params.get("cancel_url"),
                   "metadata": params.get("metadata") or {}, "status": "open", "livemode": False,
                   "setup_intent": self._new_id("seti_"), "url": f"{self.url}/c/pay/{session_id}",
                   "expires_at": int(time.time()) + 24 * 3600, "created": int(time.time())}
        self.objects["checkout_sessions"][session_id] = session
        return 200, self._export(session, params.get("expand")), 0.0

    def _post_customer(self, customer_id: str, params: dict) -> tuple[int, dict, float]:
        customer = self._get("customers", customer_id, "customer")
        settings = params.get("invoice_settings")
        if isinstance(settings, dict) and "default_payment_method" in settings:
            customer["invoice_settings"]["default_payment_method"] = settings["default_payment_method"] or None
        if isinstance(params.get("metadata"), dict):
            customer["metadata"].update(params["metadata"])
        for name in ("email", "name"):
            if name in params:
                customer[name] = params[name]
        return 200, self._export(customer, params.get("expand")), 0.0

    def _get_customer(self, customer_id: str, params: dict) -> tuple[int, dict, float]:
        return 200, self._export(self._get("customers", customer_id, "customer"), params.get("expand")), 0.0

    # ------------------------------------------------------------------ objects

    def _get(self, kind: str, object_id: str, noun: str, *, param: str = "id") -> dict:
        found = self.objects[kind].get(object_id)
        if found is None:
            raise StripeHTTPError(404, "invalid_request_error", f"No such {noun}: '{object_id}'",
                                  code="resource_missing", param=param)
        return found

    def _default_payment_method(self, invoice: dict) -> str | None:
        if invoice.get("default_payment_method"):
            return invoice["default_payment_method"]
        parent = invoice.get("parent") or {}
        subscription = self.objects["subscriptions"].get((parent.get("subscription_details") or {})
                                                         .get("subscription"))
        if subscription and subscription.get("default_payment_method"):
            return subscription["default_payment_method"]
        customer = self.objects["customers"].get(invoice["customer"]) or {}
        return (customer.get("invoice_settings") or {}).get("default_payment_method")

    def _new_payment_intent(self, invoice: dict, payment_method: str | None, *, succeeded: bool,
                            error: dict | None = None) -> dict:
        intent = {"id": self._new_id("pi_"), "object": "payment_intent", "amount": invoice["amount_due"],
                  "currency": invoice["currency"], "customer": invoice["customer"],
                  "payment_method": payment_method, "latest_charge": self._new_id("ch_"),
                  "status": "succeeded" if succeeded else "requires_payment_method",
                  "last_payment_error": None, "created": int(time.time()), "livemode": False}
        if error is not None:
            intent["last_payment_error"] = {k: v for k, v in error.items() if v is not None}
            intent["last_payment_error"]["payment_method"] = {"id": payment_method, "object": "payment_method"}
        self.objects["payment_intents"][intent["id"]] = intent
        return intent

    def _add_payment(self, invoice: dict, intent: dict, status: str) -> None:
        now = time.time()
        invoice["_payments"].insert(0, {  # Stripe lists the newest first
            "id": self._new_id("inpay_"), "object": "invoice_payment", "invoice": invoice["id"],
            "amount_requested": invoice["amount_due"],
            "amount_paid": invoice["amount_due"] if status == "paid" else None, "currency": invoice["currency"],
            "created": int(now),
            "is_default": not invoice["_payments"], "livemode": False, "status": status,
            "payment": {"type": "payment_intent", "payment_intent": intent["id"]},
            "status_transitions": {"paid_at": int(now) if status == "paid" else None, "canceled_at": None},
        })

    def _export(self, obj: dict, expand: Any) -> dict:
        """A JSON copy with private fields dropped, includable fields included and ``expand`` applied."""
        paths = _as_list(expand)
        out = json.loads(json.dumps({k: v for k, v in obj.items() if not k.startswith("_")}))
        if obj.get("object") == "invoice" and any(p == "payments" or p.startswith("payments.") for p in paths):
            out["payments"] = {"object": "list", "data": json.loads(json.dumps(obj["_payments"])),
                               "has_more": False, "url": f"/v1/invoices/{obj['id']}/payments"}
        for path in paths:
            parts = path.split(".")
            if len(parts) > 4:
                raise StripeHTTPError(400, "invalid_request_error",
                                      "You cannot expand more than 4 levels of a property.", param="expand")
            self._expand(out, parts, path)
        return out

    def _expand(self, node: Any, parts: list[str], path: str) -> None:
        if isinstance(node, list):
            for item in node:
                self._expand(item, parts, path)
            return
        if not isinstance(node, dict) or not parts:
            return
        head, rest = parts[0], parts[1:]
        if head not in node:
            raise StripeHTTPError(400, "invalid_request_error",
                                  f"This property cannot be expanded ({head}).", param="expand")
        value = node[head]
        if isinstance(value, str):
            kind = next((kind for prefix, kind in _PREFIXES.items() if value.startswith(prefix)), None)
            found = self.objects.get(kind, {}).get(value) if kind else None
            if found is not None:
                value = node[head] = self._export(found, None)
        self._expand(value, rest, path)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeStripe
    protocol_version = "HTTP/1.1"
    server_version = "fake-stripe"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _serve(self) -> None:
        fake = self.owner
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length).decode() if length else ""
        pairs = parse_qsl(url.query, keep_blank_values=True) + parse_qsl(raw_body, keep_blank_values=True)
        request = RecordedRequest(method=self.command, path=url.path,
                                  headers={k.lower(): v for k, v in self.headers.items()},
                                  params=parse_form(pairs), raw_body=raw_body)
        with fake._lock:
            fake.requests.append(request)
            fake._in_flight += 1
        try:
            status, headers, body = fake.handle(request)
            request.status = status
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting: the response is lost, as on a real network
        finally:
            with fake._lock:
                fake._in_flight -= 1
                fake._idle.notify_all()

    do_GET = do_POST = do_DELETE = _serve


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Rack-style nested form keys as Stripe reads them: ``a[b]=c``, ``a[]=x``, ``a[0]=x``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        if not match:
            root[key] = value
            continue
        parts = [match.group(1)] + re.findall(r"\[([^\[\]]*)\]", match.group(2))
        node = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "":
                part = f"{len(node):010d}"  # append: keeps the order among siblings
            elif part.isdigit():
                part = f"{int(part):010d}"
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_listify(node[k]) for k in sorted(node)]
    return {k: _listify(v) for k, v in node.items()}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _int(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None
