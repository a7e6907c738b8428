"""What the server receives: RFC 8058 headers, List-Id, link and postal address in both parts, a
DKIM signature that verifies."""

from __future__ import annotations

import email
import email.policy
import subprocess

import dkim

from tests.delivery.conftest import drain, smtp_settings
from tests.delivery.factories import BASE_URL, POSTAL, add_campaign, add_customer, insert_messages, message_row


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
