"""A real SMTP server for tests (aiosmtpd), recording what it received and when."""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass

from aiosmtpd.controller import Controller

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


@dataclass
class Received:
    message_id: str | None
    rcpt: list[str]
    content: bytes | None
    at: float  # time.time() when the DATA arrived


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """aiosmtpd handler. ``rcpt_replies``: address -> list of replies to give (consumed in order;
    the last one repeats), e.g. ``["451 4.7.1 try later", "250 OK"]``; ``keep_content`` stores bytes."""

    def __init__(self, rcpt_replies: dict[str, list[str]] | None = None, keep_content: bool = True):
        self.rcpt_replies = {k.lower(): list(v) for k, v in (rcpt_replies or {}).items()}
        self.keep_content = keep_content
        self.received: list[Received] = []
        self.rcpt_log: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        replies = self.rcpt_replies.get(address.lower())
        reply = "250 OK"
        if replies:
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
        with self.lock:
            self.rcpt_log.append((address.lower(), reply))
        if not reply.startswith("250"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        at = time.time()
        content = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        match = MESSAGE_ID.search(content)
        with self.lock:
            self.received.append(Received(match.group(1).decode() if match else None, list(envelope.rcpt_tos),
                                          content if self.keep_content else None, at))
        return "250 2.0.0 accepted"


class SmtpServer:
    def __init__(self, handler: Recorder | None = None, **controller_kwargs):
        self.handler = handler or Recorder()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **controller_kwargs)

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    @property
    def received(self) -> list[Received]:
        return self.handler.received
