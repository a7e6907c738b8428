"""Who may use the web app and the REST API: users (hashed passwords, roles) and API keys."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from winback.models.base import Base, UTCDateTime

ROLES = ("viewer", "marketer", "admin")  # each role may do what the ones before it may


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)  # lower-cased
    name: Mapped[str | None] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)  # scrypt$n$r$p$salt$hash
    role: Mapped[str] = mapped_column(String(16), nullable=False)  # viewer | marketer | admin
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    session_epoch: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # +1 logs out every session
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)  # shown, identifies the key
    secret_hash: Mapped[str] = mapped_column(String(128), nullable=False)  # SHA-256 of the secret part
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
