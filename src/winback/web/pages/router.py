"""The dashboard's router (pages register on it in :mod:`views` and :mod:`actions`)."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
