"""Copy the exit-survey answers given on winback's own survey page (state store
``survey_responses``) into the history's ``survey_responses``, so the next analysis sees them.

DESIGN.md: tracking and webhook events land in the state store and are copied into the history by
the next ingest/analyze. ``winback analyze`` calls :func:`copy_survey_responses` first.

One state response becomes up to five history rows (``response_id`` = ``web-{id}-{question}``),
in the shape the generator and imports use:

* ``main_reason`` - ``choice`` = the cancellation code of the chosen reason (price ->
  ``too_expensive`` ...), which :mod:`winback.insights.evidence` maps back to the reason;
* ``would_return_if`` - ``choice`` (lower_price, feature_available, easier_to_use, nothing);
* ``return_likelihood`` - ``score`` 0-10;
* ``detail`` and ``comment`` - ``text`` (the comment feeds themes as ``exit_comment``).

Idempotent: the copied rows of a source are replaced as a whole in one DuckDB transaction (their
``_import_id`` is null and their ``_ingested_at`` is the response's last change, so copying twice
leaves the same rows). Customers are matched by ``(source, external_id)``.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow as pa
from sqlalchemy import select

from winback.kit.db import make_engine
from winback.models.customer import Customer
from winback.models.tracking import SurveyResponse

PREFIX = "web-"
#: survey reason -> the cancellation code the history uses for it
REASON_CODES = {"price": "too_expensive", "missing_feature": "missing_features", "usability": "too_complex",
                "support": "customer_service", "competitor": "switched_service", "other": "other"}
COLUMNS = ("response_id", "customer_id", "responded_at", "survey", "question_id", "choice", "text", "score",
           "language")


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def history_rows(responses: list[dict]) -> list[dict]:
    """History rows (plus ``source``) for state responses joined with their customer (pure)."""
    out: list[dict] = []
    for r in responses:
        try:
            answers = json.loads(r["answers"] or "{}")
        except ValueError:
            answers = {}
        base = {"customer_id": r["external_id"], "source": r["source"], "survey": r["survey"],
                "responded_at": _naive_utc(r["updated_at"]), "language": r["locale"]}

        def add(question: str, *, choice=None, text=None, score=None) -> None:
            out.append({**base, "response_id": f"{PREFIX}{r['id']}-{question}", "question_id": question,
                        "choice": choice, "text": text, "score": score})

        reason = r.get("reason") or answers.get("main_reason")
        if reason in REASON_CODES:
            add("main_reason", choice=REASON_CODES[reason])
        if answers.get("would_return_if"):
            add("would_return_if", choice=str(answers["would_return_if"]))
        score = answers.get("return_likelihood")
        if isinstance(score, int) and 0 <= score <= 10:
            add("return_likelihood", score=score)
        if answers.get("detail"):
            add("detail", text=str(answers["detail"]))
        if r.get("comment"):
            add("comment", text=r["comment"])
    return out


def read_state_responses(state_url: str) -> list[dict]:
    sr, c = SurveyResponse.__table__, Customer.__table__
    engine = make_engine(state_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(sr.c.id, sr.c.survey, sr.c.locale, sr.c.reason, sr.c.answers, sr.c.comment,
                                       sr.c.updated_at, c.c.source, c.c.external_id)
                                .join(c, c.c.id == sr.c.customer_id).order_by(sr.c.id)).all()
    finally:
        engine.dispose()
    return [dict(r._mapping) for r in rows]


def copy_survey_responses(settings, con: duckdb.DuckDBPyConnection) -> int:
    """Replace the copied web survey rows in the history (``con``, writable) with the state store's
    current answers; returns how many history rows the answers make."""
    rows = history_rows(read_state_responses(settings.resolved_state_url))
    table = pa.table({
        "response_id": pa.array([r["response_id"] for r in rows], pa.string()),
        "customer_id": pa.array([r["customer_id"] for r in rows], pa.string()),
        "responded_at": pa.array([r["responded_at"] for r in rows], pa.timestamp("us")),
        "survey": pa.array([r["survey"] for r in rows], pa.string()),
        "question_id": pa.array([r["question_id"] for r in rows], pa.string()),
        "choice": pa.array([r["choice"] for r in rows], pa.string()),
        "text": pa.array([r["text"] for r in rows], pa.string()),
        "score": pa.array([r["score"] for r in rows], pa.int64()),
        "language": pa.array([r["language"] for r in rows], pa.string()),
        "source": pa.array([r["source"] for r in rows], pa.string()),
    })
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    con.register("_web_surveys", table)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DELETE FROM survey_responses WHERE _import_id IS NULL AND starts_with(response_id, '{PREFIX}')")
            con.execute(f"""INSERT INTO survey_responses ({cols}, source, _row_hash, _import_id, _ingested_at)
                SELECT {cols}, source, (hash({cols}, source) >> 1)::BIGINT, NULL, responded_at FROM _web_surveys""")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.unregister("_web_surveys")
    return len(rows)
