from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin, utcnow


class RefreshToken(IdMixin, Base):
    """An opaque refresh token, stored as its SHA-256 digest.

    Tokens issued from one login share a ``family_id``; each use rotates the token
    (``used_at`` set, a successor issued). Presenting a used token again means it leaked,
    so the whole family is revoked.
    """

    __tablename__ = "refresh_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginFailure(IdMixin, Base):
    """One failed password check: the email tried and the client address it came from.

    Recent rows throttle further attempts per (email, address) pair and per address (see
    ``app.auth.service``); rows older than the window count for nothing and are purged.
    """

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_email_address_at", "email", "address", "created_at"),
        Index("ix_login_failures_address_at", "address", "created_at"),
    )

    email: Mapped[str] = mapped_column(String(320))
    # The throttling key of the client address (an IPv6 address stands for its /64).
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
