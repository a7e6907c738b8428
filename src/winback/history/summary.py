"""A first look at a history store, written as Ibis expressions (runs on any Ibis backend)."""

from __future__ import annotations

import ibis


def overview(con: ibis.BaseBackend) -> dict:
    """Customers, subscriptions by status, active MRR, churn and its stated reasons, orders."""
    customers = con.table("customers")
    subs = con.table("subscriptions")
    result: dict = {"customers": int(customers.count().execute())}
    by_status = subs.group_by("status").aggregate(n=subs.count()).execute()
    result["subscriptions_by_status"] = {r.status: int(r.n) for r in by_status.itertuples()}
    active = subs.filter(subs.status.isin(["active", "past_due", "trialing"]) & subs.ended_at.isnull())
    mrr = active.group_by("currency").aggregate(mrr=active.mrr.sum()).execute()
    result["active_mrr_minor"] = {r.currency: int(r.mrr) for r in mrr.itertuples()}
    churned = subs.filter(subs.status == "canceled")
    n_churned = int(churned.count().execute())
    involuntary = int(churned.filter(churned.cancel_reason_code == "payment_failed").count().execute())
    result["churned_subscriptions"] = n_churned
    result["involuntary_share_of_churn"] = round(involuntary / n_churned, 4) if n_churned else None
    stated = churned.filter(churned.cancel_reason_code.notnull())
    reasons = stated.group_by("cancel_reason_code").aggregate(n=stated.count()).order_by(ibis.desc("n")).execute()
    result["stated_cancel_reasons"] = {r.cancel_reason_code: int(r.n) for r in reasons.itertuples()}
    lost = churned.group_by("currency").aggregate(lost_mrr=churned.mrr.sum()).execute()
    result["lost_mrr_minor"] = {r.currency: int(r.lost_mrr) for r in lost.itertuples()}
    orders = con.table("orders")
    result["orders"] = int(orders.count().execute())
    failed = con.table("payment_attempts")
    result["failed_payment_attempts"] = int(failed.filter(failed.status == "failed").count().execute())
    return result
