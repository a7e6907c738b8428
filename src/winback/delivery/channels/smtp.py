"""SMTP hand-off with aiosmtplib: a few long-lived connections per worker (TLS, STARTTLS, AUTH).

Messages of a batch are spread over ``smtp_connections`` connections that stay open between
batches. Replies are read per recipient: aiosmtplib raises ``SMTPRecipientsRefused`` (each
refusal with its code) when the only recipient is refused at RCPT, ``SMTPSenderRefused`` at MAIL
FROM, ``SMTPDataError`` at DATA; ``sendmail`` returns per-recipient errors otherwise.
Connection problems and timeouts are retried (the connection is reopened for the next message).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

import aiosmtplib
from aiosmtplib import (SMTPDataError, SMTPRecipientsRefused, SMTPResponseException, SMTPSenderRefused,
                        SMTPServerDisconnected)

from winback.config import DeliverySettings
from winback.delivery.channels import Channel, ChannelResult, Item
from winback.delivery.policy import classify_smtp


class SmtpChannel(Channel):
    name = "smtp"

    def __init__(self, settings: DeliverySettings):
        self.settings = settings
        self._clients: list[aiosmtplib.SMTP | None] = [None] * settings.smtp_connections

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self.settings
        context = None
        if s.smtp_tls != "none" and s.smtp_ca_file:
            context = ssl.create_default_context(cafile=s.smtp_ca_file)
        return aiosmtplib.SMTP(hostname=s.smtp_host, port=s.smtp_port, username=s.smtp_username,
                               password=s.smtp_password, timeout=s.smtp_timeout_seconds,
                               use_tls=s.smtp_tls == "tls", start_tls=True if s.smtp_tls == "starttls" else False,
                               tls_context=context)

    async def _client(self, slot: int) -> aiosmtplib.SMTP:
        client = self._clients[slot]
        if client is None or not client.is_connected:
            client = self._new_client()
            await client.connect()  # STARTTLS and AUTH happen here when configured
            self._clients[slot] = client
        return client

    async def _drop(self, slot: int) -> None:
        client, self._clients[slot] = self._clients[slot], None
        if client is not None:
            try:
                client.close()
            except Exception:  # pragma: no cover - best effort
                pass

    async def _send(self, slot: int, item: Item) -> ChannelResult:
        try:
            client = await self._client(slot)
            errors, response = await client.sendmail(item.sender, [item.recipient], item.raw)
            if item.recipient in errors:
                code, message = errors[item.recipient]
                v = classify_smtp(code, message, "rcpt")
            else:
                v = classify_smtp(250, response)
        except SMTPRecipientsRefused as exc:
            refusal = exc.recipients[0]
            v = classify_smtp(refusal.code, refusal.message, "rcpt")
        except SMTPSenderRefused as exc:
            v = classify_smtp(exc.code, exc.message, "mail")
        except SMTPDataError as exc:
            v = classify_smtp(exc.code, exc.message, "data")
        except SMTPResponseException as exc:  # e.g. 421 service closing, auth failure
            await self._drop(slot)
            v = classify_smtp(exc.code if exc.code < 500 else 451, f"{exc.code} {exc.message}", "session")
        except (SMTPServerDisconnected, aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            await self._drop(slot)
            v = classify_smtp(None, f"{type(exc).__name__}: {exc}")
        except ValueError as exc:  # an address aiosmtplib will not put on the wire
            v = classify_smtp(554, f"refused locally: {exc}", "mail")
        return ChannelResult(v.outcome, v.code, v.detail)

    async def deliver(self, items: list[Item], limiter=None) -> list[ChannelResult]:
        results: list[ChannelResult | None] = [None] * len(items)
        queue = deque(enumerate(items))

        async def run(slot: int) -> None:
            while queue:
                index, item = queue.popleft()
                if limiter is not None:
                    await limiter.acquire()
                results[index] = await self._send(slot, item)

        await asyncio.gather(*(run(slot) for slot in range(min(len(self._clients), len(items)))))
        return results  # type: ignore[return-value]

    async def close(self) -> None:
        for slot, client in enumerate(self._clients):
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except Exception:
                    client.close()
            self._clients[slot] = None
