"""Sign in and out (a session cookie; see :mod:`winback.web.auth`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from winback.web import auth
from winback.web.templating import templates

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or ``https://host``): no open redirect."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None):
    return templates.TemplateResponse(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
def login_submit(request: Request, email: str = Form(""), password: str = Form(""), next: str = Form("/")):
    state = request.app.state
    user = auth.authenticate(state.engine, email, password, now=state.clock.now())
    if user is None:
        return templates.TemplateResponse(request, "login.html", {"next": _safe_next(next),
                                                                  "error": "Wrong e-mail address or password."},
                                          status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    auth.set_session_cookie(response, state.settings, auth.session_token(state.settings, user, now=state.clock.now()))
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form("")):
    who = auth.principal_from_request(request)
    if who is not None:
        auth.check_csrf(who, csrf_token)
    response = RedirectResponse("/login", status_code=303)
    auth.clear_session_cookie(response, request.app.state.settings)
    return response
