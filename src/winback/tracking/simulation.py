"""SIMULATED recipients for the demo: what the customers of a generated company do with the campaigns.

Nothing here is measured: the demo has no real recipients, so after it sent its campaigns this
module plays them from the generator's ground truth (:mod:`winback.synth.truth`) and writes what
a real deployment would have recorded - opens, clicks, returns, coupon redemptions - into the
ordinary tables, every row marked as simulated (``tracking_events.source`` and
``customer_events.source`` = ``simulation``, ``"simulated": true`` in the properties). The
tracking stage then attributes and measures them as it would real events, and the demo compares
the measured lift with the true one that the simulation knows.

What is simulated, per enrollment (deterministic given ``seed``; keys make a re-run add nothing):

* **Reach.** A treatment enrollment is *reached* when at least one of its messages was sent
  (any channel: email, phone task, retargeting audience). Holdout enrollments get nothing.
* **Opens** (e-mail only, treatment only). ~40% of recipients (by customer) read mail in Apple
  Mail with Mail Privacy Protection: every message they are sent is fetched by Apple's proxy
  seconds to minutes after delivery (user agent ``Mozilla/5.0``, an address in 17.0.0.0/8) - a
  *machine* open - and their real reading is invisible to the pixel, as in reality. Everybody
  else opens a message with a probability of 25-45% (by locale and value tier), hours after it
  arrived, with an ordinary mail client's user agent. Flags come from
  :mod:`winback.tracking.machine`, as for live events.
* **Clicks** (human, conditional on reading the message): 10% of read messages, 30% for
  recipients who are going to return (they are interested).
* **Return.** A customer returns with probability ``p_return_<offer>`` of the ground truth, where
  the offer is the one the treatment enrollment carried when it was reached (the playbook offer's
  kind mapped by :data:`OFFER_TRUTH`; a ``missing_feature`` campaign also announces the shipped
  feature, so it gets the better of its offer and ``feature_announcement``), and ``p_return_none``
  in the holdout or when not reached. A customer enrolled in several campaigns decides once: the
  best offer that reached them counts. The moment is uniform within the holdout window
  (``[tracking] holdout_window_days`` after enrollment, the window the results use), after the
  first message (for the treated) and after their first click when they clicked; with a coupon,
  before it expires. The ``returned`` customer event carries ``revenue_minor`` = one month of the
  customer's lost MRR (``customer_scores.mrr_minor``; for trials that never paid, the monthly
  price of their plan from the generated ``plans`` file).
* **Coupons.** A returner whose enrollment holds an active coupon redeems it: the coupon becomes
  ``redeemed`` and a ``coupon_redeemed`` event is written with ``revenue_minor`` 0 - the money
  is on the ``returned`` event, so the results count it once (the coupon's value is the offer
  cost).

The horizon of ``p_return``: the SaaS generator defines it as "the probability of returning under
that offer" without a time span (its own natural reactivations arrive over months). The
simulation reads it as the probability of returning *within the holdout window* of a campaign
that made the offer - an explicit assumption (pass ``horizon_days`` to instead treat it as a
return within that many days and scale it to the window with a constant hazard:
``1 - (1 - p) ** (window / horizon)``).

Simplifications: the simulation runs after the sending, so a return does not stop the later
steps of a sequence; a customer's enrollments are assumed to share one enrollment time (one
``winback plan`` run), so one return falls in the window of each of them.

**The true lift.** For every enrollment *e* the simulation knows both potential outcomes: q_T(e)
= P(return) were *e* treated (reach of a holdout enrollment = the reach rate of treatment
enrollments of its campaign with the same consent basis, opt-out and e-mail presence - reach is
deterministic in those) and q_H(e) = P(return) were it held out, the customer's other
enrollments as they are. Per campaign the true lift is ``mean(q_T - q_H)`` over all its
enrollments (both arms: assignment is random, so the difference of the arms' rates estimates
this average), the true incremental revenue ``n_treatment x mean(revenue x (q_T - q_H))``. The
pooled ``total`` of the results mixes campaigns by their arm sizes, so its true value is the
expectation of that estimator: ``sum_c n_T,c / N_T x mean_c(q_T) - sum_c n_H,c / N_H x
mean_c(q_H)`` (equal to the average effect when every campaign holds out the same share).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, and_, select, update

from winback.kit.db import make_engine, write_transaction
from winback.models.campaigns import Campaign, Coupon, CustomerEvent, Enrollment
from winback.models.customer import Customer
from winback.models.delivery import OutboxMessage
from winback.models.scores import CustomerScore
from winback.models.tracking import TrackingEvent
from winback.synth.truth import OFFERS
from winback.tracking.machine import classify_click, classify_open

SOURCE = "simulation"
KEY_PREFIX = "sim:"

#: playbook offer kind -> the ground truth's offer column
OFFER_TRUTH = {
    "none": "none", "percent_off": "discount", "free_shipping": "discount", "lower_tier": "lower_tier",
    "annual_incentive": "annual_incentive", "pause": "pause", "extended_trial": "extended_trial",
    "expert_session": "expert_session", "account_credit": "account_credit", "payment_update": "payment_update",
}
#: a strategy whose messages announce something by themselves (whatever the incentive)
STRATEGY_TRUTH = {"missing_feature": "feature_announcement"}

APPLE_MPP_SHARE = 0.40
OPEN_BY_LOCALE = {"en": 0.34, "ja": 0.40, "ko": 0.38, "uk": 0.31, "zh": 0.29}
OPEN_DEFAULT = 0.33
OPEN_BY_TIER = {"top": 0.07, "high": 0.04, "mid": 0.0, "low": -0.04}
OPEN_RANGE = (0.25, 0.45)
CLICK_GIVEN_READ = 0.10
CLICK_GIVEN_READ_RETURNER = 0.30
APPLE_UA = "Mozilla/5.0"
HUMAN_UAS = (
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Thunderbird/128.3.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
)
HUMAN_NETS = ("192.0.2", "198.51.100", "203.0.113")  # documentation ranges (RFC 5737)

ENROLLMENTS = Enrollment.__table__
CUSTOMERS = Customer.__table__
SCORES = CustomerScore.__table__
CAMPAIGNS = Campaign.__table__
OUTBOX = OutboxMessage.__table__
COUPONS = Coupon.__table__
TRACKING = TrackingEvent.__table__
CUSTOMER_EVENTS = CustomerEvent.__table__


@dataclass
class SimulationResult:
    """What the simulation wrote and the truth it knows (all labelled simulated)."""

    seed: int
    window_days: int
    horizon_days: float | None
    until: dt.datetime | None  # the last instant a simulated event may have (enrollment + window)
    written: dict[str, int] = field(default_factory=dict)  # rows added by this run
    returns: dict[str, int] = field(default_factory=dict)  # simulated returners: treatment, of them reached, holdout
    revenue_minor: int = 0  # revenue of the simulated returns (treatment and holdout)
    currency: str | None = None
    true_lift: float | None = None  # the pooled results' true value (see the module docstring)
    true_incremental_revenue_minor: int | None = None
    campaigns: dict[str, dict] = field(default_factory=dict)  # key -> n, true lift, true incremental revenue
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"simulated": True, "seed": self.seed, "window_days": self.window_days,
                "horizon_days": self.horizon_days, "until": self.until.isoformat() if self.until else None,
                "written": dict(self.written), "returns": dict(self.returns), "revenue_minor": self.revenue_minor,
                "currency": self.currency, "true_lift": self.true_lift,
                "true_incremental_revenue_minor": self.true_incremental_revenue_minor,
                "campaigns": self.campaigns, "seconds": round(self.seconds, 2)}


@dataclass
class _Enr:
    id: int
    campaign_id: int
    customer_id: int
    arm: str
    enrolled_at: dt.datetime
    offers: tuple[str, ...]  # ground-truth offer names it carries
    coupon_id: int | None
    group: tuple
    reached: float = 0.0  # 0/1 for treatment, the group's reach rate for the holdout
    q_t: float = 0.0
    q_h: float = 0.0


# --- ground truth -----------------------------------------------------------------------------------

def load_truth(truth_path: Path) -> dict[str, dict]:
    """``external id -> {p: {offer: p_return}, mrr, plan_id}`` for customers with return probabilities."""
    import pyarrow.parquet as pq

    wanted = ["customer_id", "mrr", "plan_id"] + [f"p_return_{o}" for o in OFFERS]
    present = set(pq.read_schema(truth_path).names)
    table = pq.read_table(truth_path, columns=[c for c in wanted if c in present])
    cols = {c: table.column(c).to_pylist() for c in table.column_names}
    out: dict[str, dict] = {}
    none = cols.get("p_return_none") or []
    for i, ext in enumerate(cols["customer_id"]):
        if none[i] is None or not np.isfinite(none[i]):
            continue
        out[str(ext)] = {
            "p": {o: float(cols[f"p_return_{o}"][i]) for o in OFFERS if f"p_return_{o}" in cols},
            "mrr": cols["mrr"][i] if "mrr" in cols else None,
            "plan_id": cols["plan_id"][i] if "plan_id" in cols else None,
        }
    return out


def _plan_prices(truth_path: Path) -> dict[str, tuple[int, str]]:
    """Monthly price per plan from the generated ``plans`` file next to the truth (if any)."""
    for ext in ("parquet", "csv", "jsonl"):
        path = truth_path.parent / f"plans.{ext}"
        if not path.exists():
            continue
        try:
            if ext == "parquet":
                import pyarrow.parquet as pq

                rows = pq.read_table(path).to_pylist()
            elif ext == "csv":
                import csv

                with path.open(newline="", encoding="utf-8") as fh:
                    rows = list(csv.DictReader(fh))
            else:
                rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except Exception:  # noqa: BLE001 - prices are a fallback only
            return {}
        prices = {}
        for r in rows:
            try:
                amount = int(r["amount"])
            except (KeyError, TypeError, ValueError):
                continue
            if str(r.get("interval") or "month") == "year":
                amount = amount // 12
            prices[str(r["plan_id"])] = (amount, str(r.get("currency") or "").upper() or None)
        return prices
    return {}


def _window_p(p: float, window_days: int, horizon_days: float | None) -> float:
    if horizon_days is None or horizon_days <= 0:
        return p
    return 1.0 - (1.0 - p) ** (window_days / horizon_days)


def _best(p: dict[str, float], offers) -> float:
    return max([p.get("none", 0.0)] + [p.get(o, 0.0) for o in offers])


# --- the simulation ----------------------------------------------------------------------------------

def simulate_recipients(settings, *, truth_path: Path, seed: int, now: dt.datetime | None = None,
                        engine: Engine | None = None, horizon_days: float | None = None,
                        source: str | None = None) -> SimulationResult:
    """Simulate the recipients of every enrollment (see the module docstring) and write their events.

    ``now``: events later than it are not written (``None``: the whole window). ``source``: the
    customers' source the ground truth belongs to (``None``: match external ids of any source)."""
    import time

    started = time.perf_counter()
    window_days = int(settings.tracking.holdout_window_days)
    window = dt.timedelta(days=window_days)
    truth = load_truth(Path(truth_path))
    prices = _plan_prices(Path(truth_path))
    own = engine is None
    engine = engine or make_engine(settings.resolved_state_url)
    try:
        with engine.connect() as conn:
            data = _load(conn, settings, source)
        result = SimulationResult(seed=seed, window_days=window_days, horizon_days=horizon_days, until=None)
        if not data["enrollments"]:
            result.seconds = time.perf_counter() - started
            return result
        plan = _plan(settings, data, truth, prices, seed, window, window_days, horizon_days, result)
        with engine.connect() as conn:
            _click_targets(conn, plan["tracking"])
        limit = now
        with write_transaction(engine) as conn:
            _write(conn, plan, limit, result)
    finally:
        if own:
            engine.dispose()
    result.seconds = time.perf_counter() - started
    return result


def _load(conn, settings, source: str | None) -> dict:
    from winback.playbooks.repository import playbook_version

    e, c, s, k = ENROLLMENTS.c, CUSTOMERS.c, SCORES.c, CAMPAIGNS.c
    q = (select(e.id, e.campaign_id, e.customer_id, e.arm, e.enrolled_at, e.offer_key, e.strategy, e.coupon_id,
                e.playbook_version, e.locale, c.external_id, c.source, c.marketing_basis, c.marketing_opt_out,
                c.email, c.locale.label("customer_locale"), s.mrr_minor, s.currency, s.value_tier,
                k.key.label("campaign_key"), k.playbook_name)
         .select_from(ENROLLMENTS.join(CUSTOMERS, c.id == e.customer_id)
                      .join(CAMPAIGNS, k.id == e.campaign_id)
                      .outerjoin(SCORES, s.customer_id == e.customer_id))
         .order_by(e.id))
    if source is not None:
        q = q.where(c.source == source)
    enrollments = [dict(r._mapping) for r in conn.execute(q)]
    # offer kinds of the playbook versions the enrollments name
    kinds: dict[tuple[str, int], dict[str, str]] = {}
    for r in enrollments:
        key = (r["playbook_name"], int(r["playbook_version"]))
        if key not in kinds:
            try:
                spec, _row = playbook_version(conn, *key)
                kinds[key] = {name: o.kind for name, o in spec.offers.items()}
            except Exception:  # noqa: BLE001 - an unknown version: offers read as none
                kinds[key] = {}
    o = OUTBOX.c
    ids = [r["id"] for r in enrollments]
    messages = []
    for chunk in _chunks(ids, 5000):
        messages += [dict(m._mapping) for m in conn.execute(
            select(o.id, o.enrollment_id, o.customer_id, o.campaign_id, o.step, o.variant, o.channel, o.sent_at)
            .where(o.enrollment_id.in_(chunk), o.status == "sent", o.sent_at.is_not(None)))]
    messages.sort(key=lambda m: m["id"])
    coupons = {}
    coupon_ids = sorted({r["coupon_id"] for r in enrollments if r["coupon_id"]})
    for chunk in _chunks(coupon_ids, 5000):
        for cp in conn.execute(select(COUPONS).where(COUPONS.c.id.in_(chunk))):
            coupons[cp.id] = dict(cp._mapping)
    return {"enrollments": enrollments, "kinds": kinds, "messages": messages, "coupons": coupons}


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _offers_of(row: dict, kinds: dict) -> tuple[str, ...]:
    kind = kinds.get((row["playbook_name"], int(row["playbook_version"])), {}).get(row["offer_key"] or "none", "none")
    offers = [OFFER_TRUTH.get(kind, "none")]
    extra = STRATEGY_TRUTH.get(row["strategy"] or "")
    if extra:
        offers.append(extra)
    return tuple(o for o in offers if o != "none")


def _stream(seed: int, purpose: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{purpose}".encode()).digest()
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int.from_bytes(digest[:4], "big")])


def _plan(settings, data: dict, truth: dict, prices: dict, seed: int, window: dt.timedelta, window_days: int,
          horizon_days: float | None, result: SimulationResult) -> dict:
    rows = data["enrollments"]
    sent_by_enr: dict[int, list[dict]] = defaultdict(list)
    for m in data["messages"]:
        sent_by_enr[m["enrollment_id"]].append(m)
    enrs = []
    for r in rows:
        group = (r["campaign_id"], r["marketing_basis"], bool(r["marketing_opt_out"]), bool(r["email"]))
        enrs.append(_Enr(r["id"], r["campaign_id"], r["customer_id"], r["arm"], r["enrolled_at"],
                         _offers_of(r, data["kinds"]), r["coupon_id"], group))
    # reach: observed for the treatment, the group's treatment rate for the holdout
    reach_sum: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    camp_sum: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for en in enrs:
        if en.arm == "treatment":
            en.reached = 1.0 if sent_by_enr.get(en.id) else 0.0
            for acc in (reach_sum[en.group], camp_sum[en.campaign_id]):
                acc[0] += int(en.reached)
                acc[1] += 1
    for en in enrs:
        if en.arm != "treatment":
            acc = reach_sum.get(en.group) or camp_sum.get(en.campaign_id)
            en.reached = acc[0] / acc[1] if acc and acc[1] else 1.0
    # the customers: truth, revenue, potential outcomes
    row_by_id = {r["id"]: r for r in rows}
    by_customer: dict[int, list[_Enr]] = defaultdict(list)
    for en in enrs:
        by_customer[en.customer_id].append(en)
    known = [int(r["mrr_minor"]) for r in rows if r["mrr_minor"]]
    median_mrr = int(np.median(known)) if known else 0
    currency_counts: dict[str, int] = defaultdict(int)
    for r in rows:
        if r["currency"]:
            currency_counts[r["currency"]] += 1
    default_currency = max(currency_counts, key=currency_counts.get) if currency_counts else settings.default_currency
    customers = {}
    for cid in sorted(by_customer):
        first = row_by_id[by_customer[cid][0].id]
        t = truth.get(str(first["external_id"]))
        if t is None:
            continue  # live customers (no return probability): nothing to simulate
        p = {o: _window_p(v, window_days, horizon_days) for o, v in t["p"].items()}
        revenue, currency = _revenue(first, t, prices, median_mrr, default_currency)
        ens = by_customer[cid]
        actual = [en for en in ens if en.arm == "treatment" and en.reached >= 1.0]
        for en in ens:
            others = [x for x in actual if x.id != en.id]
            without = _best(p, [o for x in others for o in x.offers])
            with_e = _best(p, [o for x in others + [en] for o in x.offers])
            en.q_h = without
            en.q_t = en.reached * with_e + (1.0 - en.reached) * without
        customers[cid] = {"p": p, "revenue": revenue, "currency": currency, "enrollments": ens, "actual": actual,
                          "p_actual": _best(p, [o for x in actual for o in x.offers])}
    _truth_summary(enrs, customers, rows, result)
    # behaviour
    apple_rng, read_rng, ret_rng = _stream(seed, "apple"), _stream(seed, "read"), _stream(seed, "return")
    cids = sorted(customers)
    u_return = ret_rng.random(len(cids))
    returning = {cid: bool(u < customers[cid]["p_actual"]) for cid, u in zip(cids, u_return)}
    all_cids = sorted(by_customer)
    apple = dict(zip(all_cids, apple_rng.random(len(all_cids)) < APPLE_MPP_SHARE))
    email_msgs = [m for m in data["messages"] if m["channel"] == "email"
                  and row_by_id.get(m["enrollment_id"], {}).get("arm") == "treatment"]
    n = len(email_msgs)
    u_read, u_click = read_rng.random(n), read_rng.random(n)
    read_delay = np.minimum(read_rng.lognormal(np.log(3 * 3600), 1.2, n), 5 * 86400)
    click_delay = read_rng.uniform(20, 600, n)
    mpp_delay = read_rng.uniform(3, 300, n)
    ua_pick = read_rng.integers(0, len(HUMAN_UAS), n)
    ip_pick = read_rng.integers(0, 256, (n, 4))
    classify = _Classifier(settings.tracking)
    tracking_rows: list[dict] = []
    clicks_by_customer: dict[int, list[dt.datetime]] = defaultdict(list)
    for i, m in enumerate(email_msgs):
        r = row_by_id[m["enrollment_id"]]
        cid = m["customer_id"] if m["customer_id"] is not None else r["customer_id"]
        sent = m["sent_at"]
        base = {"message_id": m["id"], "customer_id": cid, "campaign_id": m["campaign_id"],
                "enrollment_id": m["enrollment_id"], "step": m["step"], "variant": m["variant"], "source": SOURCE,
                "detail": json.dumps({"simulated": True}), "link": None, "target": None}
        if apple.get(cid, False):
            ip = f"17.{ip_pick[i, 0]}.{ip_pick[i, 1]}.{ip_pick[i, 2]}"
            at = sent + dt.timedelta(seconds=float(mpp_delay[i]))
            machine, reason = classify("open", APPLE_UA, ip, float(mpp_delay[i]))
            tracking_rows.append({**base, "event_key": f"{KEY_PREFIX}open:{m['id']}:mpp", "kind": "open",
                                  "machine": machine, "machine_reason": reason, "user_agent": APPLE_UA,
                                  "ip_prefix": _prefix(ip), "occurred_at": at})
        p_read = _open_probability(r)
        if u_read[i] >= p_read:
            continue
        ua = HUMAN_UAS[int(ua_pick[i])]
        ip = f"{HUMAN_NETS[int(ip_pick[i, 3]) % len(HUMAN_NETS)]}.{ip_pick[i, 0]}"
        read_at = sent + dt.timedelta(seconds=float(read_delay[i]))
        if not apple.get(cid, False):  # MPP hides the reading itself
            machine, reason = classify("open", ua, ip, float(read_delay[i]))
            tracking_rows.append({**base, "event_key": f"{KEY_PREFIX}open:{m['id']}:read", "kind": "open",
                                  "machine": machine, "machine_reason": reason, "user_agent": ua,
                                  "ip_prefix": _prefix(ip), "occurred_at": read_at})
        p_click = CLICK_GIVEN_READ_RETURNER if returning.get(cid) else CLICK_GIVEN_READ
        if u_click[i] >= p_click:
            continue
        click_at = read_at + dt.timedelta(seconds=float(click_delay[i]))
        since = (click_at - sent).total_seconds()
        machine, reason = classify("click", ua, ip, since)
        tracking_rows.append({**base, "event_key": f"{KEY_PREFIX}click:{m['id']}", "kind": "click",
                              "machine": machine, "machine_reason": reason, "user_agent": ua,
                              "ip_prefix": _prefix(ip), "occurred_at": click_at, "link": "cta", "target": None})
        if not machine:
            clicks_by_customer[cid].append(click_at)
    # returns
    first_contact: dict[int, dt.datetime] = {}
    for m in data["messages"]:
        if row_by_id[m["enrollment_id"]]["arm"] == "treatment":
            cid = row_by_id[m["enrollment_id"]]["customer_id"]
            if cid not in first_contact or m["sent_at"] < first_contact[cid]:
                first_contact[cid] = m["sent_at"]
    u_when = _stream(seed, "when").random(len(cids))
    events, redeem = [], []
    returned_by_arm: dict[str, int] = defaultdict(int)
    for i, cid in enumerate(cids):
        if not returning[cid]:
            continue
        c = customers[cid]
        ens = c["enrollments"]
        start = max(en.enrolled_at for en in ens)
        end = min(en.enrolled_at for en in ens) + window
        gov = _governing(c)
        if end <= start:
            start, end = gov.enrolled_at, gov.enrolled_at + window
        end -= dt.timedelta(minutes=1)
        lower = start
        if c["actual"] and cid in first_contact:
            lower = max(lower, first_contact[cid])
            clicks = sorted(t for t in clicks_by_customer.get(cid, []) if t < end)
            if clicks:
                lower = max(lower, clicks[0])
        upper = end
        coupon = data["coupons"].get(gov.coupon_id) if gov is not None and gov.coupon_id else None
        if coupon is not None and coupon["status"] == "active":
            cu_lo, cu_hi = max(lower, coupon["issued_at"]), min(upper, coupon["expires_at"])
            if cu_hi > cu_lo:
                lower, upper = cu_lo, cu_hi
            else:
                coupon = None
        else:
            coupon = None
        if upper <= lower:
            upper = lower + dt.timedelta(minutes=1)
        at = lower + (upper - lower) * float(u_when[i])
        at = at.replace(microsecond=0)
        returned_by_arm["treatment" if any(en.arm == "treatment" for en in ens) else "holdout"] += 1
        if c["actual"]:
            returned_by_arm["treatment_reached"] += 1
        enr_id = gov.id if gov is not None else ens[0].id
        props = {"revenue_minor": int(c["revenue"]), "currency": c["currency"], "simulated": True,
                 "offer": _offer_name(c), "enrollment_id": enr_id}
        events.append({"event_id": f"{KEY_PREFIX}returned:{cid}:{enr_id}", "customer_id": cid, "type": "returned",
                       "occurred_at": at, "received_at": at, "source": SOURCE, "properties": json.dumps(props)})
        if coupon is not None:
            cprops = {"coupon": coupon["code"], "offer_key": coupon["offer_key"], "revenue_minor": 0,
                      "currency": coupon["currency"], "coupon_value_minor": int(coupon["value_minor"]),
                      "simulated": True, "note": "revenue is on the returned event"}
            events.append({"event_id": f"{KEY_PREFIX}coupon_redeemed:{coupon['id']}", "customer_id": cid,
                           "type": "coupon_redeemed", "occurred_at": at, "received_at": at, "source": SOURCE,
                           "properties": json.dumps(cprops)})
            redeem.append((coupon["id"], at))
    result.returns = {k: returned_by_arm.get(k, 0) for k in ("treatment", "treatment_reached", "holdout")}
    result.until = max(en.enrolled_at for en in enrs) + window
    result.currency = default_currency
    return {"tracking": tracking_rows, "events": events, "redeem": redeem}


class _Classifier:
    """:mod:`winback.tracking.machine`'s verdicts, memoised by user agent, network and timing class."""

    def __init__(self, settings_tracking):
        self.settings = settings_tracking
        self.fast = max(float(getattr(settings_tracking, "machine_open_seconds", 2.0) or 0.0), 2.0)
        self.memo: dict[tuple, tuple[bool, str | None]] = {}

    def __call__(self, kind: str, ua: str, ip: str, seconds: float) -> tuple[bool, str | None]:
        fast = seconds < self.fast
        key = (kind, ua, ip.split(".", 1)[0], fast)
        if key not in self.memo:
            fn = classify_open if kind == "open" else classify_click
            self.memo[key] = fn(ua, ip, seconds_since_sent=seconds, settings_tracking=self.settings)
        return self.memo[key]


def _prefix(ipv4: str) -> str:
    return ipv4.rsplit(".", 1)[0] + ".0/24"


def _governing(c: dict) -> _Enr | None:
    """The enrollment whose offer decided the return (the best offer that reached; else the first)."""
    p = c["p"]
    best, best_p = None, -1.0
    for en in sorted(c["actual"], key=lambda x: x.id):
        value = _best(p, en.offers)
        if value > best_p:
            best, best_p = en, value
    return best or min(c["enrollments"], key=lambda x: x.id)


def _offer_name(c: dict) -> str:
    p = c["p"]
    offers = [o for en in c["actual"] for o in en.offers]
    if not offers:
        return "none"
    top = max(offers, key=lambda o: p.get(o, 0.0))
    return top if p.get(top, 0.0) > p.get("none", 0.0) else "none"


def _revenue(row: dict, t: dict, prices: dict, median_mrr: int, default_currency: str) -> tuple[int, str]:
    if row["mrr_minor"]:
        return int(row["mrr_minor"]), row["currency"] or default_currency
    if t.get("mrr"):
        return int(t["mrr"]), default_currency
    price = prices.get(str(t.get("plan_id")))
    if price and price[0] > 0:
        return price[0], price[1] or default_currency
    return median_mrr, default_currency


def _open_probability(row: dict) -> float:
    locale = (row["locale"] or row["customer_locale"] or "en").split("-")[0].split("_")[0].lower()
    p = OPEN_BY_LOCALE.get(locale, OPEN_DEFAULT) + OPEN_BY_TIER.get(row["value_tier"] or "", 0.0)
    return min(max(p, OPEN_RANGE[0]), OPEN_RANGE[1])


def _click_targets(conn, rows: list[dict]) -> None:
    """Fill the clicks' link name and destination from their messages' call-to-action links."""
    clicks = [r for r in rows if r["kind"] == "click"]
    payloads: dict[int, str | None] = {}
    for chunk in _chunks(sorted({r["message_id"] for r in clicks}), 5000):
        payloads.update((i, p) for i, p in conn.execute(select(OUTBOX.c.id, OUTBOX.c.payload)
                                                         .where(OUTBOX.c.id.in_(chunk))))
    for r in clicks:
        r["link"], r["target"] = _cta(payloads.get(r["message_id"]))


def _cta(payload: str | None) -> tuple[str, str | None]:
    """The call-to-action link's name and destination (read from the signed redirect's token)."""
    try:
        url = json.loads(payload or "{}").get("links", {}).get("cta")
    except ValueError:
        url = None
    if not url:
        return "cta", None
    token = url.rsplit("/", 1)[-1].split(".")[0]
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return str(body.get("l") or "cta"), body.get("t") or url
    except (ValueError, TypeError):
        return "cta", url


def _truth_summary(enrs: list[_Enr], customers: dict, rows: list[dict], result: SimulationResult) -> None:
    revenue = {cid: c["revenue"] for cid, c in customers.items()}
    key_of = {r["campaign_id"]: r["campaign_key"] for r in rows}
    by_campaign: dict[int, list[_Enr]] = defaultdict(list)
    for en in enrs:
        by_campaign[en.campaign_id].append(en)
    n_t_all = sum(1 for en in enrs if en.arm == "treatment")
    n_h_all = sum(1 for en in enrs if en.arm == "holdout")
    lift_t = lift_h = rev_t = rev_h = 0.0
    for camp_id in sorted(by_campaign):
        ens = by_campaign[camp_id]
        n_t = sum(1 for en in ens if en.arm == "treatment")
        n_h = len(ens) - n_t
        q_t = np.array([en.q_t for en in ens])
        q_h = np.array([en.q_h for en in ens])
        r = np.array([revenue.get(en.customer_id, 0) for en in ens], dtype=float)
        result.campaigns[key_of[camp_id]] = {
            "treatment": n_t, "holdout": n_h,
            "true_rate_treatment": float(q_t.mean()), "true_rate_holdout": float(q_h.mean()),
            "true_lift": float((q_t - q_h).mean()),
            "true_incremental_revenue_minor": int(round(n_t * float((r * (q_t - q_h)).mean()))),
        }
        if n_t_all:
            lift_t += n_t / n_t_all * float(q_t.mean())
            rev_t += n_t / n_t_all * float((r * q_t).mean())
        if n_h_all:
            lift_h += n_h / n_h_all * float(q_h.mean())
            rev_h += n_h / n_h_all * float((r * q_h).mean())
    if n_t_all and n_h_all:
        result.true_lift = lift_t - lift_h
        result.true_incremental_revenue_minor = int(round((rev_t - rev_h) * n_t_all))


def _write(conn, plan: dict, limit: dt.datetime | None, result: SimulationResult) -> None:
    tracking = [r for r in plan["tracking"] if limit is None or r["occurred_at"] <= limit]
    events = [r for r in plan["events"] if limit is None or r["occurred_at"] <= limit]
    redeem = [(cid, at) for cid, at in plan["redeem"] if limit is None or at <= limit]
    result.written = {
        "opens_human": 0, "opens_machine": 0, "clicks": 0, "returned": 0, "coupons_redeemed": 0,
    }
    # insert_ignore needs rows of one shape
    cols = ("event_key", "kind", "message_id", "customer_id", "campaign_id", "enrollment_id", "step", "variant",
            "machine", "machine_reason", "link", "target", "user_agent", "ip_prefix", "source", "detail",
            "occurred_at")
    tracking = [{c: r.get(c) for c in cols} for r in tracking]
    inserted = set()
    for chunk in _chunks(tracking, 5000):
        stmt_rows = chunk
        got = _insert_returning_keys(conn, TRACKING, stmt_rows, "event_key")
        inserted |= got
    for r in tracking:
        if r["event_key"] in inserted:
            if r["kind"] == "click":
                result.written["clicks"] += 1
            elif r["machine"]:
                result.written["opens_machine"] += 1
            else:
                result.written["opens_human"] += 1
    new_events = set()
    for chunk in _chunks(events, 5000):
        new_events |= _insert_returning_keys(conn, CUSTOMER_EVENTS, chunk, "event_id")
    result.written["returned"] = sum(1 for e in events if e["event_id"] in new_events and e["type"] == "returned")
    result.revenue_minor = sum(json.loads(e["properties"])["revenue_minor"] for e in events
                               if e["type"] == "returned")
    for coupon_id, at in redeem:
        done = conn.execute(update(COUPONS).where(and_(COUPONS.c.id == coupon_id, COUPONS.c.status == "active"))
                            .values(status="redeemed", redeemed_at=at)).rowcount
        result.written["coupons_redeemed"] += int(done or 0)


def _insert_returning_keys(conn, table, rows: list[dict], key: str) -> set:
    """Insert-or-ignore on the unique ``key``; the keys actually inserted."""
    from winback.kit.db import dialect_insert

    if not rows:
        return set()
    stmt = dialect_insert(conn, table).on_conflict_do_nothing(index_elements=[key]).returning(table.c[key])
    return {r[0] for r in conn.execute(stmt, rows).all()}


def delete_simulated(conn) -> None:
    """Remove everything a simulation wrote (tests re-run it with other seeds on one workspace)."""
    from sqlalchemy import delete

    from winback.models.tracking import Conversion

    conv = Conversion.__table__
    sim_events = select(CUSTOMER_EVENTS.c.id).where(CUSTOMER_EVENTS.c.source == SOURCE)
    conn.execute(delete(conv).where(conv.c.customer_event_id.in_(sim_events)))
    redeemed = select(CUSTOMER_EVENTS.c.properties).where(CUSTOMER_EVENTS.c.source == SOURCE,
                                                          CUSTOMER_EVENTS.c.type == "coupon_redeemed")
    codes = [json.loads(p)["coupon"] for (p,) in conn.execute(redeemed)]
    for chunk in _chunks(codes, 1000):
        conn.execute(update(COUPONS).where(COUPONS.c.code.in_(chunk), COUPONS.c.status == "redeemed")
                     .values(status="active", redeemed_at=None))
    conn.execute(delete(CUSTOMER_EVENTS).where(CUSTOMER_EVENTS.c.source == SOURCE))
    conn.execute(delete(TRACKING).where(TRACKING.c.source == SOURCE))
