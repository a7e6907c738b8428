"""Unique single-use coupon codes, with "a new discount replaces an earlier coupon only when it is
more attractive" (DOMAIN.md step 8).

* :func:`generate_code`: ``WB-7K3Q-M9XT`` - 8 random characters (``secrets``) from an alphabet
  without look-alikes (no 0/O, 1/I/L), about 8.5e11 codes per prefix; the ``coupons.code`` unique
  constraint is the final word and an insert that collides retries with a new code.
* :func:`issue_coupon`: a customer holds at most one ``active``, unexpired coupon. Under a lock on
  the customer (row lock on PostgreSQL, the write lock on SQLite), coupons past their expiry are
  marked ``expired``; then a new coupon is inserted and the old one marked ``replaced`` (with
  ``replaced_by_id``) only when the new one is worth more to the customer; otherwise the customer
  keeps the existing one and it is returned (``kept_existing``). Two callers for the same customer
  at once are serialised by the lock, so they end with exactly one active coupon.
* :func:`redeem_coupon`: single use - an atomic conditional update; a second redemption, an expired,
  replaced or unknown code fail with a clear error.

``value_minor`` is the coupon's worth to the customer (:func:`coupon_value_minor`), used only to
compare coupons of the same currency; a coupon in another currency than the active one replaces it.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from winback.kit.clock import as_utc
from winback.kit.errors import WinbackError
from winback.playbooks import repository as repo
from winback.playbooks.economics import customer_value_minor
from winback.playbooks.facts import CustomerFacts
from winback.playbooks.spec import Offer

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_GROUPS = 2
CODE_GROUP_LENGTH = 4
MAX_ATTEMPTS = 8


class CouponError(WinbackError):
    """A coupon cannot be issued or redeemed (one line: which code and why)."""


@dataclass(frozen=True)
class CouponResult:
    coupon: dict
    outcome: Literal["issued", "replaced", "kept_existing"]
    replaced: dict | None = None  # the coupon it replaced (outcome "replaced")


def generate_code(prefix: str = "WB") -> str:
    groups = ["".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUP_LENGTH)) for _ in range(CODE_GROUPS)]
    return "-".join(([prefix.upper()] if prefix else []) + groups)


def normalise_code(code: str) -> str:
    return "".join(str(code).split()).upper()


def coupon_value_minor(offer: Offer, facts: CustomerFacts, playbook_currency: str = "USD") -> int:
    """The offer's worth to this customer in minor units (to compare an old and a new coupon)."""
    return customer_value_minor(offer, facts, playbook_currency)


def offer_terms(offer: Offer) -> dict:
    terms = offer.model_dump(mode="json", exclude_none=True, exclude={"lift", "min_p_return", "max_per_campaign",
                                                                       "coupon"})
    return terms


def _row(coupon: dict) -> dict:
    out = dict(coupon)
    try:
        out["terms"] = json.loads(out.get("terms") or "{}")
    except ValueError:
        pass
    return out


def issue_coupon(conn: Connection, *, customer_id: int, offer_key: str, offer: Offer, value_minor: int,
                 currency: str, campaign_id: int | None, now: dt.datetime, prefix: str = "WB") -> CouponResult:
    """Give the customer a coupon for the offer unless they hold a better active one (see the module doc).

    Runs in the caller's transaction; the customer stays locked until it ends."""
    now = as_utc(now)
    currency = currency.upper()
    repo.lock_customer(conn, customer_id)
    repo.expire_customer_coupons(conn, customer_id, now)
    active = repo.active_coupons(conn, customer_id)
    same_currency = [c for c in active if c["currency"] == currency]
    if same_currency and same_currency[0]["value_minor"] >= value_minor:
        return CouponResult(_row(same_currency[0]), "kept_existing")
    values = dict(customer_id=customer_id, campaign_id=campaign_id, offer_key=offer_key, offer_kind=offer.kind,
                  terms=json.dumps(offer_terms(offer), ensure_ascii=False, sort_keys=True),
                  value_minor=int(value_minor), currency=currency, status="active", issued_at=now,
                  expires_at=now + dt.timedelta(days=offer.expires_days), redeemed_at=None, replaced_by_id=None)
    new = None
    for _ in range(MAX_ATTEMPTS):
        code = generate_code(prefix)
        if repo.code_exists(conn, code):
            continue
        try:
            with conn.begin_nested():
                new = repo.insert_coupon(conn, code=code, **values)
            break
        except IntegrityError:  # the same code inserted meanwhile by another customer's coupon
            continue
    if new is None:
        raise CouponError(f"could not find an unused coupon code after {MAX_ATTEMPTS} attempts")
    if active:
        repo.mark_replaced(conn, [c["id"] for c in active], new["id"])
        return CouponResult(_row(new), "replaced", _row(repo.coupon_by_id(conn, active[0]["id"])))
    return CouponResult(_row(new), "issued")


def redeem_coupon(conn: Connection, code: str, now: dt.datetime) -> dict:
    """Mark the coupon redeemed (single use) and return it; :class:`CouponError` when it cannot be."""
    now = as_utc(now)
    code = normalise_code(code)
    if repo.redeem_if_active(conn, code, now):
        found = repo.coupon_by_code(conn, code)
        assert found is not None
        return _row(found)
    coupon = repo.coupon_by_code(conn, code)
    if coupon is None:
        raise CouponError(f"coupon {code}: no such code")
    status = coupon["status"]
    if status == "redeemed":
        raise CouponError(f"coupon {code} was already redeemed on {as_utc(coupon['redeemed_at']):%Y-%m-%d %H:%M} UTC; "
                          f"a coupon can be used once")
    if status == "expired" or (status == "active" and as_utc(coupon["expires_at"]) <= now):
        if status == "active":
            repo.mark_expired(conn, coupon["id"])
        raise CouponError(f"coupon {code} expired on {as_utc(coupon['expires_at']):%Y-%m-%d %H:%M} UTC")
    if status == "replaced":
        better = repo.coupon_by_id(conn, coupon["replaced_by_id"]) if coupon["replaced_by_id"] else None
        tail = f" (use {better['code']} instead)" if better else ""
        raise CouponError(f"coupon {code} was replaced by a better offer{tail}")
    raise CouponError(f"coupon {code} is {status} and cannot be redeemed")
