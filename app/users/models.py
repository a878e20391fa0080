from __future__ import annotations

import enum

from sqlalchemy import Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, TenantMixin, TimestampMixin


class Role(enum.StrEnum):
    rep = "rep"
    top_performer = "top_performer"
    coach = "coach"
    admin = "admin"


class User(TenantMixin, TimestampMixin, Base):
    __tablename__ = "users"

    # Stored lower-cased: login is by email alone, so it is unique across all orgs.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=20, validate_strings=True)
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
