"""Bounces and complaints: mailed reports (RFC 3464 DSN, RFC 5965 ARF) and provider webhooks.

Everything is normalised to one record shape, then applied by :func:`ingest_reports`::

    {"kind": "bounce" | "complaint", "hard": bool, "recipient": "a@b.example" | None,
     "message_id": "<original Message-ID>" | None, "status": "5.1.1" | None,
     "diagnostic": str | None, "event_id": "stable id for idempotency", "provider": "dsn" | "ses" ...}

Parsers:

* :func:`parse_report` - a message sent back to our sender address: ``multipart/report`` with
  ``report-type=delivery-status`` (per-recipient ``Final-Recipient``, ``Action``, ``Status``:
  ``failed`` with 5.x.x is a hard bounce; 4.x.x and ``delayed`` are soft and change nothing) or
  ``report-type=feedback-report`` (``Feedback-Type: abuse`` and the other ARF types are
  complaints). The original ``Message-ID`` comes from the ``text/rfc822-headers`` or
  ``message/rfc822`` part; it is how the outbox row is found.
* :func:`parse_provider` - Amazon SES (SNS notification or bare message), SendGrid event webhook
  (a list of events), Postmark (``RecordType`` Bounce / SpamComplaint), Mailgun (``event-data``).

Applying (:func:`ingest_reports`, one transaction per record, idempotent: the tracking event's
``event_key`` is the kind, outbox row and address - one bounce per message and address whether a
DSN, a provider or a retried webhook reports it - or the report's ``event_id`` when the message
is unknown):

* hard bounce: suppression ``hard_bounce`` scope ``all``; the outbox row (found by Message-ID)
  becomes ``bounced``; a ``bounce`` tracking event;
* complaint: suppression ``complaint`` scope ``all``; the customers with that address (and the
  message's customer) opt out of marketing; a ``complaint`` tracking event and a ``complained``
  customer event;
* soft bounces are counted and otherwise ignored (the worker's retry policy owns them).

:func:`ingest_mailbox` reads a maildir or a folder of ``.eml`` files. Processed messages are
moved to a ``processed/`` subfolder of the folder read (so the next run does not parse them
again); a malformed message or one that is not a report is reported with its file name and left
where it is - nothing crashes the run, and re-reading is harmless because intake is idempotent.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import json
import re
import shutil
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import Engine

from winback.delivery import suppression
from winback.delivery.policy import address_problem, normalize_address
from winback.kit.db import make_engine, write_transaction
from winback.kit.errors import WinbackError
from winback.tracking import repository as repo
from winback.tracking.service import record_event

PROVIDERS = ("ses", "sendgrid", "postmark", "mailgun")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ADDR = re.compile(r"[^\s<>;\"']+@[^\s<>;\"']+")


class ReportError(WinbackError):
    """A message or payload that is not a usable bounce or complaint report."""


# --- mailed reports ------------------------------------------------------------------------------

def _addr(value: str | None) -> str | None:
    """``rfc822; User@Example.com`` -> ``user@example.com``."""
    if not value:
        return None
    text = str(value).split(";", 1)[-1].strip()
    m = _ADDR.search(text)
    return normalize_address(m.group(0).strip("<>")) if m else None


def _field_blocks(part: Message) -> list[Message]:
    """The header blocks of a ``message/delivery-status`` or ``message/feedback-report`` part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    if part.get("Content-Transfer-Encoding", "").lower() in ("base64", "quoted-printable"):
        raw = part.get_payload(decode=True) or b""
        text = raw.decode("utf-8", "replace")
    blocks = [b for b in re.split(r"\r?\n\s*\r?\n", text.strip()) if b.strip()]
    return [HeaderParser().parsestr(b + "\n") for b in blocks]


def _original_headers(msg: Message) -> Message | None:
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        elif ctype == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(part.get_payload())
            return HeaderParser().parsestr(text)
    return None


def _message_id(headers: Message | None) -> str | None:
    if headers is None:
        return None
    value = headers.get("Message-ID") or headers.get("Message-Id")
    value = " ".join(str(value).split()) if value else None
    return value or None


def _report_id(msg: Message, raw: bytes) -> str:
    own = msg.get("Message-ID")
    return f"{own.strip()}" if own else "sha256:" + hashlib.sha256(raw).hexdigest()[:32]


def parse_report(raw: bytes | str) -> list[dict]:
    """Records from a DSN or ARF message; :class:`ReportError` when it is neither (or unreadable)."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    if not data.strip():
        raise ReportError("empty message")
    try:
        msg = email.message_from_bytes(data, policy=email.policy.compat32)
    except Exception as exc:  # the stdlib parser is lenient; this is a guard, not a path
        raise ReportError(f"unreadable message ({type(exc).__name__})") from None
    if msg.get_content_type() != "multipart/report":
        raise ReportError(f"not a delivery or feedback report ({msg.get_content_type()})")
    report_type = (msg.get_param("report-type") or "").lower()
    original = _original_headers(msg)
    mid = _message_id(original)
    rid = _report_id(msg, data)
    if report_type == "delivery-status":
        return _dsn_records(msg, original, mid, rid)
    if report_type == "feedback-report":
        return _arf_records(msg, original, mid, rid)
    raise ReportError(f"unsupported report type {report_type or '(none)'!r}")


def _dsn_records(msg: Message, original: Message | None, mid: str | None, rid: str) -> list[dict]:
    part = next((p for p in msg.walk() if p.get_content_type() in ("message/delivery-status",
                                                                   "message/global-delivery-status")), None)
    if part is None:
        raise ReportError("delivery report without a message/delivery-status part")
    blocks = _field_blocks(part)
    out = []
    for block in blocks[1:] if len(blocks) > 1 else blocks:
        recipient = _addr(block.get("Final-Recipient") or block.get("Original-Recipient"))
        if recipient is None:
            continue
        action = (block.get("Action") or "").strip().lower()
        m = _STATUS.search(block.get("Status") or "")
        status = ".".join(m.groups()) if m else None
        hard = action == "failed" and status is not None and status.startswith("5")
        if action == "failed" and status is None:
            hard = True  # failed without a status code: permanent by definition of "failed"
        out.append({"kind": "bounce", "hard": hard, "recipient": recipient, "message_id": mid,
                    "status": status, "action": action or None,
                    "diagnostic": " ".join((block.get("Diagnostic-Code") or "").split())[:500] or None,
                    "event_id": f"dsn:{rid}:{recipient}", "provider": "dsn"})
    if not out:
        raise ReportError("delivery report without any recipient (Final-Recipient)")
    return out


def _arf_records(msg: Message, original: Message | None, mid: str | None, rid: str) -> list[dict]:
    part = next((p for p in msg.walk() if p.get_content_type() == "message/feedback-report"), None)
    if part is None:
        raise ReportError("feedback report without a message/feedback-report part")
    fields = _field_blocks(part)
    block = fields[0] if fields else Message()
    feedback = (block.get("Feedback-Type") or "").strip().lower()
    if not feedback:
        raise ReportError("feedback report without a Feedback-Type")
    recipients = [_addr(v) for v in block.get_all("Original-Rcpt-To") or []]
    recipients = [r for r in recipients if r]
    if not recipients and original is not None:
        recipients = [r for r in (_addr(v) for v in original.get_all("To") or []) if r]
    if not recipients:
        recipients = [None]  # the Message-ID may still identify the message (redacted reports)
    return [{"kind": "complaint", "hard": True, "recipient": r, "message_id": mid, "status": None,
             "feedback_type": feedback, "diagnostic": None, "event_id": f"arf:{rid}:{r or mid}",
             "provider": "arf"} for r in recipients]


# --- provider webhooks ---------------------------------------------------------------------------

def _brackets(mid: Any) -> str | None:
    if not mid or not isinstance(mid, str):
        return None
    mid = mid.strip()
    return mid if mid.startswith("<") else f"<{mid}>"


def parse_provider(provider: str, payload: Any) -> list[dict]:
    """Records from one provider webhook body (parsed JSON); :class:`ReportError` when unusable."""
    if isinstance(payload, (str, bytes)):
        try:
            payload = json.loads(payload)
        except ValueError:
            raise ReportError(f"{provider}: the body is not JSON") from None
    parser = {"ses": _ses, "sendgrid": _sendgrid, "postmark": _postmark, "mailgun": _mailgun}.get(provider)
    if parser is None:
        raise ReportError(f"unknown provider {provider!r} (use one of: {', '.join(PROVIDERS)})")
    try:
        records = parser(payload)
    except ReportError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ReportError(f"{provider}: unexpected payload ({type(exc).__name__}: {exc})") from None
    for r in records:
        r["provider"] = provider
    return records


def _ses(payload: dict) -> list[dict]:
    if not isinstance(payload, dict):
        raise ReportError("ses: expected a JSON object")
    message = payload.get("Message", payload) if payload.get("Type") == "Notification" else payload
    if isinstance(message, str):
        message = json.loads(message)
    kind = message.get("notificationType") or message.get("eventType")
    mail = message.get("mail") or {}
    mid = _brackets((mail.get("commonHeaders") or {}).get("messageId"))
    if mid is None:
        for h in mail.get("headers") or []:
            if str(h.get("name", "")).lower() == "message-id":
                mid = _brackets(h.get("value"))
    if kind == "Bounce":
        b = message["bounce"]
        hard = b.get("bounceType") == "Permanent"
        fid = b.get("feedbackId") or mail.get("messageId")
        return [{"kind": "bounce", "hard": hard, "recipient": _addr(r.get("emailAddress")), "message_id": mid,
                 "status": r.get("status"), "diagnostic": (r.get("diagnosticCode") or "")[:500] or None,
                 "event_id": f"ses:{fid}:{_addr(r.get('emailAddress'))}"} for r in b.get("bouncedRecipients", [])]
    if kind == "Complaint":
        c = message["complaint"]
        fid = c.get("feedbackId") or mail.get("messageId")
        return [{"kind": "complaint", "hard": True, "recipient": _addr(r.get("emailAddress")), "message_id": mid,
                 "status": None, "feedback_type": c.get("complaintFeedbackType"), "diagnostic": None,
                 "event_id": f"ses:{fid}:{_addr(r.get('emailAddress'))}"} for r in c.get("complainedRecipients", [])]
    return []  # Delivery, Send ... : nothing to do


def _sendgrid(payload: Any) -> list[dict]:
    events = payload if isinstance(payload, list) else [payload]
    out = []
    for e in events:
        if not isinstance(e, dict):
            raise ReportError("sendgrid: every event must be a JSON object")
        kind = e.get("event")
        eid = e.get("sg_event_id") or hashlib.sha256(json.dumps(e, sort_keys=True).encode()).hexdigest()[:32]
        mid = _brackets(e.get("smtp-id"))
        base = {"recipient": _addr(e.get("email")), "message_id": mid, "event_id": f"sendgrid:{eid}"}
        if kind == "bounce":
            status = str(e.get("status") or "") or None
            hard = e.get("type", "bounce") != "blocked" and not (status or "").startswith("4")
            out.append({"kind": "bounce", "hard": hard, "status": status,
                        "diagnostic": (e.get("reason") or "")[:500] or None, **base})
        elif kind == "dropped":
            reason = str(e.get("reason") or "")
            hard = bool(re.search(r"bounce|invalid", reason, re.I))
            out.append({"kind": "bounce", "hard": hard, "status": None, "diagnostic": reason[:500] or None, **base})
        elif kind == "spamreport":
            out.append({"kind": "complaint", "hard": True, "status": None, "feedback_type": "abuse",
                        "diagnostic": None, **base})
    return out


POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Blocked"}


def _postmark(payload: dict) -> list[dict]:
    if not isinstance(payload, dict):
        raise ReportError("postmark: expected a JSON object")
    kind = payload.get("RecordType")
    mid = None
    for h in payload.get("Headers") or []:
        if str(h.get("Name", "")).lower() == "message-id":
            mid = _brackets(h.get("Value"))
    base = {"recipient": _addr(payload.get("Email")), "message_id": mid,
            "event_id": f"postmark:{payload.get('RecordType')}:{payload['ID']}"}
    if kind == "Bounce":
        return [{"kind": "bounce", "hard": payload.get("Type") in POSTMARK_HARD, "status": None,
                 "diagnostic": (payload.get("Details") or payload.get("Description") or "")[:500] or None, **base}]
    if kind == "SpamComplaint":
        return [{"kind": "complaint", "hard": True, "status": None, "feedback_type": "abuse", "diagnostic": None,
                 **base}]
    return []


def _mailgun(payload: dict) -> list[dict]:
    if not isinstance(payload, dict):
        raise ReportError("mailgun: expected a JSON object")
    data = payload.get("event-data", payload)
    kind = data.get("event")
    mid = _brackets(((data.get("message") or {}).get("headers") or {}).get("message-id"))
    base = {"recipient": _addr(data.get("recipient")), "message_id": mid, "event_id": f"mailgun:{data['id']}"}
    if kind == "failed":
        ds = data.get("delivery-status") or {}
        return [{"kind": "bounce", "hard": data.get("severity") == "permanent",
                 "status": str(ds.get("code")) if ds.get("code") is not None else None,
                 "diagnostic": (ds.get("description") or ds.get("message") or "")[:500] or None, **base}]
    if kind == "complained":
        return [{"kind": "complaint", "hard": True, "status": None, "feedback_type": "abuse", "diagnostic": None,
                 **base}]
    return []


# --- applying records ----------------------------------------------------------------------------

def _new_counts() -> dict:
    return {"records": 0, "hard_bounces": 0, "soft_bounces": 0, "complaints": 0, "suppressed": 0, "opted_out": 0,
            "messages_bounced": 0, "unmatched": 0, "duplicates": 0, "errors": []}


def ingest_reports(settings, records: Iterable[dict], *, source: str, now: dt.datetime | None = None,
                   engine: Engine | None = None) -> dict:
    """Apply normalised bounce/complaint records; returns counts and per-record errors (never raises for one)."""
    now = now or settings.clock().now()
    counts = _new_counts()
    own = engine is None
    engine = engine or make_engine(settings.resolved_state_url)
    try:
        for rec in records:
            counts["records"] += 1
            try:
                _apply(engine, rec, source, now, counts)
            except WinbackError as exc:
                counts["errors"].append({"event_id": rec.get("event_id"), "error": str(exc)})
    finally:
        if own:
            engine.dispose()
    return counts


def _apply(engine: Engine, rec: dict, source: str, now: dt.datetime, counts: dict) -> None:
    kind = rec.get("kind")
    if kind not in ("bounce", "complaint") or not rec.get("event_id"):
        raise WinbackError(f"not a bounce or complaint record: {str(rec)[:120]}")
    if kind == "bounce" and not rec.get("hard"):
        counts["soft_bounces"] += 1
        return
    with write_transaction(engine) as conn:
        row = repo.message_by_key(conn, rec["message_id"]) if rec.get("message_id") else None
        address = rec.get("recipient") or (row or {}).get("to_address")
        if kind == "complaint" and row is not None and row.get("to_address"):
            address = row["to_address"]  # ARF reports are often redacted: where we sent it is what counts
        if not address or address_problem(address):
            raise WinbackError(f"{rec['event_id']}: no usable recipient address ({address!r})")
        address = normalize_address(address)
        customer_id = (row or {}).get("customer_id")
        customers = sorted(set(repo.customers_by_email(conn, address)) | ({customer_id} if customer_id else set()))
        detail = {k: rec.get(k) for k in ("status", "action", "diagnostic", "feedback_type", "provider")
                  if rec.get(k)}
        detail["address"] = address
        written = record_event(conn, kind=kind, outbox_row=row, customer_id=customer_id or (customers[0] if customers
                                                                                           else None),
                               source=source, now=now, detail=detail, event_key=_event_key(rec, row, address))
        if written is None:
            counts["duplicates"] += 1
            return
        if row is None:
            counts["unmatched"] += 1
        reason = "hard_bounce" if kind == "bounce" else "complaint"
        if suppression.add(conn, address, reason, scope="all", source=source, customer_id=customer_id,
                           detail=json.dumps(detail, default=str)[:2000], now=now):
            counts["suppressed"] += 1
        if kind == "bounce":
            counts["hard_bounces"] += 1
            if row is not None and repo.mark_bounced(conn, row["id"], f"{rec.get('status') or ''} "
                                                                      f"{rec.get('diagnostic') or ''}".strip()):
                counts["messages_bounced"] += 1
            return
        counts["complaints"] += 1
        counts["opted_out"] += len(repo.opt_out_customers(conn, customers, now))
        repo.insert_customer_events(conn, [{
            "event_id": f"complained:{rec['event_id']}"[:255], "customer_id": cid, "type": "complained",
            "occurred_at": now, "received_at": now, "source": "webhook" if source.startswith("provider") else "worker",
            "properties": json.dumps({"address": address, "source": source, "message": rec.get("message_id")}),
        } for cid in ([customer_id] if customer_id else customers[:1])])


def _event_key(rec: dict, row: dict | None, address: str) -> str:
    """One bounce or complaint per message and address, whichever channel reported it (a DSN and the
    provider's webhook, or a webhook retried); reports without a known message: per report id."""
    if row is not None:
        return f"{rec['kind']}:{row['id']}:{address}"[:255]
    return f"{rec['kind']}:{rec['event_id']}"[:255]


# --- mailbox -------------------------------------------------------------------------------------

def _mail_files(path: Path) -> tuple[Path, list[Path]]:
    """(the folder processed files move under, the message files) of a maildir, folder or file."""
    if path.is_file():
        return path.parent, [path]
    if not path.is_dir():
        raise WinbackError(f"no such file or folder: {path}")
    if (path / "cur").is_dir() or (path / "new").is_dir():
        files = [f for sub in ("new", "cur") if (path / sub).is_dir() for f in sorted((path / sub).iterdir())
                 if f.is_file() and not f.name.startswith(".")]
        return path, files
    return path, sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))


def ingest_mailbox(settings, path: Path | str, *, now: dt.datetime | None = None,
                   engine: Engine | None = None) -> dict:
    """Read DSN/ARF messages from a maildir, a folder of ``.eml`` files or one file, and apply them."""
    root, files = _mail_files(Path(path))
    now = now or settings.clock().now()
    total = {**_new_counts(), "files": len(files), "processed_files": 0, "skipped": []}
    own = engine is None
    engine = engine or make_engine(settings.resolved_state_url)
    try:
        for f in files:
            try:
                records = parse_report(f.read_bytes())
            except (ReportError, OSError) as exc:
                total["skipped"].append({"file": f.name, "reason": str(exc)})
                continue
            source = "arf" if records and records[0]["kind"] == "complaint" else "dsn"
            counts = ingest_reports(settings, records, source=source, now=now, engine=engine)
            for k, v in counts.items():
                if k == "errors":
                    total["errors"] += [{"file": f.name, **e} for e in v]
                else:
                    total[k] += v
            if not counts["errors"]:
                _move_processed(root, f)
                total["processed_files"] += 1
    finally:
        if own:
            engine.dispose()
    return total


def _move_processed(root: Path, f: Path) -> None:
    target = root / "processed"
    target.mkdir(exist_ok=True)
    name = f.name.split(":2,")[0]  # a maildir file's flags are not part of its identity
    dest = target / name
    if dest.exists():
        dest = target / f"{name}.{hashlib.sha256(str(f).encode()).hexdigest()[:8]}"
    shutil.move(str(f), str(dest))
