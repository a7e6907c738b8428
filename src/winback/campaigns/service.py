"""Campaign views and previews for the CLI and the web app (read-only)."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select

from winback.campaigns import repository as repo
from winback.campaigns.context import build_context
from winback.campaigns.planner import _facts_dict, facts_from_row, merge_data
from winback.campaigns.scheduler import message_id, template_paths
from winback.config import Settings
from winback.kit.db import make_engine
from winback.kit.errors import WinbackError
from winback.models.campaigns import Campaign, Coupon, Enrollment
from winback.models.delivery import OutboxMessage
from winback.playbooks.decide import BudgetState, decide
from winback.playbooks.experiments import assign_variant
from winback.playbooks.service import load_playbook


def list_campaigns(settings: Settings) -> list[dict]:
    engine = make_engine(settings.resolved_state_url)
    try:
        with engine.connect() as conn:
            camps = [dict(r) for r in conn.execute(select(Campaign.__table__).order_by(Campaign.key)).mappings()]
            enr = conn.execute(select(Enrollment.campaign_id, Enrollment.arm, Enrollment.status, func.count())
                               .group_by(Enrollment.campaign_id, Enrollment.arm, Enrollment.status)).all()
            msgs = conn.execute(select(OutboxMessage.campaign_id, OutboxMessage.status, func.count())
                                .group_by(OutboxMessage.campaign_id, OutboxMessage.status)).all()
    finally:
        engine.dispose()
    out = []
    for c in camps:
        e = {f"{arm}:{status}": n for cid, arm, status, n in enr if cid == c["id"]}
        m = {status: n for cid, status, n in msgs if cid == c["id"]}
        out.append({"key": c["key"], "title": c["title"], "status": c["status"], "sequence": c["sequence"],
                    "priority": c["priority"], "holdout_share": c["holdout_share"],
                    "budget_minor": c["budget_minor"], "committed_cost_minor": c["committed_cost_minor"],
                    "playbook_version": c["playbook_version"],
                    "enrolled": sum(n for k, n in e.items() if k.startswith("treatment:")),
                    "held_out": sum(n for k, n in e.items() if k.startswith("holdout:")),
                    "enrollments": e, "messages": m})
    return out


def enrollments(settings: Settings, campaign: str | None = None, customer: str | None = None,
                limit: int = 50) -> list[dict]:
    engine = make_engine(settings.resolved_state_url)
    try:
        with engine.connect() as conn:
            q = select(Enrollment.__table__, Campaign.key.label("campaign"),
                       repo.CUSTOMERS.c.external_id.label("customer")).join(
                Campaign, Campaign.id == Enrollment.campaign_id).join(
                repo.CUSTOMERS, repo.CUSTOMERS.c.id == Enrollment.customer_id)
            if campaign:
                q = q.where(Campaign.key == campaign)
            if customer:
                q = q.where(repo.CUSTOMERS.c.external_id == customer)
            rows = [dict(r) for r in conn.execute(q.order_by(Enrollment.id).limit(limit)).mappings()]
    finally:
        engine.dispose()
    for r in rows:
        r["decision"] = json.loads(r["decision"]) if r["decision"] else None
        r["variants"] = json.loads(r["variants"]) if r["variants"] else {}
        r.pop("context", None)
    return rows


def preview(settings: Settings, campaign: str, customer: str, *, step: str | None = None,
            locale: str | None = None, subject_variant: str | None = None) -> dict:
    """Render one step of a campaign for one customer, as it would be sent (nothing is written).

    The customer's enrollment is used when there is one; otherwise the playbook decides now."""
    from winback.campaigns.rendering import render_message

    now = settings.clock().now()
    engine = make_engine(settings.resolved_state_url)
    try:
        spec, version = load_playbook(settings, engine=engine, record=False)
        if campaign not in spec.campaigns:
            raise WinbackError(f"unknown campaign {campaign!r}; the playbook has {', '.join(spec.campaigns)}")
        seq = spec.sequence_of(campaign)
        steps = [s for s in seq.steps if s.channel == "email"]
        chosen = next((s for s in steps if s.key == step), None) if step else (steps[0] if steps else None)
        if chosen is None:
            raise WinbackError(f"campaign {campaign} has no email step {step!r}; its email steps are "
                               f"{', '.join(s.key for s in steps) or 'none'}")
        with engine.connect() as conn:
            rows = repo.customer_rows(conn, ids=[cid for (src, ext), cid in repo.customer_ids_by_key(conn).items()
                                                 if ext == customer])
            if not rows:
                raise WinbackError(f"no customer {customer!r} in the state store")
            row = rows[0]
            enr = conn.execute(select(Enrollment.__table__).join(Campaign, Campaign.id == Enrollment.campaign_id)
                               .where(Campaign.key == campaign, Enrollment.customer_id == row["id"])
                               .order_by(Enrollment.id.desc())).mappings().first()
            enrollment = dict(enr) if enr else None
            coupon = None
            if enrollment and enrollment.get("coupon_id"):
                c = conn.execute(select(Coupon.__table__).where(Coupon.id == enrollment["coupon_id"])).mappings()
                coupon = dict(c.first() or {}) or None
            segs = repo.segments_by_customer(conn, [row["id"]]).get(row["id"], set())
        facts = facts_from_row(row, segs)
        if enrollment is None:
            cspec = spec.campaigns[campaign]
            variants = {ek: assign_variant(campaign, ek, facts.external_id,
                                           {vk: v.weight for vk, v in exp.variants.items()})
                        for ek, exp in cspec.experiments.items()}
            d = decide(spec, facts, BudgetState(), campaign_key=None if cspec.audience.winback else campaign,
                       commit=False)
            if cspec.audience.winback and d.campaign != campaign and not d.excluded:
                d = decide(spec, facts, BudgetState(), campaign_key=campaign, commit=False)

            details = merge_data(settings, [(row, None)], now)
            context = {"details": details.get((row["source"], row["external_id"]), {}), "facts": _facts_dict(facts)}
            enrollment = {"id": 0, "decision": json.dumps(d.as_dict(), default=str), "strategy": d.strategy,
                          "offer_key": d.offer, "variants": json.dumps(variants)}
            source = "decided now (not enrolled)"
        else:
            context = json.loads(enrollment.get("context") or "{}")
            variants = json.loads(enrollment.get("variants") or "{}")
            source = f"enrollment {enrollment['id']} ({enrollment['arm']}, {enrollment['status']})"
        if subject_variant is None:
            for ek, vk in variants.items():
                exp = spec.campaigns[campaign].experiments.get(ek)
                if exp and exp.step in (None, chosen.key) and exp.variants[vk].subject:
                    subject_variant = exp.variants[vk].subject
        cta = None
        for ek, vk in variants.items():
            exp = spec.campaigns[campaign].experiments.get(ek)
            if exp and exp.step in (None, chosen.key) and exp.variants[vk].cta:
                cta = exp.variants[vk].cta
        offer_key = enrollment.get("offer_key")
        offer = spec.offers.get(offer_key) if offer_key else None
        if coupon is None and chosen.offer and offer is not None and offer.coupon:
            coupon = {"code": "WB-PREVIEW", "expires_at": now + dt.timedelta(days=offer.expires_days)}
        mid = message_id(settings, f"preview:{campaign}:{customer}:{chosen.key}")
        from winback.campaigns import links

        address = row.get("email") or ""
        unsubscribe = links.unsubscribe_url(settings.signing_key(), settings.sender.base_url, customer_id=row["id"],
                                            message=mid)
        ctx = build_context(settings, spec=spec, customer={**row, "locale": locale or row.get("locale")},
                            enrollment=enrollment, context=context, offer_key=offer_key, offer=offer, coupon=coupon,
                            message=mid, now=now, step_key=chosen.key, step_index=seq.steps.index(chosen),
                            subject_variant=subject_variant, cta_variant=cta, unsubscribe=unsubscribe)
        rendered = render_message(chosen.template, locale or row.get("locale"), ctx,
                                  subject_variant=subject_variant, category=seq.category,
                                  search_paths=template_paths(settings), fallbacks=spec.fallbacks)
        return {"campaign": campaign, "customer": customer, "step": chosen.key, "template": chosen.template,
                "locale": rendered.locale, "subject_variant": rendered.subject_variant, "source": source,
                "playbook_version": version, "to": address, "subject": rendered.subject,
                "preheader": rendered.preheader, "text": rendered.text, "html": rendered.html,
                "decision": json.loads(enrollment["decision"]) if enrollment.get("decision") else None}
    finally:
        engine.dispose()


def sending_report(settings: Settings, sample: int = 6) -> dict:
    """What went to whom and why: per campaign enrollments, offers and message outcomes, messages by
    language, and a few sent messages with the decision behind them."""
    from winback.models.customer import Customer

    engine = make_engine(settings.resolved_state_url)
    try:
        with engine.connect() as conn:
            per_campaign: dict[str, dict] = {}
            for r in repo.enrollment_summary(conn):
                c = per_campaign.setdefault(r["campaign"], {"treatment": 0, "holdout": 0, "messages": {},
                                                            "offers": {}})
                c["treatment" if r["arm"] == "treatment" else "holdout"] += r["count"]
            for r in repo.outbox_summary(conn):
                c = per_campaign.setdefault(r["campaign"] or "-", {"treatment": 0, "holdout": 0, "messages": {},
                                                                   "offers": {}})
                c["messages"][f"{r['channel']}:{r['status']}"] = r["count"]
            offers = conn.execute(select(Campaign.key, Enrollment.offer_key, func.count()).join(
                Campaign, Campaign.id == Enrollment.campaign_id).where(Enrollment.arm == "treatment")
                .group_by(Campaign.key, Enrollment.offer_key)).all()
            for key, offer, n in offers:
                per_campaign[key]["offers"][offer or "none"] = n
            locales = conn.execute(select(OutboxMessage.locale, func.count()).where(
                OutboxMessage.status == "sent", OutboxMessage.channel == "email").group_by(OutboxMessage.locale)).all()
            rows = conn.execute(select(OutboxMessage.to_address, OutboxMessage.subject, OutboxMessage.locale,
                                       OutboxMessage.step, Campaign.key, Enrollment.decision, Enrollment.offer_key,
                                       Customer.external_id)
                                .join(Campaign, Campaign.id == OutboxMessage.campaign_id)
                                .join(Enrollment, Enrollment.id == OutboxMessage.enrollment_id)
                                .join(Customer, Customer.id == OutboxMessage.customer_id)
                                .where(OutboxMessage.status == "sent", OutboxMessage.channel == "email",
                                       Enrollment.offer_key.is_not(None))
                                .order_by(OutboxMessage.sent_at, OutboxMessage.id).limit(400)).all()
            coupons = conn.execute(select(Coupon.status, func.count()).group_by(Coupon.status)).all()
    finally:
        engine.dispose()
    picked, seen_campaigns, seen_locales = [], set(), set()
    for r in rows:  # a spread over campaigns and languages
        lang = (r.locale or "en")[:2]
        if (r.key in seen_campaigns and lang in seen_locales) or len(picked) >= sample:
            continue
        seen_campaigns.add(r.key)
        seen_locales.add(lang)
        decision = json.loads(r.decision) if r.decision else {}
        picked.append({"customer": r.external_id, "to": r.to_address, "campaign": r.key, "step": r.step,
                       "locale": r.locale, "subject": r.subject, "offer": r.offer_key,
                       "why": decision.get("explanation", [])})
    by_locale: dict[str, int] = {}
    for loc, n in locales:
        key = (loc or "en").split("-")[0]
        by_locale[key] = by_locale.get(key, 0) + n
    return {"campaigns": per_campaign, "sent_by_language": by_locale, "coupons": dict(coupons), "examples": picked,
            "maildir": str(settings.workspace / settings.delivery.maildir)}


def call_tasks(settings: Settings, status: str | None = "open", limit: int = 50) -> list[dict]:
    """Phone-call tasks for the customer-success team (the ``task`` channel), newest due first."""
    from winback.models.customer import Customer
    from winback.models.delivery import CallTask

    engine = make_engine(settings.resolved_state_url)
    try:
        with engine.connect() as conn:
            q = select(CallTask.id, CallTask.title, CallTask.body, CallTask.phone, CallTask.status, CallTask.due_at,
                       Campaign.key.label("campaign"), Customer.external_id.label("customer"),
                       Customer.name.label("name")).outerjoin(Campaign, Campaign.id == CallTask.campaign_id).outerjoin(
                Customer, Customer.id == CallTask.customer_id)
            if status:
                q = q.where(CallTask.status == status)
            return [dict(r) for r in conn.execute(q.order_by(CallTask.due_at, CallTask.id).limit(limit)).mappings()]
    finally:
        engine.dispose()
