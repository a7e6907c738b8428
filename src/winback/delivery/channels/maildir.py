"""The embedded default email channel: one file per message in the workspace's maildir.

The file is written to ``tmp/``, flushed to disk and hard-linked into ``new/`` under a name
derived from the Message-ID, so a message appears whole or not at all, and handing the same
message over twice (a worker that crashed before recording the outcome) leaves one file.

A batch's files are written by a few threads at once (each ``fsync`` waits for the disk; the
file system commits concurrent ones together), and ``new/`` itself is synced once per batch
after the links, before the worker records the outcomes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mailbox
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from winback.delivery.channels import Channel, ChannelResult, Item

log = logging.getLogger("winback.delivery")

_NAME_LENGTH = 40 + len(".winback")


class MaildirChannel(Channel):
    name = "maildir"

    def __init__(self, path: Path, threads: int = 8):
        self.path = Path(path)
        mailbox.Maildir(str(self.path), create=True)  # creates tmp/, new/, cur/
        self._new = str(self.path / "new")
        self._tmp = str(self.path / "tmp")
        self._cur = str(self.path / "cur")
        self._threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        self._cur_seen: tuple[int, set[str]] | None = None  # (mtime_ns of cur/, names there)

    def file_name(self, item: Item) -> str:
        return hashlib.sha256(item.row["message_id"].encode()).hexdigest()[:40] + ".winback"

    def _in_cur(self) -> set[str]:
        """Our file names a mail reader moved to ``cur/`` (``name:2,FLAGS``); listed again only
        when the folder changed."""
        try:
            mtime = os.stat(self._cur).st_mtime_ns
        except OSError:
            return set()
        if self._cur_seen is None or self._cur_seen[0] != mtime:
            names = {entry[:_NAME_LENGTH] for entry in os.listdir(self._cur) if not entry.startswith(".")}
            self._cur_seen = (mtime, names)
        return self._cur_seen[1]

    def _write(self, item: Item, in_cur: set[str]) -> tuple[ChannelResult, bool]:
        """The result and whether a new link was made in ``new/``."""
        name = self.file_name(item)
        final = os.path.join(self._new, name)
        if name in in_cur or os.path.exists(final):
            return ChannelResult("sent", None, f"already in maildir as {name}"), False
        tmp = os.path.join(self._tmp, f"{name}.{os.getpid()}.{threading.get_ident()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
            try:
                view = memoryview(item.raw or b"")
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, final)
            except FileExistsError:
                pass
            return ChannelResult("sent", None, f"maildir new/{name}"), True
        except OSError as exc:
            return ChannelResult("retry", None, f"maildir write failed: {exc}"), False
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def _sync_new(self) -> None:
        fd = os.open(self._new, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def deliver(self, items: list[Item], limiter=None) -> list[ChannelResult]:
        if not items:
            return []
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="maildir")
        loop = asyncio.get_running_loop()
        in_cur = self._in_cur()
        futures = []
        for item in items:
            if limiter is not None:
                await limiter.acquire()
            futures.append(loop.run_in_executor(self._pool, self._write, item, in_cur))
        written = await asyncio.gather(*futures)
        results = [result for result, _ in written]
        if any(linked for _, linked in written):
            try:
                await loop.run_in_executor(self._pool, self._sync_new)
            except OSError as exc:  # the links may not survive a crash: let the retry find them
                log.warning("maildir: syncing new/ failed: %s", exc)
                results = [ChannelResult("retry", None, f"maildir sync failed: {exc}") if linked else result
                           for result, linked in written]
        return results

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
