from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clips.models import Clip
from app.db import Base, TenantMixin, utcnow
from app.users.models import User


class ClipView(TenantMixin, Base):
    """One viewer's progress on one clip (upserted by the player every few seconds)."""

    __tablename__ = "clip_views"
    __label__ = "View"
    __table_args__ = (
        UniqueConstraint("clip_id", "user_id"),
        # "Who watched this clip", most recent first.
        Index("ix_clip_views_clip_last", "clip_id", "last_watched_at", "id"),
        # "What did I watch", most recent first (GET /v1/me/history).
        Index("ix_clip_views_user_last", "user_id", "last_watched_at", "id"),
    )

    clip_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    position_ms: Mapped[int]
    watched_ms: Mapped[int]
    completed: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_watched_at: Mapped[datetime] = mapped_column(default=utcnow)

    clip: Mapped[Clip] = relationship(lazy="raise")
    user: Mapped[User] = relationship(lazy="raise")
