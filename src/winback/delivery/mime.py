"""Build the email: multipart/alternative (text + HTML), the standard headers, the row's extra
headers (RFC 8058 one-click unsubscribe), ``List-Id`` from the campaign, optional DKIM signature.

Every value that goes into a header is checked first; a row with CR/LF in a header, a bad
address or a forbidden header name is refused with a :class:`MessageRefused` naming the
problem - nothing is written or sent for it. Commercial email must also carry
``List-Unsubscribe`` (with an http(s) URI) and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
and show the unsubscribe link and the sender's postal address in every body part.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path

from winback.config import SenderSettings
from winback.delivery.policy import address_problem, domain_of, header_name_problem, header_value_problem

#: headers the worker writes itself; a row may not set them
PROTECTED = {"from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "content-type",
             "content-transfer-encoding", "dkim-signature", "sender", "return-path", "reply-to", "list-id",
             "received", "resent-to", "resent-cc", "resent-bcc", "resent-from"}
DKIM_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post")
ONE_CLICK = "List-Unsubscribe=One-Click"
_MESSAGE_ID = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")
_URI = re.compile(r"<(https?://[^>\s]+)>")
_LIST_LABEL = re.compile(r"[^A-Za-z0-9-]+")


class MessageRefused(Exception):
    """The row cannot become a message; ``str(exc)`` is the reason stored in ``status_reason``."""


def parse_json_object(text: str | None, what: str) -> dict:
    if text is None or text == "":
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise MessageRefused(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise MessageRefused(f"{what} must be a JSON object")
    return value


def _contains(body: str, needle: str, is_html: bool) -> bool:
    if needle in body:
        return True
    return is_html and html.escape(needle, quote=True) in body


def compliance_problem(row: dict, headers: dict, payload: dict, postal_address: str) -> str | None:
    """Why a commercial email may not be sent (missing one-click unsubscribe, link or address)."""
    lookup = {k.lower(): v for k, v in headers.items()}
    unsub = lookup.get("list-unsubscribe")
    if not unsub:
        return "commercial email without a List-Unsubscribe header (RFC 8058) refused"
    match = _URI.search(unsub)
    if not match:
        return "List-Unsubscribe has no <http(s)://...> URI for one-click unsubscribe (RFC 8058)"
    if (lookup.get("list-unsubscribe-post") or "").strip() != ONE_CLICK:
        return f"commercial email without 'List-Unsubscribe-Post: {ONE_CLICK}' (RFC 8058) refused"
    url = payload.get("unsubscribe_url") or match.group(1)
    postal = payload.get("postal_address") or postal_address
    parts = [("text", row.get("text_body"), False), ("html", row.get("html_body"), True)]
    if not any(body for _, body, _ in parts):
        return "commercial email without a body refused"
    for name, body, is_html in parts:
        if body is None:
            continue
        if not _contains(body, url, is_html):
            return f"the {name} part lacks the visible unsubscribe link {url}"
        if not postal or not _contains(body, postal, is_html):
            return f"the {name} part lacks the sender's postal address"
    return None


def list_id(campaign: dict | None, from_domain: str) -> str | None:
    if not campaign:
        return None
    label = _LIST_LABEL.sub("-", str(campaign.get("key") or f"campaign-{campaign.get('id')}")).strip("-").lower()
    title = " ".join(str(campaign.get("title") or label).split()).replace('"', "'")[:120]
    return f'"{title}" <{label or "campaign"}.{from_domain}>'


def build_message(row: dict, sender: SenderSettings, now: dt.datetime, campaign: dict | None = None,
                  headers: dict | None = None) -> EmailMessage:
    """The ``EmailMessage`` for an outbox row (raises :class:`MessageRefused`)."""
    to = row.get("to_address")
    problem = address_problem(to)
    if problem:
        raise MessageRefused(problem)
    from_address = row.get("from_address") or sender.from_address
    problem = address_problem(from_address)
    if problem:
        raise MessageRefused("from: " + problem.replace("recipient ", ""))
    subject = row.get("subject") or ""
    for name, value in (("Subject", subject), ("Message-ID", row.get("message_id") or "")):
        problem = header_value_problem(name, value)
        if problem:
            raise MessageRefused(problem)
    if not _MESSAGE_ID.match(row.get("message_id") or ""):
        raise MessageRefused(f"invalid Message-ID {row.get('message_id')!r} (expected <local@domain>)")
    if headers is None:
        headers = parse_json_object(row.get("headers"), "headers")
    for name, value in headers.items():
        problem = header_name_problem(name) or header_value_problem(name, value)
        if problem:
            raise MessageRefused(problem)
        if name.lower() in PROTECTED:
            raise MessageRefused(f"header {name} may not be set by the outbox row")
    text_body, html_body = row.get("text_body"), row.get("html_body")
    if not text_body and not html_body:
        raise MessageRefused("message has neither a text nor an HTML body")

    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((sender.from_name, from_address)) if sender.from_name else from_address
    msg["To"] = to.strip()
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now.astimezone(dt.timezone.utc))
    msg["Message-ID"] = row["message_id"]
    if sender.reply_to:
        msg["Reply-To"] = sender.reply_to
    lid = list_id(campaign, domain_of(from_address))
    if lid:
        msg["List-Id"] = lid
    for name, value in headers.items():
        msg[name] = value
    if text_body:
        msg.set_content(text_body, charset="utf-8")
        if html_body:
            msg.add_alternative(html_body, subtype="html", charset="utf-8")
    else:
        msg.set_content(html_body, subtype="html", charset="utf-8")
    return msg


class DkimSigner:
    """DKIM (RFC 6376) rsa-sha256, relaxed/relaxed, over From, To, Subject, Date, Message-ID and the
    one-click unsubscribe headers when present."""

    def __init__(self, domain: str, selector: str, private_key: bytes):
        import dkim

        self._dkim = dkim
        self.domain = domain.encode()
        self.selector = selector.encode()
        self.key = private_key
        dkim.crypto.parse_pem_private_key(private_key)  # fail early on a bad key

    @classmethod
    def from_settings(cls, delivery, workspace: Path) -> "DkimSigner | None":
        if not (delivery.dkim_domain and delivery.dkim_selector and delivery.dkim_private_key):
            return None
        path = Path(delivery.dkim_private_key)
        if not path.is_absolute():
            path = workspace / path
        return cls(delivery.dkim_domain, delivery.dkim_selector, path.read_bytes())

    def sign(self, raw: bytes, present: list[str]) -> bytes:
        include = [h.lower().encode() for h in DKIM_HEADERS if h.lower() in present]
        signature = self._dkim.sign(raw, self.selector, self.domain, self.key,
                                    canonicalize=(b"relaxed", b"relaxed"), include_headers=include)
        return signature + raw


def render(msg: EmailMessage, signer: DkimSigner | None = None) -> bytes:
    raw = msg.as_bytes()
    if signer is not None:
        raw = signer.sign(raw, [k.lower() for k in msg.keys()])
    return raw
