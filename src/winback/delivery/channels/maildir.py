"""The embedded default email channel: one file per message in the workspace's maildir.

The file is written to ``tmp/``, flushed to disk and hard-linked into ``new/`` under a name
derived from the Message-ID, so a message appears whole or not at all, and handing the same
message over twice (a worker that crashed before recording the outcome) leaves one file.
"""

from __future__ import annotations

import hashlib
import mailbox
import os
from pathlib import Path

from winback.delivery.channels import Channel, ChannelResult, Item


class MaildirChannel(Channel):
    name = "maildir"

    def __init__(self, path: Path):
        self.path = Path(path)
        mailbox.Maildir(str(self.path), create=True)  # creates tmp/, new/, cur/

    def file_name(self, item: Item) -> str:
        return hashlib.sha256(item.row["message_id"].encode()).hexdigest()[:40] + ".winback"

    def _write(self, item: Item) -> ChannelResult:
        name = self.file_name(item)
        final = self.path / "new" / name
        if final.exists() or any((self.path / "cur").glob(name + "*")):
            return ChannelResult("sent", None, f"already in maildir as {name}")
        tmp = self.path / "tmp" / f"{name}.{os.getpid()}"
        try:
            with open(tmp, "wb") as fh:
                fh.write(item.raw or b"")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, final)
            except FileExistsError:
                pass
            return ChannelResult("sent", None, f"maildir new/{name}")
        except OSError as exc:
            return ChannelResult("retry", None, f"maildir write failed: {exc}")
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    async def deliver(self, items: list[Item], limiter=None) -> list[ChannelResult]:
        results = []
        for item in items:
            if limiter is not None:
                await limiter.acquire()
            results.append(self._write(item))
        return results
