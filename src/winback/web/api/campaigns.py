"""``/campaigns``: the list, one campaign, its results, and pause/resume.

A paused campaign enrolls nobody new (``winback plan``), schedules no further steps and sends none
of the messages already queued (they wait and go out after ``resume``). A pause set here survives
``winback plan`` as long as the playbook's ``enabled`` flag of that campaign does not change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from sqlalchemy import func, select, update

from winback.campaigns.service import enrollments as recent_enrollments
from winback.campaigns.service import list_campaigns as service_list
from winback.kit.db import write_transaction
from winback.models.campaigns import Campaign, Enrollment
from winback.web.api.results import Results, results_for
from winback.web.api.schemas import CampaignDetail, CampaignOut, Problem, Text
from winback.web.auth import require

router = APIRouter(tags=["campaigns"])
ERRORS = {401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}}
NOT_FOUND = {404: {"model": Problem}}
KeyPath = Annotated[Text, Path(max_length=64, description="The campaign key (from the playbook).")]


def _campaigns(request: Request) -> list[dict]:
    return service_list(request.app.state.settings)


def _one(request: Request, key: str) -> dict:
    for c in _campaigns(request):
        if c["key"] == key:
            return c
    raise HTTPException(404, f"no campaign {key!r}")


@router.get("/campaigns", response_model=list[CampaignOut], summary="List campaigns", responses=ERRORS)
def list_campaigns(request: Request, _who=Depends(require("viewer"))):
    return _campaigns(request)


@router.get("/campaigns/{key}", response_model=CampaignDetail, summary="One campaign with its enrollments",
            responses={**ERRORS, **NOT_FOUND})
def get_campaign(request: Request, key: KeyPath, _who=Depends(require("viewer"))):
    out = _one(request, key)
    with request.app.state.engine.connect() as conn:
        row = conn.execute(select(Campaign.id, Campaign.category, Campaign.currency).where(Campaign.key == key)).one()
        breakdown = [dict(r) for r in conn.execute(
            select(Enrollment.strategy, Enrollment.offer_key, Enrollment.arm, Enrollment.status,
                   func.count().label("count")).where(Enrollment.campaign_id == row.id)
            .group_by(Enrollment.strategy, Enrollment.offer_key, Enrollment.arm, Enrollment.status)
            .order_by(func.count().desc())).mappings()]
    recent = []
    for e in recent_enrollments(request.app.state.settings, campaign=key, limit=20):
        recent.append({**e, "campaign": key, "variants": e.get("variants") or {}})
    return {**out, "category": row.category, "currency": row.currency, "breakdown": breakdown,
            "recent_enrollments": recent}


@router.get("/campaigns/{key}/results", response_model=Results, summary="One campaign's results",
            responses={**ERRORS, **NOT_FOUND})
def campaign_results(request: Request, key: KeyPath, _who=Depends(require("viewer"))):
    return results_for(request, key)


def _set_status(request: Request, key: str, status: str) -> dict:
    state = request.app.state
    with write_transaction(state.engine) as conn:
        row = conn.execute(select(Campaign.id, Campaign.status).where(Campaign.key == key)).first()
        if row is None:
            raise HTTPException(404, f"no campaign {key!r}")
        if row.status == "archived":
            raise HTTPException(409, f"campaign {key!r} is archived (no longer in the playbook)")
        if row.status != status:
            conn.execute(update(Campaign).where(Campaign.id == row.id).values(status=status,
                                                                              updated_at=state.clock.now()))
    return _one(request, key)


@router.post("/campaigns/{key}/pause", response_model=CampaignOut, summary="Pause a campaign",
             responses={**ERRORS, **NOT_FOUND, 409: {"model": Problem}})
def pause(request: Request, key: KeyPath, _who=Depends(require("marketer"))):
    """No new enrollments, no further steps scheduled, queued messages held until resumed. Idempotent."""
    return _set_status(request, key, "paused")


@router.post("/campaigns/{key}/resume", response_model=CampaignOut, summary="Resume a paused campaign",
             responses={**ERRORS, **NOT_FOUND, 409: {"model": Problem}})
def resume(request: Request, key: KeyPath, _who=Depends(require("marketer"))):
    return _set_status(request, key, "active")

