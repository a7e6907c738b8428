"""The scheduler: due sequence steps -> rendered messages in the outbox.

For every ``active`` enrollment whose ``next_due_at`` has come (``now`` from the injected clock):

* if the customer has an exit event (``exit_on`` of the sequence: returned, purchased,
  unsubscribed, ...) since the trigger, the enrollment exits - no further step;
* a step whose ``when`` does not match the customer is skipped; an email step of a commercial
  sequence is skipped for a customer who may not receive marketing email (no address, no lawful
  basis, opted out) - the retargeting step of the sequence is there for them;
* otherwise the step is rendered (template, locale, subject/CTA variant, offer and a coupon
  issued at the first offer step) and put into ``outbox_messages`` with the idempotency key
  ``enr:{enrollment}:step:{index}``: scheduling the same step twice - a re-run, two schedulers at
  once, a crash between the insert and the enrollment update - never makes a second message;
* the enrollment moves to the next step, due ``after`` the previous step's due time (delays are
  measured from when a step was due, so a late scheduler does not stretch the sequence).

The outbox row carries everything the delivery engine needs: subject and both bodies, RFC 8058
``List-Unsubscribe``/``List-Unsubscribe-Post`` headers for commercial email, and in ``payload``
the exit events, the unsubscribe URL and the sender's postal address (delivery re-checks them at
send time).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from winback.campaigns import links, repository as repo
from winback.campaigns.context import build_context
from winback.campaigns.topics import topic_of
from winback.config import Settings
from winback.kit.errors import ConfigError
from winback.kit.db import make_engine, write_transaction
from winback.playbooks.coupons import coupon_value_minor, issue_coupon
from winback.playbooks.facts import CustomerFacts, matches
from winback.playbooks.spec import PlaybookSpec, load_playbook_text

BATCH = 200  # enrollments per transaction (on SQLite the write lock is held while they render)
MAX_ROUNDS = 10_000


@dataclass
class ScheduleResult:
    messages: Counter = field(default_factory=Counter)  # channel -> outbox rows written
    skipped: Counter = field(default_factory=Counter)  # why a step was skipped
    exited: Counter = field(default_factory=Counter)  # exit event -> enrollments
    completed: int = 0
    coupons: Counter = field(default_factory=Counter)  # issued | replaced | kept_existing
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"messages": dict(self.messages), "skipped": dict(self.skipped), "exited": dict(self.exited),
                "completed": self.completed, "coupons": dict(self.coupons), "errors": self.errors[:20]}


class _StepFailed(Exception):
    """A step of one enrollment could not be rendered (the others go on)."""


class _Playbooks:
    """Playbook specs by (name, version), parsed once per scheduling run."""

    def __init__(self, conn):
        self.conn = conn
        self.cache: dict[tuple[str, int], PlaybookSpec] = {}

    def get(self, name: str, version: int) -> PlaybookSpec:
        key = (name, version)
        if key not in self.cache:
            text = repo.playbook_content(self.conn, name, version)
            if text is None:
                raise LookupError(f"playbook {name} version {version} is not in the state store")
            self.cache[key] = _parsed(text, f"{name} v{version}")
        return self.cache[key]


@lru_cache(maxsize=16)
def _parsed(text: str, label: str) -> PlaybookSpec:
    """A stored playbook version, parsed once per process (specs are immutable)."""
    return load_playbook_text(text, label)


def schedule_due(settings: Settings, *, engine: Engine | None = None, now: dt.datetime | None = None,
                 campaign_ids: list[int] | None = None) -> ScheduleResult:
    """Turn every due step into outbox messages; returns what was done."""
    now = now or settings.clock().now()
    own = engine is None
    engine = engine or make_engine(settings.resolved_state_url)
    result = ScheduleResult()
    failed: set[int] = set()
    try:
        for _ in range(MAX_ROUNDS):
            with write_transaction(engine) as conn:
                due = repo.due_enrollments(conn, now, BATCH, campaign_ids, exclude=failed)
                if not due:
                    break
                outbox: list[dict] = []
                campaigns = {c["id"]: c for c in repo.campaigns_by_key(conn).values()}
                books = _Playbooks(conn)
                exits = repo.exit_events(conn, [e["customer_id"] for e in due], _all_exit_types(due, campaigns,
                                                                                                 books))
                customers = {r["id"]: r for r in repo.customer_rows(conn, ids=[e["customer_id"] for e in due])}
                moves: list[dict] = []
                for enrollment in due:
                    mark = len(outbox)
                    try:
                        moves.append(_advance(settings, conn, enrollment, campaigns[enrollment["campaign_id"]], books,
                                              exits, customers.get(enrollment["customer_id"]), now, result, outbox))
                    except _StepFailed as exc:
                        # a broken template or bad merge data: this enrollment waits (nothing of it is
                        # written; a coupon issued for it was rolled back) and is reported; fixing the
                        # template lets the next run continue it
                        del outbox[mark:]
                        failed.add(enrollment["id"])
                        result.skipped["render error"] += 1
                        result.errors.append(f"enrollment {enrollment['id']} {exc}")
                repo.insert_outbox(conn, outbox)  # one statement; a step written before is ignored
                repo.move_enrollments(conn, moves)  # one statement; only where next_step is still ours
    finally:
        if own:
            engine.dispose()
    return result


def _all_exit_types(due, campaigns, books: _Playbooks) -> list[str]:
    types: set[str] = set()
    for e in due:
        c = campaigns[e["campaign_id"]]
        spec = books.get(c["playbook_name"], e["playbook_version"])
        if c["key"] in spec.campaigns:
            types.update(spec.sequence_of(c["key"]).exit_on)
    return sorted(types)


def _advance(settings: Settings, conn, enrollment: dict, campaign: dict, books: _Playbooks,
             exits: dict, customer: dict | None, now: dt.datetime, result: ScheduleResult,
             outbox: list[dict]) -> dict:
    spec = books.get(campaign["playbook_name"], enrollment["playbook_version"])
    key = campaign["key"]
    step_index = enrollment["next_step"]
    if key not in spec.campaigns or customer is None:
        result.exited["campaign_removed" if customer else "customer_removed"] += 1
        return _move(enrollment, status="exited", exit_reason="campaign_removed" if customer else "customer_removed",
                     finished_at=now)
    seq = spec.sequence_of(key)
    context = json.loads(enrollment["context"] or "{}")
    since = _since(context, enrollment)
    for kind, at in exits.get(enrollment["customer_id"], ()):
        if kind in seq.exit_on and at >= since:
            result.exited[kind] += 1
            return _move(enrollment, status="exited", exit_reason=kind, finished_at=now)
    facts = _facts(context)
    due_at = enrollment["next_due_at"]
    coupon = None
    while step_index < len(seq.steps) and due_at <= now:
        step = seq.steps[step_index]
        if step.when is not None and facts is not None and not matches(step.when, facts):
            result.skipped["condition not met"] += 1
        elif step.channel == "webhook" and not settings.delivery.webhook_url:
            result.skipped["no webhook configured (delivery.webhook_url)"] += 1
        elif step.channel == "email" and not customer.get("email"):
            result.skipped["no email address"] += 1
        elif step.channel == "email" and seq.category == "commercial" and not _may_email(customer):
            result.skipped["no permission to email (lawful basis or opt-out)"] += 1
        else:
            try:
                row, coupon = _message(settings, conn, spec, seq, step, step_index, enrollment, campaign, customer,
                                       context, due_at, now, coupon, result)
            except ConfigError:
                raise
            except Exception as exc:
                raise _StepFailed(f"step {step.key}: {' '.join(str(exc).split())}") from exc
            outbox.append(row)
            result.messages[step.channel] += 1
        step_index += 1
        if step_index < len(seq.steps):
            due_at = due_at + seq.steps[step_index].after
    coupon_id = coupon["id"] if coupon is not None else None
    if step_index >= len(seq.steps):
        result.completed += 1
        return _move(enrollment, next_step=step_index, status="completed", finished_at=now, coupon_id=coupon_id)
    return _move(enrollment, next_step=step_index, next_due_at=due_at, coupon_id=coupon_id)


def _move(enrollment: dict, *, next_step: int | None = None, status: str = "active", exit_reason: str | None = None,
          finished_at: dt.datetime | None = None, next_due_at: dt.datetime | None = None,
          coupon_id: int | None = None) -> dict:
    """The update of one enrollment (applied in bulk by :func:`repository.move_enrollments`)."""
    return {"b_id": enrollment["id"], "b_step": enrollment["next_step"],
            "next_step": enrollment["next_step"] if next_step is None else next_step, "status": status,
            "exit_reason": exit_reason, "finished_at": finished_at, "next_due_at": next_due_at,
            "coupon_id": coupon_id}


def _since(context: dict, enrollment: dict) -> dt.datetime:
    at = context.get("trigger_at")
    if at:
        try:
            parsed = dt.datetime.fromisoformat(at)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
        except ValueError:
            pass
    return enrollment["enrolled_at"]


def _facts(context: dict) -> CustomerFacts | None:
    f = context.get("facts")
    if not f:
        return None
    f = dict(f)
    f["segments"] = frozenset(f.get("segments") or ())
    f["requested_features"] = tuple(f.get("requested_features") or ())
    return CustomerFacts(**f)


def _may_email(customer: dict) -> bool:
    return bool(customer.get("email")) and not customer.get("marketing_opt_out") and \
        customer.get("marketing_basis") in ("consent", "soft_opt_in")


def message_id(settings: Settings, idempotency_key: str) -> str:
    digest = hashlib.sha256((settings.secret_key or "") .encode() + b"\x00" + idempotency_key.encode()).hexdigest()
    domain = settings.sender.from_address.rpartition("@")[2] or "winback.invalid"
    return f"<wb.{digest[:24]}@{domain}>"


def _message(settings: Settings, conn, spec: PlaybookSpec, seq, step, step_index: int, enrollment: dict,
             campaign: dict, customer: dict, context: dict, due_at: dt.datetime, now: dt.datetime, coupon,
             result: ScheduleResult) -> tuple[dict, dict | None]:
    """The outbox row of one step (and the coupon it presents). Issuing a coupon is the only write
    before rendering: it happens in a savepoint that is undone if the render fails."""
    offer_key = enrollment.get("offer_key")
    offer = spec.offers.get(offer_key) if offer_key else None
    args = (settings, spec, seq, step, step_index, enrollment, campaign, customer, context, due_at, now)
    if step.offer and offer is not None and offer.coupon and coupon is None:
        savepoint = conn.begin_nested()
        try:
            coupon = _coupon(conn, spec, offer_key, offer, enrollment, campaign, context, now, result)
            row = _message_row(*args, coupon)
        except BaseException:
            savepoint.rollback()
            raise
        savepoint.commit()
        return row, coupon
    return _message_row(*args, coupon), coupon


def _message_row(settings: Settings, spec: PlaybookSpec, seq, step, step_index: int, enrollment: dict,
                 campaign: dict, customer: dict, context: dict, due_at: dt.datetime, now: dt.datetime,
                 coupon) -> dict:
    from winback.campaigns.rendering import render_message

    idem = f"enr:{enrollment['id']}:step:{step_index}"
    mid = message_id(settings, idem)
    key = settings.signing_key()
    base = settings.sender.base_url
    address = (customer.get("email") or "").strip()
    offer_key = enrollment.get("offer_key")
    offer = spec.offers.get(offer_key) if offer_key else None
    variants = json.loads(enrollment.get("variants") or "{}")
    cspec = spec.campaigns[campaign["key"]]
    subject_variant = cta_variant = None
    for ek, vk in variants.items():
        exp = cspec.experiments.get(ek)
        if exp is None or (exp.step and exp.step != step.key):
            continue
        v = exp.variants.get(vk)
        if v is not None:
            subject_variant = v.subject or subject_variant
            cta_variant = v.cta or cta_variant
    step_variant = ",".join(f"{ek}={vk}" for ek, vk in sorted(variants.items())
                            if cspec.experiments.get(ek) and cspec.experiments[ek].step in (None, step.key)) or None
    unsubscribe = links.unsubscribe_url(key, base, customer_id=customer["id"], message=mid,
                                        campaign_id=campaign["id"]) if address else None
    ctx = build_context(settings, spec=spec, customer=customer, enrollment=enrollment, context=context,
                        offer_key=offer_key if step.offer or step_index > 0 else offer_key, offer=offer,
                        coupon=coupon, message=mid, now=now, step_key=step.key, step_index=step_index,
                        subject_variant=subject_variant, cta_variant=cta_variant, unsubscribe=unsubscribe)
    payload: dict = {"exit_on": list(seq.exit_on), "postal_address": settings.sender.postal_address,
                     "campaign": campaign["key"], "step": step.key, "links": ctx["links"],
                     "topic": topic_of(campaign["key"], cspec.sequence, cspec.topic, seq.category)}
    row = {
        "idempotency_key": idem, "message_id": mid, "customer_id": customer["id"], "campaign_id": campaign["id"],
        "enrollment_id": enrollment["id"], "step": step_index, "channel": step.channel,
        "category": seq.category, "priority": int(campaign["priority"]), "variant": step_variant,
        "locale": customer.get("locale"), "to_address": address or None,
        "from_address": settings.sender.from_address, "subject": None, "text_body": None, "html_body": None,
        "headers": None, "status": "pending", "status_reason": None, "due_at": due_at, "attempts": 0,
        "created_at": now,
    }
    if step.channel == "email":
        rendered = render_message(step.template, customer.get("locale"), ctx, subject_variant=subject_variant,
                                  category=seq.category, search_paths=template_paths(settings),
                                  fallbacks=spec.fallbacks, open_pixel=links.open_pixel_url(key, base, message=mid))
        row.update(subject=rendered.subject, text_body=rendered.text, html_body=rendered.html,
                   locale=rendered.locale)
        if seq.category == "commercial":
            header_value = f"<{unsubscribe}>"
            if settings.sender.unsubscribe_mailto:
                header_value += f", <mailto:{settings.sender.unsubscribe_mailto}?subject=unsubscribe>"
            row["headers"] = json.dumps({"List-Unsubscribe": header_value,
                                         "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
            payload["unsubscribe_url"] = unsubscribe
        if rendered.subject_variant:
            row["variant"] = (row["variant"] + ";" if row["variant"] else "") + f"subject={rendered.subject_variant}"
    elif step.channel == "task":
        title = step.title or f"Call {customer.get('name') or customer['external_id']} ({campaign['key']})"
        payload["task"] = {"title": title, "phone": customer.get("phone"),
                           "body": _task_body(ctx, enrollment)}
    elif step.channel == "webhook":
        payload["webhook"] = {"event": "winback.step", "campaign": campaign["key"], "step": step.key,
                              "customer": {"id": customer["external_id"], "source": customer["source"],
                                           "email": address or None, "name": customer.get("name")},
                              "reason": ctx.get("reason"), "offer": ctx.get("offer"),
                              "coupon": ctx.get("coupon"), "decision": json.loads(enrollment["decision"] or "{}")}
    elif step.channel == "audience":
        payload["audience"] = {"name": campaign["key"], "email": address or None, "phone": customer.get("phone"),
                               "country": customer.get("country")}
    row["payload"] = json.dumps(payload, default=str, ensure_ascii=False)
    return row


def _domain(settings: Settings) -> str:
    return settings.sender.from_address.rpartition("@")[2] or "winback.invalid"


def _task_body(ctx: dict, enrollment: dict) -> str:
    decision = json.loads(enrollment.get("decision") or "{}")
    lines = [f"Reason they left: {ctx.get('reason') or 'unknown'}",
             "Goal: learn, not sell - ask what made them leave and what would bring them back."]
    lines += [str(s) for s in decision.get("explanation", [])][:4]
    return "\n".join(lines)


def _coupon(conn, spec: PlaybookSpec, offer_key: str, offer, enrollment: dict, campaign: dict, context: dict,
            now: dt.datetime, result: ScheduleResult) -> dict | None:
    facts = _facts(context)
    currency = (facts.currency if facts and facts.currency else None) or spec.currency
    value = coupon_value_minor(offer, facts) if facts is not None else 0
    outcome = issue_coupon(conn, customer_id=enrollment["customer_id"], offer_key=offer_key, offer=offer,
                           value_minor=int(value), currency=currency, campaign_id=campaign["id"], now=now)
    result.coupons[outcome.outcome] += 1
    return outcome.coupon


def template_paths(settings: Settings) -> list[Path]:
    return [settings.workspace / "templates"]
