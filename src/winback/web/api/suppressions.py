"""``/suppressions``: addresses that must not receive messages. Reading them needs marketer (they are
personal data: viewers see aggregated results and customers, not the list); adding needs marketer,
lifting one needs admin."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse

from winback.delivery import service as delivery
from winback.delivery.suppression import list_suppressions as list_rows
from winback.kit.errors import WinbackError
from winback.web.api.schemas import Problem, RemovedResult, SuppressionIn, SuppressionOut, SuppressionResult, Text
from winback.web.auth import require

router = APIRouter(tags=["suppressions"])
ERRORS = {401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}}


@router.get("/suppressions", response_model=list[SuppressionOut], summary="List suppressed addresses",
            responses=ERRORS)
def list_suppressions(request: Request,
                      address: Annotated[Text | None, Query(max_length=320, description="Only this address.")] = None,
                      limit: Annotated[int, Query(ge=1, le=5000)] = 500,
                      _who=Depends(require("marketer"))):
    """Newest first."""
    with request.app.state.engine.connect() as conn:
        return list_rows(conn, address, limit)


@router.post("/suppressions", response_model=SuppressionResult, status_code=201, summary="Suppress an address",
             responses={**ERRORS, 200: {"model": SuppressionResult, "description": "Already suppressed."}})
def add_suppression(body: SuppressionIn, request: Request, who=Depends(require("marketer"))):
    """`unsubscribed` also opts the matching customers out (fenced against running workers)."""
    try:
        created = delivery.add_suppression(request.app.state.settings, body.address, body.reason, scope=body.scope,
                                           source=f"api:{who.name}"[:64], detail=body.detail)
    except WinbackError as exc:
        raise HTTPException(422, f"address: {exc}") from None
    from winback.delivery.policy import normalize_address

    return JSONResponse({"address": normalize_address(body.address), "scope": body.scope, "created": created},
                        status_code=201 if created else 200)


@router.delete("/suppressions/{address}", response_model=RemovedResult, summary="Lift a suppression",
               responses={**ERRORS, 404: {"model": Problem}})
def remove_suppression(request: Request, address: Annotated[Text, Path(max_length=320)],
                       scope: Annotated[Literal["all", "commercial"] | None, Query()] = None,
                       _who=Depends(require("admin"))):
    """Both scopes unless `scope` is given. 404 when the address was not suppressed."""
    from winback.delivery.policy import normalize_address

    removed = delivery.remove_suppression(request.app.state.settings, address, scope)
    if not removed:
        raise HTTPException(404, f"{normalize_address(address)} is not suppressed"
                                 + (f" in scope {scope}" if scope else ""))
    return {"address": normalize_address(address), "removed": removed}
