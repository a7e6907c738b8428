"""The signed links every message carries (served by `winback serve`, see DESIGN.md tracking/web).

Paths under ``sender.base_url``:

* ``/u/TOKEN`` - unsubscribe: one-click POST (RFC 8058) or a GET confirmation page;
* ``/p/TOKEN`` - the preference centre (topics, pause for 30 or 90 days);
* ``/s/TOKEN`` - the exit survey;
* ``/b/TOKEN`` - the no-login card update page (expires after ``[dunning] card_link_days``,
  ``CARD_LINK_DAYS`` by default);
* ``/o/TOKEN.gif`` - the open pixel (a 1x1 transparent GIF at the end of every HTML part);
* ``/c/TOKEN`` - a tracked click: the token carries the message key and the target URL, so a
  tampered link never redirects to a foreign host (the MAC covers the target).

Tokens are HMAC-signed with the workspace's ``secret_key`` (:mod:`winback.kit.signing`); each
purpose has its own MAC domain, so one kind of token cannot be replayed as another.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from winback.kit.signing import sign

CARD_LINK_DAYS = 7
SURVEY_LINK_DAYS = 60


def _url(base_url: str, prefix: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/{prefix}/{quote(token, safe='.-_')}"


def unsubscribe_url(key: bytes, base_url: str, *, customer_id: int | None, message: str,
                    campaign_id: int | None = None) -> str:
    """The address is not in the token (URLs end up in logs): the web app finds it from the message."""
    return _url(base_url, "u", sign(key, "unsubscribe", {"c": customer_id, "m": message, "k": campaign_id}))


def preferences_url(key: bytes, base_url: str, *, customer_id: int) -> str:
    return _url(base_url, "p", sign(key, "preferences", {"c": customer_id}))


def survey_url(key: bytes, base_url: str, *, customer_id: int, message: str, now: dt.datetime,
               survey: str = "exit") -> str:
    return _url(base_url, "s", sign(key, "survey", {"c": customer_id, "m": message, "s": survey},
                                    expires_at=now + dt.timedelta(days=SURVEY_LINK_DAYS)))


def card_update_url(key: bytes, base_url: str, *, customer_id: int, message: str, now: dt.datetime,
                    days: int | None = None) -> str:
    """The card-update page of ``customer_id``; ``days`` is the link's lifetime (``[dunning]
    card_link_days``; default ``CARD_LINK_DAYS``)."""
    lifetime = CARD_LINK_DAYS if days is None else int(days)
    return _url(base_url, "b", sign(key, "card_update", {"c": customer_id, "m": message},
                                    expires_at=now + dt.timedelta(days=lifetime)))


def tracked_url(key: bytes, base_url: str, *, message: str, target: str, link: str) -> str:
    """A click-tracking redirect to ``target``; ``link`` names the link (cta, booking ...)."""
    return _url(base_url, "c", sign(key, "click", {"m": message, "t": target, "l": link}))


def open_pixel_url(key: bytes, base_url: str, *, message: str) -> str:
    """The open-tracking pixel of one message (``message`` is its Message-ID)."""
    return _url(base_url, "o", sign(key, "open", {"m": message})) + ".gif"
