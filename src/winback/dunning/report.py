"""What dunning recovered: failed invoices, recoveries by how and by decline category, time to
recovery, the charges made, the notices sent (issue 7, item 5).

:func:`dunning_report` reads the state store only and returns a JSON-serialisable dict. The scope is
the failed invoices (``dunning_cases`` with ``first_failed_at`` set) whose first failure lies in
``[since, until)`` (default: every one); their attempts are the charges counted. Notices are counted
by the time they were sent (``outbox_messages.sent_at`` in ``[since, until)``).

Definitions:

* **failed**: every case in scope; **open**: still worked on (``amount_at_risk``, ``mrr_at_risk``);
  **recovered**: paid after failing, split by ``recovered_by`` (retry | customer_update |
  card_updater | external), each with its share of the recovered invoices; **recovered MRR** = the
  sum of the recovered cases' subscription MRR (``dunning_cases.mrr_minor``, the MRR when the case
  opened; a subscription recovered twice counts twice); **lost**: ``exhausted`` (retries and grace
  period over: the subscription was canceled or paused), ``mrr`` = MRR lost; **closed**: voided or
  written off at the provider (closed elsewhere).
* **recovery rate** = recovered / failed, with the Wilson score 95% interval (Wilson 1927,
  JASA 22:209-212; Newcombe 1998, Statistics in Medicine 17:857-872, method 3). ``rate_of_resolved``
  = recovered / (failed - open) leaves the cases still being worked on out. Given overall, by the
  category of the first decline (hard | soft | gateway) and by the first decline code (top codes).
* **time to recovery**: ``recovered_at - first_failed_at`` in days over the recovered cases; median,
  75th and 90th percentiles (linear interpolation, NumPy's default); the histogram counts whole days
  elapsed (same day = less than 24 hours).
* **attempts**: a charge is an attempt row that is not ``skipped``; retries are charges other than the
  provider's own first one (``trigger`` initial); a success rate is succeeded / decided (succeeded,
  failed or error; ``started`` rows have no outcome yet). ``max_per_card_30d`` is the most charges
  on any one card in any 30 days (:func:`winback.dunning.policy.max_in_any_window`).
* **notices**: outbox messages handed to a channel (``sent`` or ``bounced``) with the dunning
  idempotency keys ``dunning:case:{case}:{step}`` / ``:final`` / ``:recovered`` and
  ``dunning:expiry:{provider}:{pm}:{YYYY-MM}:{days}``. A card counts as *updated after a reminder*
  when its payment method was last changed by the customer or the card updater within 30 days after
  a reminder for it was sent; ``card_updater_updates`` counts cards whose last change in the window
  came from the networks' automatic updater.
* **money**: integer minor units per currency, ``{"USD": {"amount_minor": 1234, "formatted":
  "$12.34"}}``; never added across currencies. Cases without a currency take
  ``[ingest] default_currency``.
* **weekly**: failed invoices per week of the first failure and recoveries per week of recovery
  (weeks start on Monday, UTC), every week between the first and the last present.

Everything is aggregated in SQL (GROUP BY) except the recovery durations and the per-card charge
times of cards that could exceed the best window count so far, which are fetched and walked.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import numpy as np
from sqlalchemy import Engine, and_, case, func, inspect, literal, or_, select

from winback.dunning.policy import CAP_WINDOW, CATEGORIES, max_in_any_window
from winback.kit.clock import as_utc
from winback.kit.db import make_engine
from winback.kit.money import Money
from winback.models.delivery import OutboxMessage
from winback.models.dunning import BillingPaymentMethod, DunningAttempt, DunningCase

RECOVERED_BY = ("retry", "customer_update", "card_updater", "external")
LOST_REASONS = ("canceled", "paused")
CLOSED_REASONS = ("voided", "uncollectible")
HISTOGRAM = (("same day", 0, 0), ("1-3 days", 1, 3), ("4-7 days", 4, 7), ("8-14 days", 8, 14), ("15+ days", 15, None))
TOP_CODES = 10
Z95 = 1.959963984540054  # the standard normal's 97.5th percentile
REMINDER_WINDOW = dt.timedelta(days=30)
SENT = ("sent", "bounced")
CHARGE_BATCH = 500


# ------------------------------------------------------------------------------------ small helpers

def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for ``successes / trials`` (95% by default); ``None`` when ``trials`` is 0.

    (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n); kept here because the experiment statistics
    (:mod:`winback.tracking.stats`) live in a later stage."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _rate(successes: int, trials: int) -> dict:
    ci = wilson_interval(successes, trials)
    return {"rate": successes / trials if trials else None, "ci_low": ci[0] if ci else None,
            "ci_high": ci[1] if ci else None}


def format_amount(amount_minor: int, currency: str) -> str:
    try:
        return Money(int(amount_minor), currency).format()
    except Exception:  # an unknown currency code in the data
        return f"{int(amount_minor)} minor units {currency}"


def _money(by_currency: dict[str, int], order: list[str]) -> dict:
    """``{currency: {amount_minor, formatted}}`` in the report's currency order (zeros left out,
    except that a figure with no amount at all still shows 0 in the main currency)."""
    out = {c: {"amount_minor": int(by_currency[c]), "formatted": format_amount(by_currency[c], c)}
           for c in order if by_currency.get(c)}
    if not out and order:
        out[order[0]] = {"amount_minor": 0, "formatted": format_amount(0, order[0])}
    return out


def money_text(amounts: dict) -> str:
    """One line for a money figure of the report: ``$12.34`` or ``$12.34 + €5.00`` (``-`` if empty)."""
    return " + ".join(v["formatted"] for v in amounts.values()) or "-"


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def _days_between(conn, start, end):
    if conn.dialect.name == "sqlite":
        return func.julianday(end) - func.julianday(start)
    return func.extract("epoch", end - start) / 86400.0


def _day(conn, column):
    """``YYYY-MM-DD`` (UTC) of a timestamp column on SQLite and PostgreSQL."""
    if conn.dialect.name == "sqlite":
        return func.date(column)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


def _monday(day: str) -> dt.date:
    d = dt.date.fromisoformat(day[:10])
    return d - dt.timedelta(days=d.weekday())


# ------------------------------------------------------------------------------------ the report

def dunning_report(settings, *, engine: Engine | None = None, now: dt.datetime | None = None,
                   since: dt.datetime | None = None, until: dt.datetime | None = None) -> dict:
    """The recovery report over failed invoices first failing in ``[since, until)`` (see the module
    docstring for every definition). Top-level keys: ``window``, ``currency``, ``currencies``,
    ``failed``, ``open``, ``recovered``, ``lost``, ``closed``, ``recovery_rate``, ``by_category``,
    ``by_decline_code``, ``time_to_recovery``, ``attempts``, ``notices``, ``weekly``."""
    now = as_utc(now) if now else settings.clock().now()
    since = as_utc(since) if since else None
    until = as_utc(until) if until else None
    own = engine is None
    engine = engine or make_engine(settings.resolved_state_url)
    try:
        ready = inspect(engine).has_table(DunningCase.__tablename__)
        with engine.connect() as conn:
            return _build(conn, settings, now, since, until, ready)
    finally:
        if own:
            engine.dispose()


def _scope(since, until):
    cond = [DunningCase.first_failed_at.is_not(None)]
    if since is not None:
        cond.append(DunningCase.first_failed_at >= since)
    if until is not None:
        cond.append(DunningCase.first_failed_at < until)
    return and_(*cond)


def _build(conn, settings, now, since, until, ready: bool) -> dict:
    default_currency = (settings.ingest.default_currency or "USD").upper()
    scope = _scope(since, until)
    groups = _case_groups(conn, scope, default_currency) if ready else []
    counts_by_currency: dict[str, int] = defaultdict(int)
    for g in groups:
        counts_by_currency[g["currency"]] += g["n"]
    order = sorted(counts_by_currency, key=lambda c: (-counts_by_currency[c], c)) or [default_currency]

    def total(rows, field="n"):
        return sum(int(r[field] or 0) for r in rows)

    def amounts(rows, field):
        acc: dict[str, int] = defaultdict(int)
        for r in rows:
            acc[r["currency"]] += int(r[field] or 0)
        return _money(acc, order)

    failed = groups
    open_ = [g for g in groups if g["status"] == "open"]
    recovered = [g for g in groups if g["status"] == "recovered"]
    lost = [g for g in groups if g["status"] == "exhausted"]
    closed = [g for g in groups if g["status"] == "closed"]
    n_failed, n_recovered, n_open = total(failed), total(recovered), total(open_)
    n_resolved = n_failed - n_open

    by_how = {}
    for how in RECOVERED_BY + ("other",):
        rows = [g for g in recovered if (g["recovered_by"] if g["recovered_by"] in RECOVERED_BY else "other") == how]
        if how == "other" and not rows:
            continue
        n = total(rows)
        by_how[how] = {"invoices": n, "share": n / n_recovered if n_recovered else None,
                       "amount": amounts(rows, "amount"), "mrr": amounts(rows, "mrr")}

    def reasons(rows, names):
        out = {name: total([r for r in rows if r["close_reason"] == name]) for name in names}
        other = total([r for r in rows if r["close_reason"] not in names])
        if other:
            out["other"] = other
        return out

    by_category = {}
    for cat in CATEGORIES + ("unknown",):
        rows = [g for g in groups if (g["category"] if g["category"] in CATEGORIES else "unknown") == cat]
        if cat == "unknown" and not rows:
            continue
        by_category[cat] = _outcome_counts(rows, total)
        by_category[cat]["recovered_mrr"] = amounts([r for r in rows if r["status"] == "recovered"], "mrr")

    report = {
        "window": {"since": _iso(since), "until": _iso(until), "now": _iso(now)},
        "currency": order[0],
        "currencies": order,
        "failed": {"invoices": n_failed, "amount": amounts(failed, "amount"), "mrr": amounts(failed, "mrr")},
        "open": {"invoices": n_open, "amount_at_risk": amounts(open_, "amount"), "mrr_at_risk": amounts(open_, "mrr"),
                 "waiting_for_new_card": total(open_, "needs_update")},
        "recovered": {"invoices": n_recovered, "amount": amounts(recovered, "amount"),
                      "mrr": amounts(recovered, "mrr"), "by": by_how},
        "lost": {"invoices": total(lost), "amount": amounts(lost, "amount"), "mrr": amounts(lost, "mrr"),
                 "by_reason": reasons(lost, LOST_REASONS)},
        "closed": {"invoices": total(closed), "amount": amounts(closed, "amount"),
                   "by_reason": reasons(closed, CLOSED_REASONS)},
        "recovery_rate": {"recovered": n_recovered, "failed": n_failed, "resolved": n_resolved,
                          **_rate(n_recovered, n_failed),
                          "rate_of_resolved": n_recovered / n_resolved if n_resolved else None},
        "by_category": by_category,
        "by_decline_code": _by_code(conn, scope) if ready else [],
        "time_to_recovery": _time_to_recovery(conn, scope) if ready else _time_to_recovery(None, None),
        "attempts": _attempts(conn, scope, settings) if ready else _attempts(None, None, settings),
        "notices": _notices(conn, since, until, ready),
        "weekly": _weekly(conn, scope) if ready else [],
    }
    return report


def _outcome_counts(rows: list[dict], total) -> dict:
    n = total(rows)
    rec = total([r for r in rows if r["status"] == "recovered"])
    opened = total([r for r in rows if r["status"] == "open"])
    return {"failed": n, "recovered": rec, "open": opened,
            "lost": total([r for r in rows if r["status"] == "exhausted"]),
            "closed": total([r for r in rows if r["status"] == "closed"]),
            **_rate(rec, n), "rate_of_resolved": rec / (n - opened) if n - opened else None}


def _case_groups(conn, scope, default_currency: str) -> list[dict]:
    c = DunningCase
    currency = func.upper(func.coalesce(c.currency, literal(default_currency)))
    cols = (c.status, c.recovered_by, c.close_reason, c.first_category)
    rows = conn.execute(
        select(*cols, currency.label("currency"), func.count().label("n"),
               func.coalesce(func.sum(c.amount_minor), 0).label("amount"),
               func.coalesce(func.sum(c.mrr_minor), 0).label("mrr"),
               func.sum(case((c.needs_update.is_(True), 1), else_=0)).label("needs_update"))
        .where(scope).group_by(*cols, currency)).mappings().all()
    return [{"status": r["status"], "recovered_by": r["recovered_by"], "close_reason": r["close_reason"],
             "category": r["first_category"], "currency": r["currency"], "n": int(r["n"]),
             "amount": int(r["amount"] or 0), "mrr": int(r["mrr"] or 0), "needs_update": int(r["needs_update"] or 0)}
            for r in rows]


def _by_code(conn, scope) -> list[dict]:
    c = DunningCase
    code = func.coalesce(c.first_decline_code, literal("unknown"))
    rows = conn.execute(select(code.label("code"), c.first_category, c.status, func.count().label("n"))
                        .where(scope).group_by(code, c.first_category, c.status)).all()
    acc: dict[str, dict] = {}
    for code_value, category, status, n in rows:
        entry = acc.setdefault(code_value, {"code": code_value, "categories": defaultdict(int), "rows": []})
        entry["categories"][category or "unknown"] += int(n)
        entry["rows"].append({"status": status, "n": int(n)})

    def total(rows, field="n"):
        return sum(r[field] for r in rows)

    out = []
    for entry in acc.values():
        cats = entry["categories"]
        out.append({"code": entry["code"], "category": max(cats, key=lambda k: (cats[k], k)),
                    **_outcome_counts(entry["rows"], total)})
    out.sort(key=lambda e: (-e["failed"], e["code"]))
    return out[:TOP_CODES]


def _time_to_recovery(conn, scope) -> dict:
    days: list[float] = []
    if conn is not None:
        c = DunningCase
        delta = _days_between(conn, c.first_failed_at, c.recovered_at)
        days = [max(0.0, float(d)) for (d,) in conn.execute(
            select(delta).where(scope, c.status == "recovered", c.recovered_at.is_not(None)))]
    arr = np.asarray(days, dtype=float)
    quant = (lambda q: float(np.percentile(arr, q))) if arr.size else (lambda q: None)
    whole = np.floor(arr + 1e-9) if arr.size else arr
    histogram = []
    for name, low, high in HISTOGRAM:
        mask = (whole >= low) & ((whole <= high) if high is not None else True)
        n = int(np.count_nonzero(mask)) if arr.size else 0
        histogram.append({"bucket": name, "invoices": n, "share": n / arr.size if arr.size else None})
    return {"recovered": int(arr.size), "median_days": quant(50), "p75_days": quant(75), "p90_days": quant(90),
            "mean_days": float(arr.mean()) if arr.size else None, "histogram": histogram}


def _attempts(conn, scope, settings) -> dict:
    cap = int(settings.dunning.max_attempts_per_card)
    empty = {"charges": 0, "retries": 0, "succeeded": 0, "skipped": 0, **_rate(0, 0), "by_number": [],
             "by_trigger": [], "max_per_card_30d": 0, "cap_per_card_30d": cap}
    if conn is None:
        return empty
    a, c = DunningAttempt, DunningCase
    rows = conn.execute(select(a.number, a.trigger, a.status, func.count().label("n"))
                        .select_from(a.__table__.join(c.__table__, a.case_id == c.id))
                        .where(scope).group_by(a.number, a.trigger, a.status)).all()
    if not rows:
        return empty

    def tally(pairs):
        out: dict = {}
        for key, status, n in pairs:
            e = out.setdefault(key, {"charges": 0, "succeeded": 0, "failed": 0, "error": 0, "started": 0})
            if status == "skipped":
                continue
            e["charges"] += n
            if status in ("succeeded", "failed", "error", "started"):
                e[status] += n
        for e in out.values():
            e.update(_rate(e["succeeded"], e["succeeded"] + e["failed"] + e["error"]))
        return out

    by_number = tally((int(num), st, int(n)) for num, _t, st, n in rows)
    by_trigger = tally((t, st, int(n)) for _num, t, st, n in rows)
    charges = sum(int(n) for _num, _t, st, n in rows if st != "skipped")
    retries = sum(int(n) for _num, t, st, n in rows if st != "skipped" and t != "initial")
    succeeded = sum(int(n) for _num, _t, st, n in rows if st == "succeeded")
    decided = sum(int(n) for _num, _t, st, n in rows if st in ("succeeded", "failed", "error"))
    return {
        "charges": charges, "retries": retries, "succeeded": succeeded,
        "skipped": sum(int(n) for _num, _t, st, n in rows if st == "skipped"),
        **_rate(succeeded, decided),
        "by_number": [{"number": k, "retry": k - 1, **v} for k, v in sorted(by_number.items()) if v["charges"]],
        "by_trigger": [{"trigger": k, **v} for k, v in sorted(by_trigger.items(), key=lambda kv: -kv[1]["charges"])
                       if v["charges"]],
        "max_per_card_30d": _max_per_card(conn, scope), "cap_per_card_30d": cap,
    }


def _max_per_card(conn, scope) -> int:
    """The most charges on one card in any 30 days. Cards are visited by their number of attempt rows
    (all of them: an upper bound that the covering card index counts quickly), most first, and only
    while a card could still beat the best window found; their charges in scope are then fetched."""
    a, c = DunningAttempt, DunningCase
    charged = and_(scope, a.card_key.is_not(None), a.status != "skipped")
    joined = a.__table__.join(c.__table__, a.case_id == c.id)
    if conn.execute(select(a.id).select_from(joined).where(charged).limit(1)).first() is None:
        return 0
    best, last = 1, None
    n = func.count()
    while True:  # pages of cards with more attempt rows than the best window so far (keyset pagination)
        having = [n > best]
        if last is not None:
            having.append(or_(n < last[1], and_(n == last[1], a.card_key > last[0])))
        batch = [(key, int(total)) for key, total in conn.execute(
            select(a.card_key, n).where(a.card_key.is_not(None)).group_by(a.card_key).having(*having)
            .order_by(n.desc(), a.card_key).limit(CHARGE_BATCH))]
        if not batch:
            return best
        last = batch[-1]
        times: dict[str, list[dt.datetime]] = defaultdict(list)
        for key, started_at in conn.execute(select(a.card_key, a.started_at).select_from(joined)
                                            .where(charged, a.card_key.in_([k for k, _ in batch]))):
            times[key].append(started_at)
        for key, total in batch:
            if total > best:
                best = max(best, max_in_any_window(times[key], CAP_WINDOW))


def _notices(conn, since, until, ready: bool) -> dict:
    out = {"failed_payment_sent": 0, "final_notices_sent": 0, "recovered_confirmations_sent": 0,
           "expiry_reminders_sent": 0, "cards_reminded": 0,
           "cards_updated_after_reminder": {"total": 0, "customer": 0, "card_updater": 0},
           "card_updater_updates": 0}
    if not ready:
        return out
    o = OutboxMessage
    window = [o.status.in_(SENT), o.sent_at.is_not(None)]
    if since is not None:
        window.append(o.sent_at >= since)
    if until is not None:
        window.append(o.sent_at < until)
    key = o.idempotency_key
    kind = case((key.like("dunning:expiry:%"), literal("expiry")),
                (key.like("dunning:case:%:recovered"), literal("recovered")),
                (key.like("dunning:case:%:final"), literal("final")),
                else_=literal("failed"))
    for k, n in conn.execute(select(kind, func.count())
                             .where(*window, or_(key.like("dunning:case:%"), key.like("dunning:expiry:%")))
                             .group_by(kind)).all():
        field = {"expiry": "expiry_reminders_sent", "recovered": "recovered_confirmations_sent",
                 "final": "final_notices_sent", "failed": "failed_payment_sent"}[k]
        out[field] += int(n)
    out["failed_payment_sent"] += out["final_notices_sent"]  # the last notice is a failed-payment e-mail too

    pm = BillingPaymentMethod
    changed_at = func.coalesce(pm.event_at, pm.updated_at)
    pm_window = [pm.updated_via == "card_updater"]
    if since is not None:
        pm_window.append(changed_at >= since)
    if until is not None:
        pm_window.append(changed_at < until)
    out["card_updater_updates"] = int(conn.execute(select(func.count()).select_from(pm).where(*pm_window))
                                      .scalar() or 0)
    if not out["expiry_reminders_sent"]:
        return out
    reminded: dict[tuple[str, str], list[dt.datetime]] = defaultdict(list)
    for k, sent_at in conn.execute(select(key, o.sent_at).where(*window, key.like("dunning:expiry:%"))):
        parsed = _parse_expiry_key(k)
        if parsed:
            reminded[parsed].append(sent_at)
    out["cards_reminded"] = len(reminded)
    if not reminded:
        return out
    first = min(t for times in reminded.values() for t in times)
    # a reminded card counts as updated when it was renewed itself (the card updater, an edit) or when
    # its customer added a new card within the window after the reminder
    owner = {(p, r): c for p, r, c in conn.execute(select(pm.provider, pm.external_id, pm.customer_ref).where(
        pm.external_id.in_(sorted({r for _p, r in reminded}))))}
    by_customer: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for card, customer in owner.items():
        if customer:
            by_customer[(card[0], customer)].append(card)
    counted: set[tuple[str, str]] = set()
    for provider, ref, customer, via, at in conn.execute(
            select(pm.provider, pm.external_id, pm.customer_ref, pm.updated_via, changed_at)
            .where(pm.updated_via.in_(("customer", "card_updater")), changed_at > first)):
        candidates = [(provider, ref)] if (provider, ref) in reminded else by_customer.get((provider, customer), [])
        for card in candidates:
            times = reminded.get(card)
            if card in counted or not times or at is None or not any(t < at <= t + REMINDER_WINDOW for t in times):
                continue
            counted.add(card)
            out["cards_updated_after_reminder"]["total"] += 1
            out["cards_updated_after_reminder"][via] += 1
    return out


def _parse_expiry_key(key: str) -> tuple[str, str] | None:
    """``dunning:expiry:{provider}:{pm_ref}:{YYYY-MM}:{days}`` -> (provider, pm_ref)."""
    rest = key[len("dunning:expiry:"):]
    head, sep, _tail = rest.rpartition(":")  # drop {days}
    head, sep2, _month = head.rpartition(":")  # drop {YYYY-MM}
    provider, sep3, ref = head.partition(":")
    if not (sep and sep2 and sep3 and provider and ref):
        return None
    return provider, ref


def _weekly(conn, scope) -> list[dict]:
    c = DunningCase
    failed_day = _day(conn, c.first_failed_at)
    recovered_day = _day(conn, c.recovered_at)
    weeks: dict[dt.date, dict] = defaultdict(lambda: {"failed": 0, "recovered": 0})
    for day, n in conn.execute(select(failed_day, func.count()).where(scope).group_by(failed_day)):
        weeks[_monday(day)]["failed"] += int(n)
    for day, n in conn.execute(select(recovered_day, func.count())
                               .where(scope, c.status == "recovered", c.recovered_at.is_not(None))
                               .group_by(recovered_day)):
        weeks[_monday(day)]["recovered"] += int(n)
    if not weeks:
        return []
    out, week, last = [], min(weeks), max(weeks)
    while week <= last:
        entry = weeks.get(week, {"failed": 0, "recovered": 0})
        out.append({"week": week.isoformat(), "failed": entry["failed"], "recovered": entry["recovered"]})
        week += dt.timedelta(days=7)
    return out
