"""Failed invoices with known outcomes, inserted directly into the state store, for the recovery
report's tests (tests/dunning/test_report.py, the CLI, the HTML report and the /dunning page).

Twelve failed invoices first fail between 2025-12-01 and 2025-12-24 (ten in USD, two in EUR); one
failed in June 2025, one in January 2026 (GBP) and one never failed. The expected figures of the
December window are worked out by hand in test_report.py."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert

from winback.models.delivery import OutboxMessage
from winback.models.dunning import BillingPaymentMethod, DunningAttempt, DunningCase

UTC = dt.timezone.utc
T = dt.datetime(2025, 12, 1, 10, 0, tzinfo=UTC)  # a Monday
SINCE = dt.datetime(2025, 11, 1, tzinfo=UTC)
UNTIL = dt.datetime(2026, 1, 1, tzinfo=UTC)


def d(days: float = 0, hours: float = 0) -> dt.datetime:
    return T + dt.timedelta(days=days, hours=hours)


# id, first failed (days after T), first code, category, status, amount, mrr, currency, recovered_by,
# recovered after (days), close_reason, needs_update
CASES = [
    (1, 0, "insufficient_funds", "soft", "recovered", 5000, 4900, "USD", "retry", 26 / 24, None, False),
    (2, 1, "insufficient_funds", "soft", "recovered", 3000, 2900, "USD", "retry", 3.5, None, False),
    (3, 2, "generic_decline", "soft", "recovered", 2000, 1900, "USD", "external", 0.25, None, False),
    (4, 7, "expired_card", "hard", "recovered", 10000, 9900, "USD", "customer_update", 8, None, False),
    (5, 8, "stolen_card", "hard", "recovered", 4000, 3900, "USD", "card_updater", 20, None, False),
    (6, 9, "lost_card", "hard", "exhausted", 7000, 6900, "USD", None, None, "canceled", False),
    (7, 14, "insufficient_funds", "soft", "exhausted", 1500, 1400, "USD", None, None, "paused", False),
    (8, 15, "timeout", "gateway", "open", 2500, 2400, "USD", None, None, None, False),
    (9, 21, "expired_card", "hard", "open", 6000, 5900, "USD", None, None, None, True),
    (10, 22, "do_not_honor", "soft", "closed", 900, 800, "USD", None, None, "voided", False),
    (11, 3, "insufficient_funds", "soft", "recovered", 4500, 4400, "EUR", "retry", 5, None, False),
    (12, 23, "insufficient_funds", "soft", "open", 1200, 1100, "eur", None, None, None, False),
    # outside the December window
    (14, -183, "insufficient_funds", "soft", "recovered", 1000, 1000, "USD", "retry", 2, None, False),
    (15, 35, "expired_card", "hard", "open", 800, 750, "GBP", None, None, None, True),
]

# case id, number, trigger, status, card key, started (days after T)
ATTEMPTS = [
    (1, 1, "initial", "failed", "card_A", 0), (1, 2, "schedule", "succeeded", "card_A", 26 / 24),
    (2, 1, "initial", "failed", "card_B", 1), (2, 2, "schedule", "failed", "card_B", 2),
    (2, 3, "schedule", "succeeded", "card_B", 4.5),
    (3, 1, "initial", "failed", "card_C", 2),
    (4, 1, "initial", "failed", "card_D", 7), (4, 2, "customer_update", "succeeded", "card_E", 15),
    (8, 1, "initial", "error", "card_F", 15), (8, 2, "quick", "error", "card_F", 15.01),
    (8, 3, "quick", "started", "card_F", 15.03),
    (6, 1, "initial", "failed", "card_G", 9), (6, 2, "schedule", "skipped", "card_G", 10),
    (7, 1, "initial", "failed", "card_A", 14), (7, 2, "schedule", "failed", "card_A", 15),
    (7, 3, "schedule", "failed", "card_A", 17), (7, 4, "schedule", "failed", "card_A", 21),
    (11, 1, "initial", "failed", "card_H", 3), (11, 2, "schedule", "succeeded", "card_H", 8),
    # of the June case: outside the window, not counted there
    (14, 1, "initial", "failed", "card_A", -183), (14, 2, "schedule", "succeeded", "card_A", -181),
]

# key, status, sent (days after T; None: not sent)
OUTBOX = [
    ("dunning:case:1:0", "sent", 0), ("dunning:case:1:1", "sent", 1), ("dunning:case:1:recovered", "sent", 1.1),
    ("dunning:case:6:final", "sent", 19), ("dunning:case:2:0", "bounced", 1), ("dunning:case:3:0", "pending", None),
    ("dunning:case:9:0", "sent", 33),  # after the window
    ("dunning:expiry:sandbox:pm_1:2025-12:30", "sent", -26), ("dunning:expiry:sandbox:pm_1:2025-12:15", "sent", -15),
    ("dunning:expiry:sandbox:pm_2:2025-12:30", "sent", -26), ("dunning:expiry:sandbox:pm_3:2026-01:30", "sent", 1),
    ("dunning:expiry:sandbox:pm_4:2026-01:30", "sent", 1), ("dunning:expiry:stripe:pm_5:2026-01:7", "failed", None),
    ("campaign:1:enrollment:1:step:0", "sent", 2),
]

# external id, updated via, changed (days after T)
PAYMENT_METHODS = [
    ("pm_1", "customer", -11),  # 15 days after the first reminder: counted
    ("pm_2", "card_updater", -21),  # 5 days after its reminder: counted (and a card-updater update)
    ("pm_3", "customer", 40),  # 39 days after its reminder: not counted
    ("pm_4", "import", 2),  # not a customer or card-updater change
    ("pm_6", "card_updater", -61),  # before the window
    ("pm_7", "card_updater", 19),  # a card-updater update without a reminder
]


def insert_report_data(engine) -> None:
    now = d(40)
    with engine.begin() as conn:
        for (cid, first, code, cat, status, amount, mrr, cur, by, rec_after, reason, needs) in CASES:
            conn.execute(insert(DunningCase), {
                "id": cid, "provider": "sandbox", "invoice_ref": f"in_{cid}", "subscription_ref": f"sub_{cid}",
                "customer_ref": f"cus_{cid}", "amount_minor": amount, "currency": cur, "mrr_minor": mrr,
                "status": status, "first_failed_at": d(first), "first_decline_code": code, "first_category": cat,
                "last_decline_code": code, "last_category": cat,
                "attempts": sum(1 for a in ATTEMPTS if a[0] == cid and a[3] != "skipped"),
                "needs_update": needs, "payment_method_ref": f"pm_case_{cid}",
                "next_attempt_at": d(first + 3) if status == "open" and not needs else None,
                "recovered_by": by, "recovered_at": d(first + rec_after) if rec_after is not None else None,
                "close_reason": reason, "closed_at": d(first + 14) if reason else None,
                "created_at": d(first), "updated_at": now})
        conn.execute(insert(DunningCase), {  # seen paid, never failed: not a failed invoice
            "id": 13, "provider": "sandbox", "invoice_ref": "in_13", "amount_minor": 9999, "currency": "USD",
            "mrr_minor": 9999, "status": "recovered", "recovered_by": "external", "recovered_at": d(5),
            "created_at": d(5), "updated_at": now})
        conn.execute(insert(DunningAttempt), [
            {"case_id": cid, "number": num, "idempotency_key": f"dunning:charge:{cid}:{num}", "trigger": trig,
             "status": status, "card_key": card, "payment_method_ref": card, "started_at": d(at),
             "finished_at": None if status == "started" else d(at, 0.01)}
            for cid, num, trig, status, card, at in ATTEMPTS])
        conn.execute(insert(OutboxMessage), [
            {"idempotency_key": key, "message_id": f"<{i}@test>", "channel": "email", "category": "transactional",
             "priority": 10, "status": status, "due_at": d(sent or 0), "attempts": 1, "created_at": d(sent or 0),
             "sent_at": d(sent) if sent is not None else None}
            for i, (key, status, sent) in enumerate(OUTBOX)])
        conn.execute(insert(BillingPaymentMethod), [
            {"provider": "sandbox", "external_id": ref, "customer_ref": f"owner_{ref}", "brand": "visa", "last4": "4242",
             "exp_month": 12, "exp_year": 2025, "status": "active", "updated_via": via, "event_at": d(at),
             "updated_at": d(at)} for ref, via, at in PAYMENT_METHODS])
