"""``winback plan``: pick who enters which campaign, with what offer, and why.

One pass, as of the workspace clock's ``now``:

1. load the active playbook (a new version when the workspace file changed) and sync campaigns;
2. copy recent facts from the history into ``customer_events`` (idempotent by event id): these
   are the event triggers and the exit conditions (returned, purchased, ...);
3. build each campaign's audience: lost customers routed by the playbook's strategies
   (``winback``), segment members, recent events, or inactive regulars;
4. per candidate: holdout or treatment (deterministic hash), A/B/n variants, and the playbook's
   decision (strategy, offer, economics, explanation), with campaign budgets and offer caps;
5. insert the enrollments (unique per campaign and trigger instance, so a re-run adds nothing)
   with the merge data their messages will need (read from the history once, now);
6. schedule the steps that are already due (:mod:`winback.campaigns.scheduler`).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Engine

from winback.campaigns import repository as repo
from winback.campaigns.history_facts import merge_details, recent_events, releases_by_feature
from winback.campaigns.scheduler import ScheduleResult, schedule_due
from winback.config import Settings
from winback.kit.db import make_engine
from winback.kit.errors import WinbackError
from winback.playbooks.decide import BudgetState, decide
from winback.playbooks.experiments import assign_variant, holdout_arm
from winback.playbooks.facts import CustomerFacts, facts_from_record, matches
from winback.playbooks.repository import sync_campaigns
from winback.playbooks.service import load_playbook
from winback.playbooks.spec import PlaybookSpec

LOST_STATUSES = ("churned", "lost", "trial_only")
EVENT_LOOKBACK = dt.timedelta(days=120)


@dataclass
class PlanResult:
    playbook: str
    playbook_version: int
    now: dt.datetime
    events_copied: int = 0
    enrolled: Counter = field(default_factory=Counter)  # campaign -> treatment enrollments
    held_out: Counter = field(default_factory=Counter)  # campaign -> holdout enrollments
    excluded: Counter = field(default_factory=Counter)  # reason -> customers
    offers: Counter = field(default_factory=Counter)  # (campaign, offer) -> enrollments
    decisions: list[dict] = field(default_factory=list)  # the explained decisions (up to ``explain``)
    schedule: ScheduleResult | None = None
    seconds: float = 0.0
    dry_run: bool = False

    def as_dict(self) -> dict:
        return {
            "playbook": self.playbook, "playbook_version": self.playbook_version, "now": self.now.isoformat(),
            "dry_run": self.dry_run, "events_copied": self.events_copied,
            "enrolled": dict(self.enrolled), "held_out": dict(self.held_out), "excluded": dict(self.excluded),
            "offers": [{"campaign": c, "offer": o, "count": n} for (c, o), n in sorted(self.offers.items())],
            "decisions": self.decisions,
            "scheduled": self.schedule.as_dict() if self.schedule else None,
            "seconds": round(self.seconds, 2),
        }


def facts_from_row(row: dict, segments: set[str]) -> CustomerFacts:
    return facts_from_record(row, segments)


@dataclass
class _Candidate:
    customer_id: int
    dedupe_key: str
    trigger: str
    trigger_at: dt.datetime | None
    event: dict | None = None


def plan(settings: Settings, *, campaigns: list[str] | None = None, dry_run: bool = False, explain: int = 20,
         schedule: bool = True, engine: Engine | None = None) -> PlanResult:
    started = time.perf_counter()
    now = settings.clock().now()
    own = engine is None
    engine = engine or make_engine(settings.resolved_state_url)
    try:
        spec, version = load_playbook(settings, engine=engine)
        result = PlanResult(spec.name, version, now, dry_run=dry_run)
        unknown = [c for c in campaigns or () if c not in spec.campaigns]
        if unknown:
            raise WinbackError(f"unknown campaign {unknown[0]!r}; the playbook has {', '.join(spec.campaigns)}")
        with engine.begin() as conn:
            sync_campaigns(conn, spec, version, now)
            result.events_copied = _copy_events(settings, conn, now)
        with engine.begin() as conn:
            _enroll(settings, conn, spec, version, now, result, campaigns, explain)
            if dry_run:
                conn.rollback()
        if schedule and not dry_run:
            result.schedule = schedule_due(settings, engine=engine)
        result.seconds = time.perf_counter() - started
        return result
    finally:
        if own:
            engine.dispose()


def _copy_events(settings: Settings, conn, now: dt.datetime) -> int:
    """Facts of the last ``EVENT_LOOKBACK`` from the history, as customer events (idempotent)."""
    from winback.history.store import ibis_connection

    if not settings.history_path.exists():
        return 0
    con = ibis_connection(settings.history_path)
    try:
        events = recent_events(con, now - EVENT_LOOKBACK, now, repo.requested_features(conn))
    finally:
        con.disconnect()
    ids = repo.customer_ids_by_key(conn)
    rows = []
    for e in events:
        cid = ids.get((e["source"], e["customer_id"]))
        if cid is None:
            continue
        rows.append({"event_id": e["event_id"], "customer_id": cid, "type": e["type"],
                     "occurred_at": e["occurred_at"], "received_at": now, "source": "history",
                     "properties": json.dumps(e["properties"], default=str, sort_keys=True)})
    return repo.insert_events(conn, rows)


def _audience(conn, spec: PlaybookSpec, key: str, now: dt.datetime, rows_by_id: dict[int, dict],
              settings: Settings) -> list[_Candidate]:
    aud = spec.campaigns[key].audience
    out: list[_Candidate] = []
    if aud.winback:
        for cid, row in rows_by_id.items():
            if row.get("status") in LOST_STATUSES:
                at = row.get("churned_at")
                out.append(_Candidate(cid, f"churn:{at.date().isoformat() if at else 'unknown'}", "winback", at))
    elif aud.segment:
        for cid, entered in repo.segment_members(conn, aud.segment):
            out.append(_Candidate(cid, f"segment:{aud.segment}:{entered.date().isoformat()}",
                                  f"segment:{aud.segment}", entered))
    elif aud.event:
        for e in repo.recent_events(conn, aud.event, now - aud.within, now):
            out.append(_Candidate(int(e["customer_id"]), f"event:{e['event_id']}", f"event:{aud.event}",
                                  e["occurred_at"], e))
    elif aud.inactivity:
        days = aud.inactivity.total_seconds() / 86400
        for cid, row in rows_by_id.items():
            rec, freq = row.get("recency_days"), row.get("frequency")
            if rec is None or freq is None or rec < days or freq < settings.health.regular_min_purchases:
                continue
            last = (now - dt.timedelta(days=int(rec))).date()
            out.append(_Candidate(cid, f"inactive:{last.isoformat()}", "inactivity",
                                  now - dt.timedelta(days=int(rec))))
    return out


def _enroll(settings: Settings, conn, spec: PlaybookSpec, version: int, now: dt.datetime, result: PlanResult,
            only: list[str] | None, explain: int) -> None:
    rows_by_id = {r["id"]: r for r in repo.customer_rows(conn)}
    segs = repo.segments_by_customer(conn)
    facts = {cid: facts_from_row(row, segs.get(cid, set())) for cid, row in rows_by_id.items()}
    campaigns = repo.campaigns_by_key(conn)
    budgets = BudgetState()
    winners = repo.rolled_out_winners(conn)
    counts = repo.offer_counts(conn)
    for key, c in campaigns.items():
        budgets.set_campaign(key, budget_minor=c["budget_minor"], committed_minor=c["committed_cost_minor"],
                             offer_counts={o: n for (cid, o), n in counts.items() if cid == c["id"]})
    # the win-back decision routes each lost customer to one campaign
    winback_decisions: dict[int, object] = {}
    planned: list[tuple[str, _Candidate, object, str, dict]] = []
    for key, cspec in spec.campaigns.items():
        if not cspec.enabled or (only and key not in only):
            continue
        camp = campaigns[key]
        if camp.get("status", "active") != "active":  # paused through the API or the dashboard
            continue
        used_keys, live = repo.existing_enrollments(conn, camp["id"])
        last_done = repo.last_finished(conn, camp["id"]) if cspec.reenroll_after else {}
        seen: set[int] = set()
        # the most valuable first: budgets and offer caps go to the customers worth most (brief step 3)
        candidates = sorted(_audience(conn, spec, key, now, rows_by_id, settings),
                            key=lambda c: _priority(rows_by_id.get(c.customer_id)))
        for cand in candidates:
            f = facts.get(cand.customer_id)
            if f is None or f"{cand.customer_id}:{cand.dedupe_key}" in used_keys or cand.customer_id in live or cand.customer_id in seen:
                continue
            if cspec.reenroll_after and cand.customer_id in last_done and \
                    last_done[cand.customer_id] + cspec.reenroll_after > now:
                continue
            if cspec.audience.statuses and f.status not in cspec.audience.statuses:
                continue
            if cspec.audience.where is not None and not matches(cspec.audience.where, f):
                continue
            if cspec.audience.winback:
                d = winback_decisions.get(cand.customer_id)
                if d is None:
                    d = winback_decisions[cand.customer_id] = decide(spec, f, budgets, commit=False)
                if d.excluded:
                    result.excluded[d.exclusion or "excluded by a rule"] += 1
                    continue
                if d.campaign != key:
                    continue
            seen.add(cand.customer_id)
            arm = holdout_arm(key, f.external_id, cspec.holdout)
            variants = assign_experiment_variants(key, camp["id"], cspec, f.external_id, winners)
            override = _offer_override(cspec, variants)
            if cspec.audience.winback and arm == "holdout" and override is None:
                d = winback_decisions[cand.customer_id]  # the control group gets nothing: no budget to commit
            else:
                d = decide(spec, f, budgets, campaign_key=None if cspec.audience.winback else key,
                           offer_override=override, commit=arm == "treatment")
            if d.excluded:
                result.excluded[d.exclusion or "excluded by a rule"] += 1
                continue
            planned.append((key, cand, d, arm, variants))
    # merge data for every new enrollment, read from the history once
    details = merge_data(settings, [(rows_by_id[c.customer_id], c.event) for _k, c, _d, arm, _v in planned
                                    if arm == "treatment"], now)
    by_campaign: dict[str, list[dict]] = defaultdict(list)
    for key, cand, d, arm, variants in planned:
        row = rows_by_id[cand.customer_id]
        cand.dedupe_key = f"{cand.customer_id}:{cand.dedupe_key}"  # unique per campaign and customer
        seq = spec.sequence_of(key)
        first_due = (cand.trigger_at if spec.campaigns[key].audience.event and cand.trigger_at else now) \
            + seq.steps[0].after
        context = {"details": details.get((row["source"], row["external_id"]), {}),
                   "trigger_at": cand.trigger_at.isoformat() if cand.trigger_at else None,
                   "event": _event_props(cand.event), "facts": _facts_dict(facts[cand.customer_id])}
        decision = d.as_dict()
        by_campaign[key].append({
            "campaign_id": campaigns[key]["id"], "customer_id": cand.customer_id, "dedupe_key": cand.dedupe_key,
            "trigger": cand.trigger, "arm": arm, "variants": json.dumps(variants, sort_keys=True),
            "status": "active" if arm == "treatment" else "held_out", "exit_reason": None,
            "locale": row.get("locale"), "strategy": d.strategy, "offer_key": d.offer,
            "offer_cost_minor": d.offer_cost_minor if arm == "treatment" else 0,
            "expected_gain_minor": d.expected_gain_minor, "coupon_id": None,
            "decision": json.dumps(decision, default=str), "context": json.dumps(context, default=str),
            "playbook_version": version, "enrolled_at": now, "next_step": 0,
            "next_due_at": max(first_due, now) if arm == "treatment" else None,
            "finished_at": None if arm == "treatment" else now,
        })
        if explain <= 0 or len(result.decisions) < explain:
            result.decisions.append({"customer": row["external_id"], "campaign": key, "arm": arm,
                                     "variants": variants, **decision})
    for key, rows in by_campaign.items():
        inserted = repo.insert_enrollments(conn, rows)
        treated = [r for r in rows if r["arm"] == "treatment"]
        result.enrolled[key] += sum(1 for _ in treated)
        result.held_out[key] += len(rows) - len(treated)
        for r in treated:
            result.offers[(key, r["offer_key"] or "none")] += 1
        repo.add_committed_cost(conn, campaigns[key]["id"], sum(int(r["offer_cost_minor"] or 0) for r in treated))
        if inserted != len(rows):  # a concurrent plan enrolled some of them first: nothing is doubled
            result.excluded["already enrolled by a concurrent plan"] += len(rows) - inserted


def assign_experiment_variants(campaign_key: str, campaign_id: int, cspec, customer_key: str,
                               winners: dict[tuple[int, str], str]) -> dict[str, str]:
    """``{experiment: variant}`` for a new enrollment: the rolled-out winner of an experiment that has
    one (``experiment_decisions``; only while it is still a variant of the spec), else the hash."""
    out = {}
    for ek, exp in cspec.experiments.items():
        winner = winners.get((campaign_id, ek))
        out[ek] = winner if winner in exp.variants else \
            assign_variant(campaign_key, ek, customer_key, {vk: v.weight for vk, v in exp.variants.items()})
    return out


def _priority(row: dict | None) -> tuple:
    """Sort key: priority rank (1 first), then recoverable value after return, then id."""
    if row is None:
        return (1, float("inf"), 0.0, 0)
    rank = row.get("priority_rank")
    value = row.get("value_after_return_minor") or row.get("lost_value_minor") or 0
    return (0 if rank is not None else 1, rank if rank is not None else 0, -float(value), row["id"])


def _offer_override(cspec, variants: dict[str, str]) -> str | None:
    for ek, vk in variants.items():
        offer = cspec.experiments[ek].variants[vk].offer
        if offer:
            return offer
    return None


def _event_props(event: dict | None) -> dict | None:
    if not event:
        return None
    props = event.get("properties")
    try:
        props = json.loads(props) if isinstance(props, str) else props
    except ValueError:
        props = None
    return {"event_id": event["event_id"], "type": event["type"], "properties": props or {}}


def _facts_dict(f: CustomerFacts) -> dict:
    from dataclasses import fields

    d = {x.name: getattr(f, x.name) for x in fields(f)}
    d["segments"] = sorted(d["segments"])
    d["requested_features"] = list(d["requested_features"])
    return d


def merge_data(settings: Settings, customers: list[tuple[dict, dict | None]], now: dt.datetime) -> dict:
    """(source, external id) -> the merge data of each (customer row, trigger event) from the history."""
    from winback.history.store import ibis_connection

    if not customers or not settings.history_path.exists():
        return {}
    keys = {(row["source"], row["external_id"]) for row, _event in customers}
    away = {}
    for row, event in customers:
        since = row.get("churned_at")
        if event and event.get("type") == "returned":
            props = _event_props(event)["properties"]
            since = dt.datetime.fromisoformat(props["away_since"]) if props.get("away_since") else since
        if since is not None:
            away[(row["source"], row["external_id"])] = since
    con = ibis_connection(settings.history_path)
    try:
        details = merge_details(con, keys, now=now, away_since=away)
        shipped = releases_by_feature(con)
    finally:
        con.disconnect()
    for d in details.values():
        d["releases"] = shipped
    return details
