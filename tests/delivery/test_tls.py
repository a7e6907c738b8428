"""SMTP over STARTTLS and implicit TLS with authentication, against a real aiosmtpd server that
requires both, and a certificate made for the test (checked against its CA file)."""

from __future__ import annotations

import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.delivery.conftest import configure, drain
from tests.delivery.factories import add_customer, insert_messages, message_row
from tests.delivery.smtp_server import free_port

USER, PASSWORD = "winback", "s3cret-pw"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


class _Handler:
    def __init__(self):
        self.sessions: list[dict] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            tls = server.transport.get_extra_info("ssl_object") is not None
            self.sessions.append({"tls": tls, "authenticated": session.authenticated,
                                  "rcpt": list(envelope.rcpt_tos)})
        return "250 2.0.0 accepted"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() and \
        auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok)


def _server(certificate, implicit: bool):
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    handler = _Handler()
    # aiosmtpd only counts STARTTLS for auth_require_tls; on an implicit-TLS port the whole session
    # is encrypted already (the handler records session.ssl to prove it)
    kwargs = dict(hostname="127.0.0.1", port=free_port(), authenticator=_authenticator,
                  auth_require_tls=not implicit)
    if implicit:
        controller = Controller(handler, ssl_context=context, **kwargs)
    else:
        controller = Controller(handler, tls_context=context, require_starttls=True, **kwargs)
    return controller, handler


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_smtp_with_tls_and_auth(workspace, engine, clock, certificate, mode):
    controller, handler = _server(certificate, implicit=mode == "tls")
    controller.start()
    try:
        with engine.begin() as conn:
            cid = add_customer(conn, "tls@example.net")
            insert_messages(conn, [message_row("t1", "tls@example.net", customer_id=cid)])
        settings = configure(workspace, email_channel="smtp", smtp_host="127.0.0.1", smtp_port=controller.port,
                             smtp_tls=mode, smtp_ca_file=str(certificate[0]), smtp_username=USER,
                             smtp_password=PASSWORD, smtp_timeout_seconds=10.0)
        summary = drain(settings, clock)
    finally:
        controller.stop()
    assert summary.sent == 1
    assert handler.sessions == [{"tls": True, "authenticated": True, "rcpt": ["tls@example.net"]}]


def test_a_wrong_password_is_retried_not_sent(workspace, engine, clock, certificate):
    controller, handler = _server(certificate, implicit=False)
    controller.start()
    try:
        with engine.begin() as conn:
            cid = add_customer(conn, "tls2@example.net")
            insert_messages(conn, [message_row("t2", "tls2@example.net", customer_id=cid)])
        settings = configure(workspace, email_channel="smtp", smtp_host="127.0.0.1", smtp_port=controller.port,
                             smtp_tls="starttls", smtp_ca_file=str(certificate[0]), smtp_username=USER,
                             smtp_password="wrong", smtp_timeout_seconds=10.0)
        summary = drain(settings, clock)
    finally:
        controller.stop()
    assert summary.sent == 0 and handler.sessions == []
    with engine.connect() as conn:
        from sqlalchemy import text

        status, attempts, error = conn.execute(text("SELECT status, attempts, last_error FROM outbox_messages")).one()
    assert status == "pending" and attempts == 1 and error  # retried later with backoff, never lost
