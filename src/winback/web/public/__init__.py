"""What recipients reach from a message, without logging in: the open pixel, tracked clicks,
one-click unsubscribe, the preference centre, the exit survey and the card-update page."""

from winback.web.public.routes import router

__all__ = ["router"]
