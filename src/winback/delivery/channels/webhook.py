"""Outbound webhook (CRM hand-off): POST JSON, signed with HMAC-SHA256.

Headers: ``X-Winback-Timestamp`` (Unix seconds), ``X-Winback-Signature: sha256=<hex>`` over
``timestamp + "." + body`` with ``webhook_secret``, ``Idempotency-Key`` (the outbox key: a
receiver can drop the duplicate a crash may cause). 2xx sent; 408, 425, 429 and 5xx or a
connection error retried; other 4xx failed (the receiver rejected it; no address is suppressed).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request

from winback.delivery.channels import Channel, ChannelResult, Item

RETRY_CODES = {408, 425, 429}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def webhook_body(item: Item) -> bytes:
    row = item.row
    body = {"type": "winback.outbox_message", "idempotency_key": row["idempotency_key"],
            "message_id": row["message_id"], "customer_id": row.get("customer_id"),
            "campaign_id": row.get("campaign_id"), "enrollment_id": row.get("enrollment_id"), "step": row.get("step"),
            "data": item.payload.get("webhook")}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


class WebhookChannel(Channel):
    name = "webhook"

    def __init__(self, url: str | None, secret: str | None, timeout: float = 30.0):
        self.url, self.secret, self.timeout = url, secret, timeout

    def _post(self, item: Item) -> ChannelResult:
        if not self.url:
            return ChannelResult("failed", None, "no webhook_url configured in [delivery]")
        if not self.secret:
            return ChannelResult("failed", None, "no webhook_secret configured in [delivery] (webhooks are signed)")
        body = webhook_body(item)
        timestamp = str(int(time.time()))
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "winback",
            "X-Winback-Timestamp": timestamp, "X-Winback-Signature": signature(self.secret, timestamp, body),
            "Idempotency-Key": item.row["idempotency_key"]})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return ChannelResult("sent", response.status, f"HTTP {response.status}")
        except urllib.error.HTTPError as exc:
            outcome = "retry" if exc.code >= 500 or exc.code in RETRY_CODES else "failed"
            return ChannelResult(outcome, exc.code, f"HTTP {exc.code} {exc.reason}")
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            return ChannelResult("retry", None, f"webhook unreachable: {exc}")

    async def deliver(self, items: list[Item], limiter=None) -> list[ChannelResult]:
        results = []
        for item in items:
            if limiter is not None:
                await limiter.acquire()
            results.append(await asyncio.to_thread(self._post, item))
        return results
