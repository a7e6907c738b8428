"""Who is asking: users (scrypt-hashed passwords, roles), API keys, session cookies and CSRF.

* Passwords are hashed with scrypt (RFC 7914; n=2**14, r=8, p=1, 16-byte salt), compared in
  constant time; an unknown e-mail address costs the same as a wrong password.
* A session is a signed cookie (:mod:`winback.kit.signing`, purpose ``session``) carrying the
  user id, the user's ``session_epoch`` (raising it logs out every session of that user), a CSRF
  token and an expiry. It is ``HttpOnly``, ``SameSite=Lax`` and ``Secure`` when the public URL
  is https (or ``[web] secure_cookies``).
* CSRF: every form carries the session's token (``csrf_token``); JavaScript sends it as
  ``X-CSRF-Token``. Requests authenticated by an API key carry no cookie and need no token.
* API keys look like ``wbk_<prefix>_<secret>``; only SHA-256 of the secret is stored.
* Roles are ordered viewer < marketer < admin: viewers read, marketers change campaigns and
  preferences, admins manage users and keys.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from fastapi import HTTPException, Request
from sqlalchemy import Engine, insert, select, update

from winback.kit.db import write_transaction
from winback.kit.errors import WinbackError
from winback.kit.signing import BadSignature, sign, verify
from winback.models.web import ROLES, ApiKey, User

USERS = User.__table__
KEYS = ApiKey.__table__
SESSION_COOKIE = "winback_session"
CSRF_HEADER = "X-CSRF-Token"
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
MIN_PASSWORD = 10


class AuthError(WinbackError):
    """Bad user or key input (duplicate user, weak password, unknown role)."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), dklen=len(digest) // 2,
                             n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def role_at_least(role: str, needed: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role


# --- users -------------------------------------------------------------------------------------

def create_user(engine: Engine, email: str, password: str, role: str, *, name: str | None = None,
                now: dt.datetime) -> dict:
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 320:
        raise AuthError(f"not an e-mail address: {email!r}")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password must have at least {MIN_PASSWORD} characters")
    _check_role(role)
    with write_transaction(engine) as conn:
        if conn.execute(select(USERS.c.id).where(USERS.c.email == email)).first():
            raise AuthError(f"user {email} already exists")
        uid = conn.execute(insert(USERS).values(email=email, name=name, password_hash=hash_password(password),
                                                role=role, disabled=False, session_epoch=0, created_at=now)
                           .returning(USERS.c.id)).scalar_one()
    return {"id": uid, "email": email, "role": role, "name": name}


def set_password(engine: Engine, email: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password must have at least {MIN_PASSWORD} characters")
    with write_transaction(engine) as conn:
        done = conn.execute(update(USERS).where(USERS.c.email == email.strip().lower()).values(
            password_hash=hash_password(password), session_epoch=USERS.c.session_epoch + 1)).rowcount
    if not done:
        raise AuthError(f"no user {email}")


def list_users(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(USERS.c.id, USERS.c.email, USERS.c.name, USERS.c.role, USERS.c.disabled, USERS.c.created_at,
                   USERS.c.last_login_at).order_by(USERS.c.id))]


def authenticate(engine: Engine, email: str, password: str, *, now: dt.datetime) -> dict | None:
    """The user for a correct e-mail and password (and records the login), else ``None``."""
    with engine.connect() as conn:
        row = conn.execute(select(USERS).where(USERS.c.email == (email or "").strip().lower())).first()
    if row is None:
        verify_password(password, _DUMMY_HASH)  # same cost as a wrong password
        return None
    if not verify_password(password, row.password_hash) or row.disabled:
        return None
    with write_transaction(engine) as conn:
        conn.execute(update(USERS).where(USERS.c.id == row.id).values(last_login_at=now))
    return dict(row._mapping)


# --- API keys ----------------------------------------------------------------------------------

def create_api_key(engine: Engine, name: str, role: str, *, now: dt.datetime, user_id: int | None = None) -> dict:
    """A new key; the full key is returned once and never stored."""
    _check_role(role)
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    with write_transaction(engine) as conn:
        kid = conn.execute(insert(KEYS).values(name=name.strip() or "key", prefix=prefix, role=role, user_id=user_id,
                                               secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
                                               created_at=now).returning(KEYS.c.id)).scalar_one()
    return {"id": kid, "name": name, "role": role, "prefix": prefix, "key": f"wbk_{prefix}_{secret}"}


def list_api_keys(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(KEYS.c.id, KEYS.c.name, KEYS.c.prefix, KEYS.c.role, KEYS.c.created_at, KEYS.c.last_used_at,
                   KEYS.c.revoked_at).order_by(KEYS.c.id))]


def revoke_api_key(engine: Engine, prefix: str, *, now: dt.datetime) -> bool:
    with write_transaction(engine) as conn:
        return bool(conn.execute(update(KEYS).where(KEYS.c.prefix == prefix, KEYS.c.revoked_at.is_(None))
                                 .values(revoked_at=now)).rowcount)


KEY_CACHE_SECONDS = 10.0  # a key revoked from another process stops working within this time


def check_api_key(engine: Engine, key: str, cache: dict | None = None) -> dict | None:
    """The key's row when ``key`` is valid and not revoked.

    ``cache`` (prefix -> (row, fetched at)) saves a query per request for ``KEY_CACHE_SECONDS``.
    """
    parts = (key or "").split("_")
    if len(parts) < 3 or parts[0] != "wbk" or len(key) > 200:
        return None
    prefix, secret = parts[1], "_".join(parts[2:])
    cached = cache.get(prefix) if cache is not None else None
    row = cached[0] if cached and time.monotonic() - cached[1] < KEY_CACHE_SECONDS else None
    if row is None:
        with engine.connect() as conn:
            found = conn.execute(select(KEYS).where(KEYS.c.prefix == prefix)).first()
        if found is None:
            return None
        row = dict(found._mapping)
        if cache is not None:
            if len(cache) > 10_000:
                cache.clear()
            cache[prefix] = (row, time.monotonic())
    if row["revoked_at"] is not None:
        return None
    if not hmac.compare_digest(hashlib.sha256(secret.encode()).hexdigest(), row["secret_hash"]):
        return None
    return row


# --- who is asking -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Principal:
    kind: str  # user | api_key
    id: int
    name: str
    role: str
    csrf: str | None = None  # sessions only

    def can(self, role: str) -> bool:
        return role_at_least(self.role, role)


def secure_cookies(settings) -> bool:
    if settings.web.secure_cookies is not None:
        return settings.web.secure_cookies
    return settings.sender.base_url.lower().startswith("https://")


def session_token(settings, user: dict, *, now: dt.datetime) -> str:
    expires = now + dt.timedelta(hours=settings.web.session_hours)
    return sign(settings.signing_key(), "session", {"u": user["id"], "e": user.get("session_epoch", 0),
                                                     "x": secrets.token_urlsafe(18)}, expires_at=expires)


def set_session_cookie(response, settings, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(settings.web.session_hours * 3600), httponly=True,
                        samesite="lax", secure=secure_cookies(settings), path="/")


def clear_session_cookie(response, settings) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure_cookies(settings))


def principal_from_request(request: Request) -> Principal | None:
    state = request.app.state
    settings, engine = state.settings, state.engine
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key")
    if key:
        row = check_api_key(engine, key, state.api_key_cache)
        if row is None:
            return None
        return Principal("api_key", row["id"], row["name"], row["role"])
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        data = verify(settings.signing_key(), "session", token, now=state.clock.now())
    except BadSignature:
        return None
    if data.get("exp") is None:
        return None
    with engine.connect() as conn:
        user = conn.execute(select(USERS.c.id, USERS.c.email, USERS.c.role, USERS.c.disabled,
                                   USERS.c.session_epoch).where(USERS.c.id == data.get("u"))).first()
    if user is None or user.disabled or user.session_epoch != data.get("e"):
        return None
    return Principal("user", user.id, user.email, user.role, csrf=str(data.get("x")))


class LoginRequired(Exception):
    """Raised by page dependencies: the app answers with a redirect to the login page."""


def require(role: str = "viewer", *, page: bool = False):
    """A FastAPI dependency: the principal, when it has at least ``role``.

    API requests get 401 (no or bad credentials) or 403 (role too low); pages redirect to the
    login page instead of 401. Unsafe methods authenticated by a session need the CSRF token.
    """

    def dependency(request: Request) -> Principal:
        who = principal_from_request(request)
        if who is None:
            if page:
                raise LoginRequired()
            raise HTTPException(401, "authentication required: log in or send an API key",
                                headers={"WWW-Authenticate": "Bearer"})
        if not who.can(role):
            raise HTTPException(403, f"the {who.role} role may not do this (needs {role})")
        if who.kind == "user" and request.method not in ("GET", "HEAD", "OPTIONS") and not page:
            if not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), who.csrf or ""):
                raise HTTPException(403, "missing or wrong CSRF token")
        request.state.principal = who
        return who

    return dependency


def check_csrf(who: Principal, submitted: str | None) -> None:
    """For HTML form posts: the hidden ``csrf_token`` must match the session's."""
    if who.kind == "user" and not hmac.compare_digest(submitted or "", who.csrf or ""):
        raise HTTPException(403, "the form expired or did not come from this site (CSRF token); reload the page")
