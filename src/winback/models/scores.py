"""Per-customer analytics results, refreshed by ``winback analyze`` (read by segments and the web app)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from winback.models.base import Base, UTCDateTime


class CustomerScore(Base):
    __tablename__ = "customer_scores"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analysis_runs.id", ondelete="CASCADE"), nullable=False,
                                             index=True)
    # subscription facts
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # active | churned | never_paid
    churned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    churn_reason: Mapped[str | None] = mapped_column(String(32))  # stated category (price, involuntary, ...)
    involuntary: Mapped[bool | None] = mapped_column(Boolean)
    tenure_days: Mapped[int | None] = mapped_column(Integer)
    mrr_minor: Mapped[int | None] = mapped_column(BigInteger)  # current MRR, or the MRR lost at churn
    currency: Mapped[str | None] = mapped_column(String(3))
    # RFM
    recency_days: Mapped[int | None] = mapped_column(Integer)
    frequency: Mapped[int | None] = mapped_column(Integer)
    monetary_minor: Mapped[int | None] = mapped_column(BigInteger)
    r_score: Mapped[int | None] = mapped_column(Integer)
    f_score: Mapped[int | None] = mapped_column(Integer)
    m_score: Mapped[int | None] = mapped_column(Integer)
    rfm_segment: Mapped[str | None] = mapped_column(String(32))
    # value
    p_alive: Mapped[float | None] = mapped_column(Float)
    expected_purchases_12m: Mapped[float | None] = mapped_column(Float)
    expected_clv_12m_minor: Mapped[int | None] = mapped_column(BigInteger)
    historical_clv_minor: Mapped[int | None] = mapped_column(BigInteger)
    lost_value_minor: Mapped[int | None] = mapped_column(BigInteger)  # churned: value they would have brought
    lost_value_rank: Mapped[int | None] = mapped_column(Integer)  # 1 = most valuable lost customer
    value_tier: Mapped[str | None] = mapped_column(String(8))  # low | mid | high | top
    # insights (see winback.insights.profile for the definitions)
    reason_confidence: Mapped[float | None] = mapped_column(Float)
    reason_evidence: Mapped[str | None] = mapped_column(Text)  # JSON list
    requested_features: Mapped[str | None] = mapped_column(Text)  # JSON list of feature keys
    persona: Mapped[str | None] = mapped_column(String(32))
    health_score: Mapped[float | None] = mapped_column(Float)
    health_band: Mapped[str | None] = mapped_column(String(16))
    health_factors: Mapped[str | None] = mapped_column(Text)  # JSON list of plain-words factors
    churn_risk: Mapped[float | None] = mapped_column(Float)
    p_return: Mapped[float | None] = mapped_column(Float)
    value_after_return_minor: Mapped[int | None] = mapped_column(BigInteger)
    recoverable_value_minor: Mapped[int | None] = mapped_column(BigInteger)
    priority_rank: Mapped[int | None] = mapped_column(Integer, index=True)
    suggested_channel: Mapped[str | None] = mapped_column(String(16))


class AnalysisRun(Base):
    __tablename__ = "analysis_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    observation_end: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    customers_scored: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    summary: Mapped[str | None] = mapped_column(Text)  # JSON: the printed summary, for the dashboard
    report_path: Mapped[str | None] = mapped_column(Text)
    insights: Mapped[str | None] = mapped_column(Text)  # JSON: themes, feature requests, model reports
