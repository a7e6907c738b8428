"""What recipients reach from a message, without logging in (pixel, clicks, unsubscribe, surveys)."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
