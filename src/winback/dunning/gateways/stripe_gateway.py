"""The Stripe adapter of the :class:`~winback.dunning.gateways.base.Gateway` protocol.

It talks to Stripe through the official SDK (``stripe.StripeClient``, the ``v1`` services) and
turns Stripe's answers into winback's vocabulary:

* ``POST /v1/invoices/{id}/pay`` with our ``Idempotency-Key``: the paid invoice is ``succeeded``;
  a ``card_error`` (HTTP 402) is ``failed`` with the issuer's ``decline_code`` (or the error
  ``code`` - ``expired_card``, ``incorrect_number`` ... - when the issuer gave none); connection
  problems, timeouts, rate limits and Stripe's 5xx are ``error`` with a code of
  :data:`winback.dunning.policy.GATEWAY_ERRORS`.
* Stripe answers a pay request for an invoice that is no longer open with a 400
  ``invalid_request_error`` ("Invoice is already paid"); its published error-code list has no
  dedicated code for that, so the adapter looks the invoice up and reports ``already_paid`` or
  ``not_payable`` from the invoice's real status instead of parsing messages.
* Authentication, permission and other invalid requests are configuration problems on our side:
  they raise :class:`GatewayError`, never count as a decline.

Idempotency (Stripe API v1): Stripe saves the status and body of the first request with a key once
the endpoint starts executing - including 402 declines and 500 errors - and replays it for the
same key and parameters for at least 24 hours; the same key with other parameters is an
``idempotency_error``. Requests rejected before execution (429, a concurrent request with the same
key: 409) are not saved. The SDK's own retries are switched off (``max_network_retries=0``):
winback retries with keys it persisted first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import stripe

from winback.dunning.gateways.base import ChargeResult, GatewayError, InvoiceState
from winback.kit.errors import ConfigError

# What the invoice says when it cannot be charged any more.
_NOT_PAYABLE = frozenset({"void", "uncollectible"})
# Stripe's code when an invoice's payment needs the customer (3-D Secure): for dunning that is a
# card the customer has to act on, which the policy calls ``authentication_required``.
_REQUIRES_ACTION = "invoice_payment_intent_requires_action"


class StripeGateway:
    """Charges, looks up and ends Stripe invoices and subscriptions for the dunning service."""

    name = "stripe"

    def __init__(self, client: stripe.StripeClient, *,
                 setup_payment_method_types: tuple[str, ...] = ("card",)):
        self._client = client
        # ``client.v1`` is the current namespace; older SDKs of the supported range expose the same
        # services on the client itself.
        self._v1 = getattr(client, "v1", client)
        self._setup_payment_method_types = list(setup_payment_method_types)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_settings(cls, settings) -> "StripeGateway":
        """The gateway of ``[dunning]`` (a :class:`~winback.config.Settings` or its ``dunning``)."""
        dunning = getattr(settings, "dunning", settings)
        api_key = (dunning.stripe_api_key or "").strip()
        if not api_key:
            raise ConfigError("[dunning] gateway = \"stripe\" needs stripe_api_key (a secret key sk_... or a "
                              "restricted key rk_...; or set WINBACK_DUNNING__STRIPE_API_KEY)")
        if api_key.startswith("pk_"):
            raise ConfigError("[dunning] stripe_api_key is a publishable key (pk_...); the gateway needs a secret "
                              "key (sk_...) or a restricted key (rk_...)")
        return cls.connect(api_key, api_base=dunning.stripe_api_base, timeout_seconds=dunning.timeout_seconds)

    @classmethod
    def connect(cls, api_key: str, *, api_base: str | None = None, timeout_seconds: float = 30.0,
                **options: Any) -> "StripeGateway":
        """A gateway with its own :class:`stripe.StripeClient` (no global SDK state is touched).

        ``api_base`` points the SDK at another address (a proxy, or the fake in the tests);
        ``timeout_seconds`` bounds every HTTP call; the SDK never retries on its own.
        """
        base_addresses = {"api": api_base.rstrip("/")} if api_base else None
        client = stripe.StripeClient(
            api_key,
            base_addresses=base_addresses,
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )
        return cls(client, **options)

    # ------------------------------------------------------------------ the protocol

    def charge_invoice(self, invoice_ref: str, *, payment_method_ref: str | None, amount_minor: int,
                       currency: str, idempotency_key: str) -> ChargeResult:
        """``POST /v1/invoices/{id}/pay`` once; the same key never charges twice.

        ``amount_minor``/``currency`` are what winback expects to collect; Stripe charges the
        invoice's own ``amount_remaining`` (the pay endpoint takes no amount).
        """
        params: dict[str, Any] = {"expand": ["payments"]}
        if payment_method_ref:
            params["payment_method"] = payment_method_ref
        try:
            invoice = self._v1.invoices.pay(invoice_ref, params, {"idempotency_key": idempotency_key})
        except stripe.CardError as err:
            return _declined(err)
        except stripe.IdempotencyError as err:
            raise GatewayError("idempotency_error", f"Stripe refused idempotency key {idempotency_key!r} for "
                               f"invoice {invoice_ref}: it was used with other parameters ({_message(err)})") from err
        except stripe.InvalidRequestError as err:
            return self._rejected_charge(invoice_ref, err)
        except (stripe.AuthenticationError, stripe.PermissionError) as err:
            raise _configuration_error(err) from err
        except stripe.StripeError as err:
            code = _transient_code(err)
            if code is None:
                raise GatewayError("gateway_error", f"Stripe: {_message(err)}") from err
            return ChargeResult("error", decline_code=code, message=_message(err))
        return _charged(invoice.to_dict())

    def lookup_invoice(self, invoice_ref: str) -> InvoiceState:
        """The invoice now, with its last payment error and the card its next charge would use."""
        params = {"expand": ["payments", "payments.data.payment.payment_intent", "customer",
                             "parent.subscription_details.subscription"]}
        try:
            invoice = self._v1.invoices.retrieve(invoice_ref, params)
        except stripe.StripeError as err:
            raise _gateway_error(err, f"looking up invoice {invoice_ref}") from err
        return _invoice_state(invoice.to_dict())

    def end_subscription(self, subscription_ref: str, *, action: str, idempotency_key: str) -> None:
        """``cancel`` (``DELETE /v1/subscriptions/{id}``) or ``pause`` (collection paused, invoices
        voided: ``pause_collection[behavior]=void``). Ending an already canceled subscription is a
        no-op, so the call can be repeated safely."""
        options = {"idempotency_key": idempotency_key}
        try:
            if action == "cancel":
                self._v1.subscriptions.cancel(subscription_ref, None, options)
            elif action == "pause":
                self._v1.subscriptions.update(subscription_ref, {"pause_collection": {"behavior": "void"}}, options)
            else:
                raise ValueError(f"end_subscription: action must be cancel or pause, got {action!r}")
        except stripe.InvalidRequestError as err:
            if self._subscription_status(subscription_ref) == "canceled":
                return  # canceled before (by us on an earlier try, by Stripe's own dunning, or by hand)
            raise _gateway_error(err, f"{action} subscription {subscription_ref}") from err
        except stripe.StripeError as err:
            raise _gateway_error(err, f"{action} subscription {subscription_ref}") from err

    def card_update_redirect(self, customer_ref: str, *, return_url: str, cancel_url: str) -> str | None:
        """A Stripe Checkout Session in ``setup`` mode where the customer saves a new card.

        The card is attached to the customer when the session completes; making it the default is
        the job of the ``checkout.session.completed`` / ``setup_intent.succeeded`` webhook handler
        (``metadata[winback_purpose]=card_update`` marks these sessions).
        """
        params: dict[str, Any] = {
            "mode": "setup",
            "customer": customer_ref,
            "payment_method_types": list(self._setup_payment_method_types),
            "success_url": return_url,
            "cancel_url": cancel_url,
            "metadata": {"winback_purpose": "card_update"},
            "setup_intent_data": {"metadata": {"winback_purpose": "card_update"}},
        }
        try:
            session = self._v1.checkout.sessions.create(params)
        except stripe.StripeError as err:
            raise _gateway_error(err, f"creating a card-update page for customer {customer_ref}") from err
        return session.url

    def set_default_payment_method(self, customer_ref: str, payment_method_ref: str) -> None:
        """``invoice_settings.default_payment_method`` of the customer becomes this card."""
        params = {"invoice_settings": {"default_payment_method": payment_method_ref}}
        try:
            self._v1.customers.update(customer_ref, params)
        except stripe.StripeError as err:
            raise _gateway_error(err, f"setting the default card of customer {customer_ref}") from err

    # ------------------------------------------------------------------ helpers

    def _rejected_charge(self, invoice_ref: str, err: stripe.InvalidRequestError) -> ChargeResult:
        """A 400/404 to a pay request: the invoice may no longer be open (paid, void, written off) -
        the invoice itself says which; anything else is a problem with our request."""
        if err.code == _REQUIRES_ACTION:  # the card needs the customer (3-D Secure), whatever the status
            return ChargeResult("failed", decline_code="authentication_required", message=_message(err))
        if err.http_status == 404:
            raise GatewayError("invalid_request_error", f"Stripe has no invoice {invoice_ref} (wrong account or "
                               f"test/live key?): {_message(err)}") from err
        state = self.lookup_invoice(invoice_ref)
        if state.status == "paid":
            return ChargeResult("already_paid", message=_message(err))
        if state.status in _NOT_PAYABLE:
            return ChargeResult("not_payable", message=f"invoice is {state.status}: {_message(err)}")
        raise GatewayError("invalid_request_error", f"Stripe rejected paying invoice {invoice_ref} "
                           f"(status {state.status}): {_message(err)}") from err

    def _subscription_status(self, subscription_ref: str) -> str | None:
        try:
            return self._v1.subscriptions.retrieve(subscription_ref).to_dict().get("status")
        except stripe.StripeError:
            return None


def _declined(err: stripe.CardError) -> ChargeResult:
    """A card error: the issuer's ``decline_code`` when it gave one, else Stripe's ``code``."""
    body = err.json_body if isinstance(err.json_body, dict) else {}
    detail = body.get("error") if isinstance(body.get("error"), dict) else {}
    decline_code = detail.get("decline_code") or err.code or "card_declined"
    if decline_code == _REQUIRES_ACTION:
        decline_code = "authentication_required"
    return ChargeResult("failed", decline_code=decline_code, message=_message(err),
                        gateway_ref=_ref(detail.get("payment_intent")) or _ref(detail.get("charge")))


def _charged(invoice) -> ChargeResult:
    status = invoice.get("status")
    if status == "paid":
        return ChargeResult("succeeded", gateway_ref=_payment_ref(invoice))
    if status in _NOT_PAYABLE:
        return ChargeResult("not_payable", message=f"invoice is {status}")
    # open after a pay call without an error: the payment is processing (asynchronous methods)
    return ChargeResult("error", decline_code="gateway_error", gateway_ref=_payment_ref(invoice),
                        message=f"invoice {invoice.get('id')} is still {status} after the payment attempt "
                        "(processing); look it up before charging again")


def _invoice_state(invoice) -> InvoiceState:
    transitions = invoice.get("status_transitions") or {}
    paid_at = transitions.get("paid_at")
    decline_code = None
    for payment in _payments(invoice):
        intent = (payment.get("payment") or {}).get("payment_intent")
        error = intent.get("last_payment_error") if isinstance(intent, dict) else None
        if error:
            decline_code = error.get("decline_code") or error.get("code")
            if decline_code == _REQUIRES_ACTION:
                decline_code = "authentication_required"
            break
    currency = invoice.get("currency")
    return InvoiceState(
        invoice_ref=invoice.get("id"),
        status=invoice.get("status") or "draft",
        amount_due_minor=int(invoice.get("amount_due") or 0),
        currency=currency.upper() if currency else None,
        paid_at=dt.datetime.fromtimestamp(paid_at, tz=dt.timezone.utc) if paid_at else None,
        decline_code=decline_code,
        payment_method_ref=_next_payment_method(invoice),
    )


def _payments(invoice) -> list:
    """The invoice's payments, the most recent first (``payments`` is an includable list)."""
    payments = invoice.get("payments")
    data = list(payments.get("data") or []) if payments else []
    return sorted(data, key=lambda payment: payment.get("created") or 0, reverse=True)


def _payment_ref(invoice) -> str | None:
    """The payment intent (or, for charges without one, the charge) that paid the invoice."""
    payments = _payments(invoice)
    for payment in sorted(payments, key=lambda p: p.get("status") != "paid"):
        detail = payment.get("payment") or {}
        ref = _ref(detail.get("payment_intent")) or _ref(detail.get("charge")) or _ref(detail.get("payment_record"))
        if ref:
            return ref
    return None


def _next_payment_method(invoice) -> str | None:
    """What Stripe charges next: the invoice's own default, then the subscription's, then the
    customer's ``invoice_settings.default_payment_method``."""
    ref = _ref(invoice.get("default_payment_method"))
    if ref:
        return ref
    parent = invoice.get("parent") or {}
    subscription = (parent.get("subscription_details") or {}).get("subscription")
    if isinstance(subscription, dict):
        ref = _ref(subscription.get("default_payment_method"))
        if ref:
            return ref
    customer = invoice.get("customer")
    if isinstance(customer, dict):
        return _ref((customer.get("invoice_settings") or {}).get("default_payment_method"))
    return None


def _ref(value) -> str | None:
    """The id of an expandable field (an id string or an expanded object)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return value.get("id")


def _message(err: stripe.StripeError) -> str:
    return " ".join(str(err.user_message or err.__class__.__name__).split())


def _transient_code(err: stripe.StripeError) -> str | None:
    """The :data:`~winback.dunning.policy.GATEWAY_ERRORS` code of an error no decision came out of."""
    if isinstance(err, stripe.APIConnectionError):
        return "timeout" if _is_timeout(err) else "api_connection_error"
    if isinstance(err, stripe.RateLimitError):
        return "rate_limit"
    if isinstance(err, stripe.APIError):  # 5xx, and 409 (a request with the same key is still running)
        return "api_error"
    return None


def _is_timeout(err: BaseException) -> bool:
    """Whether a connection error was the HTTP client's timeout (requests/httpx/socket)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, TimeoutError) or "timeout" in type(seen).__name__.lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _configuration_error(err: stripe.StripeError) -> GatewayError:
    if isinstance(err, stripe.AuthenticationError):
        return GatewayError("authentication_error", "Stripe rejected the API key ([dunning] stripe_api_key): "
                            f"{_message(err)}")
    return GatewayError("permission_error", "the Stripe API key may not do this (a restricted key needs write "
                        f"access to invoices, subscriptions, customers and Checkout): {_message(err)}")


def _gateway_error(err: stripe.StripeError, doing: str) -> GatewayError:
    """Any SDK error outside a charge: transient ones keep their policy code."""
    if isinstance(err, (stripe.AuthenticationError, stripe.PermissionError)):
        return _configuration_error(err)
    code = _transient_code(err)
    if code is not None:
        return GatewayError(code, f"Stripe {doing}: {_message(err)}")
    if isinstance(err, stripe.IdempotencyError):
        return GatewayError("idempotency_error", f"Stripe {doing}: {_message(err)}")
    if isinstance(err, (stripe.InvalidRequestError, stripe.CardError)):
        return GatewayError("invalid_request_error", f"Stripe {doing}: {_message(err)}")
    return GatewayError("gateway_error", f"Stripe {doing}: {_message(err)}")
