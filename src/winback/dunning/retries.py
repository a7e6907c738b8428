"""Charge failed invoices again, safely: leases, persisted idempotency keys, look-ups, the per-card cap.

One case is worked by one worker at a time (a lease like the outbox's: ``claimed_by``/``lease_until``;
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite). For each charge:

1. more than ``lookup_after_hours`` after the first attempt, the invoice is looked up first (an
   idempotency key is only kept for about 24 hours by Stripe): paid -> recovered, void -> closed;
2. the card's charges in the last 30 days are counted (at most ``max_attempts_per_card``);
3. the attempt row with its idempotency key is **committed before** the gateway is called;
4. the gateway is called outside any transaction; its answer is recorded fenced by the lease.

A worker that dies between 3 and 4 leaves the attempt ``started``. The next worker resolves it
before anything else: within 24 hours it asks again with the same key (the provider replays the
first answer, nothing is charged twice); later it looks the invoice up.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy import Connection, Engine, and_, func, or_, select, text, update

from winback.dunning.apply import (ATTEMPTS, CASES, RECOVERED_BY, SUBS, card_key, case_by_invoice, enter_winback,
                                   mark_recovered)
from winback.dunning.gateways.base import ChargeResult, GatewayError
from winback.dunning.policy import Policy, after_failure, cap_allows, classify
from winback.kit.db import write_transaction

log = logging.getLogger(__name__)
UNANSWERED = ("timeout", "api_connection_error", "rate_limit")


def claim_due(engine: Engine, worker: str, now: dt.datetime, lease_seconds: float, limit: int,
              case_ids: list[int] | None = None, provider: str | None = None) -> list[dict]:
    """Take up to ``limit`` open cases whose next step is due (or the given ones), with a lease.
    ``provider``: only that billing system's cases (a gateway charges only its own invoices; cases
    reported by a Standard Webhooks sender are tracked, not charged)."""
    lease = now + dt.timedelta(seconds=lease_seconds)
    with write_transaction(engine) as conn:
        free = or_(CASES.c.lease_until.is_(None), CASES.c.lease_until < now)
        cond = [CASES.c.status == "open", free]
        if provider is not None:
            cond.append(CASES.c.provider == provider)
        if case_ids is None:
            cond += [CASES.c.next_attempt_at.is_not(None), CASES.c.next_attempt_at <= now]
        else:
            cond.append(CASES.c.id.in_(case_ids))
        stmt = select(CASES.c.id).where(and_(*cond)).order_by(CASES.c.next_attempt_at, CASES.c.id).limit(limit)
        if engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        ids = [r[0] for r in conn.execute(stmt).all()]
        if not ids:
            return []
        conn.execute(update(CASES).where(CASES.c.id.in_(ids), free).values(claimed_by=worker, lease_until=lease))
        rows = conn.execute(select(CASES).where(CASES.c.id.in_(ids), CASES.c.claimed_by == worker)).mappings().all()
    return [dict(r) for r in rows]


def _release(conn: Connection, case_id: int, worker: str, **values) -> int:
    return conn.execute(update(CASES).where(CASES.c.id == case_id, CASES.c.claimed_by == worker)
                        .values(claimed_by=None, lease_until=None, **values)).rowcount


def _fresh(conn: Connection, case_id: int) -> dict:
    return dict(conn.execute(select(CASES).where(CASES.c.id == case_id)).mappings().one())


class Retrier:
    """Works claimed cases with one gateway; ``clock`` gives the time of each step."""

    def __init__(self, settings, engine: Engine, gateway, clock, worker: str):
        self.settings = settings
        self.engine = engine
        self.gateway = gateway
        self.clock = clock
        self.worker = worker
        self.policy = Policy.from_settings(settings.dunning)
        self.cfg = settings.dunning

    def now(self) -> dt.datetime:
        return self.clock.now()

    # --- one case ---------------------------------------------------------------------------------------

    def work(self, case: dict) -> dict:
        """One step of one claimed case; returns what happened (for counters and the card page)."""
        try:
            return self._work(case)
        except GatewayError as exc:  # the provider refused to talk (auth, bad request): not a decline
            log.warning("dunning: case %s: gateway error %s: %s", case["id"], exc.code, exc)
            self._quick_retry(case, exc.code)
            return {"case_id": case["id"], "outcome": "gateway_error", "decline_code": exc.code}
        except Exception:  # a bug or an outage with one case must not stop the others
            log.exception("dunning: case %s failed", case["id"])
            self._quick_retry(case, "internal_error")
            return {"case_id": case["id"], "outcome": "internal_error"}

    def _work(self, case: dict) -> dict:
        now = self.now()
        unresolved = self._resolve_in_flight(case, now)
        if unresolved is not None:
            return unresolved
        with self.engine.connect() as conn:
            case = _fresh(conn, case["id"])
        if case["status"] != "open" or case["claimed_by"] != self.worker:
            return {"case_id": case["id"], "outcome": "gone"}
        if case["next_trigger"] == "exhaust" or (case["needs_update"] and case["next_trigger"] not in
                                                  ("customer_update", "card_updater")):
            if case["grace_until"] is not None and case["grace_until"] > now:
                with write_transaction(self.engine) as conn:
                    _release(conn, case["id"], self.worker, next_attempt_at=case["grace_until"],
                             next_trigger="exhaust")
                return {"case_id": case["id"], "outcome": "waiting"}
            return self._exhaust(case, now)
        first_attempt = self._first_attempt_at(case)
        late = first_attempt is not None and now - first_attempt > dt.timedelta(hours=self.cfg.lookup_after_hours)
        # no decline code yet (Stripe's newer invoice events carry none): ask before charging blindly
        unknown = not case["first_decline_code"] and case["next_trigger"] in ("schedule", "quick")
        if late or unknown or self._last_attempt_errored(case):
            looked = self._lookup(case, now)
            if looked is not None:
                return looked
        return self._charge(case, now)

    def _last_attempt_errored(self, case: dict) -> bool:
        """Our last charge ended in an answered error (Stripe's 500 is replayed for its key, a payment
        may still be processing): the next one must know the invoice's state first."""
        with self.engine.connect() as conn:
            last = conn.execute(select(ATTEMPTS.c.status).where(ATTEMPTS.c.case_id == case["id"])
                                .order_by(ATTEMPTS.c.number.desc()).limit(1)).scalar()
        return last == "error"

    def _first_attempt_at(self, case: dict) -> dt.datetime | None:
        with self.engine.connect() as conn:
            first = conn.execute(select(func.min(ATTEMPTS.c.started_at)).where(ATTEMPTS.c.case_id == case["id"])
                                 ).scalar()
        return first or case["first_failed_at"]

    def _lookup(self, case: dict, now: dt.datetime) -> dict | None:
        """The provider's view of the invoice before a late retry; None: still open, go on."""
        state = self.gateway.lookup_invoice(case["invoice_ref"])
        if state.status == "paid":
            with write_transaction(self.engine) as conn:
                mark_recovered(conn, self.settings, _fresh(conn, case["id"]), by=_paid_by(conn, case),
                               at=state.paid_at or now, now=now)
                conn.execute(update(ATTEMPTS).where(ATTEMPTS.c.case_id == case["id"], ATTEMPTS.c.status == "started")
                             .values(status="succeeded", finished_at=now))
            return {"case_id": case["id"], "outcome": "already_paid"}
        if state.status in ("void", "uncollectible"):
            self._close(case, now, "voided" if state.status == "void" else "uncollectible")
            return {"case_id": case["id"], "outcome": "closed"}
        if state.decline_code and not case["first_decline_code"]:
            category = classify(state.decline_code)
            values = dict(first_decline_code=state.decline_code, first_category=category,
                          last_decline_code=case["last_decline_code"] or state.decline_code,
                          last_category=case["last_category"] if case["last_decline_code"] else category,
                          updated_at=now)
            if category == "hard" and case["next_trigger"] in ("schedule", "quick"):
                # a hard decline learnt from the provider: no retry, wait for a new card
                with write_transaction(self.engine) as conn:
                    _release(conn, case["id"], self.worker, needs_update=True, next_attempt_at=case["grace_until"],
                             next_trigger="exhaust", **values)
                return {"case_id": case["id"], "outcome": "waiting_for_card"}
            with write_transaction(self.engine) as conn:
                conn.execute(update(CASES).where(CASES.c.id == case["id"]).values(**values))
        return None

    def _close(self, case: dict, now: dt.datetime, reason: str) -> None:
        from winback.dunning import notices

        with write_transaction(self.engine) as conn:
            if _release(conn, case["id"], self.worker, status="closed", close_reason=reason, closed_at=now,
                        next_attempt_at=None, next_trigger=None, updated_at=now):
                notices.cancel_case_notices(conn, case["id"], now, reason)

    def _resolve_in_flight(self, case: dict, now: dt.datetime) -> dict | None:
        """An attempt left ``started`` by a worker that died: settle it before charging again."""
        with self.engine.connect() as conn:
            stuck = conn.execute(select(ATTEMPTS).where(ATTEMPTS.c.case_id == case["id"],
                                                        ATTEMPTS.c.status == "started")
                                 .order_by(ATTEMPTS.c.number)).mappings().all()
        for attempt in stuck:
            age = now - attempt["started_at"]
            if age <= dt.timedelta(hours=self.cfg.lookup_after_hours):
                # the same key again: the provider replays its first answer, or charges once if it never got it
                result = self.gateway.charge_invoice(case["invoice_ref"], payment_method_ref=attempt["payment_method_ref"],
                                                     amount_minor=case["amount_minor"], currency=case["currency"],
                                                     idempotency_key=attempt["idempotency_key"])
                return self._record(case, dict(attempt), result, now)
            state = self.gateway.lookup_invoice(case["invoice_ref"])
            if state.status == "paid":
                return self._record(case, dict(attempt), ChargeResult("succeeded", message="found paid on look-up"),
                                    now)
            with write_transaction(self.engine) as conn:
                conn.execute(update(ATTEMPTS).where(ATTEMPTS.c.id == attempt["id"], ATTEMPTS.c.status == "started")
                             .values(status="error", decline_code="unknown", category="gateway",
                                     message="no answer recorded; the invoice was still open on look-up",
                                     finished_at=now))
            if state.status in ("void", "uncollectible"):
                self._close(case, now, "voided" if state.status == "void" else "uncollectible")
                return {"case_id": case["id"], "outcome": "closed"}
        return None

    def _charge(self, case: dict, now: dt.datetime) -> dict:
        trigger = case["next_trigger"] or "schedule"
        pm = case["payment_method_ref"]
        with write_transaction(self.engine) as conn:
            if pm is None and case["subscription_ref"]:
                pm = conn.execute(select(SUBS.c.payment_method_ref).where(
                    SUBS.c.provider == case["provider"], SUBS.c.external_id == case["subscription_ref"])).scalar()
            key_of_card = card_key(conn, case["provider"], pm, case["invoice_ref"], case["customer_ref"])
            if self.engine.dialect.name == "postgresql":  # two workers never both pass the cap for a card
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key_of_card})
            times = conn.execute(select(ATTEMPTS.c.started_at).where(
                ATTEMPTS.c.card_key == key_of_card,
                ATTEMPTS.c.started_at > now - dt.timedelta(days=30))).scalars().all()
            wait_until = cap_allows(times, now, self.policy.max_per_card)
            if wait_until is not None:
                _release(conn, case["id"], self.worker, next_attempt_at=wait_until, updated_at=now)
                return {"case_id": case["id"], "outcome": "capped", "until": wait_until}
            number = (conn.execute(select(func.max(ATTEMPTS.c.number)).where(ATTEMPTS.c.case_id == case["id"])
                                   ).scalar() or 0) + 1
            # committed before the call; the random part keeps a restored database or a second
            # environment on the same account from reusing a key the provider still remembers
            key = f"winback:{case['provider']}:{case['invoice_ref']}:{number}:{uuid.uuid4().hex[:12]}"
            fenced = conn.execute(update(CASES).where(CASES.c.id == case["id"], CASES.c.claimed_by == self.worker,
                                                      CASES.c.status == "open")
                                  .values(attempts=CASES.c.attempts + 1, updated_at=now)).rowcount
            if not fenced:
                return {"case_id": case["id"], "outcome": "gone"}
            conn.execute(ATTEMPTS.insert().values(
                case_id=case["id"], number=number, idempotency_key=key, trigger=trigger, payment_method_ref=pm,
                card_key=key_of_card, status="started", worker=self.worker, started_at=now))
            attempt = dict(conn.execute(select(ATTEMPTS).where(ATTEMPTS.c.idempotency_key == key)).mappings().one())
        # committed: the key is on record before the provider hears of the charge
        if trigger == "customer_update" and pm and case["customer_ref"]:
            try:
                self.gateway.set_default_payment_method(case["customer_ref"], pm)
            except GatewayError as exc:  # the charge names the card itself; the default can wait
                log.warning("dunning: could not set the default card of %s: %s", case["customer_ref"], exc)
        result = self.gateway.charge_invoice(case["invoice_ref"], payment_method_ref=pm,
                                             amount_minor=case["amount_minor"], currency=case["currency"],
                                             idempotency_key=key)
        return self._record(case, attempt, result, self.now())

    def _record(self, case: dict, attempt: dict, result: ChargeResult, now: dt.datetime) -> dict:
        outcome = {"case_id": case["id"], "invoice_ref": case["invoice_ref"], "amount_minor": case["amount_minor"],
                   "currency": case["currency"], "outcome": result.status, "decline_code": result.decline_code,
                   "trigger": attempt["trigger"]}
        status = {"succeeded": "succeeded", "failed": "failed", "error": "error"}.get(result.status, "skipped")
        category = classify(result.decline_code) if result.status in ("failed", "error") else None
        if result.status == "error":
            category = "gateway"
        # no answer (timeout, connection, 429): the provider may or may not have charged. The attempt stays
        # in flight and the quick retry asks again with the same key (Stripe replays or runs it once).
        unanswered = result.status == "error" and result.decline_code in UNANSWERED
        with write_transaction(self.engine) as conn:
            if unanswered:
                conn.execute(update(ATTEMPTS).where(ATTEMPTS.c.id == attempt["id"], ATTEMPTS.c.status == "started")
                             .values(message=f"no answer ({result.decline_code}); asking again with the same key",
                                     category="gateway", decline_code=result.decline_code))
            else:
                conn.execute(update(ATTEMPTS).where(ATTEMPTS.c.id == attempt["id"], ATTEMPTS.c.status == "started")
                             .values(status=status, decline_code=result.decline_code, category=category,
                                     message=(result.message or "")[:500] or None, gateway_ref=result.gateway_ref,
                                     finished_at=now))
            fresh = _fresh(conn, case["id"])
            if fresh["claimed_by"] != self.worker:
                return {**outcome, "outcome": "lost_lease"}
            if result.status == "succeeded":
                mark_recovered(conn, self.settings, fresh, by=RECOVERED_BY.get(attempt["trigger"], "retry"), at=now,
                               now=now)
                return outcome
            if result.status == "already_paid":
                mark_recovered(conn, self.settings, fresh, by=_paid_by(conn, fresh), at=now, now=now)
                return outcome
            if result.status == "not_payable":
                _release(conn, case["id"], self.worker, status="closed", close_reason="voided", closed_at=now,
                         next_attempt_at=None, next_trigger=None, updated_at=now)
                from winback.dunning import notices

                notices.cancel_case_notices(conn, case["id"], now, "voided")
                return outcome
            if fresh["next_trigger"] in ("customer_update", "card_updater") and \
                    fresh["payment_method_ref"] != attempt["payment_method_ref"] and not unanswered:
                # a new card arrived while the old one was being charged: charge the new one now
                _release(conn, case["id"], self.worker, last_decline_code=result.decline_code,
                         last_category=category, next_attempt_at=now, needs_update=False, updated_at=now)
                return outcome
            step = after_failure(self.policy, category=category, first_failed_at=fresh["first_failed_at"] or now,
                                 now=now, retry_index=fresh["retry_index"],
                                 quick_retries=fresh["quick_retries"] if category == "gateway" else 0)
            values = dict(last_decline_code=result.decline_code, last_category=category, retry_index=step.retry_index,
                          quick_retries=step.quick_retries, updated_at=now)
            if not fresh["first_decline_code"] and category != "gateway":
                values.update(first_decline_code=result.decline_code, first_category=category)
            if step.at is not None:
                values.update(next_attempt_at=step.at, next_trigger=step.trigger, needs_update=False)
            else:
                values.update(next_attempt_at=fresh["grace_until"] or now, next_trigger="exhaust",
                              needs_update=step.wait_for_update)
            _release(conn, case["id"], self.worker, **values)
        return outcome

    def _quick_retry(self, case: dict, code: str) -> None:
        now = self.now()
        with write_transaction(self.engine) as conn:
            fresh = _fresh(conn, case["id"])
            if fresh["next_trigger"] == "exhaust":  # ending the subscription failed: try that again soon
                delay = min(self.policy.quick_base_seconds * 2 ** min(fresh["quick_retries"], 20),
                            self.policy.quick_max_seconds)
                _release(conn, case["id"], self.worker, next_attempt_at=now + dt.timedelta(seconds=delay),
                         quick_retries=fresh["quick_retries"] + 1, updated_at=now)
                return
            if fresh["status"] != "open":
                _release(conn, case["id"], self.worker)
                return
            step = after_failure(self.policy, category="gateway", first_failed_at=fresh["first_failed_at"] or now,
                                 now=now, retry_index=fresh["retry_index"], quick_retries=fresh["quick_retries"])
            at = step.at or max(fresh["grace_until"] or now, now + dt.timedelta(minutes=10))
            _release(conn, case["id"], self.worker, next_attempt_at=at, quick_retries=step.quick_retries,
                     retry_index=step.retry_index, next_trigger=step.trigger or "exhaust", updated_at=now)

    def _exhaust(self, case: dict, now: dt.datetime) -> dict:
        """Retries and grace are over: cancel or pause the subscription; the customer enters win-back."""
        action = self.cfg.on_exhausted
        looked = self._lookup(case, now)  # paid on the hosted page with the webhook lost: not a lapse
        if looked is not None:
            return looked
        with self.engine.connect() as conn:
            fresh = _fresh(conn, case["id"])
        if fresh["status"] != "open" or fresh["claimed_by"] != self.worker or \
                fresh["next_trigger"] in ("customer_update", "card_updater"):
            return {"case_id": case["id"], "outcome": "gone"}  # a new card arrived meanwhile
        if case["subscription_ref"]:
            self.gateway.end_subscription(case["subscription_ref"], action=action,
                                          idempotency_key=f"winback:{case['provider']}:{case['invoice_ref']}:end")
        from winback.dunning import notices

        with write_transaction(self.engine) as conn:
            done = _release(conn, case["id"], self.worker, status="exhausted",
                            close_reason="canceled" if action == "cancel" else "paused", closed_at=now,
                            next_attempt_at=None, next_trigger=None, updated_at=now)
            if not done:
                return {"case_id": case["id"], "outcome": "lost_lease"}
            if case["subscription_ref"]:
                conn.execute(update(SUBS).where(SUBS.c.provider == case["provider"],
                                                SUBS.c.external_id == case["subscription_ref"])
                             .values(status="canceled" if action == "cancel" else "paused", updated_at=now))
            notices.cancel_case_notices(conn, case["id"], now, "exhausted")
            enter_winback(conn, _fresh(conn, case["id"]), at=now, now=now,
                          action="canceled" if action == "cancel" else "paused")
        return {"case_id": case["id"], "outcome": "exhausted", "action": action}


def _paid_by(conn: Connection, case: dict) -> str:
    from winback.dunning.apply import _who_paid

    return _who_paid(conn, case)


__all__ = ["Retrier", "claim_due", "case_by_invoice"]
