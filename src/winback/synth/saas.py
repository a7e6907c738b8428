"""A subscription (SaaS) business, simulated month by month for all customers at once.

The story the data tells (see DOMAIN.md):

* four monthly plans with a 14-day trial; Starter and Pro go up ~20% on 2024-10-01 (announced
  2024-09-01) and price-reason churn spikes in the months after;
* customers who asked for "Integration X" churn mostly in H1 2025; it ships on 2025-07-15;
* trial users who never convert, many citing complexity;
* involuntary churn (failed payments with real decline codes, retries 1, 3 and 7 days after the
  first failure, then the invoice is uncollectible) is about 30% of paid churn; other failures
  are recovered by a retry or a card update;
* engagement (weekly login / feature_used roll-ups over each customer's last ~12 weeks) decays
  before voluntary churn; some active customers are decaying too (at risk);
* support-reason churners have slow, unresolved, low-CSAT tickets before they leave;
* stated reasons (Stripe cancellation feedback codes, exit surveys with free text in the
  customer's language) mostly but not always match the true reason.

The only Python loop on the hot path is over calendar months (about 36 of them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from winback.models.history import get_table
from winback.synth import truth
from winback.synth.arrays import (
    DAY, HOUR, MINUTE, NA, START, Anchor, build_table, choice, choice_rows, digits_width, expand, first_in_group, ids,
    last_row_of,
    join, month_number, month_of, monday_week, pick_by_hazards, seconds, take, week_start,
)
from winback.synth.people import make_people, opted_out_at, signup_times
from winback.synth.support import ticket_table
from winback.synth.texts import FEATURES, LANGUAGES, SAAS_COMPETITORS, SAAS_REASON_TEXTS, TICKET_SUBJECTS, TextPool
from winback.synth.truth import (
    R_COMPETITOR, R_FEATURE, R_INVOLUNTARY, R_OTHER, R_PRICE, R_SUPPORT, R_USABILITY, REASONS,
)

TABLES = ("customers", "plans", "price_changes", "subscriptions", "subscription_changes", "invoices",
          "payment_attempts", "checkouts", "product_events", "tickets", "survey_responses", "releases")

PLAN_IDS = ("plan_starter", "plan_pro", "plan_business", "plan_enterprise")
PLAN_NAMES = ("Starter", "Pro", "Business", "Enterprise")
OLD_PRICE = np.array([2900, 7900, 19900, 99900], dtype=np.int64)
NEW_PRICE = np.array([3500, 9500, 19900, 99900], dtype=np.int64)
TIER_WEIGHTS = (0.50, 0.30, 0.15, 0.05)
TRIAL_DAYS = 14
CURRENCY = "USD"

PRICE_ANNOUNCED = seconds(dt.datetime(2024, 9, 1, 14, 0))
PRICE_EFFECTIVE = seconds(dt.date(2024, 10, 1))
PRICE_SPIKE_END = seconds(dt.date(2025, 1, 1))
H1_2025 = (seconds(dt.date(2025, 1, 1)), seconds(dt.date(2025, 7, 1)))
FEATURE_CHURN_PERIODS = (seconds(dt.date(2024, 12, 1)), seconds(dt.date(2025, 6, 1)))
REQUESTS_FROM = seconds(dt.date(2024, 9, 15))
REQUESTS_UNTIL = seconds(dt.date(2025, 6, 20))

# (date, title, feature key, kind, description)
RELEASES = (
    ("2023-06-14", "Custom reports", "custom_reports", "feature", "Build, save and schedule your own reports."),
    ("2023-11-08", "Faster dashboards", None, "improvement", "Dashboards now load up to three times faster."),
    ("2024-03-12", "Salesforce sync", "salesforce_sync", "integration",
     "Two-way sync of accounts and contacts with Salesforce."),
    ("2024-06-20", "Guided onboarding and tutorials", "guided_onboarding", "improvement",
     "Step-by-step setup and short video tutorials for new teams."),
    ("2024-09-01", "New pricing", None, "pricing", "Starter and Pro prices change on 1 October 2024."),
    ("2024-11-05", "Live chat support", "live_chat", "support", "Talk to a support engineer from inside the app."),
    ("2025-02-18", "Simplified interface", "simplified_ui", "improvement",
     "Cleaner navigation and fewer settings on every page."),
    ("2025-04-02", "Export fixes", None, "fix", "CSV exports no longer time out on large workspaces."),
    ("2025-07-15", "Integration X", "integration_x", "integration",
     "The Integration X connector many of you asked for is live."),
    ("2025-09-30", "Single sign-on (SAML)", "sso", "feature", "Sign in with your identity provider."),
    ("2025-11-20", "Webhooks", "api_webhooks", "integration", "Subscribe to account events with signed webhooks."),
    ("2026-03-02", "Mobile app", "mobile_app", "feature", "Planned: iOS and Android apps."),
)
RELEASE_AT = {key: seconds(dt.datetime.fromisoformat(d)) + 16 * HOUR for d, _, key, _, _ in RELEASES if key}
INTEGRATION_X_RELEASE = RELEASE_AT["integration_x"]
LIVE_CHAT_RELEASE = RELEASE_AT["live_chat"]
SIMPLIFIED_UI_RELEASE = RELEASE_AT["simplified_ui"]

USED_FEATURES = ("dashboards", "reports", "automations", "exports", "team_workspace", "templates", "api",
                 "integrations", "integration_x")
USED_WEIGHTS = (0.22, 0.2, 0.14, 0.12, 0.1, 0.08, 0.07, 0.07, 0.0)
OTHER_REQUESTED = (FEATURES.index("sso"), FEATURES.index("mobile_app"), FEATURES.index("api_webhooks"),
                   FEATURES.index("custom_reports"), FEATURES.index("salesforce_sync"))
F_INTEGRATION_X = FEATURES.index("integration_x")

SOFT_CODES = ("insufficient_funds", "do_not_honor", "try_again_later", "processing_error", "generic_decline",
              "card_velocity_exceeded")
SOFT_WEIGHTS = (0.45, 0.18, 0.08, 0.07, 0.14, 0.08)
HARD_CODES = ("expired_card", "lost_card", "stolen_card", "pickup_card", "fraudulent", "incorrect_number",
              "do_not_try_again")
HARD_WEIGHTS = (0.45, 0.09, 0.05, 0.06, 0.08, 0.12, 0.15)
DECLINE_CODES = SOFT_CODES + HARD_CODES
C_EXPIRED = DECLINE_CODES.index("expired_card")
C_INCORRECT = DECLINE_CODES.index("incorrect_number")
FAILURE_MESSAGES = {
    "insufficient_funds": "Your card has insufficient funds.",
    "do_not_honor": "Your card was declined.",
    "try_again_later": "Your card was declined. Please try again later.",
    "processing_error": "An error occurred while processing your card. Try again in a little bit.",
    "generic_decline": "Your card was declined.",
    "card_velocity_exceeded": "Your card was declined for making repeated attempts too frequently.",
    "expired_card": "Your card has expired.",
    "lost_card": "Your card was declined.",
    "stolen_card": "Your card was declined.",
    "pickup_card": "Your card was declined.",
    "fraudulent": "Your card was declined.",
    "incorrect_number": "Your card number is incorrect.",
    "do_not_try_again": "Your card was declined.",
}
CARD_BRANDS = ("visa", "mastercard", "amex", "discover", "jcb", "unionpay")
BRAND_WEIGHTS = np.array([  # per locale: en ja ko uk zh-Hans zh-Hant
    [0.55, 0.30, 0.10, 0.05, 0.00, 0.00],
    [0.45, 0.25, 0.05, 0.00, 0.25, 0.00],
    [0.55, 0.35, 0.05, 0.00, 0.05, 0.00],
    [0.60, 0.38, 0.02, 0.00, 0.00, 0.00],
    [0.35, 0.25, 0.05, 0.00, 0.05, 0.30],
    [0.50, 0.30, 0.05, 0.00, 0.10, 0.05],
])

CANCEL_CODES = ("too_expensive", "missing_features", "too_complex", "customer_service", "switched_service",
                "unused", "low_quality", "other", "payment_failed")
CODE_PAYMENT_FAILED = CANCEL_CODES.index("payment_failed")
STATED_GIVEN_REASON = np.array([  # rows: reason codes 0..6 (0 unused); columns: the first 8 codes
    [0, 0, 0, 0, 0, 0, 0, 1],
    [1, 0, 0, 0, 0, 0, 0, 0],
    [0, 1, 0, 0, 0, 0, 0, 0],
    [0, 0, 0.85, 0, 0, 0, 0.15, 0],
    [0, 0, 0, 0.9, 0, 0, 0.1, 0],
    [0, 0, 0, 0, 1, 0, 0, 0],
    [0, 0, 0, 0, 0, 0.6, 0, 0.4],
])
RETURN_CHOICES = ("lower_price", "feature_available", "easier_to_use", "better_support", "better_than_alternative",
                  "nothing")

# churn model (monthly hazards); tuned so involuntary is ~30% of paid churn
BASE_VOLUNTARY = 0.021
REASON_WEIGHTS = np.array([0.20, 0.17, 0.14, 0.13, 0.19, 0.17])  # price .. other
TIER_FACTOR = np.array([1.0, 0.85, 0.65, 0.45])
PRICE_SPIKE = 0.045
FEATURE_SPIKE = 0.15
Q_FIRST = 0.030  # the first charge after a trial fails and is never recovered
Q_INVOLUNTARY = 0.0118
Q_RECOVERED = 0.035
BIG = 10_000


@dataclass
class Ctx:
    n: int
    seed: int
    horizon: int  # observation end, epoch seconds: no history instant lies later
    progress: object = None

    def rng(self, name: str) -> np.random.Generator:
        from winback.synth.arrays import stream

        return stream(self.seed, "saas." + name)

    def say(self, message: str) -> None:
        if self.progress:
            self.progress(message)


def price(tier: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.where(at >= PRICE_EFFECTIVE, NEW_PRICE[tier], OLD_PRICE[tier])


@dataclass
class Paid:
    """Outcome of simulating monthly billing for a batch of paid subscriptions."""

    K: np.ndarray  # invoices issued up to the horizon
    outcome: np.ndarray  # 0 still paying, 1 voluntary cancel, 2 payment failure
    reason: np.ndarray
    kend: np.ndarray  # index of the last invoice when cancelled
    cancel: np.ndarray
    end: np.ndarray
    tier1: np.ndarray
    jchange: np.ndarray
    jitter: np.ndarray


def simulate_paid(rng: np.random.Generator, p0: np.ndarray, tier0: np.ndarray, frailty: np.ndarray,
                  price_sens: np.ndarray, inv_mult: np.ndarray, requester: np.ndarray, horizon: int,
                  allow_change: bool) -> Paid:
    m = len(p0)
    anchor = Anchor(p0)
    jitter = rng.integers(0, 20 * MINUTE, m)
    change = rng.random(m) < (0.12 if allow_change else 0.0)
    up = rng.random(m) < 0.65
    tier1 = np.clip(tier0 + np.where(up, 1, -1), 0, 3)
    change &= tier1 != tier0
    tier1 = np.where(change, tier1, tier0)
    jchange = np.where(change, 2 + rng.geometric(1 / 8, m), BIG)

    K = np.zeros(m, dtype=np.int64)
    outcome = np.zeros(m, dtype=np.int64)
    reason = np.zeros(m, dtype=np.int64)
    kend = np.full(m, -1, dtype=np.int64)
    cancel = np.full(m, NA, dtype=np.int64)
    end = np.full(m, NA, dtype=np.int64)
    alive = np.arange(m)
    k = 0
    while alive.size:
        t = anchor.at(k, alive)
        ok = t <= horizon
        alive, t = alive[ok], t[ok]
        if not alive.size:
            break
        K[alive] = k + 1
        tier = np.where(k >= jchange[alive], tier1[alive], tier0[alive])
        # involuntary: this renewal's payment fails and is never recovered
        q = (Q_FIRST if k == 0 else Q_INVOLUNTARY) * inv_mult[alive]
        inv = rng.random(alive.size) < q
        r_inv = alive[inv]
        fail_end = t[inv] + HOUR + jitter[r_inv] + 7 * DAY + HOUR
        outcome[r_inv] = 2
        reason[r_inv] = R_INVOLUNTARY
        kend[r_inv] = k
        cancel[r_inv] = fail_end
        end[r_inv] = fail_end
        rows, t, tier = alive[~inv], t[~inv], tier[~inv]
        t_next = anchor.at(k + 1, rows)
        tenure = 1.5 if k < 3 else (1.2 if k < 6 else (1.0 if k < 12 else 0.8))
        base = BASE_VOLUNTARY * frailty[rows] * TIER_FACTOR[tier] * tenure
        hz = base[:, None] * REASON_WEIGHTS[None, :]
        if k < 3:
            hz[:, 2] *= 2.0
        hz[:, 2] *= np.where(t >= SIMPLIFIED_UI_RELEASE, 0.75, 1.0)
        hz[:, 3] *= np.where(t >= LIVE_CHAT_RELEASE, 0.8, 1.0)
        spike = (tier <= 1) & (t >= PRICE_ANNOUNCED) & (t < PRICE_SPIKE_END)
        hz[:, 0] += np.where(spike, PRICE_SPIKE * price_sens[rows], 0.0)
        req = requester[rows]
        hz[:, 1] += np.where(req & (t >= FEATURE_CHURN_PERIODS[0]) & (t < FEATURE_CHURN_PERIODS[1]),
                             FEATURE_SPIKE, 0.0)
        hz[:, 1] *= np.where(req & (t >= INTEGRATION_X_RELEASE), 0.3, 1.0)
        go = rng.random(rows.size) < -np.expm1(-hz.sum(axis=1))
        g_rows, g_t, g_next, g_hz = rows[go], t[go], t_next[go], hz[go]
        ctime = g_t + (rng.uniform(0.05, 0.97, g_rows.size) * (g_next - g_t)).astype(np.int64)
        picked = pick_by_hazards(rng, g_hz)
        valid = ctime <= horizon
        c_rows = g_rows[valid]
        outcome[c_rows] = 1
        reason[c_rows] = 1 + picked[valid]
        kend[c_rows] = k
        cancel[c_rows] = ctime[valid]
        end[c_rows] = g_next[valid]
        alive = np.concatenate([rows[~go], g_rows[~valid]])
        k += 1
    return Paid(K, outcome, reason, kend, cancel, end, tier1, jchange, jitter)


@dataclass
class Subs:
    """Every subscription (first ones, then reactivations), one array entry each."""

    cust: np.ndarray
    started: np.ndarray
    trial_start: np.ndarray
    trial_end: np.ndarray
    p0: np.ndarray  # first paid period start, NA if never paid
    tier0: np.ndarray
    tier1: np.ndarray
    jchange: np.ndarray
    jitter: np.ndarray
    K: np.ndarray
    outcome: np.ndarray  # 0 none, 1 voluntary, 2 involuntary, 3 cancelled in trial
    reason: np.ndarray
    kend: np.ndarray
    cancel: np.ndarray
    end: np.ndarray
    engagement: np.ndarray  # weekly logins at full engagement
    second: np.ndarray  # a reactivation
    extra: dict = field(default_factory=dict)

    def take(self, order: np.ndarray) -> "Subs":
        values = {k: getattr(self, k)[order] for k in self.__dataclass_fields__ if k != "extra"}
        return Subs(**values, extra={})

    @staticmethod
    def concat(a: "Subs", b: "Subs") -> "Subs":
        values = {k: np.concatenate([getattr(a, k), getattr(b, k)]) for k in a.__dataclass_fields__ if k != "extra"}
        return Subs(**values, extra={})


def build(n: int, seed: int, horizon: int, progress=None, emit_table=None) -> tuple[dict[str, pa.Table], pa.Table,
                                                                                  dict]:
    """Simulate ``n`` customers; returns (tables, ground truth, summary facts).

    ``emit_table(name, table)``, when given, is called as soon as each table is final, so the
    caller can start writing it while the rest is still being simulated.
    """
    ctx = Ctx(n, seed, horizon, progress)
    H = horizon
    width = digits_width(n)

    # ---------------------------------------------------------------- customers and roles
    ctx.say("saas: customers")
    rng = ctx.rng("people")
    people = make_people(rng, n, width)
    t_sign = signup_times(ctx.rng("signup"), n, START + DAY, H - 2 * HOUR)
    rng = ctx.rng("roles")
    role = choice(rng, n, [0.04, 0.02, 0.94])  # 0 abandoned checkout, 1 declined checkout, 2 subscriber
    frailty_c = rng.gamma(2.0, 0.5, n)
    price_sens_c = rng.lognormal(0.0, 0.5, n) / np.exp(0.125)
    inv_mult_c = rng.lognormal(0.0, 0.6, n) / np.exp(0.18)
    engagement_c = rng.gamma(2.0, 3.0, n)

    # ---------------------------------------------------------------- first subscriptions
    ctx.say("saas: trials and paid months")
    rng = ctx.rng("first")
    cust = np.nonzero(role == 2)[0]
    s_n = cust.size
    tier0 = choice(rng, s_n, TIER_WEIGHTS)
    has_trial = rng.random(s_n) < np.where(tier0 == 3, 0.3, 0.9)
    started = t_sign[cust]
    trial_end = np.where(has_trial, started + TRIAL_DAYS * DAY, NA)
    converts = rng.random(s_n) < np.array([0.89, 0.88, 0.86, 0.92])[tier0]
    tri_reason = 1 + choice(rng, s_n, [0.20, 0.15, 0.40, 0.03, 0.10, 0.12])
    tri_cancel = started + (rng.uniform(0.5, 13.9, s_n) * DAY).astype(np.int64)
    trial_lost = has_trial & ~converts & (tri_cancel <= H)
    p0 = np.where(has_trial, trial_end, started)
    paid = (~has_trial | converts) & (p0 <= H)
    # Integration X candidates: paying before the request window; only those still here ask
    requester_c = np.zeros(n, dtype=bool)
    cand = paid & (p0 < REQUESTS_FROM) & (rng.random(s_n) < 0.14)
    requester_c[cust[cand]] = True

    pr = np.nonzero(paid)[0]
    pc_ = cust[pr]
    sim = simulate_paid(ctx.rng("paid1"), p0[pr], tier0[pr], frailty_c[pc_], price_sens_c[pc_], inv_mult_c[pc_],
                        requester_c[pc_], H, allow_change=True)
    first = Subs(
        cust=cust, started=started, trial_start=np.where(has_trial, started, NA), trial_end=trial_end,
        p0=np.where(paid, p0, NA), tier0=tier0, tier1=tier0.copy(), jchange=np.full(s_n, BIG),
        jitter=np.zeros(s_n, dtype=np.int64), K=np.zeros(s_n, dtype=np.int64),
        outcome=np.where(trial_lost, 3, 0), reason=np.where(trial_lost, tri_reason, 0),
        kend=np.full(s_n, -1), cancel=np.where(trial_lost, tri_cancel, NA), end=np.where(trial_lost, tri_cancel, NA),
        engagement=engagement_c[cust] * np.where(trial_lost, 0.4, 1.0) * np.array([0.8, 1.0, 1.3, 1.6])[tier0],
        second=np.zeros(s_n, dtype=bool),
    )
    for name in ("K", "outcome", "reason", "kend", "cancel", "end", "tier1", "jchange", "jitter"):
        getattr(first, name)[pr] = getattr(sim, name)

    # who actually asked for Integration X: still a customer when requests start
    last_day = np.where(first.cancel == NA, H, first.cancel)  # the decision to leave, not the period end
    asked = requester_c[first.cust] & (first.p0 != NA) & (last_day > REQUESTS_FROM + 10 * DAY)
    requester_c[:] = False
    requester_c[first.cust[asked]] = True

    # ---------------------------------------------------------------- reactivations
    ctx.say("saas: reactivations")
    rng = ctx.rng("reactivate")
    lost = (first.outcome > 0) & (first.end != NA) & (first.end <= H)
    li = np.nonzero(lost)[0]
    p_nat = truth.saas_p_return(
        first.reason[li], first.tier1[li], first.K[li].astype(float), _pct(first.engagement)[li],
        np.zeros(li.size), np.zeros(li.size, dtype=bool), np.zeros(li.size, dtype=bool), first.outcome[li] == 3,
    )["p_return_none"]
    back_at = first.end[li] + 14 * DAY + rng.exponential(120 * DAY, li.size).astype(np.int64)
    back = (rng.random(li.size) < 1.3 * p_nat) & (back_at <= H - DAY)
    ri = li[back]
    r_n = ri.size
    r_cust = first.cust[ri]
    r_tier = np.clip(first.tier1[ri] - (rng.random(r_n) < np.where(first.reason[ri] == R_PRICE, 0.6, 0.25)), 0, 3)
    r_start = back_at[back]
    sim2 = simulate_paid(ctx.rng("paid2"), r_start, r_tier, frailty_c[r_cust] * 0.8, price_sens_c[r_cust],
                         inv_mult_c[r_cust] * 0.7, np.zeros(r_n, dtype=bool), H, allow_change=False)
    second = Subs(
        cust=r_cust, started=r_start, trial_start=np.full(r_n, NA), trial_end=np.full(r_n, NA), p0=r_start,
        tier0=r_tier, tier1=sim2.tier1, jchange=sim2.jchange, jitter=sim2.jitter, K=sim2.K, outcome=sim2.outcome,
        reason=sim2.reason, kend=sim2.kend, cancel=sim2.cancel, end=sim2.end,
        engagement=first.engagement[ri] * 0.9, second=np.ones(r_n, dtype=bool),
    )
    subs = Subs.concat(first, second)
    order = np.lexsort((subs.cust, subs.started))
    subs = subs.take(order)
    m = subs.cust.size
    sub_id = ids("sub_", np.arange(1, m + 1), digits_width(m))
    subs.extra["id"] = sub_id
    # latest subscription per customer
    latest_of = last_row_of(subs.cust, n)  # rows are in start order, so the last row is the latest
    T: dict[str, pa.Table] = {}

    def emit(name: str, table: pa.Table) -> None:
        T[name] = table
        if emit_table:
            emit_table(name, table)

    # ---------------------------------------------------------------- engagement and feature requests
    ctx.say("saas: product events")
    at_risk = _at_risk(ctx, subs)
    requested = np.zeros(m, dtype=np.int64)  # feature index the customer needs (0 = none)
    rng = ctx.rng("requested")
    req_sub = requester_c[subs.cust] & ~subs.second
    requested[req_sub] = F_INTEGRATION_X
    mf = (subs.reason == R_FEATURE) & ~req_sub
    requested[mf] = np.asarray(OTHER_REQUESTED)[choice(rng, int(mf.sum()), [0.3, 0.2, 0.2, 0.15, 0.15])]
    emit("product_events", _events(ctx, subs, at_risk, requested, req_sub, people.customer_id, H))

    # ---------------------------------------------------------------- invoices, payment attempts, cards
    ctx.say("saas: invoices and payment attempts")
    inv = _invoices(ctx, subs, inv_mult_c, people.customer_id)
    emit("invoices", inv["table"])
    status, mrr, cpe, cape = _statuses(subs, inv, H)
    att = inv["attempts"]
    card_cols, expiring_soon = _cards(ctx, subs, inv, att, people.locale, latest_of, status, n, width)
    emit("payment_attempts", _attempts_table(att, card_cols, people.customer_id, inv))
    emit("subscription_changes", _changes(subs, inv, sub_id, people.customer_id))

    # ---------------------------------------------------------------- tickets, surveys, checkouts
    ctx.say("saas: tickets, surveys, checkouts")
    emit("tickets", _tickets(ctx, subs, inv, requested, req_sub, people, H))
    stated, text_label, surveys, cancel_code, cancel_text = _surveys(ctx, subs, at_risk, requested, people, status,
                                                                     H)
    emit("survey_responses", surveys)
    checkouts, created_at = _checkouts(ctx, subs, role, t_sign, people, H)
    emit("checkouts", checkouts)

    # ---------------------------------------------------------------- small and per-customer tables
    ctx.say("saas: customers and subscriptions")
    plan_of_customer = np.where(latest_of >= 0, subs.tier1[np.maximum(latest_of, 0)], 0)
    cols = dict(people.columns)
    cols["created_at"] = created_at
    cols["plan_id"] = take(PLAN_IDS, plan_of_customer, mask=latest_of < 0)
    cols["opted_out_at"] = opted_out_at(ctx.rng("optout"), people.opt_out, created_at, H)
    emit("customers", build_table(get_table("customers"), n, cols))
    emit("subscriptions", build_table(get_table("subscriptions"), m, {
        "subscription_id": sub_id,
        "customer_id": people.customer_id.take(pa.array(subs.cust)),
        "plan_id": take(PLAN_IDS, subs.tier1),
        "status": take(("trialing", "active", "past_due", "canceled"), status),
        "started_at": subs.started,
        "trial_start": subs.trial_start,
        "trial_end": subs.trial_end,
        "current_period_end": cpe,
        "mrr": mrr,
        "currency": CURRENCY,
        "quantity": np.ones(m, dtype=np.int64),
        "cancel_at_period_end": cape,
        "canceled_at": np.where((subs.cancel != NA) & (subs.cancel <= H), subs.cancel, NA),
        "ended_at": np.where((subs.end != NA) & (status == 3), subs.end, NA),
        "cancel_reason_code": cancel_code,
        "cancel_reason_text": cancel_text,
    }))
    emit("plans", build_table(get_table("plans"), 4, {
        "plan_id": pa.array(PLAN_IDS), "name": pa.array(PLAN_NAMES), "tier": np.arange(4, dtype=np.int64),
        "interval": "month", "amount": np.where(H >= PRICE_EFFECTIVE, NEW_PRICE, OLD_PRICE), "currency": CURRENCY,
        "trial_days": np.full(4, TRIAL_DAYS, dtype=np.int64), "active": np.ones(4, dtype=bool),
    }))
    pcs = [0, 1] if PRICE_ANNOUNCED <= H else []
    emit("price_changes", build_table(get_table("price_changes"), len(pcs), {
        "price_change_id": pa.array([f"pc_{i + 1:03d}" for i in range(len(pcs))], type=pa.string()),
        "plan_id": pa.array([PLAN_IDS[i] for i in pcs], type=pa.string()),
        "announced_at": np.full(len(pcs), PRICE_ANNOUNCED, dtype=np.int64),
        "effective_at": np.full(len(pcs), PRICE_EFFECTIVE, dtype=np.int64),
        "old_amount": OLD_PRICE[pcs], "new_amount": NEW_PRICE[pcs], "currency": CURRENCY,
    }))
    emit("releases", _releases())

    # ---------------------------------------------------------------- ground truth and summary
    ctx.say("saas: ground truth")
    gt, facts = _truth(ctx, subs, status, mrr, inv, role, t_sign, requested, requester_c, at_risk, expiring_soon,
                       latest_of, stated, text_label, people, T)
    return {name: T[name] for name in TABLES}, gt, facts


# =============================================================================================
# pieces
# =============================================================================================

def _pct(values: np.ndarray) -> np.ndarray:
    """Percentile rank in [0, 1]."""
    if values.size == 0:
        return values.astype(float)
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[np.argsort(values, kind="stable")] = np.arange(values.size)
    return ranks / max(values.size - 1, 1)


def _invoices(ctx: Ctx, subs: Subs, inv_mult_c: np.ndarray, customer_id: pa.Array) -> dict:
    H = ctx.horizon
    rng = ctx.rng("invoices")
    parent, k = expand(subs.K)
    anchor = Anchor(np.where(subs.p0 == NA, START, subs.p0))
    t = anchor.at(k, parent)
    t_end = anchor.at(k + 1, parent)
    tier = np.where(k >= subs.jchange[parent], subs.tier1[parent], subs.tier0[parent])
    amount = price(tier, t)
    cust = subs.cust[parent]
    r = len(parent)
    final_fail = (subs.outcome[parent] == 2) & (k == subs.kend[parent])
    recovered = ~final_fail & (rng.random(r) < Q_RECOVERED * inv_mult_c[cust])
    # failure kind: 0 fine, 1 soft recovered, 2 hard recovered (new card), 3 soft lost, 4 hard lost
    hard_lost = rng.random(r) < 0.42
    hard_rec = rng.random(r) < 0.15
    kind = np.zeros(r, dtype=np.int64)
    kind[recovered] = np.where(hard_rec[recovered], 2, 1)
    kind[final_fail] = np.where(hard_lost[final_fail], 4, 3)
    code = np.full(r, -1, dtype=np.int64)
    soft = (kind == 1) | (kind == 3)
    hard = (kind == 2) | (kind == 4)
    code[soft] = choice(rng, int(soft.sum()), SOFT_WEIGHTS)
    code[hard] = len(SOFT_CODES) + choice(rng, int(hard.sum()), HARD_WEIGHTS)
    # a card is replaced at most once: later hard failures of the same customer become soft
    hi = np.nonzero(hard)[0]
    o = np.lexsort((t[hi], cust[hi]))
    hi = hi[o]
    later = ~first_in_group(cust[hi])
    demote = hi[later]
    kind[demote] = np.where(kind[demote] == 2, 1, 3)
    code[demote] = DECLINE_CODES.index("insufficient_funds")

    # attempts
    first_at = t + HOUR + subs.jitter[parent]
    n_fail = np.zeros(r, dtype=np.int64)
    f_rec = 1 + choice(rng, r, [0.55, 0.30, 0.15])
    n_fail[kind == 1] = f_rec[kind == 1]
    n_fail[kind == 2] = 1
    n_fail[kind == 3] = 4
    n_fail[kind == 4] = 1
    success = kind <= 2
    n_att = n_fail + success
    a_inv, a_pos = expand(n_att)
    retry_offsets = np.array([0, DAY, 3 * DAY, 7 * DAY], dtype=np.int64)
    a_time = first_at[a_inv] + retry_offsets[np.minimum(a_pos, 3)]
    a_time += np.where(a_pos > 0, rng.integers(0, 30 * MINUTE, a_pos.size), 0)
    hard_success = (kind[a_inv] == 2) & (a_pos == 1)
    a_time = np.where(hard_success, first_at[a_inv] + (rng.uniform(0.2, 6.5, a_pos.size) * DAY).astype(np.int64),
                      a_time)
    a_ok = a_pos >= n_fail[a_inv]
    keep = a_time <= H
    a_inv, a_pos, a_time, a_ok = a_inv[keep], a_pos[keep], a_time[keep], a_ok[keep]
    a_code = np.where(a_ok, -1, code[a_inv])

    # expired_card needs an earlier attempt (same subscription) in an earlier month
    a_cust = cust[a_inv]
    exp_rows = np.flatnonzero(a_code == C_EXPIRED)
    prev_row = np.maximum(exp_rows - 1, 0)
    valid = (exp_rows > 0) & (parent[a_inv[prev_row]] == parent[a_inv[exp_rows]])
    valid &= month_of(a_time[prev_row]) < month_of(a_time[exp_rows])
    code[np.unique(a_inv[exp_rows[~valid]])] = C_INCORRECT
    a_code = np.where(a_ok, -1, code[a_inv])

    count = np.bincount(a_inv, minlength=r)
    paid_at = np.full(r, NA, dtype=np.int64)
    paid_at[a_inv[a_ok]] = a_time[a_ok]
    is_paid = paid_at != NA
    lost_at = first_at + 7 * DAY + HOUR
    uncollectible = (kind >= 3) & (lost_at <= H)
    inv_status = np.where(is_paid, 2, np.where(uncollectible, 3, 1))  # draft open paid uncollectible void
    width = digits_width(max(r, 1), 7)
    invoice_id = ids("in_", np.arange(1, r + 1), width)
    billing_reason = np.where(k == 0, 0, 1)
    table = build_table(get_table("invoices"), r, {
        "invoice_id": invoice_id,
        "customer_id": customer_id.take(pa.array(cust)),
        "subscription_id": subs.extra["id"].take(pa.array(parent)),
        "created_at": t,
        "due_at": t,
        "period_start": t,
        "period_end": t_end,
        "amount_due": amount,
        "amount_paid": np.where(is_paid, amount, 0),
        "currency": CURRENCY,
        "status": take(("draft", "open", "paid", "uncollectible", "void"), inv_status),
        "paid_at": paid_at,
        "attempt_count": count.astype(np.int64),
        "billing_reason": take(("subscription_create", "subscription_cycle"), billing_reason),
    })
    return {
        "parent": parent, "k": k, "t": t, "t_end": t_end, "tier": tier, "amount": amount, "cust": cust,
        "kind": kind, "code": code, "status": inv_status, "first_at": first_at, "paid_at": paid_at,
        "invoice_id": invoice_id, "table": table,
        "attempts": {"inv": a_inv, "pos": a_pos, "time": a_time, "ok": a_ok, "code": a_code, "cust": a_cust},
    }


def _statuses(subs: Subs, inv: dict, H: int):
    """Subscription status (0 trialing, 1 active, 2 past_due, 3 canceled), MRR, period end, cancel flag."""
    m = subs.cust.size
    status = np.ones(m, dtype=np.int64)
    trialing = (subs.p0 == NA) & (subs.outcome == 0)
    trialing |= (subs.p0 != NA) & (subs.K == 0)  # converting, first charge after the horizon
    status[trialing] = 0
    ended = (subs.end != NA) & (subs.end <= H)
    status[ended] = 3
    status[(subs.outcome == 2) & ~ended] = 2
    # the latest invoice still being retried at the horizon
    last = last_row_of(inv["parent"], m)
    has = last >= 0
    open_last = np.zeros(m, dtype=bool)  # a failed charge still being retried
    open_last[has] = (inv["status"][last[has]] == 1) & (inv["kind"][last[has]] >= 1)
    status[(status == 1) & open_last & (subs.outcome == 0)] = 2
    mrr = np.zeros(m, dtype=np.int64)
    mrr[has] = inv["amount"][last[has]]
    cpe = np.where(has, 0, subs.trial_end)
    cpe[has] = inv["t_end"][last[has]]
    cpe = np.where(status == 0, subs.trial_end, cpe)
    cpe = np.where((subs.outcome == 3), subs.trial_end, cpe)
    cape = (subs.outcome == 1) & ~ended & (subs.cancel != NA) & (subs.cancel <= H)
    cape |= (subs.outcome == 1) & ended
    return status, mrr, cpe, cape


def _cards(ctx: Ctx, subs: Subs, inv: dict, att: dict, locale: np.ndarray, latest_of: np.ndarray,
           status: np.ndarray, n: int, width: int):
    """Cards per customer (at most one replacement) and per-attempt card columns."""
    H = ctx.horizon
    rng = ctx.rng("cards")
    h_month = int(month_of(np.array([H]))[0])
    kind = inv["kind"]
    cust_inv = inv["cust"]
    hard_inv = np.nonzero((kind == 2) | (kind == 4))[0]
    switch = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    hard_code = np.full(n, -1, dtype=np.int64)
    hard_month = np.full(n, -1, dtype=np.int64)
    hc = cust_inv[hard_inv]
    hard_code[hc] = inv["code"][hard_inv]
    hard_month[hc] = month_of(inv["first_at"][hard_inv])
    rec = hard_inv[kind[hard_inv] == 2]
    rec_time = np.full(inv["t"].size, NA, dtype=np.int64)
    rec_time[inv["paid_at"] != NA] = inv["paid_at"][inv["paid_at"] != NA]
    switch[cust_inv[rec]] = np.where(rec_time[rec] != NA, rec_time[rec], switch[cust_inv[rec]])
    # customers who lost a subscription to a hard decline and came back used a new card
    lost_hard = hard_inv[kind[hard_inv] == 4]
    lc = cust_inv[lost_hard]
    back = latest_of[lc]
    returned = back != inv["parent"][lost_hard]  # a later subscription exists
    switch[lc[returned]] = subs.started[back[returned]]

    a_cust, a_time = att["cust"], att["time"]
    a_card = (a_time >= switch[a_cust]).astype(np.int64)
    last_t = np.full((n, 2), -1, dtype=np.int64)
    np.maximum.at(last_t, (a_cust, a_card), a_time)
    last_m = np.where(last_t >= 0, month_of(np.maximum(last_t, 0)), -1)
    # is the customer's latest subscription live at the horizon?
    live = np.zeros(n, dtype=bool)
    has = latest_of >= 0
    live[has] = np.isin(status[latest_of[has]], (1, 2))
    switched = switch < np.iinfo(np.int64).max
    current = switched.astype(np.int64)
    soon = live & (rng.random(n) < 0.07)
    exp = np.zeros((n, 2), dtype=np.int64)
    for c in (0, 1):
        is_current = current == c
        ahead = np.where(soon, h_month + rng.integers(1, 4, n), h_month + rng.integers(4, 61, n))
        past = np.maximum(last_m[:, c], month_of(np.full(n, H)) - 24) + rng.integers(0, 41, n)
        past = np.maximum(past, last_m[:, c])
        exp[:, c] = np.where(is_current & live, ahead, past)
    expired = hard_code == C_EXPIRED  # the card stopped working the month before the failure
    exp[:, 0] = np.where(expired, hard_month - 1, exp[:, 0])
    expiring_soon = live & soon & ~(expired & (current == 0))  # not the ones already expired (in dunning)
    brand = np.stack([choice_rows(rng, BRAND_WEIGHTS, locale), choice_rows(rng, BRAND_WEIGHTS, locale)], axis=1)
    last4 = rng.integers(0, 10_000, (n, 2))
    exp_year, exp_month = month_number(exp)
    return {
        "card": a_card, "brand": brand, "last4": last4, "exp_year": exp_year, "exp_month": exp_month,
    }, expiring_soon


def _attempts_table(att: dict, cards: dict, customer_id: pa.Array, inv: dict) -> pa.Table:
    """Rows are already grouped by invoice, attempts in order."""
    a_cust, card, code = att["cust"], cards["card"], att["code"]
    r = a_cust.size
    failed = code >= 0
    messages = [FAILURE_MESSAGES[c] for c in DECLINE_CODES]
    pm_numbers = (a_cust + 1) * 10 + card + 1
    return build_table(get_table("payment_attempts"), r, {
        "attempt_id": ids("py_", np.arange(1, r + 1), digits_width(max(r, 1), 7)),
        "invoice_id": inv["invoice_id"].take(pa.array(att["inv"])),
        "customer_id": customer_id.take(pa.array(a_cust)),
        "attempted_at": att["time"],
        "amount": inv["amount"][att["inv"]],
        "currency": CURRENCY,
        "status": take(("succeeded", "failed"), failed.astype(np.int64)),
        "decline_code": take(DECLINE_CODES, np.maximum(code, 0), mask=~failed),
        "failure_message": take(messages, np.maximum(code, 0), mask=~failed),
        "card_brand": take(CARD_BRANDS, cards["brand"][a_cust, card]),
        "card_last4": ids("", cards["last4"][a_cust, card], 4),
        "card_exp_month": cards["exp_month"][a_cust, card],
        "card_exp_year": cards["exp_year"][a_cust, card],
        "payment_method_id": ids("pm_", pm_numbers, digits_width(int(pm_numbers.max(initial=0)), 9)),
    })


def _changes(subs: Subs, inv: dict, sub_id: pa.Array, customer_id: pa.Array) -> pa.Table:
    parent, k, t, tier = inv["parent"], inv["k"], inv["t"], inv["tier"]
    prev_t = np.empty_like(t)
    prev_tier = np.empty_like(tier)
    prev_t[1:], prev_tier[1:] = t[:-1], tier[:-1]
    has_prev = k >= 1  # rows are grouped by subscription, so row-1 is the previous invoice
    prev_t[~has_prev] = t[~has_prev]
    prev_tier[~has_prev] = tier[~has_prev]
    increase = has_prev & (t >= PRICE_EFFECTIVE) & (prev_t < PRICE_EFFECTIVE) & (tier == prev_tier) & (tier <= 1)
    plan_change = has_prev & (tier != prev_tier)
    rows = np.nonzero(increase | plan_change)[0]
    rows = rows[np.lexsort((rows, t[rows]))]
    c_type = np.where(increase[rows], 2, np.where(tier[rows] > prev_tier[rows], 0, 1))
    old = price(prev_tier[rows], prev_t[rows])
    new = price(tier[rows], t[rows])
    r = rows.size
    return build_table(get_table("subscription_changes"), r, {
        "change_id": ids("chg_", np.arange(1, r + 1), digits_width(max(r, 1))),
        "subscription_id": sub_id.take(pa.array(parent[rows])),
        "customer_id": customer_id.take(pa.array(subs.cust[parent[rows]])),
        "changed_at": t[rows],
        "change_type": take(("upgrade", "downgrade", "price_increase"), c_type),
        "from_plan_id": take(PLAN_IDS, prev_tier[rows]),
        "to_plan_id": take(PLAN_IDS, tier[rows]),
        "old_mrr": old,
        "new_mrr": new,
        "currency": CURRENCY,
    })


def _at_risk(ctx: Ctx, subs: Subs) -> np.ndarray:
    """Paying subscriptions with no cancellation whose engagement nevertheless decays (8%)."""
    rng = ctx.rng("at_risk")
    live = (subs.outcome == 0) & (subs.K > 0)
    return live & (rng.random(subs.cust.size) < 0.08)


def _events(ctx: Ctx, subs: Subs, at_risk: np.ndarray, requested: np.ndarray, req_sub: np.ndarray,
            customer_id: pa.Array, H: int) -> pa.Table:
    """Weekly login / feature_used roll-ups over each subscription's last <= 12 weeks, then requests.

    Rows come out grouped by subscription and week without sorting: each (subscription, week)
    pair owns two slots (login, feature_used) and empty weeks are dropped.
    """
    rng = ctx.rng("events")
    m = subs.cust.size
    s = subs.started
    e = np.where((subs.end != NA) & (subs.end <= H), subs.end, H)
    w_end = monday_week(e)
    w_start = np.maximum(monday_week(s), w_end - 11)
    n_weeks = w_end - w_start + 1
    decaying = ((subs.outcome == 1) | (subs.outcome == 3)) & (subs.cancel != NA) & (subs.cancel <= H)
    decaying |= at_risk
    floor = rng.uniform(0.03, 0.25, m)
    span = rng.uniform(5.0, 10.0, m)
    top = np.stack([choice(rng, m, USED_WEIGHTS) for _ in range(3)], axis=1)
    # per-subscription level: engagement, damped for payment-failure churners (they did not mean to go)
    level = subs.engagement * np.where(subs.outcome == 2, 0.9, 1.0)

    parent, pos = expand(n_weeks)
    week = w_start[parent] + pos
    d = (w_end[parent] - week).astype(np.float64)  # weeks before the end of the window
    dec = decaying[parent]
    mult = np.where(dec, floor[parent] + (1.0 - floor[parent]) * np.minimum(1.0, d / span[parent]), 1.0)
    lam = level[parent] * mult
    counts = np.empty((parent.size, 2), dtype=np.int64)
    counts[:, 0] = rng.poisson(lam)
    counts[:, 1] = rng.poisson(2.2 * lam)
    when = np.maximum(week_start(week), s[parent])
    u = rng.random(parent.size)
    feat = top[parent, (u > 0.6).astype(np.int64) + (u > 0.9)]
    x_live = req_sub[parent] & (when >= INTEGRATION_X_RELEASE) & (u < 0.5)
    feat = np.where(x_live, USED_FEATURES.index("integration_x"), feat)
    flat = counts.reshape(-1)
    keep = np.flatnonzero(flat)
    pair = keep >> 1
    etype = keep & 1

    # feature requests
    rq = np.nonzero(requested > 0)[0]
    last = np.where(subs.cancel[rq] != NA, subs.cancel[rq], e[rq]) - 2 * DAY
    lo = np.where(req_sub[rq], np.maximum(s[rq], REQUESTS_FROM), np.maximum(s[rq], last - 90 * DAY))
    hi = np.where(req_sub[rq], np.minimum(last, REQUESTS_UNTIL), last)
    shown = (hi > lo) & (req_sub[rq] | (rng.random(rq.size) < 0.6))
    rq, lo, hi = rq[shown], lo[shown], hi[shown]
    r_time = lo + (rng.random(rq.size) * (hi - lo)).astype(np.int64)
    again = rng.random(rq.size) < np.where(req_sub[rq], 0.35, 0.1)
    r2 = r_time + (rng.uniform(10, 60, rq.size) * DAY).astype(np.int64)
    again &= r2 <= hi
    req_rows = np.concatenate([rq, rq[again]])
    req_time = np.concatenate([r_time, r2[again]])
    ro = np.lexsort((req_rows, req_time))
    req_rows, req_time = req_rows[ro], req_time[ro]
    source = take(("in_app", "support", "community"), choice(rng, req_rows.size, [0.6, 0.3, 0.1]))

    w_rows, r_rows = keep.size, req_rows.size
    r = w_rows + r_rows
    sub_of = np.concatenate([parent[pair], req_rows])
    return build_table(get_table("product_events"), r, {
        "event_id": ids("evt_", np.arange(1, r + 1), digits_width(max(r, 1), 8)),
        "customer_id": customer_id.take(pa.array(subs.cust[sub_of])),
        "occurred_at": np.concatenate([when[pair], req_time]),
        "event_type": take(("login", "feature_used", "feature_requested"),
                           np.concatenate([etype, np.full(r_rows, 2)])),
        "feature": pa.concat_arrays([take(USED_FEATURES, feat[pair], mask=etype == 0),
                                     take(FEATURES, requested[req_rows])]),
        "count": np.concatenate([flat[keep], np.ones(r_rows, dtype=np.int64)]),
        "properties": pa.concat_arrays([pa.nulls(w_rows, pa.string()), join('{"source": "', source, '"}')]),
    })


def _tickets(ctx: Ctx, subs: Subs, inv: dict, requested: np.ndarray, req_sub: np.ndarray, people, H: int) -> pa.Table:
    rng = ctx.rng("tickets")
    m = subs.cust.size
    s = subs.started
    e = np.where((subs.end != NA) & (subs.end <= H), subs.end, H)
    life = np.maximum(e - s, HOUR)
    topics = TICKET_SUBJECTS
    T = {name: i for i, name in enumerate(topics)}
    groups = []  # (sub index, opened, topic, unhappy)

    # everyday tickets
    n_base = np.minimum(rng.poisson(0.12 + 0.03 * life / (30 * DAY)), 8)
    p, _ = expand(n_base)
    opened = s[p] + (rng.random(p.size) * life[p]).astype(np.int64)
    topic = np.asarray([T[x] for x in ("how_to", "billing", "bug", "integration", "account", "feature_request")])[
        choice(rng, p.size, [0.3, 0.17, 0.2, 0.1, 0.15, 0.08])]
    groups.append((p, opened, topic, np.zeros(p.size, dtype=bool)))

    cancel = np.where(subs.cancel != NA, subs.cancel, e)
    # support churners: several slow, unresolved or badly rated tickets before leaving
    sup = np.nonzero(subs.reason == R_SUPPORT)[0]
    n_sup = 1 + rng.poisson(1.5, sup.size)
    p, _ = expand(n_sup)
    p = sup[p]
    lo = np.maximum(s[p], cancel[p] - 45 * DAY)
    opened = lo + (rng.random(p.size) * np.maximum(cancel[p] - DAY - lo, HOUR)).astype(np.int64)
    topic = np.asarray([T[x] for x in ("bug", "billing", "how_to", "account")])[
        choice(rng, p.size, [0.4, 0.2, 0.2, 0.2])]
    groups.append((p, opened, topic, np.ones(p.size, dtype=bool)))
    # usability churners: a how-to question shortly before
    us = np.nonzero((subs.reason == R_USABILITY) & (rng.random(m) < 0.35))[0]
    lo = np.maximum(s[us], cancel[us] - 30 * DAY)
    opened = lo + (rng.random(us.size) * np.maximum(cancel[us] - lo, HOUR)).astype(np.int64)
    groups.append((us, opened, np.full(us.size, T["how_to"]), np.zeros(us.size, dtype=bool)))
    # Integration X requesters: a feature request ticket
    rq = np.nonzero(req_sub & (rng.random(m) < 0.3) & (np.maximum(s, REQUESTS_FROM) < np.minimum(e, REQUESTS_UNTIL)))[0]
    lo = np.maximum(s[rq], REQUESTS_FROM)
    hi = np.minimum(e[rq], REQUESTS_UNTIL)
    opened = lo + (rng.random(rq.size) * (hi - lo)).astype(np.int64)
    groups.append((rq, opened, np.full(rq.size, T["feature_request"]), np.zeros(rq.size, dtype=bool)))
    # payment trouble after a failed renewal
    fi = np.nonzero((inv["kind"] >= 1) & (rng.random(inv["kind"].size) < 0.15))[0]
    opened = inv["first_at"][fi] + (rng.uniform(0.05, 6.0, fi.size) * DAY).astype(np.int64)
    groups.append((inv["parent"][fi], opened, np.full(fi.size, T["payment"]), np.zeros(fi.size, dtype=bool)))

    sub_rows = np.concatenate([g[0] for g in groups])
    opened = np.concatenate([g[1] for g in groups])
    topic = np.concatenate([g[2] for g in groups])
    unhappy = np.concatenate([g[3] for g in groups])
    ok = (opened <= H) & (opened >= s[sub_rows])
    sub_rows, opened, topic, unhappy = sub_rows[ok], opened[ok], topic[ok], unhappy[ok]
    order = np.lexsort((sub_rows, opened))
    sub_rows, opened, topic, unhappy = sub_rows[order], opened[order], topic[order], unhappy[order]
    return ticket_table(rng, opened, topic, unhappy, subs.cust[sub_rows], requested[sub_rows], people, H)


SAAS_TEXTS = TextPool(SAAS_REASON_TEXTS, SAAS_COMPETITORS)


def _surveys(ctx: Ctx, subs: Subs, at_risk: np.ndarray, requested: np.ndarray, people, status: np.ndarray, H: int):
    rng = ctx.rng("surveys")
    m = subs.cust.size
    lang = people.locale[subs.cust]
    voluntary = ((subs.outcome == 1) | (subs.outcome == 3)) & (subs.cancel != NA) & (subs.cancel <= H)
    reason = np.where(voluntary, subs.reason, 0)
    # stated code: mapped from the true reason, with ~10% noise to a different code
    rr = np.clip(reason, 0, 6)
    code = choice_rows(rng, STATED_GIVEN_REASON, rr)
    noisy = rng.random(m) < 0.10
    code = np.where(noisy, (code + 1 + rng.integers(0, 7, m)) % 8, code)
    # which channel carries the stated reason
    group = choice(rng, m, [0.40, 0.30, 0.10, 0.20])  # code only, survey only, both, neither
    has_code = voluntary & ((group == 0) | (group == 2))
    has_survey = voluntary & ((group == 1) | (group == 2))
    # free text follows the true reason (5% about something else)
    text_reason = np.where(rng.random(m) < 0.05, 1 + rng.integers(0, 6, m), np.clip(reason, 1, 6))
    text_feature = np.where(text_reason == R_FEATURE, np.where(requested > 0, requested, 1 + rng.integers(0, 6, m)), 0)
    text = SAAS_TEXTS.draw(rng, text_reason - 1, lang, text_feature)
    involuntary = (subs.outcome == 2) & (subs.cancel != NA) & (subs.cancel <= H)
    with_comment = has_code & (rng.random(m) < 0.5)
    cancel_code = take(CANCEL_CODES, np.where(involuntary, CODE_PAYMENT_FAILED, code), mask=~(has_code | involuntary))
    cancel_text = pc.if_else(pa.array(with_comment), text, pa.scalar(None, pa.string()))
    # exit survey rows
    responded = subs.cancel + (rng.uniform(0.01, 3.0, m) * DAY).astype(np.int64)
    answered = has_survey & (responded <= H)
    ex = np.nonzero(answered)[0]
    comment = ex[rng.random(ex.size) < 0.8]
    stated = np.where(has_code | answered, code, -1)
    stated = np.where(involuntary, CODE_PAYMENT_FAILED, stated)
    wrote = with_comment.copy()
    wrote[comment] = True
    text_label = np.where(wrote, text_reason, 0)  # the reason the customer's free text expresses
    back = ex[rng.random(ex.size) < 0.5]
    back_choice = np.where(rng.random(back.size) < 0.15, rng.integers(0, 6, back.size),
                           np.clip(subs.reason[back], 1, 6) - 1)
    # NPS from paying customers, lower when decaying or unhappy with support
    npi = np.nonzero((subs.K > 0) & (rng.random(m) < 0.06))[0]
    e = np.where((subs.end != NA) & (subs.end <= H), subs.end, H)
    nps_at = subs.p0[npi] + (rng.random(npi.size) * np.maximum(e[npi] - subs.p0[npi], HOUR)).astype(np.int64)
    mu = np.where(at_risk[npi] | (subs.reason[npi] == R_SUPPORT) | (subs.reason[npi] == R_USABILITY), 5.0,
                  np.where(subs.outcome[npi] > 0, 7.0, 8.4))
    score = np.clip(np.rint(rng.normal(mu, 1.6)), 0, 10).astype(np.int64)
    nps_ok = nps_at <= H
    npi, nps_at, score = npi[nps_ok], nps_at[nps_ok], score[nps_ok]

    q_sub = np.concatenate([ex, comment, back, npi])
    q_time = np.concatenate([responded[ex], responded[comment] + 30, responded[back] + 60, nps_at])
    q_kind = np.concatenate([np.zeros(ex.size, np.int64), np.ones(comment.size, np.int64),
                             np.full(back.size, 2), np.full(npi.size, 3)])
    choice_col = pa.concat_arrays([take(CANCEL_CODES, code[ex]), pa.nulls(comment.size, pa.string()),
                                   take(RETURN_CHOICES, back_choice), pa.nulls(npi.size, pa.string())])
    text_col = pa.concat_arrays([pa.nulls(ex.size, pa.string()), text.take(pa.array(comment)),
                                 pa.nulls(back.size + npi.size, pa.string())])
    score_col = np.concatenate([np.zeros(ex.size + comment.size + back.size, np.int64), score])
    order = np.lexsort((q_kind, q_time))
    r = order.size
    table = build_table(get_table("survey_responses"), r, {
        "response_id": ids("sr_", np.arange(1, r + 1), digits_width(max(r, 1))),
        "customer_id": people.customer_id.take(pa.array(subs.cust[q_sub[order]])),
        "responded_at": q_time[order],
        "survey": take(("exit", "exit", "exit", "nps"), q_kind[order]),
        "question_id": take(("main_reason", "comment", "would_return_if", "nps"), q_kind[order]),
        "choice": choice_col.take(pa.array(order)),
        "text": text_col.take(pa.array(order)),
        "score": (score_col[order], q_kind[order] != 3),
        "language": take(LANGUAGES, lang[q_sub[order]]),
    })
    return stated, text_label, table, cancel_code, cancel_text


def _checkouts(ctx: Ctx, subs: Subs, role: np.ndarray, t_sign: np.ndarray, people, H: int):
    rng = ctx.rng("checkouts")
    n = role.size
    m = subs.cust.size
    # completed checkout for every subscription
    dur = rng.integers(2 * MINUTE, 25 * MINUTE, m)
    c_start = subs.started - dur
    trial = subs.trial_start != NA
    c_amount = np.where(trial, 0, price(subs.tier0, subs.started))
    rows = [(subs.cust, c_start, np.full(m, 0), c_amount, subs.tier0, np.full(m, -1), subs.started)]
    # a declined attempt before some first subscriptions
    dec = np.nonzero(~subs.second & (rng.random(m) < 0.06))[0]
    d_start = c_start[dec] - rng.integers(5 * MINUTE, 2 * HOUR, dec.size)
    d_code = choice(rng, dec.size, [0.3, 0.2, 0.2, 0.15, 0.15])
    codes = np.array([DECLINE_CODES.index(c) for c in
                      ("insufficient_funds", "incorrect_number", "do_not_honor", "expired_card", "generic_decline")])
    rows.append((subs.cust[dec], d_start, np.full(dec.size, 2), c_amount[dec], subs.tier0[dec], codes[d_code],
                 np.full(dec.size, NA)))
    # prospects: abandoned (email given, never finished) or declined, and never came back
    tier_p = choice(rng, n, TIER_WEIGHTS)
    ab = np.nonzero(role == 0)[0]
    again = ab[rng.random(ab.size) < 0.25]
    again_at = t_sign[again] + (rng.uniform(1, 10, again.size) * DAY).astype(np.int64)
    ok = again_at <= H
    ab_rows = np.concatenate([ab, again[ok]])
    ab_at = np.concatenate([t_sign[ab], again_at[ok]])
    rows.append((ab_rows, ab_at, np.full(ab_rows.size, 1), price(tier_p[ab_rows], ab_at), tier_p[ab_rows],
                 np.full(ab_rows.size, -1), np.full(ab_rows.size, NA)))
    de = np.nonzero(role == 1)[0]
    twice = de[rng.random(de.size) < 0.3]
    twice_at = t_sign[twice] + rng.integers(2 * MINUTE, 40 * MINUTE, twice.size)
    ok = twice_at <= H
    de_rows = np.concatenate([de, twice[ok]])
    de_at = np.concatenate([t_sign[de], twice_at[ok]])
    de_code = np.where(rng.random(de_rows.size) < 0.6, choice(rng, de_rows.size, SOFT_WEIGHTS),
                       len(SOFT_CODES) + choice(rng, de_rows.size, HARD_WEIGHTS))
    rows.append((de_rows, de_at, np.full(de_rows.size, 2), price(tier_p[de_rows], de_at), tier_p[de_rows],
                 de_code, np.full(de_rows.size, NA)))

    cust = np.concatenate([x[0] for x in rows])
    start = np.concatenate([x[1] for x in rows])
    status = np.concatenate([x[2] for x in rows])
    amount = np.concatenate([x[3] for x in rows])
    tier = np.concatenate([x[4] for x in rows])
    code = np.concatenate([x[5] for x in rows])
    done = np.concatenate([x[6] for x in rows])
    order = np.lexsort((cust, start))
    cust, start, status, amount, tier, code, done = (a[order] for a in (cust, start, status, amount, tier, code,
                                                                          done))
    r = cust.size
    created = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(created, cust, start)
    missing = created == np.iinfo(np.int64).max
    created = np.where(missing, t_sign, created)
    table = build_table(get_table("checkouts"), r, {
        "checkout_id": ids("cs_", np.arange(1, r + 1), digits_width(max(r, 1), 7)),
        "customer_id": people.customer_id.take(pa.array(cust)),
        "email": people.email.take(pa.array(cust)),
        "started_at": start,
        "status": take(("completed", "abandoned", "incomplete"), status),
        "amount": amount,
        "currency": CURRENCY,
        "plan_id": take(PLAN_IDS, tier),
        "items_count": np.ones(r, dtype=np.int64),
        "decline_code": take(DECLINE_CODES, np.maximum(code, 0), mask=code < 0),
        "completed_at": done,
    })
    return table, created


def _releases() -> pa.Table:
    r = len(RELEASES)
    return build_table(get_table("releases"), r, {
        "release_id": pa.array([f"rel_{i + 1:03d}" for i in range(r)], type=pa.string()),
        "released_at": np.array([seconds(dt.datetime.fromisoformat(d)) + 16 * HOUR for d, *_ in RELEASES]),
        "title": pa.array([x[1] for x in RELEASES], type=pa.string()),
        "feature": pa.array([x[2] for x in RELEASES], type=pa.string()),
        "kind": pa.array([x[3] for x in RELEASES], type=pa.string()),
        "description": pa.array([x[4] for x in RELEASES], type=pa.string()),
    })


def _truth(ctx: Ctx, subs: Subs, status, mrr, inv, role, t_sign, requested, requester_c, at_risk, expiring_soon,
           latest_of, stated, text_label, people, T) -> tuple[pa.Table, dict]:
    H = ctx.horizon
    n = role.size
    has = latest_of >= 0
    L = np.maximum(latest_of, 0)
    st = np.where(has, status[L], -1)
    churned = has & (st == 3)
    churned_at = np.where(churned, subs.end[L], NA)
    reason = np.where(has & (subs.cancel[L] != NA) & (subs.cancel[L] <= H) & (subs.outcome[L] > 0), subs.reason[L], 0)
    # lifecycle
    lifecycle = np.full(n, 0, dtype=np.int64)
    LIFE = ("prospect_abandoned", "prospect_declined", "trialing", "trial_lost", "active", "past_due", "churned")
    lifecycle[role == 0] = 0
    lifecycle[role == 1] = 1
    lifecycle[has & (st == 0)] = 2
    lifecycle[has & (st == 3) & (subs.outcome[L] == 3)] = 3
    lifecycle[has & (st == 1)] = 4
    lifecycle[has & (st == 2)] = 5
    lifecycle[has & (st == 3) & (subs.outcome[L] != 3)] = 6
    # p_return for lost customers
    lost = churned | (role < 2)
    p = {f"p_return_{o}": np.full(n, np.nan) for o in truth.OFFERS}
    ci = np.nonzero(churned)[0]
    si = L[ci]
    feat = requested[si]
    shipped = np.zeros(ci.size, dtype=bool)
    for key, at in RELEASE_AT.items():
        if key in FEATURES:
            shipped |= (feat == FEATURES.index(key)) & (at <= H)
    last_inv = last_row_of(inv["parent"], subs.cust.size)
    li = last_inv[si]
    hard = (li >= 0) & (inv["kind"][np.maximum(li, 0)] == 4)
    paid_months = np.bincount(subs.cust[subs.K > 0], weights=subs.K[subs.K > 0], minlength=n)
    got = truth.saas_p_return(subs.reason[si], subs.tier1[si], paid_months[ci], _pct(subs.engagement)[si],
                              (H - churned_at[ci]) / (30.44 * DAY), shipped, hard, subs.outcome[si] == 3)
    for key, values in got.items():
        p[key][ci] = values
    pi = np.nonzero(role < 2)[0]
    got = truth.prospect_p_return(role[pi] == 1, (H - t_sign[pi]) / (30.44 * DAY))
    for key, values in got.items():
        p[key][pi] = values

    req_feature = np.where(has, requested[L], 0)
    # customers who asked for Integration X keep that label even after reactivation
    req_feature = np.where(requester_c, F_INTEGRATION_X, req_feature)
    last_mrr = np.zeros(n, dtype=np.int64)
    last_mrr[has] = mrr[L[has]]
    reactivated = np.zeros(n, dtype=bool)
    reactivated[subs.cust[subs.second]] = True
    stated_c = np.where(has & (reason > 0), stated[L], -1)
    comment_reason = np.where(has & (reason > 0), text_label[L], 0)
    # the churn before a reactivation (its survey answers predate the comeback)
    first_of = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_of, subs.cust, np.arange(subs.cust.size))
    F = np.where(reactivated, first_of, 0)
    prev_reason = np.where(reactivated, subs.reason[F], 0)
    prev_end = np.where(reactivated, subs.end[F], NA)
    prev_comment = np.where(reactivated, text_label[F], 0)
    columns = {
        "customer_id": people.customer_id,
        "churned": pa.array(churned),
        "churned_at": _ts(np.where(churned, churned_at, NA)),
        "true_reason": take(("",) + REASONS, reason, mask=reason == 0),
        "persona": pa.nulls(n, pa.string()),
        "requested_feature": take(FEATURES, req_feature, mask=req_feature == 0),
    }
    for key in p:
        columns[key] = pa.array(p[key], mask=~lost)
    columns.update({
        "lifecycle": take(LIFE, lifecycle),
        "stated_reason": take(CANCEL_CODES, np.maximum(stated_c, 0), mask=stated_c < 0),
        "plan_id": take(PLAN_IDS, np.where(has, subs.tier1[L], 0), mask=~has),
        "mrr": pa.array(last_mrr),
        "paid_months": pa.array(paid_months.astype(np.int64)),
        "reactivated": pa.array(reactivated),
        "engagement_decaying": pa.array(np.where(has, at_risk[L], False)),
        "card_expiring_soon": pa.array(expiring_soon),
        "cancel_scheduled": pa.array(has & (st == 1) & (subs.outcome[L] == 1)),
        "comment_reason": take(("",) + REASONS, comment_reason, mask=comment_reason == 0),
        "reactivated_at": _ts(np.where(reactivated, subs.started[L], NA)),
        "previous_reason": take(("",) + REASONS, prev_reason, mask=prev_reason == 0),
        "previous_churned_at": _ts(prev_end),
        "previous_comment_reason": take(("",) + REASONS, prev_comment, mask=prev_comment == 0),
    })
    gt = pa.table(columns)

    # ---- summary facts
    paid_churn = churned & (subs.outcome[L] != 3)
    n_churn = int(churned.sum())
    invol = int((churned & (reason == R_INVOLUNTARY)).sum())
    mix = {name: int((churned & (reason == i + 1)).sum()) for i, name in enumerate(REASONS)}
    # price-reason churn around the increase, over all subscription endings (not only latest)
    ended = (subs.end != NA) & (subs.end <= H) & (subs.outcome > 0)
    def window(lo_month, hi_month, which):
        lo = seconds(dt.date(*lo_month, 1))
        hi = seconds(dt.date(*hi_month, 1))
        return int((ended & (subs.reason == which) & (subs.end >= lo) & (subs.end < hi)).sum())
    req_all = requester_c
    req_churned = req_all & churned
    in_h1 = req_churned & (churned_at >= H1_2025[0]) & (churned_at < H1_2025[1])
    all_end_reason = subs.reason[ended]
    facts = {
        "churned": n_churn,
        "churned_paid": int(paid_churn.sum()),
        "trial_not_converted": int((churned & (subs.outcome[L] == 3)).sum()),
        "involuntary_share_of_churn": round(invol / max(int(paid_churn.sum()), 1), 4),
        "involuntary_share_incl_trials": round(invol / max(n_churn, 1), 4),
        "reason_mix": mix,
        "subscription_endings_by_reason": {name: int((all_end_reason == i + 1).sum()) for i, name in
                                            enumerate(REASONS)},
        "stated_reason_matches_truth": _agreement(stated_c, reason),
        "reactivations": int(subs.second.sum()),
        "lifecycle": {name: int((lifecycle == i).sum()) for i, name in enumerate(LIFE)},
        "price_increase": {
            "announced_at": _iso(PRICE_ANNOUNCED), "effective_at": _iso(PRICE_EFFECTIVE),
            "plans": list(PLAN_IDS[:2]),
            "price_reason_churn_jul_sep_2024": window((2024, 7), (2024, 10), R_PRICE),
            "price_reason_churn_oct_dec_2024": window((2024, 10), (2025, 1), R_PRICE),
            "subscriptions_increased": int((T["subscription_changes"].column("change_type").to_numpy(
                zero_copy_only=False) == "price_increase").sum()),
        },
        "integration_x": {
            "requesters": int(req_all.sum()), "requesters_churned": int(req_churned.sum()),
            "requesters_churned_h1_2025": int(in_h1.sum()), "released_at": _iso(INTEGRATION_X_RELEASE),
        },
        "trial_lost_citing_complexity": int((churned & (subs.outcome[L] == 3) &
                                             (stated_c == CANCEL_CODES.index("too_complex"))).sum()),
        "failed_payments_recovered": int((np.isin(inv["kind"], (1, 2)) & (inv["paid_at"] != NA)).sum()),
        "failed_payments_lost": int(((inv["kind"] >= 3) & (inv["status"] == 3)).sum()),
        "cards_expiring_1_3_months": int(expiring_soon.sum()),
        "at_risk_active": int(at_risk.sum()),
        "lost_mrr": int(last_mrr[paid_churn].sum()),
        "active_mrr": int(last_mrr[has & np.isin(st, (1, 2))].sum()),
    }
    return gt, facts


def _ts(sec: np.ndarray) -> pa.Array:
    sec = np.asarray(sec, dtype=np.int64)
    return pa.array(np.where(sec == NA, 0, sec) * 1_000_000, mask=sec == NA).view(pa.timestamp("us", tz="UTC"))


def _agreement(stated_c: np.ndarray, reason: np.ndarray) -> float | None:
    back = np.array([R_PRICE, R_FEATURE, R_USABILITY, R_SUPPORT, R_COMPETITOR, R_OTHER, R_USABILITY, R_OTHER,
                     R_INVOLUNTARY])
    ok = (stated_c >= 0) & (reason > 0) & (reason != R_INVOLUNTARY)
    if not ok.any():
        return None
    return round(float((back[stated_c[ok]] == reason[ok]).mean()), 4)


def _iso(sec: int) -> str:
    return dt.datetime.fromtimestamp(sec, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
