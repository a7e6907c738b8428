"""Last-touch attribution (pure).

A conversion at time *t* is credited to the last message sent to the same customer at or before
*t* and no longer than ``window`` before it (``t - sent_at <= window``: a message sent exactly a
window earlier still counts). Messages sent after the conversion never get credit. Ties (two
messages with the same ``sent_at``) go to the higher id, i.e. the one created last. Conversions
without such a message are unattributed (``None``).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Hashable, Iterable, Sequence


@dataclass(frozen=True)
class Touch:
    """A message that could take credit."""

    id: int
    customer_id: Hashable
    sent_at: dt.datetime


def last_touch(conversions: Iterable[tuple[Hashable, dt.datetime]], touches: Sequence[Touch],
               window: dt.timedelta) -> list[Touch | None]:
    """For each ``(customer_id, occurred_at)`` the crediting :class:`Touch` (or ``None``), in input order."""
    if window < dt.timedelta(0):
        raise ValueError("the attribution window must not be negative")
    by_customer: dict[Hashable, list[tuple[dt.datetime, int, Touch]]] = defaultdict(list)
    for t in touches:
        by_customer[t.customer_id].append((t.sent_at, t.id, t))
    keys: dict[Hashable, list[tuple[dt.datetime, int]]] = {}
    for cid, items in by_customer.items():
        items.sort(key=lambda x: (x[0], x[1]))
        keys[cid] = [(a, b) for a, b, _t in items]
    out: list[Touch | None] = []
    for cid, occurred_at in conversions:
        items = by_customer.get(cid)
        if not items:
            out.append(None)
            continue
        # the last (sent_at, id) <= (occurred_at, +inf)
        i = bisect.bisect_right(keys[cid], (occurred_at, float("inf"))) - 1
        if i < 0:
            out.append(None)
            continue
        touch = items[i][2]
        out.append(touch if occurred_at - touch.sent_at <= window else None)
    return out
