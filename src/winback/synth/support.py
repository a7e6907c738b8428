"""Help-desk tickets shared by both business kinds: response times, resolution, CSAT, subjects."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from winback.models.history import get_table
from winback.synth.arrays import DAY, HOUR, NA, build_table, choice, digits_width, ids, take
from winback.synth.texts import TICKET_SUBJECTS, TextPool

TICKET_STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
SUBJECT_POOL = TextPool(TICKET_SUBJECTS)
TOPIC = {name: i for i, name in enumerate(SUBJECT_POOL.groups)}


def ticket_table(rng: np.random.Generator, opened: np.ndarray, topic: np.ndarray, unhappy: np.ndarray,
                 cust: np.ndarray, feature: np.ndarray | None, people, horizon: int) -> pa.Table:
    """Tickets (rows already in id order). ``unhappy`` tickets get slow answers, often stay
    unresolved, and are rated 1-2 when rated at all; the others are answered within hours."""
    r = opened.size
    H = horizon
    first_resp = opened + np.where(unhappy, rng.lognormal(np.log(40 * HOUR), 0.8, r),
                                   rng.lognormal(np.log(3 * HOUR), 1.0, r)).astype(np.int64)
    resolved = first_resp + np.where(unhappy, rng.lognormal(np.log(5 * DAY), 0.6, r),
                                     rng.lognormal(np.log(18 * HOUR), 1.0, r)).astype(np.int64)
    resolved = np.where(unhappy & (rng.random(r) < 0.55), NA, resolved)
    responded = first_resp <= H
    first_resp = np.where(responded, first_resp, NA)
    done = (resolved != NA) & (resolved <= H)
    resolved = np.where(done, resolved, NA)
    status = np.where(done, np.where(rng.random(r) < 0.7, 5, 4),
                      np.where(~responded, 0, 1 + choice(rng, r, [0.6, 0.3, 0.1])))
    csat = np.where(unhappy, 1 + choice(rng, r, [0.55, 0.35, 0.10, 0.0, 0.0]),
                    1 + choice(rng, r, [0.03, 0.05, 0.12, 0.35, 0.45]))
    rated = done & (rng.random(r) < np.where(unhappy, 0.8, 0.6))
    priority = np.where(unhappy, choice(rng, r, [0.0, 0.35, 0.4, 0.25]), choice(rng, r, [0.2, 0.62, 0.14, 0.04]))
    lang = people.locale[cust]
    f = np.zeros(r, dtype=np.int64) if feature is None else np.asarray(feature, dtype=np.int64)
    needs_feature = np.isin(topic, [TOPIC["integration"], TOPIC["feature_request"]])
    f = np.where(needs_feature & (f == 0), 1 + choice(rng, r, [0.25, 0.2, 0.15, 0.2, 0.1, 0.1]), f)
    subject = SUBJECT_POOL.draw(rng, topic, lang, np.where(needs_feature, f, 0))
    return build_table(get_table("tickets"), r, {
        "ticket_id": ids("tk_", np.arange(1, r + 1), digits_width(max(r, 1))),
        "customer_id": people.customer_id.take(pa.array(cust)),
        "opened_at": opened,
        "first_response_at": first_resp,
        "resolved_at": resolved,
        "status": take(TICKET_STATUSES, status),
        "priority": take(PRIORITIES, priority),
        "topic": take(SUBJECT_POOL.groups, topic),
        "subject": subject,
        "csat": (csat.astype(np.int64), ~rated),
    })
