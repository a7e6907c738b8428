"""The ``task`` channel: a phone-call task for the customer-success team (``call_tasks``).

One task per outbox message (``outbox_id`` is unique): inserting it again after a crash is a
no-op, so the task channel is exactly-once.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine

from winback.delivery.channels import Channel, ChannelResult, Item
from winback.delivery.outbox import _insert, write_txn
from winback.models.delivery import CallTask

TASKS = CallTask.__table__


class TaskChannel(Channel):
    name = "task"

    def __init__(self, engine: Engine, clock):
        self.engine, self.clock = engine, clock

    async def deliver(self, items: list[Item], limiter=None) -> list[ChannelResult]:
        if not items:
            return []
        now: dt.datetime = self.clock.now()
        rows = []
        for item in items:
            if limiter is not None:
                await limiter.acquire()
            task = item.payload.get("task") or {}
            rows.append({"outbox_id": item.row["id"], "customer_id": item.row.get("customer_id"),
                         "campaign_id": item.row.get("campaign_id"), "title": str(task.get("title")),
                         "body": task.get("body"), "phone": task.get("phone"), "status": "open",
                         "due_at": now, "created_at": now})
        try:
            with write_txn(self.engine) as conn:
                conn.execute(_insert(conn, TASKS).on_conflict_do_nothing(), rows)
        except Exception as exc:  # a database hiccup: try again later
            return [ChannelResult("retry", None, f"call task not written: {' '.join(str(exc).split())[:300]}")
                    for _ in items]
        return [ChannelResult("sent", None, "call task created") for _ in items]
