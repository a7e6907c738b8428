"""What the campaigns read from the history store (Ibis, so any history backend works).

* :func:`recent_events` - the facts campaigns react to, as customer events: a subscription was
  canceled, a checkout abandoned (email given, never finished) or failed (card declined), a
  payment failed, a customer returned (a paying spell that starts after an earlier one ended), a
  purchase (order), and releases that shipped a feature the customer had asked for. Each event
  has a stable ``event_id`` so copying them into the state store twice changes nothing.
* :func:`merge_details` - per-customer merge data for messages: plan name, features used, past
  purchases, what shipped while they were away, items of an open checkout.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Iterable

import ibis
import pyarrow as pa

EVENT_SOURCES = ("subscription_canceled", "checkout_abandoned", "checkout_failed", "payment_failed", "returned",
                 "purchased", "release_shipped")


def _naive(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def _has(con, name: str) -> bool:
    return name in con.list_tables()


def _rows(expr) -> list[dict]:
    table: pa.Table = expr.to_pyarrow()
    return table.to_pylist()


def recent_events(con, since: dt.datetime, until: dt.datetime,
                  requested: dict[tuple[str, str], list[str]] | None = None) -> list[dict]:
    """Events with ``since <= occurred_at <= until``: dicts with event_id, type, source, customer_id
    (the history id), occurred_at (aware UTC) and properties. ``requested`` maps (source, customer_id)
    to the feature keys the customer asked for (from the profile), for ``release_shipped``."""
    lo, hi = _naive(since), _naive(until)
    out: list[dict] = []
    if _has(con, "subscriptions"):
        s = con.table("subscriptions")
        ended = s.filter(s.canceled_at.notnull() & (s.canceled_at >= lo) & (s.canceled_at <= hi))
        for r in _rows(ended.select("source", "customer_id", "subscription_id", "canceled_at", "plan_id",
                                    "cancel_reason_code")):
            out.append(_event(f"sub:{r['source']}:{r['subscription_id']}:canceled", "subscription_canceled", r,
                              r["canceled_at"], {"subscription_id": r["subscription_id"], "plan_id": r["plan_id"],
                                                 "reason_code": r["cancel_reason_code"]}))
        # returned: a subscription that starts after an earlier one of the same customer ended
        prev = s.select(p_source=s.source, p_customer=s.customer_id, p_ended=s.ended_at)
        started = s.filter((s.started_at >= lo) & (s.started_at <= hi))
        joined = started.join(prev, [started.source == prev.p_source, started.customer_id == prev.p_customer,
                                     prev.p_ended.notnull(), prev.p_ended <= started.started_at])
        back = joined.group_by(["source", "customer_id", "subscription_id", "started_at", "plan_id"]).aggregate(
            last_ended=joined.p_ended.max())
        for r in _rows(back):
            out.append(_event(f"sub:{r['source']}:{r['subscription_id']}:returned", "returned", r, r["started_at"],
                              {"subscription_id": r["subscription_id"], "plan_id": r["plan_id"],
                               "away_since": _iso(r["last_ended"])}))
    if _has(con, "checkouts"):
        c = con.table("checkouts")
        recent = c.filter(c.customer_id.notnull() & c.status.isin(["abandoned", "incomplete"]) &
                          (c.started_at >= lo) & (c.started_at <= hi))
        for r in _rows(recent.select("source", "customer_id", "checkout_id", "started_at", "status", "amount",
                                     "currency", "plan_id", "items_count", "decline_code")):
            kind = "checkout_abandoned" if r["status"] == "abandoned" else "checkout_failed"
            out.append(_event(f"checkout:{r['source']}:{r['checkout_id']}", kind, r, r["started_at"],
                              {"checkout_id": r["checkout_id"], "amount_minor": r["amount"], "currency": r["currency"],
                               "plan_id": r["plan_id"], "items_count": r["items_count"],
                               "decline_code": r["decline_code"]}))
        done = c.filter(c.customer_id.notnull() & (c.status == "completed") & (c.completed_at >= lo) &
                        (c.completed_at <= hi))
        for r in _rows(done.select("source", "customer_id", "checkout_id", "completed_at", "amount", "currency")):
            out.append(_event(f"checkout:{r['source']}:{r['checkout_id']}:completed", "purchased", r,
                              r["completed_at"], {"checkout_id": r["checkout_id"], "amount_minor": r["amount"],
                                                  "currency": r["currency"]}))
    if _has(con, "payment_attempts"):
        p = con.table("payment_attempts")
        failed = p.filter((p.status == "failed") & (p.attempted_at >= lo) & (p.attempted_at <= hi))
        for r in _rows(failed.select("source", "customer_id", "attempt_id", "attempted_at", "invoice_id",
                                     "decline_code", "amount", "currency")):
            out.append(_event(f"payment:{r['source']}:{r['attempt_id']}:failed", "payment_failed", r,
                              r["attempted_at"], {"invoice_id": r["invoice_id"], "decline_code": r["decline_code"],
                                                  "amount_minor": r["amount"], "currency": r["currency"]}))
    if _has(con, "orders"):
        o = con.table("orders")
        bought = o.filter((o.ordered_at >= lo) & (o.ordered_at <= hi) & (o.status != "canceled"))
        for r in _rows(bought.select("source", "customer_id", "order_id", "ordered_at", "total_amount", "currency")):
            out.append(_event(f"order:{r['source']}:{r['order_id']}", "purchased", r, r["ordered_at"],
                              {"order_id": r["order_id"], "amount_minor": r["total_amount"],
                               "currency": r["currency"]}))
    if requested and _has(con, "releases"):
        rel = con.table("releases")
        shipped = rel.filter(rel.feature.notnull() & (rel.released_at >= lo) & (rel.released_at <= hi))
        releases = _rows(shipped.select("source", "release_id", "released_at", "title", "feature", "kind"))
        by_feature: dict[str, list[dict]] = defaultdict(list)
        for r in releases:
            by_feature[r["feature"]].append(r)
        for (source, customer_id), features in requested.items():
            for feature in features or ():
                for r in by_feature.get(feature, ()):
                    row = {"source": source, "customer_id": customer_id}
                    out.append(_event(f"release:{r['source']}:{r['release_id']}:{source}:{customer_id}",
                                      "release_shipped", row, r["released_at"],
                                      {"release_id": r["release_id"], "feature": feature, "title": r["title"],
                                       "kind": r["kind"]}))
    return out


def _iso(value) -> str | None:
    return None if value is None else _aware(value).isoformat()


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def _event(event_id: str, kind: str, row: dict, at: dt.datetime, props: dict) -> dict:
    return {"event_id": event_id, "type": kind, "source": row["source"], "customer_id": row["customer_id"],
            "occurred_at": _aware(at), "properties": {k: v for k, v in props.items() if v is not None}}


def merge_details(con, customers: Iterable[tuple[str, str]], *, now: dt.datetime,
                  away_since: dict[tuple[str, str], dt.datetime] | None = None,
                  max_items: int = 5) -> dict[tuple[str, str], dict]:
    """(source, customer_id) -> {plan_name, features_used, past_purchases, shipped_while_away, checkout}."""
    keys = sorted(set(customers))
    out: dict[tuple[str, str], dict] = {k: {"plan_name": None, "features_used": [], "past_purchases": [],
                                            "shipped_while_away": [], "checkout": None} for k in keys}
    if not keys:
        return out
    wanted = ibis.memtable({"w_source": [k[0] for k in keys], "w_customer": [k[1] for k in keys]})

    def only(t):  # the rows of the wanted customers (a join: an IN list of thousands is slow to compile)
        j = t.join(wanted, [t.source == wanted.w_source, t.customer_id == wanted.w_customer])
        return j.select(*[j[c] for c in t.columns])

    hi = _naive(now)
    plans: dict[tuple[str, str], str] = {}
    if _has(con, "plans"):
        pl = con.table("plans")
        plans = {(r["source"], r["plan_id"]): r["name"] for r in _rows(pl.select("source", "plan_id", "name"))}
    if _has(con, "customers"):
        c = con.table("customers")
        for r in _rows(only(c).select("source", "customer_id", "plan_id")):
            key = (r["source"], r["customer_id"])
            if key in out and r["plan_id"]:
                out[key]["plan_name"] = plans.get((r["source"], r["plan_id"]), r["plan_id"])
    if _has(con, "subscriptions"):
        s = con.table("subscriptions")
        s = only(s)
        last = s.filter(s.started_at <= hi)
        latest = last.group_by(["source", "customer_id"]).aggregate(started=last.started_at.max())
        joined = last.join(latest, [last.source == latest.source, last.customer_id == latest.customer_id,
                                    last.started_at == latest.started])
        for r in _rows(joined.select(last.source, last.customer_id, last.plan_id)):
            key = (r["source"], r["customer_id"])
            if key in out and r["plan_id"]:
                out[key]["plan_name"] = plans.get((r["source"], r["plan_id"]), r["plan_id"])
    if _has(con, "product_events"):
        e = con.table("product_events")
        e = only(e.filter((e.event_type == "feature_used") & e.feature.notnull() & (e.occurred_at <= hi)))
        used = e
        counts = used.group_by(["source", "customer_id", "feature"]).aggregate(n=used.count())
        ranked: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
        for r in _rows(counts):
            ranked[(r["source"], r["customer_id"])].append((-int(r["n"]), r["feature"]))
        for key, items in ranked.items():
            if key in out:
                out[key]["features_used"] = [f for _n, f in sorted(items)[:max_items]]
    if _has(con, "orders"):
        o = con.table("orders")
        orders = only(o.filter(o.ordered_at <= hi)).select(
            "source", "customer_id", "order_id", "ordered_at", "total_amount", "currency")
        names: dict[tuple[str, str], str] = {}
        if _has(con, "order_items"):
            it = con.table("order_items")
            first = it.filter(it.line_number == 1)
            joined = orders.join(first, [orders.source == first.source, orders.order_id == first.order_id])
            for r in _rows(joined.select(orders.source, orders.order_id, first.product_name)):
                names[(r["source"], r["order_id"])] = r["product_name"]
        by: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for r in _rows(orders):
            by[(r["source"], r["customer_id"])].append(r)
        for key, rows in by.items():
            if key not in out:
                continue
            rows.sort(key=lambda r: r["ordered_at"], reverse=True)
            out[key]["past_purchases"] = [{"name": names.get((r["source"], r["order_id"])) or r["order_id"],
                                           "date": _aware(r["ordered_at"]).date().isoformat(),
                                           "amount_minor": int(r["total_amount"] or 0), "currency": r["currency"]}
                                          for r in rows[:max_items]]
    if away_since and _has(con, "releases"):
        rel = con.table("releases")
        releases = sorted(_rows(rel.filter(rel.released_at <= hi).select("released_at", "title", "feature",
                                                                          "kind")),
                          key=lambda r: r["released_at"])
        for key, since in away_since.items():
            if key in out and since is not None:
                lo = _naive(since)
                out[key]["shipped_while_away"] = [
                    {"name": r["title"], "kind": r["kind"], "feature": r["feature"],
                     "shipped_at": _aware(r["released_at"]).date().isoformat()}
                    for r in releases if r["released_at"] >= lo][-max_items:]
    return out


def releases_by_feature(con) -> dict[str, dict]:
    """feature key -> its first release {name, shipped_at}."""
    if not _has(con, "releases"):
        return {}
    rel = con.table("releases")
    found: dict[str, dict] = {}
    for r in sorted(_rows(rel.filter(rel.feature.notnull()).select("feature", "title", "released_at")),
                    key=lambda r: r["released_at"]):
        found.setdefault(r["feature"], {"name": r["title"], "shipped_at": _aware(r["released_at"]).date().isoformat()})
    return found


__all__ = ["EVENT_SOURCES", "merge_details", "recent_events", "releases_by_feature"]
