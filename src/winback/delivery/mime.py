"""Build the email: multipart/alternative (text + HTML), the standard headers, the row's extra
headers (RFC 8058 one-click unsubscribe), ``List-Id`` from the campaign, optional DKIM signature.

Every value that goes into a header is checked first; a row with CR/LF in a header, a bad
address or a forbidden header name is refused with a :class:`MessageRefused` naming the
problem - nothing is written or sent for it. Commercial email must also carry
``List-Unsubscribe`` (with an http(s) URI) and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
and show the unsubscribe link and the sender's postal address in every body part.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import html
import json
import re
from email.utils import format_datetime, formataddr, parseaddr
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


def _list_id_parts(campaign: dict, from_domain: str) -> tuple[str, str]:
    """(display title, ``label.domain``) of a campaign's List-Id (RFC 2919)."""
    label = _LIST_LABEL.sub("-", str(campaign.get("key") or f"campaign-{campaign.get('id')}")).strip("-").lower()
    title = " ".join(str(campaign.get("title") or label).split()).replace('"', "'").replace("\\", "/")[:120]
    return title, f"{label or 'campaign'}.{from_domain}"


def list_id(campaign: dict | None, from_domain: str) -> str | None:
    """The List-Id value (unencoded) of a campaign's messages."""
    if not campaign:
        return None
    title, label = _list_id_parts(campaign, from_domain)
    return f'"{title}" <{label}>'


# --- writing RFC 5322 / MIME ---------------------------------------------------------------------
#
# The message is written as bytes directly (the stdlib's ``EmailMessage`` with ``email.policy``
# parses every header it is given and costs milliseconds per message). Every line is ASCII and
# ends in CRLF; header lines are folded before whitespace to at most 78 characters where the value
# allows; non-ASCII values become RFC 2047 encoded-words (utf-8, Q or B, whichever is shorter),
# each at most 75 characters and holding whole characters only; bodies are 7bit when ASCII with
# short lines, else quoted-printable or base64 (the shorter).

MAX_LINE = 78
_ENCODED_WORD_MAX = 75
_WSP_TOKEN = re.compile(r"[ \t]+[^ \t]*")
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_COST = [1 if b in _Q_SAFE or b == 0x20 else 3 for b in range(256)]
_Q_CHAR = [chr(b) if b in _Q_SAFE else ("_" if b == 0x20 else f"={b:02X}") for b in range(256)]


class Message:
    """A rendered message: its bytes and the names of its top-level headers (for DKIM)."""

    __slots__ = ("raw", "header_names")

    def __init__(self, raw: bytes, header_names: list[str]):
        self.raw = raw
        self.header_names = header_names

    def keys(self) -> list[str]:
        return list(self.header_names)

    def as_bytes(self) -> bytes:
        return self.raw


def _needs_encoding(value: str) -> bool:
    return not value.isascii() or ("=?" in value and "?=" in value)


def encoded_words(text: str, first: int = _ENCODED_WORD_MAX) -> list[str]:
    """``text`` as RFC 2047 utf-8 encoded-words (joined by folding whitespace they decode back to
    ``text``): the first at most ``first`` characters long, the others at most 75; a word never
    splits a character. Q uses only the characters RFC 2047 allows in a phrase."""
    data = text.encode("utf-8")
    q_len = sum(_Q_COST[b] for b in data)
    use_q = q_len <= (len(data) + 2) // 3 * 4
    words: list[str] = []
    limit = max(first, 16) - 12  # "=?utf-8?q?" + "?="
    chunk: list[bytes] = []
    size = 0  # encoded characters (Q) or bytes (B) in chunk
    for ch in text:
        b = ch.encode("utf-8")
        if use_q:
            grown = size + sum(_Q_COST[x] for x in b)
            fits = grown <= limit
        else:
            grown = size + len(b)
            fits = (grown + 2) // 3 * 4 <= limit
        if not fits and chunk:
            words.append(_encode_word(b"".join(chunk), use_q))
            chunk, limit = [], _ENCODED_WORD_MAX - 12
            grown = sum(_Q_COST[x] for x in b) if use_q else len(b)
        chunk.append(b)
        size = grown
    if chunk or not words:
        words.append(_encode_word(b"".join(chunk), use_q))
    return words


def _encode_word(data: bytes, use_q: bool) -> str:
    if use_q:
        return "=?utf-8?q?" + "".join([_Q_CHAR[b] for b in data]) + "?="
    return "=?utf-8?b?" + binascii.b2a_base64(data, newline=False).decode("ascii") + "?="


def _fold(name: str, tokens: list[str]) -> str:
    """``Name:`` and the tokens (each starting with whitespace), a CRLF inserted before a token
    that would make the line longer than 78 characters (never before the first)."""
    lines: list[str] = []
    line = name + ":"
    placed = False
    for token in tokens:
        if placed and len(line) + len(token) > MAX_LINE and token.strip():
            lines.append(line)
            line = token
        else:
            line += token
        placed = True
    lines.append(line)
    return "\r\n".join(lines)


def unstructured(name: str, value: str) -> str:
    """An unstructured header line (folded; encoded-words when not plain ASCII)."""
    if not _needs_encoding(value):
        line = f"{name}: {value}"
        if len(line) <= MAX_LINE:
            return line
        return _fold(name, _WSP_TOKEN.findall(" " + value) or [" " + value])
    return _fold(name, [" " + w for w in encoded_words(value, MAX_LINE - len(name) - 2)])


def _phrase_tokens(phrase: str, first: int) -> list[str]:
    if _needs_encoding(phrase):
        return [" " + w for w in encoded_words(phrase, first)]
    quoted = formataddr((phrase, "x@y"))[:-len(" <x@y>")]  # quoted when it has specials
    if quoted.startswith('"'):
        return [" " + quoted]  # not folded inside the quotes (legal, but not every parser unfolds there)
    return _WSP_TOKEN.findall(" " + quoted) or [" " + quoted]


def mailbox_header(name: str, display: str | None, address: str) -> str:
    """``Name: display <address>`` (or the bare address), the display name encoded when needed."""
    if not display:
        return f"{name}: {address}"
    return _fold(name, _phrase_tokens(display, MAX_LINE - len(name) - 2) + [f" <{address}>"])


def _reply_to_header(value: str) -> str:
    if not _needs_encoding(value):
        return unstructured("Reply-To", value)
    display, address = parseaddr(value)
    if not address or not address.isascii():
        raise MessageRefused(f"invalid Reply-To {value!r}")
    return mailbox_header("Reply-To", display, address)


def _list_id_header(campaign: dict | None, from_domain: str) -> str | None:
    if not campaign:
        return None
    title, label = _list_id_parts(campaign, from_domain)
    if _needs_encoding(title):
        return _fold("List-Id", _phrase_tokens(title, MAX_LINE - len("List-Id") - 2) + [f" <{label}>"])
    return unstructured("List-Id", f'"{title}" <{label}>')


def body_part(body: str, subtype: str) -> tuple[bytes, bytes]:
    """(part headers, encoded body) for a utf-8 text part; the body ends with CRLF."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    data = text.encode("utf-8")
    crlf = data.replace(b"\n", b"\r\n")
    if data.isascii() and max(map(len, data.split(b"\n"))) <= MAX_LINE:
        cte, payload = b"7bit", crlf
    else:
        qp = binascii.b2a_qp(crlf, istext=True)
        b64 = base64.encodebytes(crlf).replace(b"\n", b"\r\n")
        cte, payload = (b"quoted-printable", qp) if len(qp) <= len(b64) else (b"base64", b64)
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
    headers = (b'Content-Type: text/' + subtype.encode("ascii") + b'; charset="utf-8"\r\n'
               b"Content-Transfer-Encoding: " + cte + b"\r\n")
    return headers, payload


def _boundary(seed: str, parts: list[bytes]) -> str:
    for n in range(1000):
        boundary = "=_wb_" + hashlib.sha256(f"{seed}:{n}".encode()).hexdigest()[:32]
        token = boundary.encode("ascii")
        if not any(token in p for p in parts):
            return boundary
    raise ValueError("no multipart boundary found")  # pragma: no cover - 1000 collisions


_DATES: dict[dt.datetime, str] = {}


def _date(now: dt.datetime) -> str:
    value = _DATES.get(now)
    if value is None:
        if len(_DATES) > 64:
            _DATES.clear()
        value = _DATES[now] = format_datetime(now.astimezone(dt.timezone.utc))
    return value


def build_message(row: dict, sender: SenderSettings, now: dt.datetime, campaign: dict | None = None,
                  headers: dict | None = None) -> Message:
    """The rendered :class:`Message` for an outbox row (raises :class:`MessageRefused`)."""
    to = row.get("to_address")
    problem = address_problem(to)
    if problem:
        raise MessageRefused(problem)
    from_address = row.get("from_address") or sender.from_address
    problem = address_problem(from_address)
    if problem:
        raise MessageRefused("from: " + problem.replace("recipient ", ""))
    subject = row.get("subject") or ""
    message_id = row.get("message_id") or ""
    for name, value in (("Subject", subject), ("Message-ID", message_id)):
        problem = header_value_problem(name, value)
        if problem:
            raise MessageRefused(problem)
    if not _MESSAGE_ID.match(message_id):
        raise MessageRefused(f"invalid Message-ID {row.get('message_id')!r} (expected <local@domain>)")
    if headers is None:
        headers = parse_json_object(row.get("headers"), "headers")
    for name, value in headers.items():
        problem = header_name_problem(name) or header_value_problem(name, value)
        if problem:
            raise MessageRefused(problem)
        if name.lower() in PROTECTED:
            raise MessageRefused(f"header {name} may not be set by the outbox row")
    for name, value in (("From", sender.from_name), ("Reply-To", sender.reply_to)):
        problem = header_value_problem(name, value) if value else None
        if problem:
            raise MessageRefused("sender settings: " + problem)
    text_body, html_body = row.get("text_body"), row.get("html_body")
    if not text_body and not html_body:
        raise MessageRefused("message has neither a text nor an HTML body")

    names = ["From", "To", "Subject", "Date", "Message-ID"]
    lines = [mailbox_header("From", sender.from_name, from_address), "To: " + to.strip(),
             unstructured("Subject", subject), "Date: " + _date(now), "Message-ID: " + message_id]
    if sender.reply_to:
        names.append("Reply-To")
        lines.append(_reply_to_header(sender.reply_to))
    lid = _list_id_header(campaign, domain_of(from_address))
    if lid:
        names.append("List-Id")
        lines.append(lid)
    for name, value in headers.items():
        names.append(name)
        lines.append(unstructured(name, value))
    names += ["MIME-Version", "Content-Type"]
    lines.append("MIME-Version: 1.0")
    if text_body and html_body:
        text_headers, text_payload = body_part(text_body, "plain")
        html_headers, html_payload = body_part(html_body, "html")
        boundary = _boundary(message_id, [text_payload, html_payload])
        lines.append(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"')
        delimiter = b"--" + boundary.encode("ascii")
        body = b"".join((delimiter, b"\r\n", text_headers, b"\r\n", text_payload,
                         b"\r\n", delimiter, b"\r\n", html_headers, b"\r\n", html_payload,
                         b"\r\n", delimiter, b"--\r\n"))
        head = "\r\n".join(lines).encode("ascii") + b"\r\n"
    else:
        part_headers, body = body_part(text_body or html_body, "plain" if text_body else "html")
        names.append("Content-Transfer-Encoding")
        head = "\r\n".join(lines).encode("ascii") + b"\r\n" + part_headers
    return Message(head + b"\r\n" + body, names)


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


def render(msg: Message, signer: DkimSigner | None = None) -> bytes:
    """The message's bytes, DKIM-signed when a signer is configured."""
    raw = msg.as_bytes()
    if signer is not None:
        raw = signer.sign(raw, [k.lower() for k in msg.keys()])
    return raw
