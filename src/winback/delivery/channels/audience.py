"""The ``audience`` channel: SHA-256 of the normalised e-mail address, appended to a CSV per
campaign (``outbox/audiences/<campaign>.csv``, one column ``email_sha256``) for retargeting
uploads (the format Google Customer Match and Meta custom audiences accept).

Appends happen under an exclusive ``flock`` on the file; hashes already in the file are skipped
(the worker keeps the file's hashes in memory and reads only what other workers appended), so
a crash-and-retry never lists an address twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from pathlib import Path

from winback.delivery.channels import Channel, ChannelResult, Item
from winback.delivery.policy import address_problem, normalize_address

HEADER = b"email_sha256\n"
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def email_hash(address: str) -> str:
    return hashlib.sha256(normalize_address(address).encode()).hexdigest()


class AudienceChannel(Channel):
    name = "audience"

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._known: dict[Path, tuple[int, set[str]]] = {}

    def file_for(self, item: Item) -> Path:
        spec = item.payload.get("audience") or {}
        name = spec.get("name") or (f"campaign-{item.row['campaign_id']}" if item.row.get("campaign_id")
                                    else "audience")
        return self.folder / ((_SAFE.sub("-", str(name)).strip("-")[:100] or "audience") + ".csv")

    def _append(self, path: Path, digest: str) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            offset, known = self._known.get(path, (0, set()))
            size = os.fstat(fd).st_size
            if size < offset:  # the file was replaced: start over
                offset, known = 0, set()
            if size > offset:
                os.lseek(fd, offset, os.SEEK_SET)
                tail = os.read(fd, size - offset)
                known.update(line for line in tail.decode().splitlines() if len(line) == 64)
                offset = size
            if size == 0:
                os.write(fd, HEADER)
                offset += len(HEADER)
            added = digest not in known
            if added:
                line = (digest + "\n").encode()
                os.write(fd, line)
                offset += len(line)
                known.add(digest)
            self._known[path] = (offset, known)
            return added
        finally:
            os.close(fd)

    async def deliver(self, items: list[Item], limiter=None) -> list[ChannelResult]:
        results = []
        for item in items:
            if limiter is not None:
                await limiter.acquire()
            address = (item.payload.get("audience") or {}).get("email") or item.row.get("to_address")
            problem = address_problem(address)
            if problem:
                results.append(ChannelResult("failed", None, problem))
                continue
            path = self.file_for(item)
            try:
                added = self._append(path, email_hash(address))
            except OSError as exc:
                results.append(ChannelResult("retry", None, f"audience file not written: {exc}"))
                continue
            results.append(ChannelResult("sent", None, f"{path.name}: {'added' if added else 'already listed'}"))
        return results
