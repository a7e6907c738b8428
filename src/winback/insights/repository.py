"""Reads of the stored insights (state store): the priority list, at-risk customers, the latest run's themes."""

from __future__ import annotations

import json

from sqlalchemy import select

from winback.config import Settings
from winback.kit.db import make_engine
from winback.kit.errors import WinbackError
from winback.models.customer import Customer
from winback.models.scores import AnalysisRun, CustomerScore

CUSTOMER_FIELDS = (Customer.id, Customer.source, Customer.external_id, Customer.name, Customer.email,
                   Customer.company, Customer.phone, Customer.locale)
JSON_FIELDS = ("reason_evidence", "health_factors", "requested_features")


def _row(r) -> dict:
    out = dict(r._mapping)
    for name in JSON_FIELDS:
        if name in out and isinstance(out[name], str):
            out[name] = json.loads(out[name])
    out["customer_ref"] = out.pop("id")
    out["customer_id"] = out.pop("external_id")
    return out


def latest_run(settings: Settings) -> dict:
    engine = make_engine(settings.resolved_state_url)
    try:
        with engine.connect() as conn:
            run = conn.execute(select(AnalysisRun).order_by(AnalysisRun.id.desc()).limit(1)).first()
    finally:
        engine.dispose()
    if run is None:
        raise WinbackError("no analysis yet: run `winback analyze` first")
    m = run._mapping
    return {"analysis_id": m["id"], "observation_end": m["observation_end"], "finished_at": m["finished_at"],
            "summary": json.loads(m["summary"] or "{}"), "insights": json.loads(m["insights"] or "{}")}


def _score_rows(settings: Settings, query) -> list[dict]:
    """Run a customers x customer_scores query after checking that an analysis has been stored."""
    engine = make_engine(settings.resolved_state_url)
    try:
        with engine.connect() as conn:
            if conn.execute(select(AnalysisRun.id).limit(1)).first() is None:
                raise WinbackError("no analysis yet: run `winback analyze` first")
            return [_row(r) for r in conn.execute(query)]
    finally:
        engine.dispose()


def priority_list(settings: Settings, limit: int = 50, *, phone_only: bool = False) -> list[dict]:
    """Lost customers by priority rank (expected recoverable value), with reason and channel."""
    cols = (*CUSTOMER_FIELDS, CustomerScore.priority_rank, CustomerScore.status, CustomerScore.churned_at,
            CustomerScore.churn_reason.label("reason"), CustomerScore.reason_confidence, CustomerScore.reason_evidence,
            CustomerScore.p_return, CustomerScore.value_after_return_minor, CustomerScore.recoverable_value_minor,
            CustomerScore.lost_value_minor, CustomerScore.mrr_minor, CustomerScore.currency,
            CustomerScore.value_tier, CustomerScore.persona, CustomerScore.suggested_channel,
            CustomerScore.requested_features)
    q = (select(*cols).join(CustomerScore, CustomerScore.customer_id == Customer.id)
         .where(CustomerScore.priority_rank.is_not(None)).order_by(CustomerScore.priority_rank).limit(limit))
    if phone_only:
        q = q.where(CustomerScore.suggested_channel == "phone")
    return _score_rows(settings, q)


def at_risk(settings: Settings, limit: int = 50, band: str = "at_risk") -> list[dict]:
    """Active customers in a health band, most at risk first (churn risk, then lowest health score)."""
    cols = (*CUSTOMER_FIELDS, CustomerScore.health_score, CustomerScore.health_band, CustomerScore.health_factors,
            CustomerScore.churn_risk, CustomerScore.mrr_minor, CustomerScore.currency, CustomerScore.value_tier,
            CustomerScore.expected_clv_12m_minor, CustomerScore.p_alive)
    q = (select(*cols).join(CustomerScore, CustomerScore.customer_id == Customer.id)
         .where(CustomerScore.status == "active", CustomerScore.health_band == band)
         .order_by(CustomerScore.churn_risk.desc().nulls_last(), CustomerScore.health_score, Customer.id).limit(limit))
    return _score_rows(settings, q)
