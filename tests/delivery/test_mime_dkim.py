"""What the server receives: RFC 8058 headers, List-Id, link and postal address in both parts, a
DKIM signature that verifies; and the message builder itself: RFC 2047 non-ASCII headers, folding,
CRLF, MIME bodies, refused header injection."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import subprocess

import dkim
import pytest

from tests.delivery.conftest import drain, smtp_settings
from tests.delivery.factories import BASE_URL, POSTAL, add_campaign, add_customer, insert_messages, message_row
from winback.config import SenderSettings
from winback.delivery.mime import MessageRefused, build_message


def make_key(tmp_path):
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    pub = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    import base64
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(pub)


def test_received_message_headers_bodies_and_dkim(workspace, engine, clock, smtp, tmp_path):
    key, txt = make_key(tmp_path)
    with engine.begin() as conn:
        cid = add_customer(conn, "reader@example.net")
        camp = add_campaign(conn, key="price_winback", title="Price win-back")
        insert_messages(conn, [message_row("enr:1:step:0", "reader@example.net", customer_id=cid, campaign_id=camp,
                                           subject="Wir vermissen Sie – 20 % Rabatt",
                                           from_address="hello@example.com")])
    settings = smtp_settings(workspace, smtp, dkim_domain="example.com", dkim_selector="wb1",
                             dkim_private_key=str(key))
    settings.sender.reply_to = "help@example.com"
    assert drain(settings, clock).sent == 1
    raw = smtp.received[0].content
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    url = f"{BASE_URL}/u/enr-1-step-0"
    assert msg["List-Unsubscribe"] == f"<{url}>, <mailto:unsubscribe@example.com?subject=enr-1-step-0>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] == '"Price win-back" <price-winback.example.com>'
    assert msg["Message-ID"] == "<enr-1-step-0.t@winback.test>"
    assert msg["Subject"] == "Wir vermissen Sie – 20 % Rabatt"
    assert msg["Reply-To"] == "help@example.com" and msg["Date"] is not None
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for part in (text, html):
        assert url in part and POSTAL in part

    def dns(name, timeout=5):
        return txt if name == b"wb1._domainkey.example.com." else None

    assert dkim.verify(raw, dnsfunc=dns)
    signed = msg["DKIM-Signature"].replace(" ", "").replace("\r\n", "").replace("\n", "").replace("\t", "")
    h = next(p for p in signed.split(";") if p.startswith("h=")).lower()
    for name in ("from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"):
        assert name in h.removeprefix("h=").split(":")
    tampered = raw.replace(b"come back!", b"come back?", 1)
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_japanese_subject_and_names_round_trip_signed(workspace, engine, clock, smtp, tmp_path):
    key, txt = make_key(tmp_path)
    subject = "お帰りなさい！特別な20%オフクーポンをご用意しました。期間限定ですのでお見逃しなく、今すぐチェックしてください"
    with engine.begin() as conn:
        cid = add_customer(conn, "yamada@example.net")
        camp = add_campaign(conn, key="jp_winback", title="日本のお客様へ")
        row = message_row("enr:2:step:0", "yamada@example.net", customer_id=cid, campaign_id=camp, subject=subject)
        row["text_body"] = "山田様\n\nまたのご利用をお待ちしております。\n" + row["text_body"]
        row["html_body"] = "<p>山田様</p>" + row["html_body"]
        insert_messages(conn, [row])
    settings = smtp_settings(workspace, smtp, dkim_domain="example.com", dkim_selector="wb1",
                             dkim_private_key=str(key))
    settings.sender.from_name = "山田商店 カスタマーサポート"
    assert drain(settings, clock).sent == 1
    raw = smtp.received[0].content
    assert raw.isascii()  # RFC 2047 headers, quoted-printable / base64 bodies: no 8-bit data on the wire
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n")), head
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == subject
    assert msg["From"].addresses[0].display_name == "山田商店 カスタマーサポート"
    assert msg["From"].addresses[0].addr_spec == "hello@example.com"
    assert msg["List-Id"].endswith("<jp-winback.example.com>") and "日本のお客様へ" in msg["List-Id"]
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text == row["text_body"]
    assert msg.get_body(("html",)).get_content().startswith("<p>山田様</p>")

    def dns(name, timeout=5):
        return txt if name == b"wb1._domainkey.example.com." else None

    assert dkim.verify(raw, dnsfunc=dns)


# --- the builder itself (no database) -----------------------------------------------------------------

NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.timezone.utc)


def build(**overrides):
    sender = SenderSettings(**overrides.pop("sender", {}))
    campaign = overrides.pop("campaign", None)
    return build_message(message_row("k:1", "to@example.net", **overrides), sender, NOW, campaign)


def parse(raw: bytes):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert not msg.defects and all(not part.defects for part in msg.walk())
    return msg


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_long_subject_folds_and_round_trips():
    subject = " ".join(f"word{i}" for i in range(40))[:200]
    assert len(subject) == 200
    raw = build(subject=subject).as_bytes()
    lines = header_lines(raw)
    start = next(i for i, line in enumerate(lines) if line.startswith(b"Subject: "))
    assert lines[start + 1].startswith(b" ")  # folded: continuation lines start with whitespace
    assert all(len(line) <= 78 for line in lines)
    assert parse(raw)["Subject"] == subject
    for long in ("Ünïcödé " * 30, "日本語のタイトル" * 20):  # encoded-words fold too
        raw = build(subject=long.strip()).as_bytes()
        assert all(len(line) <= 78 for line in header_lines(raw))
        assert parse(raw)["Subject"] == long.strip()


def test_message_is_crlf_ascii_with_standard_headers():
    msg = build(campaign={"id": 1, "key": "price", "title": 'Price "win-back"'},
                sender={"reply_to": "help@example.com"})
    raw = msg.as_bytes()
    assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"")
    parsed = parse(raw)
    for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Reply-To", "List-Id",
                 "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert parsed[name], name
        assert name.lower() in [k.lower() for k in msg.keys()]
    assert parsed["MIME-Version"] == "1.0" and parsed["Date"] == "Thu, 15 Jan 2026 12:00:00 +0000"
    assert parsed["List-Id"] == "\"Price 'win-back'\" <price.example.com>"
    assert parsed.get_content_type() == "multipart/alternative"
    assert [(p.get_content_type(), p.get_content_charset()) for p in parsed.iter_parts()] == [
        ("text/plain", "utf-8"), ("text/html", "utf-8")]


@pytest.mark.parametrize("text", [
    "plain ascii\n",
    "line without newline",
    "mixed\r\nline\rendings\n",
    "Grüße – 20 % Rabatt\n= signs =3D and trailing space \n" + "x" * 200 + "\n",
    "日本語の本文です。\n" * 20,
    "--=_wb_ looks like a boundary\n.\n.leading dot\nFrom the start\n",
])
def test_bodies_round_trip(text):
    html = "<p>" + text.replace("\n", "<br>\n") + "</p>"
    parsed = parse(build(text_body=text, html_body=html).as_bytes())
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    expected += "" if expected.endswith("\n") else "\n"
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == expected
    assert parsed.get_body(("html",)).get_content().replace("\r\n", "\n") == \
        html.replace("\r\n", "\n").replace("\r", "\n") + "\n"


def test_single_part_messages():
    text_only = parse(build(html_body=None).as_bytes())
    assert text_only.get_content_type() == "text/plain" and not text_only.is_multipart()
    html_only = parse(build(text_body=None, html_body="<p>Hallo Jürgen</p>").as_bytes())
    assert html_only.get_content_type() == "text/html"
    assert html_only.get_content().strip() == "<p>Hallo Jürgen</p>"


def test_display_names_are_quoted_or_encoded():
    for name in ("Acme, Inc.", 'Say "hi"', "Müller & Söhne GmbH", "山田商店", "Plain Name"):
        parsed = parse(build(sender={"from_name": name}).as_bytes())
        assert parsed["From"].addresses[0].display_name == name
        assert parsed["From"].addresses[0].addr_spec == "hello@example.com"
    for name in ("Müller & Söhne GmbH", "山田商店 サポート", "Plain Name"):  # Reply-To as written in the settings
        parsed = parse(build(sender={"reply_to": f"{name} <help@example.com>"}).as_bytes())
        assert parsed["Reply-To"].addresses[0].display_name == name
        assert parsed["Reply-To"].addresses[0].addr_spec == "help@example.com"
    parsed = parse(build(sender={"from_name": ""}).as_bytes())
    assert parsed["From"] == "hello@example.com"


def test_encoded_word_lookalikes_and_extra_headers_survive():
    raw = build(subject="=?utf-8?q?not_encoded?= really",
                headers={"X-Note": ("Grüße " * 20).strip(), "List-Unsubscribe": "<https://win.example.com/u/k-1>",
                         "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}).as_bytes()
    parsed = parse(raw)
    assert parsed["Subject"] == "=?utf-8?q?not_encoded?= really"
    assert parsed["X-Note"] == ("Grüße " * 20).strip()
    assert all(len(line) <= 78 for line in header_lines(raw))


@pytest.mark.parametrize("overrides, reason", [
    ({"subject": "Hi\r\nBcc: evil@example.org"}, "Subject contains CR/LF"),
    ({"subject": "Hi\nBcc: evil@example.org"}, "Subject contains CR/LF"),
    ({"to_address": "to@example.net\r\nBcc: evil@example.org"}, "control characters"),
    ({"headers": {"X-A": "a\rb"}}, "X-A contains CR/LF"),
    ({"headers": {"Bad Name": "x"}}, "invalid header name"),
    ({"headers": {"Content-Type": "text/plain"}}, "may not be set"),
    ({"message_id": "<a\r\nb@x>"}, "Message-ID"),
    ({"sender": {"from_name": "Evil\r\nBcc: x@example.org"}}, "From contains CR/LF"),
    ({"sender": {"reply_to": "a@example.com\r\nBcc: x@example.org"}}, "Reply-To contains CR/LF"),
    ({"text_body": None, "html_body": None}, "neither a text nor an HTML body"),
])
def test_header_injection_and_bad_input_refused(overrides, reason):
    with pytest.raises(MessageRefused, match=reason):
        build(**overrides)
