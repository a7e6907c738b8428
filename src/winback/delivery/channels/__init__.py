"""Delivery channels: ``email`` (smtp or maildir), ``task`` (call_tasks), ``webhook`` (signed JSON
POST), ``audience`` (hashed e-mail per campaign for retargeting uploads).

A channel receives a list of :class:`Item` and returns one :class:`ChannelResult` per item, in
order; it never raises for a single message's failure. Channels are idempotent where the medium
allows: the maildir file name and the call task derive from the message, the audience file
skips hashes it already holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Item:
    row: dict
    payload: dict = field(default_factory=dict)
    raw: bytes | None = None  # the rendered email
    sender: str | None = None  # envelope sender
    recipient: str | None = None


@dataclass(frozen=True)
class ChannelResult:
    outcome: str  # sent | retry | bounced | failed
    code: int | None = None
    detail: str = ""


class Channel:
    name = "base"

    async def deliver(self, items: list[Item], limiter=None) -> list[ChannelResult]:  # pragma: no cover
        raise NotImplementedError

    async def close(self) -> None:
        return None
