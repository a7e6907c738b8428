"""Segments: their definitions, their materialised (versioned) memberships and a log of refreshes.

A segment's ``spec`` is the declarative definition (JSON text, see ``winback.segments.spec``);
``version`` goes up by one whenever the effective definition changes (``spec_hash``). A refresh
evaluates every segment against the history's ``customer_profile`` and applies the difference to
``segment_memberships``: joiners get ``entered_at`` (the evaluation instant) and the current
``version``; stayers keep theirs; leavers are deleted. Every refresh, failed or not, leaves a row
in ``segment_refreshes``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from winback.models.base import Base, UTCDateTime


class Segment(Base):
    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(16), nullable=False)  # builtin | workspace
    spec: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: the definition as written
    spec_hash: Mapped[str] = mapped_column(String(64), nullable=False)  # of the effective (expanded) definition
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    compiled_sql: Mapped[str | None] = mapped_column(Text)
    member_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    refreshed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    refresh_error: Mapped[str | None] = mapped_column(Text)  # the last refresh's error; members kept as they were
    refresh_seconds: Mapped[float | None] = mapped_column(Float)
    as_of: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # the instant the members were evaluated at
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class SegmentMembership(Base):
    __tablename__ = "segment_memberships"
    __table_args__ = (Index("ix_segment_memberships_customer_id", "customer_id"),)

    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    entered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)  # the segment version the customer entered under


class SegmentRefresh(Base):
    __tablename__ = "segment_refreshes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), nullable=False,
                                            index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    refreshed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    member_count: Mapped[int | None] = mapped_column(Integer)
    entered: Mapped[int | None] = mapped_column(Integer)
    exited: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    seconds: Mapped[float | None] = mapped_column(Float)
