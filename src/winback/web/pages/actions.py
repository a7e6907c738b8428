"""Form posts of the dashboard. Each checks the role first (403), then the CSRF token (403), and
only then changes anything; on success it redirects back (POST/redirect/GET)."""

from __future__ import annotations

import json
from urllib.parse import quote

from fastapi import Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import update

from winback.kit.db import write_transaction
from winback.kit.errors import WinbackError
from winback.models.campaigns import Campaign
from winback.web import auth
from winback.web.auth import Principal, require
from winback.web.pages import data as q
from winback.web.pages.common import engine_of, render
from winback.web.pages.router import router

marketer = require("marketer", page=True)
admin = require("admin", page=True)


def _back(path: str, done: str | None = None, error: str | None = None) -> RedirectResponse:
    query = []
    if done:
        query.append(f"done={quote(done)}")
    if error:
        query.append(f"error={quote(error)}")
    return RedirectResponse(path + ("?" + "&".join(query) if query else ""), status_code=303)


# ------------------------------------------------------------------------------------ campaigns

def _set_status(request: Request, key: str, status: str, who: Principal, csrf_token: str) -> RedirectResponse:
    auth.check_csrf(who, csrf_token)
    now = request.app.state.clock.now()
    with write_transaction(engine_of(request)) as conn:
        camp = q.campaign(conn, key)
        if camp is None:
            raise HTTPException(404, f"no campaign {key!r}")
        if camp["status"] == "archived":
            raise HTTPException(409, f"campaign {key} is archived (no longer in the playbook)")
        conn.execute(update(Campaign).where(Campaign.id == camp["id"]).values(status=status, updated_at=now))
    return _back(f"/campaigns/{quote(key)}", done=f"campaign {key} {status}")


@router.post("/campaigns/{key}/pause")
def pause_campaign(request: Request, key: str, csrf_token: str = Form(""), who: Principal = Depends(marketer)):
    return _set_status(request, key, "paused", who, csrf_token)


@router.post("/campaigns/{key}/resume")
def resume_campaign(request: Request, key: str, csrf_token: str = Form(""), who: Principal = Depends(marketer)):
    return _set_status(request, key, "active", who, csrf_token)


# ------------------------------------------------------------------------------------ experiments

@router.post("/experiments/rollout")
def rollout(request: Request, campaign: str = Form(...), experiment: str = Form(...), csrf_token: str = Form(""),
            who: Principal = Depends(marketer)):
    """Roll out the winner of one experiment (as judged now) to new enrollments."""
    from winback.tracking import repository as tracking_repo
    from winback.tracking.results import campaign_results

    auth.check_csrf(who, csrf_token)
    state = request.app.state
    now = state.clock.now()
    try:
        results = campaign_results(state.settings, now=now, engine=state.engine, campaign=campaign)
    except WinbackError as exc:
        raise HTTPException(404, str(exc)) from None
    camp = next(iter(results["campaigns"]), None)
    exp = next((e for e in (camp or {}).get("experiments", []) if e["experiment"] == experiment), None)
    if camp is None or exp is None:
        raise HTTPException(404, f"no experiment {experiment!r} in campaign {campaign!r}")
    if exp["rolled_out"]:
        return _back("/experiments", done=f"{campaign}/{experiment} already rolled out: {exp['rolled_out']}")
    if exp["winner"] is None:
        return _back("/experiments", error=f"{campaign}/{experiment} has no winner yet")
    sent = {v["variant"]: v["sent"] for v in camp["variants"] if v["experiment"] == experiment}
    stats = {k: exp[k] for k in ("metric", "prob_best", "p_value", "srm")}
    stats["sent"] = sent
    with write_transaction(state.engine) as conn:
        tracking_repo.save_decision(conn, {"campaign_id": camp["id"], "experiment": experiment,
                                           "winner": exp["winner"], "decided_by": who.name, "decided_at": now,
                                           "stats": json.dumps(stats, sort_keys=True, default=str)})
    return _back("/experiments", done=f"{campaign}/{experiment}: {exp['winner']} rolled out to new enrollments")


# ------------------------------------------------------------------------------------ suppressions

@router.post("/suppressions/add")
def add_suppression(request: Request, address: str = Form(""), reason: str = Form("manual"),
                    scope: str = Form("all"), detail: str = Form(""), csrf_token: str = Form(""),
                    who: Principal = Depends(marketer)):
    from winback.delivery import service

    auth.check_csrf(who, csrf_token)
    address = address.strip().lower()
    if "@" not in address or len(address) > 320 or any(c.isspace() for c in address):
        return _back("/suppressions", error=f"not an e-mail address: {address[:80]!r}")
    if reason in ("hard_bounce", "complaint"):
        return _back("/suppressions", error="bounces and complaints are recorded by the delivery engine")
    try:
        added = service.add_suppression(request.app.state.settings, address, reason, scope=scope,
                                        source=f"web:{who.name}", detail=detail.strip()[:500] or None)
    except WinbackError as exc:
        return _back("/suppressions", error=str(exc))
    return _back("/suppressions", done=f"{address} suppressed ({scope})" if added else f"{address} was already "
                                                                                        "suppressed")


@router.post("/suppressions/remove")
def remove_suppression(request: Request, address: str = Form(""), scope: str = Form(""),
                       csrf_token: str = Form(""), who: Principal = Depends(admin)):
    from winback.delivery import service

    auth.check_csrf(who, csrf_token)
    try:
        n = service.remove_suppression(request.app.state.settings, address.strip().lower(), scope or None)
    except WinbackError as exc:
        return _back("/suppressions", error=str(exc))
    return _back("/suppressions", done=f"removed {n} suppression(s) of {address.strip().lower()}")


# ------------------------------------------------------------------------------------ API keys

@router.post("/admin/keys", response_class=HTMLResponse)
def create_key(request: Request, name: str = Form(""), role: str = Form("viewer"), csrf_token: str = Form(""),
               who: Principal = Depends(admin)):
    from winback.models.web import ROLES

    auth.check_csrf(who, csrf_token)
    engine = engine_of(request)
    if role not in ROLES:
        raise HTTPException(422, f"unknown role {role!r}")
    key = auth.create_api_key(engine, name.strip()[:100] or "key", role, now=request.app.state.clock.now(),
                              user_id=who.id if who.kind == "user" else None)
    # the full key is shown once, on this response (never stored, never in a URL)
    return render(request, "admin.html", who, "admin", users=auth.list_users(engine),
                  keys=auth.list_api_keys(engine), roles=ROLES, new_key=key)


@router.post("/admin/keys/{prefix}/revoke")
def revoke_key(request: Request, prefix: str, csrf_token: str = Form(""), who: Principal = Depends(admin)):
    auth.check_csrf(who, csrf_token)
    done = auth.revoke_api_key(engine_of(request), prefix, now=request.app.state.clock.now())
    request.app.state.api_key_cache.pop(prefix, None)
    return _back("/admin", done=f"key {prefix} revoked" if done else f"key {prefix} was already revoked")
