"""The delivery worker: claim a batch, gate it, hand it off, record the outcome. Repeat.

One round (``process_batch``):

1. **claim** (short write transaction, see :mod:`winback.delivery.outbox`): due rows and rows
   whose lease expired, ``priority DESC, due_at``, marked ``sending`` with a lease; one
   ``delivery_attempts`` row each.
2. **gate** (:mod:`winback.delivery.locks`): exclusive locks on the batch's customers, shared
   locks on its addresses. Only then are ownership, suppressions, opt-out and lawful basis,
   the enrollment, exit events, sent counts for the frequency cap and competing higher-priority
   messages read - so the answers cannot change before the hand-off.
3. **decide** per message, in priority order: refuse bad input (failed), cancel (enrollment not
   active / exit event), suppress, refuse non-compliant commercial email (failed), defer
   (quiet hours and send weekdays in the customer's zone; frequency cap; then the domain's
   warm-up allowance, reserved atomically in ``send_counters``).
4. **hand off** through the channels (several SMTP connections, a per-worker rate limit).
5. **complete** (fenced by ``claimed_by`` and ``status='sending'``) while still holding the locks:
   on PostgreSQL in the gate's transaction, on SQLite in a ``BEGIN IMMEDIATE`` transaction before
   the file locks are released.

**The crash window.** A message is handed off in step 4 and its outcome committed in step 5. If
the worker dies between the two (kill -9, power loss), the row stays ``sending`` until its lease
expires and is then sent again: at most one batch per crashed worker can be duplicated, each
duplicate carries the same Message-ID (derived from the idempotency key), and the first,
unfinished ``delivery_attempts`` row shows it. Maildir files, call tasks and audience lines are
idempotent, so only SMTP and webhooks can duplicate. Nothing is lost: a row leaves ``sending``
only through a committed outcome or an expired lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import asdict, dataclass

from sqlalchemy import Engine

from winback.config import Settings
from winback.delivery import outbox
from winback.delivery.channels import Channel, ChannelResult, Item
from winback.delivery.locks import worker_gate
from winback.delivery.mime import (DkimSigner, MessageRefused, build_message, compliance_problem, parse_json_object,
                                    render)
from winback.delivery.outbox import Context, Result
from winback.delivery.policy import (RateLimiter, address_problem, backoff_seconds, cap_free_at, domain_of,
                                     next_send_time, next_utc_midnight, normalize_address, parse_weekdays,
                                     utc_day_start, zone)

log = logging.getLogger("winback.delivery")

CHANNELS = ("email", "task", "webhook", "audience")
CONTENTION_DEFER = dt.timedelta(seconds=60)  # a higher-priority message of the customer holds the cap slot


@dataclass
class Summary:
    sent: int = 0
    deferred: int = 0
    retried: int = 0
    bounced: int = 0
    failed: int = 0
    suppressed: int = 0
    canceled: int = 0
    lost_lease: int = 0
    batches: int = 0
    scheduled: int = 0  # campaign steps this worker turned into messages
    seconds: float = 0.0

    def count(self, result: Result) -> None:
        key = {"sent": "sent", "deferred": "deferred", "retry": "retried", "bounced": "bounced",
               "failed": "failed", "suppressed": "suppressed", "canceled": "canceled"}[result.outcome]
        if result.outcome == "retry" and result.status == "failed":
            key = "failed"
        setattr(self, key, getattr(self, key) + 1)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def build_channels(settings: Settings, engine: Engine, clock) -> dict[str, Channel]:
    from winback.delivery.channels.audience import AudienceChannel
    from winback.delivery.channels.tasks import TaskChannel
    from winback.delivery.channels.webhook import WebhookChannel

    d = settings.delivery
    if d.email_channel == "smtp":
        from winback.delivery.channels.smtp import SmtpChannel
        email: Channel = SmtpChannel(d)
    else:
        from winback.delivery.channels.maildir import MaildirChannel
        email = MaildirChannel(settings.workspace / d.maildir)
    return {"email": email, "task": TaskChannel(engine, clock),
            "webhook": WebhookChannel(d.webhook_url, d.webhook_secret, d.smtp_timeout_seconds),
            "audience": AudienceChannel(settings.workspace / "outbox" / "audiences")}


class Worker:
    def __init__(self, settings: Settings, *, worker_id: str | None = None, clock=None, engine: Engine | None = None,
                 channels: dict[str, Channel] | None = None, rng: random.Random | None = None,
                 schedule: bool = True):
        self.settings = settings
        self.schedule = schedule  # also turn due campaign steps into messages (winback.campaigns.scheduler)
        self._scheduled_at: float | None = None
        self.d = settings.delivery
        self.id = worker_id or default_worker_id()
        self.clock = clock or settings.clock()
        self._own_engine = engine is None
        self.engine = engine or outbox.delivery_engine(settings.resolved_state_url)
        self.channels = channels or build_channels(settings, self.engine, self.clock)
        self.rng = rng or random.Random()
        self.weekdays = parse_weekdays(self.d.send_weekdays)
        self.limiter = RateLimiter(self.d.rate_per_second) if self.d.rate_per_second > 0 else None
        self.signer = DkimSigner.from_settings(self.d, settings.workspace)
        self.cap_window = dt.timedelta(days=self.d.frequency_cap_days)
        self.summary = Summary()

    # --- the loop ---------------------------------------------------------------------------------
    async def run(self, *, until_idle: bool = False, max_messages: int | None = None, stop=None) -> Summary:
        started = time.monotonic()
        processed = 0
        try:
            while stop is None or not stop.is_set():
                limit = self.d.batch_size if max_messages is None else min(self.d.batch_size, max_messages - processed)
                if limit <= 0:
                    break
                scheduled = self._schedule_steps()
                try:
                    claimed = await self.process_batch(limit)
                except Exception:  # the batch's rows come back after their lease; keep the worker alive
                    log.exception("delivery batch failed (its messages return after the lease)")
                    if until_idle:
                        raise
                    claimed = 0
                    await asyncio.sleep(self.d.poll_seconds)
                processed += claimed
                if claimed == 0:
                    if until_idle and not scheduled and not self._schedule_steps(force=True):
                        break
                    if until_idle:
                        continue
                    await asyncio.sleep(self.d.poll_seconds)
        finally:
            await self.close()
            self.summary.seconds = time.monotonic() - started
        return self.summary

    def _schedule_steps(self, force: bool = False) -> int:
        """Due campaign steps -> outbox (at most once per poll interval unless forced); messages written."""
        if not self.schedule:
            return 0
        if not force and self._scheduled_at is not None and \
                time.monotonic() - self._scheduled_at < self.d.poll_seconds:
            return 0
        from winback.campaigns.scheduler import schedule_due

        self._scheduled_at = time.monotonic()
        result = schedule_due(self.settings, engine=self.engine, now=self.clock.now())
        self.summary.scheduled += sum(result.messages.values())
        return sum(result.messages.values())

    async def close(self) -> None:
        for channel in self.channels.values():
            with contextlib.suppress(Exception):
                await channel.close()
        if self._own_engine:
            self.engine.dispose()

    # --- one round ----------------------------------------------------------------------------------
    async def process_batch(self, limit: int | None = None) -> int:
        now = self.clock.now()
        rows = outbox.claim(self.engine, self.id, now, self.d.lease_seconds, limit or self.d.batch_size)
        if not rows:
            return 0
        self.summary.batches += 1
        results: list[Result] = []
        parsed: list[tuple[dict, dict, dict]] = []
        for row in rows:
            try:
                headers = parse_json_object(row.get("headers"), "headers")
                payload = parse_json_object(row.get("payload"), "payload")
                parsed.append((row, headers, payload))
            except MessageRefused as exc:
                results.append(Result(row, "failed", "failed", str(exc)))
        addresses = {normalize_address(r["to_address"]) for r, _, _ in parsed
                     if r.get("to_address") and not address_problem(r["to_address"])}
        customer_ids = {r["customer_id"] for r, _, _ in parsed if r.get("customer_id") is not None}
        exit_types = {t for _, _, p in parsed for t in (p.get("exit_on") or []) if isinstance(t, str)}
        postgres = self.engine.dialect.name == "postgresql"

        with contextlib.ExitStack() as stack:
            gate_conn = None
            if postgres:
                gate_conn = stack.enter_context(self.engine.connect())
                stack.enter_context(gate_conn.begin())
            stack.enter_context(worker_gate(self.engine, gate_conn, customer_ids, addresses))
            if postgres:
                ctx = outbox.load_context(gate_conn, self.id, rows, addresses, now, self.cap_window, exit_types)
            else:
                with self.engine.connect() as conn, conn.begin():
                    ctx = outbox.load_context(conn, self.id, rows, addresses, now, self.cap_window, exit_types)
            results = [r for r in results if r.row["id"] in ctx.owned]
            send: list[tuple[dict, dict, dict]] = []
            for row, headers, payload in parsed:
                if row["id"] not in ctx.owned:
                    self.summary.lost_lease += 1
                    continue
                decision = self._decide(row, headers, payload, ctx, now)
                if decision is None:
                    send.append((row, headers, payload))
                else:
                    results.append(decision)
            send, deferred, reservations = self._warmup(send, now)
            results.extend(deferred)
            results.extend(await self._hand_off(send, ctx, now, reservations))
            self._release(reservations)
            done = self.clock.now()
            if postgres:
                outbox.complete(gate_conn, self.id, results, done)
            else:
                with outbox.write_txn(self.engine) as conn:
                    outbox.complete(conn, self.id, results, done)
        for result in results:
            self.summary.count(result)
        return len(rows)

    # --- decisions (pure, given the context) -------------------------------------------------------------
    def _decide(self, row: dict, headers: dict, payload: dict, ctx: Context, now: dt.datetime) -> Result | None:
        """``None`` to send now, else the outcome (failed / canceled / suppressed / deferred)."""
        channel = row.get("channel")
        commercial = row.get("category") != "transactional"
        if channel not in CHANNELS:
            return Result(row, "failed", "failed", f"unknown channel {channel!r}")
        if row.get("category") not in ("commercial", "transactional"):
            return Result(row, "failed", "failed", f"unknown category {row.get('category')!r}")
        problem = self._input_problem(row, headers, payload, ctx, now)
        if problem:
            return Result(row, "failed", "failed", problem)

        enrollment_id = row.get("enrollment_id")
        if enrollment_id is not None:
            enrollment = ctx.enrollments.get(enrollment_id)
            # "completed" means every step is queued (the last may still wait here): still deliverable
            if enrollment is None or enrollment["status"] not in ("active", "completed"):
                state = "missing" if enrollment is None else enrollment["status"]
                return Result(row, "canceled", "canceled", f"enrollment is {state}, not active")
            exit_on = {t for t in (payload.get("exit_on") or []) if isinstance(t, str)}
            hits = sorted((occurred, etype) for etype, occurred in ctx.events.get(row.get("customer_id"), [])
                          if etype in exit_on and occurred >= enrollment["enrolled_at"])
            if hits:
                return Result(row, "canceled", "canceled", f"exit event {hits[0][1]} at {hits[0][0].isoformat()}",
                              exit_reason=hits[0][1])

        address = normalize_address(row.get("to_address")) if row.get("to_address") else None
        scopes = ctx.suppressions.get(address, set()) if address else set()
        if "all" in scopes or (commercial and "commercial" in scopes):
            scope = "all" if "all" in scopes else "commercial"
            return Result(row, "suppressed", "suppressed", f"address is on the suppression list ({scope})")
        if commercial:
            customer = ctx.customers.get(row.get("customer_id"))
            if customer is None:
                return Result(row, "suppressed", "suppressed", "no customer record: no lawful basis for a "
                                                               "commercial message")
            if customer["marketing_opt_out"]:
                return Result(row, "suppressed", "suppressed", "the customer opted out of marketing")
            prefs = ctx.preferences.get(row.get("customer_id"))
            if prefs:  # the preference centre: a pause defers (nothing is lost), a topic turned off suppresses
                paused_until = prefs.get("paused_until")
                if paused_until is not None and paused_until > now:
                    return Result(row, "deferred", "pending",
                                  f"the customer paused marketing until {paused_until.isoformat()}",
                                  due_at=paused_until)
                topic = payload.get("topic")
                if isinstance(topic, str) and topic in prefs["topics_off"]:
                    return Result(row, "suppressed", "suppressed", f"the customer turned off topic {topic}")
            if channel == "email" and customer["marketing_basis"] not in ("consent", "soft_opt_in"):
                return Result(row, "suppressed", "suppressed",
                              f"no lawful basis for commercial email (marketing_basis={customer['marketing_basis']})")
            if channel == "email":
                problem = compliance_problem(row, headers, payload, self.settings.sender.postal_address)
                if problem:
                    return Result(row, "failed", "failed", problem)
                tz = zone(customer.get("timezone"), self.d.default_timezone)
                allowed = next_send_time(now, tz, self.d.quiet_hours_start, self.d.quiet_hours_end, self.weekdays)
                if allowed > now:
                    return Result(row, "deferred", "pending", f"quiet hours / send window in {tz.key}",
                                  due_at=allowed)
                return self._cap(row, ctx, now)
        return None

    def _input_problem(self, row: dict, headers: dict, payload: dict, ctx: Context, now: dt.datetime) -> str | None:
        channel = row["channel"]
        if channel == "email":
            try:  # built once here; the hand-off renders it
                row["_msg"] = build_message(row, self.settings.sender, now, ctx.campaigns.get(row.get("campaign_id")),
                                            headers)
            except MessageRefused as exc:
                return str(exc)
            except (ValueError, TypeError) as exc:
                return f"message cannot be built: {' '.join(str(exc).split())[:300]}"
        elif channel == "task":
            task = payload.get("task")
            if not isinstance(task, dict) or not str(task.get("title") or "").strip():
                return "task message without payload.task.title"
        elif channel == "webhook":
            if not isinstance(payload.get("webhook"), dict):
                return "webhook message without a payload.webhook object"
            if not self.d.webhook_url:
                return "no webhook_url configured in [delivery]"
        elif channel == "audience":
            spec = payload.get("audience") or {}
            return address_problem(spec.get("email") if isinstance(spec, dict) and spec.get("email")
                                   else row.get("to_address"))
        return None

    def _cap(self, row: dict, ctx: Context, now: dt.datetime) -> Result | None:
        customer_id = row["customer_id"]
        extra = ctx.approved.get(customer_id, 0)
        sent = ctx.sent_times.get(customer_id, [])
        limit = self.d.frequency_cap_messages
        free_at = cap_free_at(sent, now, limit, self.cap_window, extra)
        if free_at is not None:
            return Result(row, "deferred", "pending",
                          f"frequency cap: {limit} per {self.d.frequency_cap_days:g} days", due_at=free_at)
        rank = (-row["priority"], row["due_at"], row["id"])
        # due messages of this customer that rank higher and are not in this batch (pending, or being
        # sent by another worker) keep their slots; the batch itself is walked in rank order
        higher = [mid for prio, due, mid in ctx.competitors.get(customer_id, [])
                  if mid not in ctx.owned and (-prio, due, mid) < rank]
        slots = limit - len([t for t in sent if t > now - self.cap_window]) - extra
        if len(higher) >= slots:
            return Result(row, "deferred", "pending", "frequency cap slot held for a higher-priority message",
                          due_at=now + CONTENTION_DEFER)
        ctx.approved[customer_id] = extra + 1
        return None

    # --- warm-up ---------------------------------------------------------------------------------------
    def _warmup(self, send, now):
        if not self.d.warmup:
            return send, [], {}
        by_domain: dict[str, list] = {}
        for item in send:
            if item[0]["channel"] == "email":
                by_domain.setdefault(domain_of(item[0].get("from_address") or self.settings.sender.from_address),
                                     []).append(item)
        day = utc_day_start(now)
        keep_ids: set[int] = set()
        deferred: list[Result] = []
        reservations: dict[str, list] = {}
        for domain, items in by_domain.items():
            scope = f"warmup:{domain}"
            granted = outbox.reserve(self.engine, scope, day, self.d.warmup_schedule, len(items))
            reservations[domain] = [scope, day, granted, 0]
            for i, (row, _, _) in enumerate(items):
                if i < granted:
                    keep_ids.add(row["id"])
                else:
                    deferred.append(Result(row, "deferred", "pending", f"warm-up allowance of {domain} used up today",
                                           due_at=next_utc_midnight(now)))
        kept = [item for item in send if item[0]["channel"] != "email" or item[0]["id"] in keep_ids]
        return kept, deferred, reservations

    def _release(self, reservations) -> None:
        for scope, day, granted, used in reservations.values():
            if granted > used:
                outbox.release(self.engine, scope, day, granted - used)

    # --- hand-off ------------------------------------------------------------------------------------------
    async def _hand_off(self, send, ctx: Context, now: dt.datetime, reservations) -> list[Result]:
        results: list[Result] = []
        groups: dict[str, list[Item]] = {}
        for row, headers, payload in send:
            item = Item(row=row, payload=payload)
            if row["channel"] == "email":
                try:
                    item.raw = render(row.pop("_msg"), self.signer)
                except (ValueError, TypeError) as exc:
                    results.append(Result(row, "failed", "failed", f"message cannot be rendered: {exc}"))
                    continue
                item.sender = row.get("from_address") or self.settings.sender.from_address
                item.recipient = row["to_address"].strip()
            groups.setdefault(row["channel"], []).append(item)
        names = list(groups)
        outcomes = await asyncio.gather(*(self._deliver(n, groups[n]) for n in names))
        for name, items, replies in zip(names, (groups[n] for n in names), outcomes):
            for item, reply in zip(items, replies):
                results.append(self._result(item, reply, now, reservations))
        return results

    async def _deliver(self, name: str, items: list[Item]) -> list[ChannelResult]:
        """A channel's replies; a channel that raises (a bug, a full disk) gets its items retried."""
        try:
            replies = await self.channels[name].deliver(items, self.limiter)
            if len(replies) != len(items):
                raise RuntimeError(f"channel {name} answered {len(replies)} of {len(items)} items")
            return replies
        except Exception as exc:
            log.exception("channel %s failed", name)
            return [ChannelResult("retry", None, f"channel {name} error: {' '.join(str(exc).split())[:300]}")
                    for _ in items]

    def _result(self, item: Item, reply: ChannelResult, now: dt.datetime, reservations) -> Result:
        row = item.row
        if reply.outcome == "sent":
            if row["channel"] == "email" and self.d.warmup:
                domain = domain_of(item.sender or "")
                if domain in reservations:
                    reservations[domain][3] += 1
            return Result(row, "sent", "sent", reply.detail or None, code=reply.code, handed_off=True)
        if reply.outcome == "bounced":
            return Result(row, "bounced", "bounced", f"{reply.code} {reply.detail}".strip(), code=reply.code,
                          handed_off=True, suppress=(normalize_address(row["to_address"]), "hard_bounce", "all"))
        if reply.outcome == "retry":
            attempt = row["attempts"] + 1
            detail = f"{reply.code or 'no reply'} {reply.detail}".strip()
            if attempt >= self.d.max_attempts:
                return Result(row, "retry", "failed", f"gave up after {attempt} attempts: {detail}", code=reply.code,
                              handed_off=True)
            delay = backoff_seconds(attempt, self.d.retry_base_seconds, self.d.retry_max_seconds, self.rng)
            return Result(row, "retry", "pending", detail, due_at=now + dt.timedelta(seconds=delay), code=reply.code,
                          handed_off=True)
        return Result(row, "failed", "failed", f"{reply.code or ''} {reply.detail}".strip(), code=reply.code,
                      handed_off=True)


def run_worker(settings: Settings, **kwargs) -> Summary:
    """Run a worker to completion (``until_idle``/``max_messages``/``stop``) in a fresh event loop."""
    run_args = {k: kwargs.pop(k) for k in ("until_idle", "max_messages", "stop") if k in kwargs}
    worker = Worker(settings, **kwargs)
    return asyncio.run(worker.run(**run_args))
