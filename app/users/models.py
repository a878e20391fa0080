from __future__ import annotations

import enum

from sqlalchemy import Enum, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, TenantMixin, TimestampMixin


class Role(enum.StrEnum):
    rep = "rep"
    top_performer = "top_performer"
    coach = "coach"
    admin = "admin"


class User(TenantMixin, TimestampMixin, Base):
    __tablename__ = "users"
    # An identity belongs to its organization: one email may have an account (each with its
    # own password) in several organizations, never two in one. Email first, so the index
    # also serves sign-in, which looks an email up across organizations.
    __table_args__ = (UniqueConstraint("email", "org_id"),)

    # Stored lower-cased.
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=20, validate_strings=True)
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    # Access tokens carry the version they were issued at; a password change or reset and a
    # deactivation bump it, so tokens issued before are refused (see app.deps).
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
