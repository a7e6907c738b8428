"""The customer record the delivery engine trusts: contact, locale, consent, opt-out."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from winback.models.base import Base, UTCDateTime


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_customers_source_external_id"),
        Index("ix_customers_email", "email"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64), nullable=False)
    external_id: Mapped[str] = mapped_column(String(255), nullable=False)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(Text)
    company: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(32))
    locale: Mapped[str | None] = mapped_column(String(35))
    timezone: Mapped[str | None] = mapped_column(String(64))
    country: Mapped[str | None] = mapped_column(String(2))
    plan_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    marketing_basis: Mapped[str] = mapped_column(String(16), nullable=False, default="none")
    marketing_opt_out: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    opted_out_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    attributes: Mapped[str | None] = mapped_column(Text)  # JSON object as text
    row_hash: Mapped[int] = mapped_column(BigInteger, nullable=False)  # content hash: unchanged rows are not rewritten
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)

    @property
    def can_receive_marketing(self) -> bool:
        return bool(self.email) and not self.marketing_opt_out and self.marketing_basis in ("consent", "soft_opt_in")
