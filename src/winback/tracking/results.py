"""What each campaign did and what it was worth, measured against its holdout.

Definitions (all per campaign, and pooled in ``total``):

* **funnel**: ``enrolled`` = treatment enrollments, ``held_out`` = holdout enrollments; ``sent`` =
  messages handed to a channel (status sent or bounced), ``delivered`` = sent and not bounced;
  ``opens_human`` = messages opened by a person at least once, ``opens_machine`` = messages whose
  only opens were machine ones (Apple MPP, proxies, scanners: :mod:`winback.tracking.machine`);
  clicks likewise; ``unsubscribes`` = distinct customers; ``conversions``/``revenue_minor`` =
  conversions *attributed* to the campaign's messages (last touch, ``winback attribute``).
* **holdout**: independent of attribution. For every enrollment in either arm: did the customer
  have a conversion event (``[tracking] conversion_types``) in [enrolled_at, enrolled_at +
  holdout_window_days] (and not after now), and its revenue. Lift = rate(treatment) -
  rate(holdout) with Newcombe's interval; incremental revenue = (mean revenue per treated
  customer - mean per holdout customer) x treated customers, Welch's interval scaled alike.
  Offer cost = the value of coupons of this campaign redeemed by treatment customers who
  converted; sending cost = emails x cost_per_email_minor + tasks x cost_per_task_minor;
  ROI = (incremental revenue - costs) / costs.
* **variants / experiments**: from the enrollments' assignment (``variants`` JSON, treatment arm):
  ``enrolled``, ``conversions`` and ``revenue_minor`` use the same per-enrollment window as the
  holdout (intent to treat); ``sent``/opens/clicks count the messages of the steps the experiment
  applies to (the outbox ``variant`` column). An experiment is judged on conversions, or on human
  clicks per message sent while no variant has a conversion yet (``metric`` says which).
* **money**: revenue in the most common currency of the conversions (``currency``); amounts in
  other currencies are left out of the sums rather than added across currencies.
* ``total.holdout`` pools every enrollment of every campaign (one customer enrolled in two
  campaigns counts twice); with very different holdout shares per campaign read the
  per-campaign lifts.

Aggregation happens in SQL (GROUP BY over outbox, tracking events and conversions); Python only
walks enrollments and the conversion events of enrolled customers (the per-enrollment window).
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from collections import Counter, defaultdict

from scipy import stats as sps
from sqlalchemy import Engine

from winback.kit.db import make_engine
from winback.kit.errors import WinbackError
from winback.tracking import repository as repo
from winback.tracking.conversions import parse_revenue
from winback.tracking.stats import holdout_lift, prob_best, roi, srm_check, two_proportion_test

FUNNEL_KEYS = ("enrolled", "held_out", "sent", "delivered", "bounced", "opens_human", "opens_machine",
               "clicks_human", "clicks_machine", "unsubscribes", "conversions", "revenue_minor")


def campaign_results(settings, *, now: dt.datetime | None = None, engine: Engine | None = None,
                     campaign: str | None = None) -> dict:
    now = now or settings.clock().now()
    own = engine is None
    engine = engine or make_engine(settings.resolved_state_url)
    try:
        with engine.connect() as conn:
            camps = repo.campaigns(conn, campaign)
            if campaign and not camps:
                raise WinbackError(f"unknown campaign {campaign!r}")
            ids = [c["id"] for c in camps]
            data = _load(conn, settings, ids) if ids else None
    finally:
        if own:
            engine.dispose()
    return _build(settings, now, camps, data)


def _load(conn, settings, ids: list[int]) -> dict:
    types = list(settings.tracking.conversion_types)
    return {
        "enrollments": repo.enrollments(conn, ids),
        "events": repo.conversion_events_of_enrolled(conn, types, ids),
        "outbox": repo.outbox_counts(conn, ids),
        "opens": repo.human_and_machine_opens(conn, ids, "open"),
        "clicks": repo.human_and_machine_opens(conn, ids, "click"),
        "tracking": repo.event_counts(conn, ids),
        "unsubscribes": repo.distinct_customers(conn, ids, "unsubscribe"),
        "attributed": repo.attributed_conversions(conn, ids),
        "coupons": repo.redeemed_coupons(conn, ids),
        "decisions": repo.decisions(conn),
    }


def _empty_funnel() -> dict:
    return {k: 0 for k in FUNNEL_KEYS}


def _parse_variant(text: str | None) -> list[tuple[str, str]]:
    pairs = []
    for part in (text or "").split(","):
        ek, sep, vk = part.partition("=")
        if sep and ek and vk:
            pairs.append((ek.strip(), vk.strip()))
    return pairs


def _build(settings, now: dt.datetime, camps: list[dict], data: dict | None) -> dict:
    t = settings.tracking
    out = {"generated_at": now.isoformat(), "currency": settings.ingest.default_currency,
           "window_days": t.holdout_window_days, "campaigns": [], "total": {}}
    if data is None:
        out["total"] = {"funnel": _empty_funnel(), "holdout": _holdout_block([], [], 0, 0, t)}
        return out
    # --- the reporting currency and each conversion event's revenue
    parsed = []
    currencies: Counter = Counter()
    for e in data["events"]:
        revenue, currency, _problem = parse_revenue(e["properties"], settings.ingest.default_currency)
        parsed.append((e["customer_id"], e["occurred_at"], revenue, currency))
        if revenue and currency:
            currencies[currency] += 1
    for a in data["attributed"]:
        if a["currency"]:
            currencies[a["currency"]] += int(a["n"])
    currency = currencies.most_common(1)[0][0] if currencies else (
        next((c["currency"] for c in camps if c.get("currency")), None) or settings.ingest.default_currency)
    out["currency"] = currency
    # --- per enrollment: converted within the window, and revenue
    by_customer: dict[int, list[tuple[dt.datetime, int]]] = defaultdict(list)
    for cid, at, revenue, cur in parsed:
        if at <= now:
            by_customer[cid].append((at, revenue if cur == currency else 0))
    for lst in by_customer.values():
        lst.sort()
    window = dt.timedelta(days=t.holdout_window_days)
    outcome: dict[int, tuple[bool, int]] = {}
    for e in data["enrollments"]:
        lst = by_customer.get(e["customer_id"])
        if not lst:
            outcome[e["id"]] = (False, 0)
            continue
        lo = bisect.bisect_left(lst, (e["enrolled_at"], -1))
        hi = bisect.bisect_right(lst, (e["enrolled_at"] + window, float("inf")))
        hits = lst[lo:hi]
        outcome[e["id"]] = (bool(hits), sum(r for _a, r in hits))
    # --- group everything by campaign
    enr_by: dict[int, list[dict]] = defaultdict(list)
    for e in data["enrollments"]:
        enr_by[e["campaign_id"]].append(e)
    outbox_by, opens_by, clicks_by = _group(data["outbox"]), _group(data["opens"]), _group(data["clicks"])
    tracking_by, attributed_by = _group(data["tracking"]), _group(data["attributed"])
    coupons_by = _group(data["coupons"])
    total_funnel = _empty_funnel()
    pooled_t: list[tuple[bool, int]] = []
    pooled_h: list[tuple[bool, int]] = []
    total_offer = total_sending = 0
    for c in camps:
        cid = c["id"]
        enrolls = enr_by.get(cid, [])
        treat = [outcome[e["id"]] for e in enrolls if e["arm"] == "treatment"]
        hold = [outcome[e["id"]] for e in enrolls if e["arm"] == "holdout"]
        funnel, steps, emails, tasks = _funnel(outbox_by.get(cid, []), opens_by.get(cid, []),
                                               clicks_by.get(cid, []), attributed_by.get(cid, []), currency)
        funnel["enrolled"], funnel["held_out"] = len(treat), len(hold)
        funnel["unsubscribes"] = data["unsubscribes"].get(cid, 0)
        converters = {e["customer_id"] for e in enrolls if e["arm"] == "treatment" and outcome[e["id"]][0]}
        offer_cost = sum(int(cp["value_minor"]) for cp in coupons_by.get(cid, [])
                         if cp["customer_id"] in converters and cp["currency"] == currency)
        sending_cost = emails * t.cost_per_email_minor + tasks * t.cost_per_task_minor
        variants, experiments = _variants(c, enrolls, outcome, outbox_by.get(cid, []), tracking_by.get(cid, []),
                                          data["decisions"], t)
        out["campaigns"].append({
            "key": c["key"], "title": c["title"], "id": cid, "category": c["category"], "funnel": funnel,
            "steps": steps, "variants": variants, "experiments": experiments,
            "holdout": _holdout_block(treat, hold, offer_cost, sending_cost, t),
        })
        for k in FUNNEL_KEYS:
            total_funnel[k] += funnel[k]
        pooled_t += treat
        pooled_h += hold
        total_offer += offer_cost
        total_sending += sending_cost
    out["total"] = {"funnel": total_funnel, "holdout": _holdout_block(pooled_t, pooled_h, total_offer,
                                                                      total_sending, t)}
    return out


def _group(rows: list[dict]) -> dict[int, list[dict]]:
    by: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by[r["campaign_id"]].append(r)
    return by


def _funnel(outbox: list[dict], opens: list[dict], clicks: list[dict], attributed: list[dict],
            currency: str) -> tuple[dict, list[dict], int, int]:
    funnel = _empty_funnel()
    steps: dict[int, dict] = {}

    def step(n) -> dict:
        n = int(n) if n is not None else -1
        if n not in steps:
            steps[n] = {"step": n, "channel": None, "sent": 0, "delivered": 0, "opens_human": 0,
                        "opens_machine": 0, "clicks_human": 0, "conversions": 0, "revenue_minor": 0}
        return steps[n]

    emails = tasks = 0
    for r in outbox:
        if r["status"] not in repo.SENT_STATUSES:
            continue
        s, n = step(r["step"]), int(r["n"])
        s["channel"] = s["channel"] or r["channel"]
        s["sent"] += n
        funnel["sent"] += n
        if r["status"] == "sent":
            s["delivered"] += n
            funnel["delivered"] += n
        else:
            funnel["bounced"] += n
        if r["channel"] == "email":
            emails += n
        elif r["channel"] == "task":
            tasks += n
    for rows, human_key, machine_key in ((opens, "opens_human", "opens_machine"),
                                         (clicks, "clicks_human", "clicks_machine")):
        for r in rows:
            s = step(r["step"])
            s[human_key] += int(r["human"] or 0)
            if machine_key in s:
                s[machine_key] += int(r["machine_only"] or 0)
            funnel[human_key] += int(r["human"] or 0)
            funnel[machine_key] += int(r["machine_only"] or 0)
    for r in attributed:
        s = step(r["step"])
        s["conversions"] += int(r["n"])
        funnel["conversions"] += int(r["n"])
        if r["currency"] == currency:
            s["revenue_minor"] += int(r["revenue"] or 0)
            funnel["revenue_minor"] += int(r["revenue"] or 0)
    return funnel, [steps[k] for k in sorted(steps)], emails, tasks


def _holdout_block(treat: list[tuple[bool, int]], hold: list[tuple[bool, int]], offer_cost: int,
                   sending_cost: int, t) -> dict:
    lift = holdout_lift(sum(1 for c, _r in treat if c), [r for _c, r in treat],
                        sum(1 for c, _r in hold if c), [r for _c, r in hold], t.confidence)
    inc = lift["lift"]["incremental_revenue_minor"]
    return {**lift, "offer_cost_minor": int(offer_cost), "sending_cost_minor": int(sending_cost),
            "roi": roi(inc, offer_cost, sending_cost) if inc is not None else None}


def _spec_experiments(campaign: dict) -> dict[str, dict[str, float]]:
    spec = repo.json_obj(campaign.get("spec"))
    out: dict[str, dict[str, float]] = {}
    for ek, exp in (spec.get("experiments") or {}).items():
        variants = (exp or {}).get("variants") or {}
        out[ek] = {vk: float((v or {}).get("weight", 1.0) or 1.0) for vk, v in variants.items()}
    return out


def _variants(campaign: dict, enrolls: list[dict], outcome: dict, outbox: list[dict], tracking: list[dict],
              decisions: dict, t) -> tuple[list[dict], list[dict]]:
    weights = _spec_experiments(campaign)
    stats: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for e in enrolls:
        if e["arm"] != "treatment" or not e["variants"]:
            continue
        try:
            assigned = json.loads(e["variants"])
        except ValueError:
            continue
        for ek, vk in (assigned or {}).items():
            s = stats[(ek, vk)]
            s["enrolled"] += 1
            converted, revenue = outcome[e["id"]]
            s["conversions"] += int(converted)
            s["revenue_minor"] += revenue
    for r in outbox:
        if r["status"] in repo.SENT_STATUSES:
            for pair in _parse_variant(r["variant"]):
                stats[pair]["sent"] += int(r["n"])
    for r in tracking:
        if r["machine"] or r["kind"] not in ("open", "click"):
            continue
        for pair in _parse_variant(r["variant"]):
            stats[pair]["opens_human" if r["kind"] == "open" else "clicks_human"] += int(r["messages"])
    experiments = sorted({ek for ek, _vk in stats} | set(weights))
    rows, summaries = [], []
    for ek in experiments:
        names = sorted({vk for e2, vk in stats if e2 == ek} | set(weights.get(ek, {})))
        for vk in names:
            s = stats[(ek, vk)]
            rows.append({"experiment": ek, "variant": vk, "enrolled": s["enrolled"], "sent": s["sent"],
                         "opens_human": s["opens_human"], "clicks_human": s["clicks_human"],
                         "conversions": s["conversions"], "revenue_minor": s["revenue_minor"],
                         "conversion_rate": s["conversions"] / s["enrolled"] if s["enrolled"] else None})
        summaries.append(judge_experiment(ek, names, [stats[(ek, vk)] for vk in names], weights.get(ek, {}),
                                          decisions.get((campaign["id"], ek)), t))
    return rows, summaries


def judge_experiment(experiment: str, names: list[str], counts: list[Counter], weights: dict[str, float],
                     decision: dict | None, t) -> dict:
    """Statistics and the winner (if any) of one experiment from its variants' counts."""
    enrolled = [c["enrolled"] for c in counts]
    sent = [c["sent"] for c in counts]
    if sum(c["conversions"] for c in counts) > 0:
        metric, successes, trials = "conversions", [c["conversions"] for c in counts], enrolled
    else:
        metric, successes, trials = "clicks", [min(c["clicks_human"], c["sent"]) for c in counts], sent
    shares = [weights.get(n, 1.0) if weights else 1.0 for n in names]
    srm = srm_check(enrolled, shares) if len(names) > 1 else {"chi2": 0.0, "p_value": 1.0, "mismatch": False}
    p_value = None
    pb: dict[str, float] = {}
    if len(names) >= 2 and all(n > 0 for n in trials):
        if len(names) == 2:
            p_value = two_proportion_test(successes[0], trials[0], successes[1], trials[1], t.confidence)["p_value"]
        elif sum(successes) > 0:
            table = [[x, n - x] for x, n in zip(successes, trials)]
            p_value = float(sps.chi2_contingency(table, correction=False)[1])
        else:
            p_value = 1.0
        pb = dict(zip(names, prob_best(successes, trials)))
    winner = None
    ready = len(names) >= 2 and min(sent) >= t.rollout_min_per_variant and not srm["mismatch"]
    if ready and pb:
        best = max(pb, key=lambda k: pb[k])
        if pb[best] >= t.rollout_probability:
            winner = best
    return {"experiment": experiment, "variants": names, "metric": metric, "srm": srm, "p_value": p_value,
            "prob_best": pb, "winner": winner, "rolled_out": decision["winner"] if decision else None,
            "significant": p_value is not None and p_value < 1 - t.confidence}
