"""The state-store reads and writes of the recipient pages (preferences, surveys, opt-outs)."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Connection, func, insert, select, update

from winback.kit.db import dialect_insert
from winback.models.campaigns import CustomerEvent
from winback.models.customer import Customer
from winback.models.tracking import CustomerPreference, SurveyResponse

CUSTOMERS = Customer.__table__
PREFERENCES = CustomerPreference.__table__
SURVEYS = SurveyResponse.__table__
EVENTS = CustomerEvent.__table__


def customer(conn: Connection, customer_id) -> dict | None:
    if not isinstance(customer_id, int) or isinstance(customer_id, bool):
        return None
    row = conn.execute(select(CUSTOMERS.c.id, CUSTOMERS.c.email, CUSTOMERS.c.locale, CUSTOMERS.c.marketing_opt_out,
                              CUSTOMERS.c.source, CUSTOMERS.c.external_id)
                       .where(CUSTOMERS.c.id == customer_id)).first()
    return dict(row._mapping) if row else None


def preferences(conn: Connection, customer_id: int) -> dict:
    row = conn.execute(select(PREFERENCES.c.topics_off, PREFERENCES.c.paused_until)
                       .where(PREFERENCES.c.customer_id == customer_id)).first()
    if row is None:
        return {"topics_off": [], "paused_until": None}
    try:
        topics = json.loads(row.topics_off) if row.topics_off else []
    except ValueError:
        topics = []
    return {"topics_off": [t for t in topics if isinstance(t, str)] if isinstance(topics, list) else [],
            "paused_until": row.paused_until}


def save_preferences(conn: Connection, customer_id: int, *, topics_off: list[str], paused_until: dt.datetime | None,
                     now: dt.datetime) -> None:
    values = {"topics_off": json.dumps(sorted(set(topics_off))), "paused_until": paused_until, "updated_at": now}
    stmt = dialect_insert(conn, PREFERENCES).values(customer_id=customer_id, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[PREFERENCES.c.customer_id], set_=values))


def opt_out(conn: Connection, customer_id: int, now: dt.datetime) -> bool:
    """Opt a customer without a usable address out of marketing (the suppression list needs an address)."""
    changed = conn.execute(update(CUSTOMERS).where(CUSTOMERS.c.id == customer_id,
                                                   CUSTOMERS.c.marketing_opt_out.is_(False))
                           .values(marketing_opt_out=True, opted_out_at=now, updated_at=now)).rowcount
    if changed:
        conn.execute(insert(EVENTS).values(
            event_id=f"unsubscribed:{customer_id}:{now.isoformat()}", customer_id=customer_id, type="unsubscribed",
            occurred_at=now, received_at=now, source="api",
            properties=json.dumps({"address": None, "source": "link", "scope": "commercial"})))
    return bool(changed)


def survey_response(conn: Connection, customer_id: int, survey: str, message: str) -> dict | None:
    row = conn.execute(select(SURVEYS).where(SURVEYS.c.customer_id == customer_id, SURVEYS.c.survey == survey,
                                             SURVEYS.c.message == message)).first()
    if row is None:
        return None
    out = dict(row._mapping)
    try:
        out["answers"] = json.loads(out["answers"] or "{}")
    except ValueError:
        out["answers"] = {}
    return out


def save_survey(conn: Connection, *, customer_id: int, survey: str, message: str, locale: str, reason: str,
                answers: dict, comment: str | None, now: dt.datetime) -> tuple[int, int]:
    """Insert or update the customer's answer to this survey from this message, and add a
    ``survey_answered`` customer event for this version of it. Returns (response id, version)."""
    values = {"locale": locale, "reason": reason, "answers": json.dumps(answers, ensure_ascii=False),
              "comment": comment, "updated_at": now}
    conn.execute(dialect_insert(conn, SURVEYS).values(customer_id=customer_id, survey=survey, message=message,
                                                      submitted_at=now, **values)
                 .on_conflict_do_nothing())
    response_id = conn.execute(select(SURVEYS.c.id).where(
        SURVEYS.c.customer_id == customer_id, SURVEYS.c.survey == survey, SURVEYS.c.message == message)).scalar_one()
    conn.execute(update(SURVEYS).where(SURVEYS.c.id == response_id).values(**values))
    prefix = f"survey:{response_id}:"
    version = 1 + conn.execute(select(func.count()).select_from(EVENTS).where(
        EVENTS.c.event_id.like(prefix + "%"))).scalar_one()
    properties = {"survey": survey, "message": message, "locale": locale, "reason": reason,
                  "return_likelihood": answers.get("return_likelihood"),
                  "would_return_if": answers.get("would_return_if"), "detail": answers.get("detail"),
                  "comment": comment, "response_id": response_id, "version": version}
    conn.execute(dialect_insert(conn, EVENTS).values(
        event_id=f"{prefix}{version}", customer_id=customer_id, type="survey_answered", occurred_at=now,
        received_at=now, source="web", properties=json.dumps(properties, ensure_ascii=False))
        .on_conflict_do_nothing())
    return response_id, version
