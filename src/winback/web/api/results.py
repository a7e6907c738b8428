"""``/results``: what each campaign did and what it was worth against its holdout
(:func:`winback.tracking.results.campaign_results`)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from winback.kit.errors import WinbackError
from winback.web.api.schemas import Problem
from winback.web.auth import require

router = APIRouter(tags=["results"])
ERRORS = {401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}}


class Results(BaseModel):
    generated_at: str
    currency: str | None = None
    window_days: float | int | None = Field(None, description="The holdout comparison window (days).")
    campaigns: list[dict[str, Any]] = Field(description="Per campaign: funnel, steps, variants, experiments, "
                                                        "holdout (lift with its interval, incremental revenue, ROI).")
    total: dict[str, Any]


def finite(value):
    """JSON has no NaN or infinity: such numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def results_for(request: Request, campaign: str | None = None) -> dict:
    from winback.tracking.results import campaign_results

    state = request.app.state
    try:
        data = campaign_results(state.settings, now=state.clock.now(), engine=state.engine, campaign=campaign)
    except WinbackError as exc:
        if campaign is not None and "unknown campaign" in str(exc):
            raise HTTPException(404, str(exc)) from None
        raise HTTPException(422, str(exc)) from None
    return finite(data)


@router.get("/results", response_model=Results, summary="Results of every campaign", responses=ERRORS)
def all_results(request: Request, _who=Depends(require("viewer"))):
    """Funnel, steps, variants, experiments and holdout lift per campaign, and pooled totals."""
    return results_for(request)
