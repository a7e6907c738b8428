"""Sign-in, sessions, API keys and CSRF (winback.web.auth, winback.web.login) on both backends."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from winback.kit.signing import sign
from winback.web import auth
from winback.web.app import create_app

PASSWORD = "correct horse battery"


@pytest.fixture
def app(workspace):
    application = create_app(workspace)
    now = workspace.clock().now()
    for role in ("viewer", "marketer", "admin"):
        auth.create_user(application.state.engine, f"{role}@example.com", PASSWORD, role, now=now)

    @application.get("/_probe/{role}")
    def probe_get(role: str, who=Depends(auth.require("viewer"))):
        return {"name": who.name, "role": who.role, "kind": who.kind}

    @application.post("/_probe/admin")
    def probe_post(who=Depends(auth.require("admin"))):
        return {"ok": True}

    yield application
    application.state.engine.dispose()


def login(client: TestClient, email: str, password: str = PASSWORD):
    return client.post("/login", data={"email": email, "password": password, "next": "/"}, follow_redirects=False)


def test_password_hash_is_salted_scrypt_and_verifies():
    a, b = auth.hash_password("s3cret-password"), auth.hash_password("s3cret-password")
    assert a != b and a.startswith("scrypt$16384$8$1$")
    assert auth.verify_password("s3cret-password", a)
    assert not auth.verify_password("s3cret-passworD", a)
    assert not auth.verify_password("x", "md5$abc")  # unknown schemes never verify
    assert not auth.verify_password("x", "garbage")


def test_user_input_errors(app):
    engine, now = app.state.engine, app.state.clock.now()
    with pytest.raises(auth.AuthError, match="at least 10"):
        auth.create_user(engine, "new@example.com", "short", "viewer", now=now)
    with pytest.raises(auth.AuthError, match="unknown role"):
        auth.create_user(engine, "new@example.com", PASSWORD, "root", now=now)
    with pytest.raises(auth.AuthError, match="already exists"):
        auth.create_user(engine, "ADMIN@example.com ", PASSWORD, "admin", now=now)
    with pytest.raises(auth.AuthError, match="not an e-mail"):
        auth.create_user(engine, "nobody", PASSWORD, "admin", now=now)


def test_login_sets_a_hardened_session_and_rejects_wrong_passwords(app):
    with TestClient(app) as client:
        bad = login(client, "admin@example.com", "wrong password here")
        assert bad.status_code == 401 and "Wrong e-mail address or password" in bad.text
        assert auth.SESSION_COOKIE not in bad.cookies
        assert login(client, "ghost@example.com").status_code == 401
        ok = login(client, "Admin@Example.com")
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie  # http base_url
        assert client.get("/_probe/x").json() == {"name": "admin@example.com", "role": "admin", "kind": "user"}


def test_secure_cookie_when_served_over_https(workspace):
    workspace.sender.base_url = "https://winback.example.com"
    application = create_app(workspace)
    auth.create_user(application.state.engine, "a@example.com", PASSWORD, "admin", now=workspace.clock().now())
    with TestClient(application, base_url="https://testserver") as client:
        assert "secure" in login(client, "a@example.com").headers["set-cookie"].lower()
    application.state.engine.dispose()


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_login_never_redirects_off_site(app, target):
    with TestClient(app) as client:
        r = client.post("/login", data={"email": "viewer@example.com", "password": PASSWORD, "next": target},
                        follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"


def test_session_cookie_tampering_and_expiry_and_password_change(app, workspace):
    with TestClient(app) as client:
        login(client, "marketer@example.com")
        assert client.get("/_probe/x").status_code == 200
        token = client.cookies.get(auth.SESSION_COOKIE)
        body, mac = token.split(".")
        client.cookies.set(auth.SESSION_COOKIE, body + "." + ("A" if mac[0] != "A" else "B") + mac[1:])
        assert client.get("/_probe/x").status_code == 401
        # a session signed for another user id by someone without the key
        forged = sign(b"not-the-key", "session", {"u": 1, "e": 0, "x": "c"},
                      expires_at=workspace.clock().now() + dt.timedelta(hours=1))
        client.cookies.set(auth.SESSION_COOKIE, forged)
        assert client.get("/_probe/x").status_code == 401
        # expired
        past = sign(workspace.signing_key(), "session", {"u": 2, "e": 0, "x": "c"},
                    expires_at=workspace.clock().now() - dt.timedelta(seconds=1))
        client.cookies.set(auth.SESSION_COOKIE, past)
        assert client.get("/_probe/x").status_code == 401
        client.cookies.clear()
        login(client, "marketer@example.com")
        assert client.get("/_probe/x").status_code == 200
        auth.set_password(app.state.engine, "marketer@example.com", "another long password")
        assert client.get("/_probe/x").status_code == 401  # every session signed out


def test_api_keys_roles_revocation_and_csrf(app):
    engine, now = app.state.engine, app.state.clock.now()
    viewer = auth.create_api_key(engine, "reporting", "viewer", now=now)
    admin = auth.create_api_key(engine, "ops", "admin", now=now)
    assert viewer["key"].startswith(f"wbk_{viewer['prefix']}_")
    stored = json.dumps(auth.list_api_keys(engine), default=str)
    assert viewer["key"].split("_", 2)[2] not in stored  # the secret is never stored
    with TestClient(app) as client:
        assert client.get("/_probe/x").status_code == 401
        assert client.get("/_probe/x", headers={"Authorization": f"Bearer {viewer['key']}"}).json()["kind"] == \
            "api_key"
        assert client.get("/_probe/x", headers={"X-API-Key": viewer["key"]}).status_code == 200
        assert client.post("/_probe/admin", headers={"X-API-Key": viewer["key"]}).status_code == 403
        assert client.post("/_probe/admin", headers={"X-API-Key": admin["key"]}).status_code == 200  # no CSRF
        wrong = admin["key"][:-2] + ("xx" if not admin["key"].endswith("xx") else "yy")
        assert client.get("/_probe/x", headers={"X-API-Key": wrong}).status_code == 401
        assert auth.revoke_api_key(engine, admin["prefix"], now=now)
        app.state.api_key_cache.clear()
        assert client.post("/_probe/admin", headers={"X-API-Key": admin["key"]}).status_code == 401
        # a session needs the CSRF header for unsafe methods
        login(client, "admin@example.com")
        assert client.post("/_probe/admin").status_code == 403
        assert client.post("/_probe/admin", headers={auth.CSRF_HEADER: "guess"}).status_code == 403


def test_revoked_key_is_refused_once_the_cache_expires(app, monkeypatch):
    engine, now = app.state.engine, app.state.clock.now()
    key = auth.create_api_key(engine, "k", "admin", now=now)
    with TestClient(app) as client:
        assert client.get("/_probe/x", headers={"X-API-Key": key["key"]}).status_code == 200
        auth.revoke_api_key(engine, key["prefix"], now=now)  # e.g. by `winback apikeys revoke` elsewhere
        assert client.get("/_probe/x", headers={"X-API-Key": key["key"]}).status_code == 200  # cached
        monkeypatch.setattr(auth, "KEY_CACHE_SECONDS", 0.0)
        assert client.get("/_probe/x", headers={"X-API-Key": key["key"]}).status_code == 401


def test_logout_needs_the_csrf_token(app):
    with TestClient(app) as client:
        login(client, "viewer@example.com")
        r = client.post("/logout", data={"csrf_token": "nope"}, follow_redirects=False)
        assert r.status_code == 403
        assert client.get("/_probe/x").status_code == 200


def test_cli_users_and_apikeys(workspace):
    from winback.cli.app import app as cli

    runner = CliRunner()
    ws = str(workspace.workspace)
    r = runner.invoke(cli, ["users", "add", "boss@example.com", "-w", ws, "--role", "admin", "--password-stdin",
                            "--json"], input=PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["user"]["role"] == "admin"
    r = runner.invoke(cli, ["users", "add", "boss@example.com", "-w", ws, "--password-stdin"], input=PASSWORD + "\n")
    assert r.exit_code != 0 and "already exists" in r.output
    r = runner.invoke(cli, ["apikeys", "create", "crm", "-w", ws, "--role", "viewer", "--json"])
    key = json.loads(r.output)
    assert key["key"].startswith("wbk_")
    listed = json.loads(runner.invoke(cli, ["apikeys", "list", "-w", ws, "--json"]).output)["keys"]
    assert [k["prefix"] for k in listed] == [key["prefix"]] and "key" not in listed[0]
    assert runner.invoke(cli, ["apikeys", "revoke", key["prefix"], "-w", ws]).exit_code == 0
    r = runner.invoke(cli, ["apikeys", "revoke", key["prefix"], "-w", ws])
    assert r.exit_code != 0 and "no active API key" in r.output
    users = json.loads(runner.invoke(cli, ["users", "list", "-w", ws, "--json"]).output)["users"]
    assert users[0]["email"] == "boss@example.com" and "password_hash" not in users[0]
