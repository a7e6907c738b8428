"""The REST API under ``/api/v1`` (see ``winback.web.api.*`` for the routers)."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1")
